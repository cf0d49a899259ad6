"""What only the SQLite backend has: group commit, crash recovery, files, processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sqlite3
import stat
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlite_support import opened, run, user

from mailbag.errors import NotFound, StoreError, StoreUnavailable
from mailbag.store.blobs import content_id
from mailbag.store.changes import Change, MessagesAdded
from mailbag.store.contract import message
from mailbag.store.models import (
    INBOX,
    INDEX_COLUMNS,
    UID,
    AppendRequest,
    FlagOp,
    MessageFacts,
)
from mailbag.store.sqlite.backend import SQLiteStore
from mailbag.store.sqlite.schema import SCHEMA_VERSION
from mailbag.store.sqlite.writer import Tx


def test_group_commit_batches_concurrent_appends(tmp_path: Path) -> None:
    async def go() -> None:
        store = await opened(tmp_path)
        try:
            _, inbox = await user(store)
            commits, units = store.commit_count, store.unit_count
            results = await asyncio.gather(
                *(store.append(inbox.id, [AppendRequest(message(n))]) for n in range(200))
            )
            assert sorted(u for r in results for u in r.uids) == list(range(1, 201))
            assert store.unit_count - units == 200
            # Many deliveries share one commit (one fsync of the WAL).
            assert store.commit_count - commits <= 100, store.commit_count - commits
            assert (await store.mailbox_status(inbox.id)).messages == 200
        finally:
            await store.close()

    run(go)


def test_failing_unit_rolls_back_alone(tmp_path: Path) -> None:
    """Each unit runs in its own SAVEPOINT inside the shared transaction."""

    async def go() -> None:
        store = await opened(tmp_path)
        try:
            acct, _ = await user(store)
            writer = store._w()

            def good(name: str) -> Callable[[Tx], str]:
                def unit(tx: Tx) -> str:
                    tx.conn.execute(
                        "INSERT INTO subscriptions (account_id, name) VALUES (?, ?)",
                        (acct.id, name),
                    )
                    return name

                return unit

            def bad(tx: Tx) -> None:
                tx.conn.execute(
                    "INSERT INTO subscriptions (account_id, name) VALUES (?, 'half-done')",
                    (acct.id,),
                )
                raise NotFound("on purpose")

            commits = store.commit_count
            outcomes = await asyncio.gather(
                writer.run(good("one")),
                writer.run(bad),
                writer.run(good("two")),
                return_exceptions=True,
            )
            assert outcomes[0] == "one" and outcomes[2] == "two"
            assert isinstance(outcomes[1], NotFound)
            assert store.commit_count == commits + 1  # all three in one batch
            subs = await store.list_subscriptions(acct.id)
            assert "one" in subs and "two" in subs and "half-done" not in subs
        finally:
            await store.close()

    run(go)


def test_crash_leftovers_swept_on_open(tmp_path: Path) -> None:
    async def setup() -> str:
        store = await opened(tmp_path, files_only=True)
        _, inbox = await user(store)
        await store.append(inbox.id, [AppendRequest(message(1))])
        (msg,) = await store.list_messages(inbox.id)
        await store.close()
        return msg.content_id

    kept = run(setup)
    blobs = tmp_path / "blobs"
    # What a crash between the file's rename and the commit leaves behind ...
    orphan_data = message(2)
    orphan = content_id(orphan_data)
    orphan_path = blobs / orphan[:2] / orphan
    orphan_path.parent.mkdir(parents=True, exist_ok=True)
    orphan_path.write_bytes(orphan_data)
    # ... and a crash in the middle of writing one.
    temp = orphan_path.parent / f"{orphan}.deadbeef.tmp"
    temp.write_bytes(orphan_data[:10])

    async def reopen() -> None:
        store = await opened(tmp_path, files_only=True)
        try:
            assert store.swept == (1, 1)
            assert store.verify() == ([], [])
            assert await store.read_content(kept) == message(1)  # type: ignore[arg-type]
        finally:
            await store.close()

    run(reopen)
    assert not orphan_path.exists() and not temp.exists()
    assert (blobs / kept[:2] / kept).is_file()


def test_no_sweep_while_another_instance_is_open(tmp_path: Path) -> None:
    """The CLI opening the store must not delete the server's in-flight files."""

    async def go() -> None:
        server = await opened(tmp_path)
        try:
            assert server.swept == (0, 0)
            in_flight = tmp_path / "blobs" / "ab" / ("abcd" + "0" * 60 + ".1234.tmp")
            in_flight.parent.mkdir(exist_ok=True)
            in_flight.write_bytes(b"partial")
            cli = await opened(tmp_path)
            assert cli.swept is None
            await cli.close()
            assert in_flight.exists()
        finally:
            await server.close()
        again = await opened(tmp_path)
        assert again.swept == (1, 0)
        await again.close()

    run(go)


def test_second_instance_sees_the_first(tmp_path: Path) -> None:
    """No in-process cache of accounts, mailboxes or UIDNEXT can go stale."""

    async def go() -> None:
        server = await opened(tmp_path)
        cli = await opened(tmp_path)
        try:
            acct, inbox = await user(server)
            assert await cli.get_account(acct.address) == acct
            r1 = await cli.append(inbox.id, [AppendRequest(message(1))])
            r2 = await server.append(inbox.id, [AppendRequest(message(2))])
            r3 = await cli.append(inbox.id, [AppendRequest(message(3))])
            assert (r1.uids, r2.uids, r3.uids) == ((1,), (2,), (3,))
            assert len(await server.list_messages(inbox.id)) == 3
            bob = await cli.create_account("bob@example.org", "h")
            assert await server.get_account("bob@example.org") == bob
            await cli.create_mailbox(acct.id, "from-cli")
            assert await server.get_mailbox(acct.id, "from-cli") is not None
            await server.set_password_hash(acct.id, "new")
            assert await cli.get_password_hash(acct.id) == "new"
        finally:
            await cli.close()
            await server.close()

    run(go)


def test_cli_process_writes_while_server_is_open(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from mailbag.store.sqlite.backend import SQLiteStore
        from mailbag.store.models import AppendRequest, INBOX

        async def main():
            store = SQLiteStore(Path({str(tmp_path)!r}))
            await store.open()
            assert store.swept is None, "must not sweep while the server runs"
            acct = await store.create_account("carol@example.org", "h")
            box = await store.get_mailbox(acct.id, INBOX)
            alice = await store.get_account("alice@example.org")
            inbox = await store.get_mailbox(alice.id, INBOX)
            for n in range(20):
                data = b"Subject: cli %d\\r\\n\\r\\nx\\r\\n" % n
                await store.append(inbox.id, [AppendRequest(data)])
            await store.close()

        asyncio.run(main())
        """
    )

    async def go() -> None:
        server = await opened(tmp_path)
        try:
            _, inbox = await user(server)
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
            # The server keeps writing while the other process does.
            mine = []
            while proc.returncode is None:
                r = await server.append(inbox.id, [AppendRequest(message(len(mine)))])
                mine.extend(r.uids)
                try:
                    await asyncio.wait_for(proc.wait(), 0.01)
                except TimeoutError:
                    pass
            assert proc.returncode == 0
            assert await server.get_account("carol@example.org") is not None
            msgs = await server.list_messages(inbox.id)
            assert len(msgs) == 20 + len(mine)
            assert [m.uid for m in msgs] == list(range(1, len(msgs) + 1))
            r = await server.append(inbox.id, [AppendRequest(message(999))])
            assert r.uids == (len(msgs) + 1,)
            assert server.verify() == ([], [])
        finally:
            await server.close()

    run(go)


def test_writer_waits_for_another_writer(tmp_path: Path) -> None:
    """busy_timeout: a short write lock held elsewhere delays, a long one fails."""

    async def go() -> None:
        store = await opened(tmp_path, busy_timeout=0.5)
        try:
            _, inbox = await user(store)
            other = sqlite3.connect(tmp_path / "mailbag.db", isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            loop = asyncio.get_running_loop()
            loop.call_later(0.2, other.execute, "COMMIT")
            started = time.monotonic()
            r = await store.append(inbox.id, [AppendRequest(message(1))])
            assert r.uids == (1,) and time.monotonic() - started >= 0.15
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreUnavailable):
                await store.append(inbox.id, [AppendRequest(message(2))])
            other.execute("COMMIT")
            other.close()
            # The store still works, and the failed delivery's file is collected
            # with the next batch.
            assert (await store.append(inbox.id, [AppendRequest(message(3))])).uids == (2,)
            assert store.verify() == ([], [])
        finally:
            await store.close()

    run(go)


def test_writers_of_several_processes_take_turns_at_the_write_lock(tmp_path: Path) -> None:
    """Every writer takes write.lock (flock) around its transactions, so one
    waits for another's commit without SQLite's sleeping busy handler."""
    import fcntl

    async def go() -> None:
        store = await opened(tmp_path)
        try:
            _, inbox = await user(store)
            fd = os.open(tmp_path / "write.lock", os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)  # another process's writer, mid-commit
            asyncio.get_running_loop().call_later(0.3, fcntl.flock, fd, fcntl.LOCK_UN)
            started = time.monotonic()
            r = await store.append(inbox.id, [AppendRequest(message(1))])
            assert r.uids == (1,) and time.monotonic() - started >= 0.25
            # Released after the commit: the other writer gets it at once.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.close(fd)
        finally:
            await store.close()

    run(go)


def test_changes_published_only_after_commit(tmp_path: Path) -> None:
    async def go() -> None:
        store = await opened(tmp_path)
        try:
            _, inbox = await user(store)
            spy = sqlite3.connect(tmp_path / "mailbag.db")
            seen: list[tuple[Change, int]] = []

            def listener(change: Change) -> None:
                # Another connection sees only committed data.
                if isinstance(change, MessagesAdded):
                    rows = spy.execute(
                        "SELECT count(*) FROM messages WHERE mailbox_id = ? AND uid = ?",
                        (change.mailbox_id, change.uids[0]),
                    ).fetchall()
                    seen.append((change, rows[0][0]))

            store.changes.add_listener(listener)
            await asyncio.gather(
                *(store.append(inbox.id, [AppendRequest(message(n))]) for n in range(20))
            )
            assert len(seen) == 20 and all(n == 1 for _, n in seen)
            spy.close()
        finally:
            await store.close()

    run(go)


def test_failed_append_leaves_no_file(tmp_path: Path) -> None:
    async def go() -> None:
        store = await opened(tmp_path)
        try:
            acct, _ = await user(store)
            box = await store.create_mailbox(acct.id, "gone")
            await store.delete_mailbox(acct.id, "gone")
            data = message(5, body_size=1000)
            with pytest.raises(NotFound):
                await store.append(box.id, [AppendRequest(data)])
            assert not store.blobs.path(content_id(data)).exists()
            assert store.verify() == ([], [])
        finally:
            await store.close()

    run(go)


def test_cancelled_append_stores_nothing(tmp_path: Path) -> None:
    async def go() -> None:
        store = await opened(tmp_path)
        try:
            _, inbox = await user(store)
            data = message(1, body_size=4_000_000)
            task = asyncio.create_task(store.append(inbox.id, [AppendRequest(data)]))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The worker thread finishes its file; it is then collected.
            path = store.blobs.path(content_id(data))
            for _ in range(200):
                if store.verify() == ([], []) and not path.exists():
                    break
                await asyncio.sleep(0.02)
            assert not path.exists()
            assert await store.list_messages(inbox.id) == []
        finally:
            await store.close()

    run(go)


def test_delete_and_readd_same_content_in_one_batch(tmp_path: Path) -> None:
    """The last reference dropped and the same bytes re-added concurrently."""

    async def go() -> None:
        store = await opened(tmp_path)
        try:
            _, inbox = await user(store)
            for round_ in range(15):
                data = message(round_)
                (old,) = (await store.append(inbox.id, [AppendRequest(data)])).uids
                _, added = await asyncio.gather(
                    store.expunge(inbox.id, [old], require_deleted=False),
                    store.append(inbox.id, [AppendRequest(data)]),
                )
                (msg,) = await store.list_messages(inbox.id, added.uids)
                assert await store.read_content(msg.content_id) == data
                assert store.verify() == ([], [])
        finally:
            await store.close()

    run(go)


def test_identical_content_is_one_file(tmp_path: Path) -> None:
    async def go() -> None:
        store = await opened(tmp_path, files_only=True)
        try:
            acct, inbox = await user(store)
            data = message(1, body_size=2000)
            await store.append(inbox.id, [AppendRequest(data)] * 3)
            sent = await store.get_mailbox(acct.id, "Sent")
            assert sent is not None
            await store.copy(inbox.id, [UID(1), UID(2)], sent.id)
            files = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
            assert [p.name for p in files] == [content_id(data)]
            assert files[0].read_bytes() == data
            rows = sqlite3.connect(tmp_path / "mailbag.db").execute("SELECT refcount FROM contents")
            assert rows.fetchall() == [(5,)]
        finally:
            await store.close()

    run(go)


def test_one_message_to_many_recipients_is_one_file(tmp_path: Path) -> None:
    async def go() -> None:
        store = await opened(tmp_path, files_only=True)
        try:
            boxes = [(await user(store, f"u{n}@example.org"))[1] for n in range(20)]
            data = message(1, body_size=3000)
            await asyncio.gather(*(store.append(b.id, [AppendRequest(data)]) for b in boxes))
            await asyncio.gather(*(store.append(b.id, [AppendRequest(data)]) for b in boxes))
            files = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
            assert [p.name for p in files] == [content_id(data)]
            conn = sqlite3.connect(tmp_path / "mailbag.db")
            assert conn.execute("SELECT refcount FROM contents").fetchall() == [(40,)]
            conn.close()
            for b in boxes:
                msgs = await store.list_messages(b.id)
                assert [await store.read_content(m.content_id) for m in msgs] == [data, data]
        finally:
            await store.close()

    run(go)


def test_files_and_database_settings(tmp_path: Path) -> None:
    async def go() -> None:
        store = await opened(tmp_path, files_only=True)
        try:
            _, inbox = await user(store)
            await store.append(inbox.id, [AppendRequest(message(1))])
            (msg,) = await store.list_messages(inbox.id)
            conn = sqlite3.connect(tmp_path / "mailbag.db")
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            conn.close()
            for path in (tmp_path / "mailbag.db", store.blobs.path(msg.content_id)):
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            assert stat.S_IMODE((tmp_path / "blobs").stat().st_mode) == 0o700

            def pragmas(tx: Tx) -> tuple[int, int]:
                sync = tx.conn.execute("PRAGMA synchronous").fetchone()[0]
                fks = tx.conn.execute("PRAGMA foreign_keys").fetchone()[0]
                return sync, fks

            # synchronous=FULL (2): the commit is durable when the caller hears OK.
            assert await store._w().run(pragmas) == (2, 1)
        finally:
            await store.close()

    run(go)


def test_facts_round_trip_odd_values(tmp_path: Path) -> None:
    facts = MessageFacts(
        envelope=[None, "lone surrogate \udcff here", ["nested", ["deep", 1, 2.5, True]], {}],
        bodystructure={"parts": [[], [None]], "big": 2**70},
        header_size=123,
        body_lines=0,
        header_fields={"subject": "日本語 \u2028 ok", "x-null": "a\x00b"},
        sent_date=dt.datetime(
            1999, 12, 31, 23, 59, 59, tzinfo=dt.timezone(-dt.timedelta(hours=11))
        ),
    )

    async def go() -> None:
        store = await opened(tmp_path)
        _, inbox = await user(store)
        await store.append(inbox.id, [AppendRequest(message(1), facts=facts)])
        await store.close()
        store = await opened(tmp_path)
        try:
            (msg,) = await store.list_messages(inbox.id)
            assert await store.get_facts(msg.content_id) == facts
        finally:
            await store.close()

    run(go)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    async def setup() -> None:
        store = await opened(tmp_path)
        await store.close()

    run(setup)
    conn = sqlite3.connect(tmp_path / "mailbag.db", isolation_level=None)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.close()

    async def go() -> None:
        store = SQLiteStore(tmp_path)
        with pytest.raises(StoreUnavailable, match="schema version 99"):
            await store.open()

    run(go)


def test_version_2_database_is_brought_to_3(tmp_path: Path) -> None:
    """Contents stored before version 3 have no FETCH forms (get_forms leaves
    them out, get_facts has none) and get their header row from content_text;
    contents stored after have both."""
    from mailbag.message import compute_facts

    old_msg = b"From: Ann <ann@example.org>\r\nSubject: Old news\r\n\r\nbody\r\n"
    new_msg = b"From: Bob <bob@example.org>\r\nSubject: New news\r\n\r\nbody\r\n"

    async def setup() -> str:
        store = await opened(tmp_path, fts_worker=False)
        _acct, box = await user(store)
        r = await store.append(box.id, [AppendRequest(old_msg)])
        (m,) = await store.list_messages(box.id, r.uids)
        await store.close()
        return m.content_id

    old_cid = run(setup)
    with sqlite3.connect(tmp_path / "mailbag.db") as conn:
        conn.executescript(
            "DROP TRIGGER contents_headers_gone; DROP TABLE content_headers;"
            " ALTER TABLE contents DROP COLUMN imap_envelope;"
            " ALTER TABLE contents DROP COLUMN imap_body;"
            " ALTER TABLE contents DROP COLUMN imap_bodystructure;"
            " UPDATE schema_version SET version = 2;"
        )

    async def go() -> None:
        store = await opened(tmp_path, fts_worker=False)
        try:
            acct = await store.get_account("alice@example.org")
            assert acct is not None
            box = await store.get_mailbox(acct.id, INBOX)
            assert box is not None
            r = await store.append(box.id, [AppendRequest(new_msg)])
            (m,) = await store.list_messages(box.id, r.uids)
            forms = await store.get_forms([old_cid, m.content_id])  # type: ignore[list-item]
            assert list(forms) == [m.content_id]
            assert forms[m.content_id] == compute_facts(new_msg).forms
            assert (await store.get_facts(old_cid)).forms is None  # type: ignore[arg-type]
            got = await store.search_text(box.id, "FROM", "ann")
            assert got is not None and got.uids == {1} and not got.unindexed
            got = await store.search_text(box.id, "SUBJECT", "news")
            assert got is not None and got.uids == {1, 2} and not got.unindexed
        finally:
            await store.close()
        with sqlite3.connect(tmp_path / "mailbag.db") as conn:
            assert conn.execute("SELECT version FROM schema_version").fetchone() == (
                SCHEMA_VERSION,
            )

    run(go)


def test_close_finishes_queued_writes_then_refuses(tmp_path: Path) -> None:
    async def go() -> None:
        store = await opened(tmp_path)
        acct, _ = await user(store)
        writer = store._w()

        def sub(n: int) -> Callable[[Tx], int]:
            def unit(tx: Tx) -> int:
                tx.conn.execute(
                    "INSERT INTO subscriptions (account_id, name) VALUES (?, ?)",
                    (acct.id, f"s{n}"),
                )
                return n

            return unit

        tasks = [asyncio.create_task(writer.run(sub(n))) for n in range(30)]
        await asyncio.sleep(0)  # every unit is queued now
        await store.close()
        assert [await t for t in tasks] == list(range(30))
        with pytest.raises(StoreUnavailable):
            await store.append(1, [AppendRequest(message(1))])  # type: ignore[arg-type]
        store = await opened(tmp_path)
        try:
            subs = await store.list_subscriptions(acct.id)
            assert all(f"s{n}" in subs for n in range(30))
        finally:
            await store.close()

    run(go)


def test_refcounts_and_counters_stay_exact(tmp_path: Path) -> None:
    """The trigger-kept numbers equal a recount after a mixed workload."""

    async def go() -> None:
        store = await opened(tmp_path)
        try:
            acct, inbox = await user(store)
            trash = await store.get_mailbox(acct.id, "Trash")
            assert trash is not None
            await store.append(inbox.id, [AppendRequest(message(n % 7)) for n in range(40)])
            await store.store_flags(inbox.id, map(UID, range(1, 40, 3)), FlagOp.ADD, ["\\Seen"])
            await store.store_flags(inbox.id, map(UID, range(1, 40, 4)), FlagOp.ADD, ["\\Deleted"])
            await store.claim_recent(inbox.id)
            await store.append(inbox.id, [AppendRequest(message(n)) for n in range(5)])
            await store.copy(inbox.id, map(UID, range(1, 20)), trash.id)
            await store.move(inbox.id, map(UID, range(20, 30)), trash.id)
            await store.expunge(inbox.id)
            await store.store_flags(trash.id, map(UID, range(1, 10)), FlagOp.REPLACE, [])
            # Flag changes in every direction, with keywords (the counters
            # follow store_flags, not a trigger, since schema version 5).
            await store.store_flags(trash.id, map(UID, range(1, 30)), FlagOp.ADD, ["\\Seen", "$A"])
            await store.store_flags(trash.id, map(UID, range(1, 30, 2)), FlagOp.REMOVE, ["\\Seen"])
            await store.store_flags(
                trash.id, map(UID, range(5, 25)), FlagOp.REPLACE, ["\\Deleted", "$B"]
            )
            await store.store_flags(trash.id, map(UID, range(1, 30, 3)), FlagOp.ADD, ["\\Seen"])
            await store.store_flags(
                trash.id, map(UID, range(1, 30, 5)), FlagOp.REMOVE, ["\\Deleted"]
            )
            conn = sqlite3.connect(tmp_path / "mailbag.db")
            bad = conn.execute(
                """
                SELECT b.id FROM mailboxes b WHERE
                  b.message_count != (SELECT count(*) FROM messages WHERE mailbox_id = b.id)
                  OR b.unseen_count != (SELECT count(*) FROM messages
                                        WHERE mailbox_id = b.id AND (flags & 1) = 0)
                  OR b.deleted_count != (SELECT count(*) FROM messages
                                         WHERE mailbox_id = b.id AND (flags & 8) != 0)
                  OR b.total_size != (SELECT coalesce(sum(size), 0) FROM messages
                                      WHERE mailbox_id = b.id)
                  OR b.recent_count != (SELECT count(*) FROM messages
                                        WHERE mailbox_id = b.id AND uid >= b.first_recent_uid)
                """
            ).fetchall()
            assert bad == []
            refs = conn.execute(
                "SELECT c.cid FROM contents c WHERE c.refcount !="
                " (SELECT count(*) FROM messages m WHERE m.content_id = c.id)"
            ).fetchall()
            assert refs == []
            conn.close()
            assert store.verify() == ([], [])
        finally:
            await store.close()

    run(go)


def test_version_4_database_is_brought_to_5(tmp_path: Path) -> None:
    """Version 5 drops the per-row flag trigger; a version 4 database (which
    has it) is migrated on open (to 5 and on), and its counters stay exact
    afterwards."""

    async def go() -> None:
        store = await opened(tmp_path)
        try:
            _, inbox = await user(store)
            await store.append(inbox.id, [AppendRequest(message(n)) for n in range(6)])
        finally:
            await store.close()
        with sqlite3.connect(tmp_path / "mailbag.db") as conn:
            conn.executescript(
                "CREATE TRIGGER messages_flagged AFTER UPDATE OF flags ON messages"
                " WHEN (OLD.flags & 9) != (NEW.flags & 9) BEGIN"
                " UPDATE mailboxes SET"
                " unseen_count = unseen_count + ((NEW.flags & 1) = 0) - ((OLD.flags & 1) = 0),"
                " deleted_count = deleted_count + ((NEW.flags & 8) != 0) - ((OLD.flags & 8) != 0)"
                " WHERE id = NEW.mailbox_id; END;"
                " UPDATE schema_version SET version = 4;"
            )
        store = await opened(tmp_path)
        try:
            _, inbox = await user(store)
            await store.store_flags(inbox.id, map(UID, [1, 2, 3]), FlagOp.ADD, ["\\Seen"])
            await store.store_flags(inbox.id, map(UID, [2, 5]), FlagOp.ADD, ["\\Deleted"])
            status = await store.mailbox_status(inbox.id)
            assert (status.unseen, status.deleted) == (3, 2)
        finally:
            await store.close()
        with sqlite3.connect(tmp_path / "mailbag.db") as conn:
            assert conn.execute("SELECT version FROM schema_version").fetchone() == (
                SCHEMA_VERSION,
            )
            triggers = conn.execute(
                "SELECT name FROM sqlite_master"
                " WHERE type = 'trigger' AND name = 'messages_flagged'"
            ).fetchall()
            assert triggers == []

    run(go)


def test_store_errors_are_store_errors(tmp_path: Path) -> None:
    async def go() -> None:
        store = SQLiteStore(tmp_path)
        with pytest.raises(StoreUnavailable):
            await store.get_account("x@y")
        await store.open()
        try:
            with pytest.raises(StoreError):
                await store.read_content("zz", 0, 10)  # type: ignore[arg-type]
        finally:
            await store.close()

    run(go)


def test_message_index_orders_what_the_planner_left_unordered(tmp_path: Path) -> None:
    """message_index reads its columns as JSON arrays whose order comes from a
    subquery's ORDER BY; a planner may drop that (SQLite >= 3.43), and the
    columns are then put in UID order here: the same index either way."""

    async def go() -> None:
        store = await opened(tmp_path)
        try:
            _, inbox = await user(store)
            west = dt.timezone(dt.timedelta(hours=-5))
            reqs = [
                AppendRequest(
                    message(n),
                    ["\\Seen", f"$k{n % 2}"] if n % 3 else [],
                    dt.datetime(1969 + 11 * n, 1 + n, 1, 3, tzinfo=west),
                )
                for n in range(5)
            ]
            await store.append(inbox.id, reqs)
            await store.expunge(inbox.id, [UID(2)], require_deleted=False)
            want = await store.message_index(inbox.id, INDEX_COLUMNS)
            real = store._q

            def shuffled(sql: str, params: Sequence[object] = ()) -> list[Any]:
                rows = real(sql, params)
                if "json_group_array(uid)" in sql:
                    count, *docs = rows[0]
                    order = [3, 0, 2, 1]
                    rows = [(count, *(json.dumps([json.loads(d)[i] for i in order]) for d in docs))]
                return rows

            store._q = shuffled  # type: ignore[method-assign]
            got = await store.message_index(inbox.id, INDEX_COLUMNS)
            assert list(got.uids) == [1, 3, 4, 5]
            assert got == want
        finally:
            await store.close()

    run(go)
