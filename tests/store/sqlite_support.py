"""Helpers shared by the SQLite store tests (import explicitly, no conftest).

``run(fn, timeout=60)`` runs a coroutine function under a time limit;
``opened(path, files_only=False, **options)`` an opened SQLiteStore, with
every content a file when ``files_only`` (as a store written before schema
version 4); ``user(store, address)`` that account (created when missing)
and its INBOX.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from mailbag.store.models import INBOX, Account, Mailbox
from mailbag.store.sqlite.backend import SQLiteStore

T = TypeVar("T")


def run(fn: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await fn()

    return asyncio.run(main())


async def opened(path: Path, *, files_only: bool = False, **options: Any) -> SQLiteStore:
    store = SQLiteStore(path, **options)
    if files_only:
        # Small contents are otherwise kept in the database (blobs/indb.py).
        store.blobs.in_db_max = 0
    await store.open()
    return store


async def user(store: SQLiteStore, address: str = "alice@example.org") -> tuple[Account, Mailbox]:
    acct = await store.get_account(address) or await store.create_account(address, "hash")
    box = await store.get_mailbox(acct.id, INBOX)
    assert box is not None
    return acct, box
