"""Message bytes kept in the database (schema version 4, store/blobs/indb.py).

Small contents are rows of `content_bytes` committed with their `contents`
row; big ones stay files. Checked here: which goes where, reads of whole
contents and of ranges, sharing and freeing, what a crash can leave, the
full-text backfill, and a store written before version 4.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlite_support import opened, run, user

from mailbag.errors import NotFound
from mailbag.store.blobs import content_id
from mailbag.store.blobs.indb import IN_DB_MAX
from mailbag.store.contract import message
from mailbag.store.models import UID, AppendRequest, ContentID, Mailbox
from mailbag.store.sqlite.backend import SQLiteStore
from mailbag.store.sqlite.schema import SCHEMA_VERSION


def sized(n: int, size: int) -> bytes:
    """A message of exactly `size` octets."""
    head = f"From: a@example.org\r\nSubject: sized {n}\r\n\r\n".encode()
    line = f"{n} the quick brown fox jumps over the lazy dog\r\n".encode()
    data = head + line * (size // len(line) + 1)
    return data[: size - 2] + b"\r\n"


def files(path: Path) -> list[str]:
    return sorted(p.name for p in (path / "blobs").rglob("*") if p.is_file())


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path / "mailbag.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def cid_of(store: SQLiteStore, box: Mailbox, uid: UID) -> ContentID:
    (msg,) = await store.list_messages(box.id, [uid])
    return msg.content_id


def test_small_contents_in_the_database_big_ones_in_files(tmp_path: Path) -> None:
    small, edge, over = sized(1, 3000), sized(2, IN_DB_MAX), sized(3, IN_DB_MAX + 1)

    async def go() -> None:
        store = await opened(tmp_path)
        try:
            _, box = await user(store)
            result = await store.append(box.id, [AppendRequest(d) for d in (small, edge, over)])
            for uid, data in zip(result.uids, (small, edge, over), strict=True):
                assert await store.read_content(await cid_of(store, box, uid)) == data
        finally:
            await store.close()

    run(go)
    assert files(tmp_path) == [content_id(over)]
    stored = rows(
        tmp_path,
        "SELECT c.cid, length(b.data) FROM content_bytes b JOIN contents c ON c.id = b.content_id",
    )
    assert sorted(stored) == sorted([(content_id(small), 3000), (content_id(edge), IN_DB_MAX)])


@pytest.mark.parametrize("size", [0, 1, 700, 4096, 70_000, IN_DB_MAX])
def test_ranges_of_a_content_in_the_database(tmp_path: Path, size: int) -> None:
    """Every (offset, length) shape the IMAP and POP3 sessions ask for,
    answered from the database as a file would answer it."""
    data = sized(7, size) if size >= 64 else b"x" * size

    async def go() -> None:
        store = await opened(tmp_path)
        try:
            _, box = await user(store)
            (uid,) = (await store.append(box.id, [AppendRequest(data)])).uids
            cid = await cid_of(store, box, uid)
            assert rows(tmp_path, "SELECT count(*) FROM content_bytes") == [(1,)]
            points = sorted({0, 1, size // 3, size // 2, max(0, size - 1), size, size + 5})
            for offset in points:
                assert await store.read_content(cid, offset) == data[offset:]
                for length in (0, 1, 13, 4096, size, size + 10):
                    got = await store.read_content(cid, offset, length)
                    assert got == data[offset : offset + length], (offset, length)
            with pytest.raises(ValueError):
                await store.read_content(cid, -1, 5)
        finally:
            await store.close()

    run(go)


def test_shared_content_is_one_row_and_goes_with_its_last_message(tmp_path: Path) -> None:
    data = message(1, body_size=2000)

    async def go() -> None:
        store = await opened(tmp_path)
        try:
            acct, box = await user(store)
            others = [(await user(store, f"u{n}@example.org"))[1] for n in range(5)]
            uids = (await store.append(box.id, [AppendRequest(data)] * 3)).uids
            await asyncio.gather(*(store.append(b.id, [AppendRequest(data)]) for b in others))
            sent = await store.get_mailbox(acct.id, "Sent")
            assert sent is not None
            await store.copy(box.id, uids[:2], sent.id)
            cid = await cid_of(store, box, uids[0])
            assert rows(tmp_path, "SELECT refcount FROM contents") == [(10,)]
            assert rows(tmp_path, "SELECT count(*) FROM content_bytes") == [(1,)]
            await store.delete_mailbox(acct.id, "Sent")
            await store.expunge(box.id, list(uids), require_deleted=False)
            for b in others:
                assert await store.read_content(cid) == data
                await store.expunge(b.id, [UID(1)], require_deleted=False)
            with pytest.raises(NotFound):
                await store.read_content(cid)
            with pytest.raises(NotFound):
                await store.read_content(cid, 10, 20)
            assert rows(tmp_path, "SELECT count(*) FROM contents") == [(0,)]
            assert rows(tmp_path, "SELECT count(*) FROM content_bytes") == [(0,)]
            # ... and the same bytes can come back.
            (uid,) = (await store.append(box.id, [AppendRequest(data)])).uids
            assert await store.read_content(await cid_of(store, box, uid)) == data
            assert store.verify() == ([], [])
        finally:
            await store.close()

    run(go)
    assert files(tmp_path) == []


def test_delete_and_readd_in_one_batch(tmp_path: Path) -> None:
    """The last reference dropped and the same bytes added again in the same
    group commit: the bytes are there afterwards, once."""

    async def go() -> None:
        store = await opened(tmp_path)
        try:
            _, box = await user(store)
            for round_ in range(10):
                data = message(round_)
                (old,) = (await store.append(box.id, [AppendRequest(data)])).uids
                _, added = await asyncio.gather(
                    store.expunge(box.id, [old], require_deleted=False),
                    store.append(box.id, [AppendRequest(data)]),
                )
                assert await store.read_content(await cid_of(store, box, added.uids[0])) == data
            assert rows(tmp_path, "SELECT count(*) FROM content_bytes") == [(10,)]
            assert store.verify() == ([], [])
        finally:
            await store.close()

    run(go)


def test_many_concurrent_small_deliveries_share_commits_and_make_no_files(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        store = await opened(tmp_path)
        try:
            _, box = await user(store)
            commits = store.commit_count
            results = await asyncio.gather(
                *(store.append(box.id, [AppendRequest(message(n))]) for n in range(100))
            )
            assert sorted(u for r in results for u in r.uids) == list(range(1, 101))
            assert store.commit_count - commits < 100
        finally:
            await store.close()

    run(go)
    assert files(tmp_path) == []
    assert rows(tmp_path, "SELECT count(*) FROM content_bytes") == [(100,)]


def test_cancelled_appends_store_nothing(tmp_path: Path) -> None:
    """A caller cancelled before its unit runs: the unit is skipped, a small
    content leaves no row, a big one's file (written before the unit was
    queued) is collected."""
    small, big = message(1, body_size=2000), sized(2, IN_DB_MAX + 1000)

    async def go() -> None:
        store = await opened(tmp_path)
        try:
            acct, box = await user(store)
            gate = threading.Event()
            # Hold the writer so the appends' units cannot start yet.
            blocker = asyncio.create_task(store._w().run(lambda tx: gate.wait(20)))
            await asyncio.sleep(0.05)
            tasks = [
                asyncio.create_task(store.append(box.id, [AppendRequest(d)])) for d in (small, big)
            ]
            await asyncio.sleep(0.2)  # both prepared and queued (or still preparing)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with pytest.raises(asyncio.CancelledError):
                    await task
            gate.set()
            await blocker
            # A unit queued after them: once it is done, the writer has passed them.
            await store.create_mailbox(acct.id, "After")
            assert await store.list_messages(box.id) == []
            assert rows(tmp_path, "SELECT count(*) FROM contents") == [(0,)]
            assert rows(tmp_path, "SELECT count(*) FROM content_bytes") == [(0,)]
            assert wait_for(lambda: files(tmp_path) == [])
            assert store.verify() == ([], [])
        finally:
            await store.close()

    run(go)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    # The big message's file may still be being written when its caller is
    # cancelled; it is collected once its unit is skipped.
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_leftover_file_of_a_database_content_is_swept(tmp_path: Path) -> None:
    """A file can share its id with a content kept in the database (a file
    written before a crash, for a message delivered again later): no row
    needs it, so the sweep removes it, and reads keep working."""
    data = message(3, body_size=3000)

    async def setup() -> ContentID:
        store = await opened(tmp_path)
        try:
            _, box = await user(store)
            (uid,) = (await store.append(box.id, [AppendRequest(data)])).uids
            return await cid_of(store, box, uid)
        finally:
            await store.close()

    cid = run(setup)
    leftover = tmp_path / "blobs" / cid[:2] / cid
    leftover.write_bytes(data)
    temp = leftover.with_name(f"{cid}.0123456789abcdef.tmp")
    temp.write_bytes(data[:100])

    async def reopen() -> None:
        store = await opened(tmp_path)
        try:
            assert store.swept == (1, 1)
            assert store.verify() == ([], [])
            assert await store.read_content(cid, 5, 50) == data[5:55]
            assert await store.read_content(cid) == data
        finally:
            await store.close()

    run(reopen)
    assert files(tmp_path) == []


def test_backfill_reads_contents_in_the_database(tmp_path: Path) -> None:
    """Contents stored without text (full_text off) get it from the background
    worker, which reads their bytes from the database."""
    made = [message(n, body_size=1500).replace(b"Body", b"zebraquartz Body") for n in range(6)]

    async def go() -> None:
        store = await opened(tmp_path, full_text=False)
        try:
            _, box = await user(store)
            await store.append(box.id, [AppendRequest(d) for d in made])
        finally:
            await store.close()
        assert rows(tmp_path, "SELECT count(*) FROM content_bytes") == [(6,)]
        store = await opened(tmp_path)
        try:
            _, box = await user(store)
            assert await asyncio.to_thread(store.drain_text_index, 30)
            got = await store.search_text(box.id, "BODY", "zebraquartz")
            assert got is not None
            assert got.uids == frozenset(range(1, 7)) and not got.unindexed
        finally:
            await store.close()

    run(go)


def test_version_3_database_is_brought_to_4(tmp_path: Path) -> None:
    """A store written before version 4 (every content a file) opens; its
    contents stay files and read as before; new small contents go to the
    database; an old content delivered again is shared, not copied; freeing
    an old content removes its file."""
    old_small, old_big = message(1, body_size=2000), sized(2, IN_DB_MAX + 500)
    new_small = message(3, body_size=2000)

    async def setup() -> None:
        store = await opened(tmp_path, files_only=True)
        try:
            _, box = await user(store)
            await store.append(box.id, [AppendRequest(old_small), AppendRequest(old_big)])
        finally:
            await store.close()

    run(setup)
    conn = sqlite3.connect(tmp_path / "mailbag.db", isolation_level=None)
    conn.executescript(
        "DROP TRIGGER contents_bytes_gone; DROP TABLE content_bytes;"
        " UPDATE schema_version SET version = 3;"
    )
    conn.close()
    assert files(tmp_path) == sorted([content_id(old_small), content_id(old_big)])

    async def go() -> None:
        store = await opened(tmp_path)
        try:
            _, box = await user(store)
            assert await store.read_content(await cid_of(store, box, UID(1))) == old_small
            assert (
                await store.read_content(await cid_of(store, box, UID(1)), 10, 30)
                == (old_small[10:40])
            )
            assert await store.read_content(await cid_of(store, box, UID(2))) == old_big
            r = await store.append(box.id, [AppendRequest(new_small), AppendRequest(old_small)])
            assert r.uids == (3, 4)
            assert await store.read_content(await cid_of(store, box, UID(3))) == new_small
            assert await store.read_content(await cid_of(store, box, UID(4))) == old_small
            assert rows(tmp_path, "SELECT refcount FROM contents ORDER BY id") == [(2,), (1,), (1,)]
            await store.expunge(box.id, [UID(1), UID(4)], require_deleted=False)
            assert store.verify() == ([], [])
        finally:
            await store.close()

    run(go)
    assert rows(tmp_path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    stored = rows(
        tmp_path, "SELECT c.cid FROM content_bytes b JOIN contents c ON c.id = b.content_id"
    )
    assert stored == [(content_id(new_small),)]
    # The old small content's file went with its last message.
    assert files(tmp_path) == [content_id(old_big)]
