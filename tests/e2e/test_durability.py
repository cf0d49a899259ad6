"""Nothing acknowledged is ever lost (DESIGN.md §2.1, issue 2 §2).

A real `mailbag serve` process takes LMTP and SMTP deliveries from several
connections; it is SIGKILLed mid-load, restarted, and every message it had
acknowledged must be there, byte for byte, with no orphan rows or files.
"""

from __future__ import annotations

import asyncio
import random
import smtplib
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from mailbag.store.models import INBOX
from mailbag.testing.process import ServeProcess

pytestmark = pytest.mark.slow


def make_message(worker: int, n: int, rng: random.Random) -> bytes:
    size = int(rng.lognormvariate(8.5, 1.0)) % 200_000 + 200
    body_line = (f"w{worker}n{n} " * 12).encode() + b"\r\n"
    body = body_line * (size // len(body_line) + 1)
    return (
        f"From: load{worker}@example.net\r\nTo: alice@localhost\r\n"
        f"Subject: durability {worker}-{n}\r\nMessage-ID: <{worker}.{n}@example.net>\r\n"
        f"\r\n"
    ).encode() + body


def load(
    port: int, lmtp: bool, worker: int, acked: list[bytes], sent: list[bytes], stop: threading.Event
) -> None:
    rng = random.Random(worker)
    n = 0
    try:
        client = (
            smtplib.LMTP("127.0.0.1", port, timeout=10)
            if lmtp
            else smtplib.SMTP("127.0.0.1", port, timeout=10)
        )
        while not stop.is_set():
            msg = make_message(worker, n, rng)
            n += 1
            sent.append(msg)
            client.sendmail(f"load{worker}@example.net", ["alice@localhost"], msg)
            acked.append(msg)  # only after the 250
    except (smtplib.SMTPException, OSError):
        return  # the server was killed


def tail(stored: bytes) -> bytes:
    return stored[stored.index(b"From: load") :]


def test_sigkill_mid_delivery_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServeProcess(data).start()
    server.add_user("alice", "pw")
    acked: list[bytes] = []
    sent: list[bytes] = []
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=load,
            args=(server.port("lmtp" if i % 2 else "smtp"), bool(i % 2), i, acked, sent, stop),
        )
        for i in range(8)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()  # SIGKILL while the clients are still sending
    stop.set()
    for t in threads:
        t.join(timeout=20)
    assert len(acked) >= 150, "load did not get going"
    assert len(sent) > len(acked) or len(sent) == len(acked)

    # Restart: recovery runs at open; then inspect over POP3 and in the store.
    with ServeProcess(data) as restarted:
        import poplib

        pop = poplib.POP3("127.0.0.1", restarted.port("pop3"), timeout=30)
        pop.user("alice")
        pop.pass_("pw")
        count, _ = pop.stat()
        stored = []
        for i in range(1, count + 1):
            _, lines, _ = pop.retr(i)
            stored.append(tail(b"\r\n".join(lines) + b"\r\n"))
        pop.quit()

    stored_set = set(stored)
    missing = [m[:80] for m in acked if m not in stored_set]
    assert not missing, f"{len(missing)} acknowledged messages lost: {missing[:3]}"
    # Whatever else is there was really sent, and is whole (never a torn message).
    sent_set = set(sent)
    assert all(m in sent_set for m in stored)

    # No orphan rows (every row's bytes readable) and no orphan files.
    from mailbag.store.sqlite.backend import SQLiteStore

    async def check() -> tuple[set[str], int]:
        store = SQLiteStore(data)
        await store.open()
        try:
            ids: set[str] = set()
            n = 0
            for account in await store.list_accounts():
                for box in await store.list_mailboxes(account.id):
                    for msg in await store.list_messages(box.id):
                        content = await store.read_content(msg.content_id)
                        assert len(content) == msg.size
                        ids.add(msg.content_id)
                        n += 1
                    if box.name == INBOX:
                        assert n == len(stored)
            return ids, n
        finally:
            await store.close()

    referenced, rows = asyncio.run(check())
    # Small contents keep their bytes in the database (store/blobs/indb.py):
    # only the others need a file, and no file may be left over.
    db = sqlite3.connect(data / "mailbag.db")
    try:
        in_db = {
            r[0]
            for r in db.execute(
                "SELECT c.cid FROM contents c JOIN content_bytes b ON b.content_id = c.id"
            )
        }
    finally:
        db.close()
    assert in_db <= referenced
    need_file = referenced - in_db
    files = {p.name for p in (data / "blobs").rglob("*") if p.is_file()}
    assert files == need_file, (
        f"orphan files: {len(files - need_file)}, rows without file: {len(need_file - files)}"
    )
    assert rows == len(stored)
