"""Mailbox commands (being written)."""

from __future__ import annotations

from typing import Any

from ..errors import IMAPError


async def _todo(s: Any, cmd: Any) -> None:
    raise IMAPError("NO", "Not implemented yet")


handle_create = handle_delete = handle_rename = handle_subscribe = _todo
handle_unsubscribe = handle_list = handle_lsub = handle_namespace = handle_status = _todo
