"""SEARCH (being written)."""

from __future__ import annotations

from typing import Any

from ..errors import IMAPError


async def handle_search(s: Any, cmd: Any) -> None:
    raise IMAPError("NO", "Not implemented yet")
