"""SQLite \\Recent claims (RFC 3501 §2.3.2): decided in memory at SELECT, written
to the database later without the SELECT waiting for that commit (issue 4).
The claim must stay exclusive meanwhile, and reach the database by close."""

from __future__ import annotations

import sqlite3
from itertools import pairwise
from pathlib import Path

from sqlite_support import opened, run, user

from mailbag.store.models import UID, AppendRequest


def message(n: int) -> bytes:
    return b"From: a@example.org\r\nSubject: recent %d\r\n\r\nbody %d\r\n" % (n, n)


def test_claims_interleaved_with_deliveries_are_exclusive(tmp_path: Path) -> None:
    """Each message is \\Recent for exactly one claimer: claims and deliveries
    alternate without waiting for the claims' writes, and the claimed ranges
    tile the UIDs with no gap and no overlap."""

    async def go() -> None:
        store = await opened(tmp_path)
        try:
            _, inbox = await user(store)
            firsts: list[int] = []
            for n in range(1, 21):
                await store.append(inbox.id, [AppendRequest(message(n))])
                if n % 3 == 0:
                    firsts.append(await store.claim_recent(inbox.id))
                    firsts.append(await store.claim_recent(inbox.id))  # nothing new
            firsts.append(await store.claim_recent(inbox.id))  # 19 and 20
            firsts.append(await store.claim_recent(inbox.id))
            assert firsts[-1] == 21
            # Claimer i sees [firsts[i], firsts[i+1]) as recent (the last
            # one, nothing yet): every UID 1..20 exactly once.
            owned = [u for a, b in pairwise(firsts) for u in range(a, b)]
            assert owned == list(range(1, 21))
            assert (await store.mailbox_status(inbox.id)).recent == 0
            box = await store.get_mailbox_by_id(inbox.id)
            assert box is not None and box.first_recent_uid == UID(21)
        finally:
            await store.close()

    run(go)


def test_claim_reaches_the_database_by_close(tmp_path: Path) -> None:
    """A claim made just before a clean shutdown is written (the queued write
    runs before the writer stops); counters match a recount."""

    async def go() -> None:
        store = await opened(tmp_path)
        _, inbox = await user(store)
        await store.append(inbox.id, [AppendRequest(message(n)) for n in range(3)])
        assert await store.claim_recent(inbox.id) == 1
        await store.close()
        conn = sqlite3.connect(tmp_path / "mailbag.db")
        row = conn.execute(
            "SELECT first_recent_uid, recent_count, (SELECT count(*) FROM messages m"
            " WHERE m.mailbox_id = b.id AND m.uid >= b.first_recent_uid)"
            " FROM mailboxes b WHERE b.id = ?",
            (inbox.id,),
        ).fetchone()
        conn.close()
        assert row == (4, 0, 0)
        store = await opened(tmp_path)
        try:
            assert await store.claim_recent(inbox.id) == 4
            await store.append(inbox.id, [AppendRequest(message(9))])
            assert (await store.mailbox_status(inbox.id)).recent == 1
        finally:
            await store.close()

    run(go)
