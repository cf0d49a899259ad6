"""Change records between processes sharing one SQLite store (follow.py).

Two SQLiteStore instances on one directory stand for two processes: each has
its own writer, connections and change hub, and learns of the other's
commits only through `change_log`. (tests/e2e/test_cli.py checks the same
with a real `mailbag deliver` process and an IMAP session in IDLE.)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest

from mailbag.session.imap.selected import Exists, SelectedMailbox
from mailbag.store.changes import (
    Change,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
    Subscription,
    decode_changes,
    encode_changes,
)
from mailbag.store.models import UID, AccountID, AppendRequest, FlagOp, MailboxID, ModSeq
from mailbag.store.sqlite import writer

from .sqlite_support import opened, run, user


def message(n: int) -> bytes:
    return b"From: a@example.org\r\nSubject: m%d\r\n\r\nbody %d\r\n" % (n, n)


async def collect(sub: Subscription, count: int, timeout: float = 10) -> list[Change]:
    """The next `count` records of `sub` (fails the test after `timeout`)."""
    got: list[Change] = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            await sub.wait()
            got.extend(sub.drain())
    assert len(got) == count, got
    return got


def test_records_survive_encoding() -> None:
    a, m = AccountID(3), MailboxID(7)
    records: list[Change] = [
        MessagesAdded(a, m, (UID(1), UID(2), UID(9)), ModSeq(12), frozenset({"$Label", "Ünï"})),
        MessagesAdded(a, m, (UID(10),), ModSeq(13)),
        MessagesExpunged(a, m, (UID(2),), ModSeq(14)),
        FlagsChanged(
            a,
            m,
            ((UID(1), ModSeq(15), frozenset({"\\Seen", "x"})), (UID(9), ModSeq(15), frozenset())),
        ),
        MailboxCreated(a, m, "Työ/Ärchiv"),
        MailboxRenamed(a, m, "Työ/Ärchiv", 'Old "quoted" \\ name'),
        MailboxDeleted(a, m, 'Old "quoted" \\ name'),
    ]
    assert decode_changes(encode_changes(records)) == records
    assert decode_changes(encode_changes([])) == []


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        '{"a": 1}',
        "[[1]]",
        '[["z", 1, 2]]',
        '[["a", 1, 2, [1]]]',
        "[3]",
        '[["f", 1, 2, [["x"]], [1, 2]]]',
        '[["f", 1, 2, [], [1, 2, 0]]]',
    ],
)
def test_malformed_records_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        decode_changes(text)


def test_another_store_sees_every_kind_of_change(tmp_path: Path) -> None:
    """What one process commits reaches the other's subscribers, record for
    record as its own subscribers got them. The writing side follows nothing,
    as `mailbag deliver` does."""

    async def go() -> None:
        server = await opened(tmp_path)
        cli = await opened(tmp_path, follow_interval=None)
        try:
            acct, inbox = await user(server)
            theirs = server.changes.subscribe(acct.id)
            ours = cli.changes.subscribe(acct.id)
            r = await cli.append(
                inbox.id,
                [AppendRequest(message(1), frozenset({"$Work"})), AppendRequest(message(2))],
            )
            await cli.store_flags(inbox.id, r.uids[:1], FlagOp.ADD, ["\\Seen", "$Later"])
            await cli.expunge(inbox.id, r.uids[1:], require_deleted=False)
            await cli.create_mailbox(acct.id, "Projects")
            await cli.rename_mailbox(acct.id, "Projects", "Old projects")
            await cli.delete_mailbox(acct.id, "Old projects")
            own = ours.drain()
            assert [type(c) for c in own] == [
                MessagesAdded,
                FlagsChanged,
                MessagesExpunged,
                MailboxCreated,
                MailboxRenamed,
                MailboxDeleted,
            ]
            assert await collect(theirs, len(own)) == own
            assert server.follower is not None and server.follower.remote_rows == 6
            await asyncio.sleep(0.2)
            assert not theirs.has_pending()  # nothing twice
        finally:
            await cli.close()
            await server.close()

    run(go)


def test_own_and_others_records_come_in_commit_order(tmp_path: Path) -> None:
    """UIDs are given out in commit order, and a view only takes UIDs above
    those it has: each process must publish its own records after the
    other's earlier ones, never at once ahead of them."""

    async def go() -> None:
        a = await opened(tmp_path)
        b = await opened(tmp_path)
        try:
            acct, inbox = await user(a)
            subs = {s: s.changes.subscribe(acct.id) for s in (a, b)}
            view = SelectedMailbox(inbox, [], False, a.changes.subscribe(acct.id))

            async def deliver(store: object, n: int) -> None:
                assert store is a or store is b
                await store.append(inbox.id, [AppendRequest(message(n))])

            for round in range(4):
                await asyncio.gather(*(deliver(a if n % 2 else b, n) for n in range(50)))
                await asyncio.sleep(0.01 * round)
            for sub in subs.values():
                got = await collect(sub, 200)
                uids = [u for c in got if isinstance(c, MessagesAdded) for u in c.uids]
                assert uids == list(range(1, 201))
            assert view.poll(True) == [Exists(200)]
            assert list(view.uids()) == list(range(1, 201))
        finally:
            await b.close()
            await a.close()

    run(go)


def test_unreadable_record_is_skipped_and_following_goes_on(tmp_path: Path) -> None:
    async def go() -> None:
        server = await opened(tmp_path)
        cli = await opened(tmp_path, follow_interval=None)
        try:
            acct, inbox = await user(server)
            sub = server.changes.subscribe(acct.id)
            db = sqlite3.connect(tmp_path / "mailbag.db", isolation_level=None)
            db.execute(
                "INSERT INTO change_log (origin, at, changes) VALUES ('elsewhere', 0, 'garbage')"
            )
            db.close()
            r = await cli.append(inbox.id, [AppendRequest(message(1))])
            (added,) = await collect(sub, 1)
            assert isinstance(added, MessagesAdded) and added.uids == r.uids
        finally:
            await cli.close()
            await server.close()

    run(go)


def test_old_change_log_rows_are_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def go() -> None:
        store = await opened(tmp_path)
        try:
            _, inbox = await user(store)
            for n in range(3):
                await store.append(inbox.id, [AppendRequest(message(n))])
            db = sqlite3.connect(tmp_path / "mailbag.db", isolation_level=None)
            assert db.execute("SELECT count(*) FROM change_log").fetchone()[0] == 3
            db.execute("UPDATE change_log SET at = at - ?", (int(writer.CHANGE_LOG_KEEP) + 5,))
            monkeypatch.setattr(writer, "CHANGE_LOG_PRUNE_EVERY", 0.0)
            await store.append(inbox.id, [AppendRequest(message(9))])
            rows = db.execute("SELECT changes FROM change_log").fetchall()
            db.close()
            # The old rows went; the new one stays for the other processes.
            assert len(rows) == 1
            (added,) = decode_changes(rows[0][0])
            assert isinstance(added, MessagesAdded) and added.uids == (4,)
        finally:
            await store.close()

    run(go)


@pytest.mark.parametrize("long_path", [False, True])
def test_doorbell_wakes_the_follower_at_once(tmp_path: Path, long_path: bool) -> None:
    """A writer rings the other followers' doorbells after its commit, so
    they do not wait for their next look (here 60 s away). A directory too
    deep for a socket path gets a bell in the abstract namespace."""
    base = tmp_path / ("x" * 120 if long_path else "")
    if not long_path:
        # pytest's tmp_path may itself be long: a short directory of our own.
        base = Path(tempfile.mkdtemp(prefix="mb", dir="/tmp"))

    async def go() -> None:
        server = await opened(base, follow_interval=60.0)
        cli = await opened(base, follow_interval=None)
        try:
            acct, inbox = await user(server)
            bells = os.listdir(base / "bells")
            assert len(bells) == 1  # the server's; the CLI follows nothing
            sub = server.changes.subscribe(acct.id)
            started = time.monotonic()
            r = await cli.append(inbox.id, [AppendRequest(message(1))])
            (added,) = await collect(sub, 1, timeout=30)
            assert isinstance(added, MessagesAdded) and added.uids == r.uids
            assert time.monotonic() - started < 5
        finally:
            await cli.close()
            await server.close()
        # A follower that stops takes its bell along.
        assert os.listdir(base / "bells") == []

    try:
        run(go)
    finally:
        if not long_path:
            shutil.rmtree(base)


def test_bell_nobody_answers_is_removed(tmp_path: Path) -> None:
    """What a follower that died left in bells/ goes at the next ring."""

    async def go() -> None:
        store = await opened(tmp_path, follow_interval=None)
        try:
            _, inbox = await user(store)
            (tmp_path / "bells").mkdir(exist_ok=True)
            (tmp_path / "bells" / "0123456789abcdef").touch()
            await store.append(inbox.id, [AppendRequest(message(1))])
            assert os.listdir(tmp_path / "bells") == []
        finally:
            await store.close()

    run(go)
