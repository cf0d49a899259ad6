"""Message commands (being written)."""

from __future__ import annotations

from typing import Any

from ..errors import IMAPError


async def _todo(s: Any, cmd: Any) -> None:
    raise IMAPError("NO", "Not implemented yet")


handle_append = handle_expunge = handle_uid_expunge = handle_store = _todo
handle_copy = handle_move = _todo
