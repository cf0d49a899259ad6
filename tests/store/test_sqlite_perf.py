"""Throughput of concurrent single-message appends (group commit at work).

Run with `-s` to see the numbers: `pytest tests/store/test_sqlite_perf.py -m slow -s`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from mailbag.store.models import INBOX, AppendRequest
from mailbag.store.sqlite.backend import SQLiteStore

pytestmark = pytest.mark.slow

APPENDS = 2000
TASKS = 50
SIZE = 8192


def make(n: int) -> bytes:
    head = f"From: load@example.net\r\nSubject: load {n}\r\nMessage-ID: <{n}@x>\r\n\r\n".encode()
    line = b"y" * 78 + b"\r\n"
    return head + (line * (SIZE // len(line) + 1))[: SIZE - len(head)]


def test_concurrent_append_rate(tmp_path: Path) -> None:
    async def go() -> tuple[float, int]:
        store = SQLiteStore(tmp_path)
        await store.open()
        try:
            acct = await store.create_account("load@example.org", "h")
            box = await store.get_mailbox(acct.id, INBOX)
            assert box is not None
            todo = iter(range(APPENDS))

            async def worker() -> None:
                for n in todo:
                    await store.append(box.id, [AppendRequest(make(n))])

            commits = store.commit_count
            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(TASKS)))
            elapsed = time.perf_counter() - started
            commits = store.commit_count - commits
            assert (await store.mailbox_status(box.id)).messages == APPENDS
            assert store.verify() == ([], [])
            return elapsed, commits
        finally:
            await store.close()

    elapsed, commits = asyncio.run(go())
    print(
        f"\n{APPENDS} appends of {SIZE} bytes from {TASKS} tasks: {elapsed:.2f} s, "
        f"{APPENDS / elapsed:.0f} messages/s, {commits} commits "
        f"({APPENDS / commits:.1f} appends per commit)"
    )
    assert commits < APPENDS / 4
