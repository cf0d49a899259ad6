"""LMTP deliveries over several connections at once, on the default SQLite
store: the writer holds a commit briefly for appends still being parsed in
worker threads (group commit across connections). Small messages go into the
database, big ones into files. Every recipient gets a 250 only for bytes that
are stored (RFC 2033 §4.2), and the writer's count of appends being prepared
returns to zero, also after deliveries that fail. Real sockets.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from smtp_support import Wire, inbox, lmtp_server, split_trace

from mailbag.config import Config
from mailbag.errors import NotFound
from mailbag.session.delivery import Delivery, TraceInfo
from mailbag.store.models import INBOX, UID, AppendRequest, AppendResult, MailboxID
from mailbag.store.sqlite.backend import SQLiteStore
from mailbag.testing.server import ServerThread


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with lmtp_server(tmp_path) as srv:
        yield srv


def connect(server: ServerThread) -> Wire:
    wire = Wire(server.port("lmtp"))
    assert wire.reply()[0].startswith("220 ")
    wire.send(b"LHLO client.example\r\n")
    assert wire.reply()[-1].startswith("250 ")
    return wire


def message(conn: int, n: int, size: int) -> bytes:
    head = f"From: s@example.net\r\nSubject: c{conn} m{n}\r\n\r\n".encode()
    line = f"connection {conn} message {n} text\r\n".encode()
    return head + line * (size // len(line) + 1)


def send(wire: Wire, data: bytes, rcpts: tuple[str, ...]) -> list[str]:
    wire.send(
        b"MAIL FROM:<s@example.net>\r\n"
        + b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in rcpts)
        + b"DATA\r\n"
    )
    for _ in range(len(rcpts) + 2):  # MAIL, each RCPT, DATA
        assert wire.reply()[0][:1] in ("2", "3")
    wire.send(data + b".\r\n")
    return [wire.reply()[0] for _ in rcpts]


def store_of(server: ServerThread) -> SQLiteStore:
    store = server.store
    assert isinstance(store, SQLiteStore)
    return store


def test_concurrent_small_and_big_messages_are_all_stored(server: ServerThread) -> None:
    """Four connections, each alternating small and big messages (in the
    database, in files), some to two recipients: every reply is a 250 per recipient and
    each INBOX holds exactly the bytes sent."""
    sizes = (2_000, 70_000, 30_000, 200_000)  # 200 KB: a file, not in the database
    sent: dict[str, list[bytes]] = {"alice@localhost": [], "bob@localhost": []}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client(conn: int) -> None:
        try:
            wire = connect(server)
            for n in range(8):
                data = message(conn, n, sizes[(conn + n) % len(sizes)])
                rcpts = ("alice@localhost", "bob@localhost") if n % 3 == 0 else ("bob@localhost",)
                replies = send(wire, data, rcpts)
                assert all(r.startswith("250 2.0.0 <") for r in replies), replies
                with lock:
                    for r in rcpts:
                        sent[r].append(data)
            wire.send(b"QUIT\r\n")
            assert wire.reply() == ["221 2.0.0 Bye"]
            wire.close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for address, messages in sent.items():
        stored = [split_trace(raw)[1] for raw in inbox(server, address)]
        assert sorted(stored) == sorted(messages)
    writer = store_of(server)._w()
    assert writer._expected == 0


def test_a_failed_append_does_not_leave_the_writer_waiting(server: ServerThread) -> None:
    """An append whose mailbox is gone fails in the writer (4.x for LMTP, the
    message is not stored) and still ends its announcement to the writer."""
    store = store_of(server)
    account = server.run(store.get_account("alice@localhost"))
    assert account is not None
    for size in (1_000, 200_000):  # bytes for the database, a file
        with pytest.raises(NotFound):
            server.run(store.append(MailboxID(999_999), [AppendRequest(message(0, 0, size))]))
    assert store._w()._expected == 0
    # The store still answers and delivers at once afterwards.
    wire = connect(server)
    assert send(wire, message(1, 1, 500), ("alice@localhost",))[0].startswith("250 ")
    wire.close()


def test_delivery_after_the_account_went_is_refused(tmp_path: Path) -> None:
    """Delivery remembers each account's INBOX; once the account is gone a
    delivery for it (accepted at RCPT just before) gets 550 5.1.1, and an
    account created again under the address gets the next message."""
    store = SQLiteStore(tmp_path / "data")
    config = Config(data_dir=tmp_path / "data")
    delivery = Delivery(store, config)
    trace = TraceInfo("LMTP", "client.example", "127.0.0.1")

    async def go() -> None:
        await store.open()
        try:
            old = await store.create_account("carol@localhost", "not-a-hash")
            checked = {"carol@localhost": old.id}
            for _ in range(2):  # the second one uses the remembered INBOX
                (r,) = await delivery.deliver(
                    "s@x.example", ["carol@localhost"], b"A\r\n", trace, checked
                )
                assert r.code == 250, r
            await store.delete_account(old.id)
            (r,) = await delivery.deliver(
                "s@x.example", ["carol@localhost"], b"B\r\n", trace, checked
            )
            assert (r.code, r.enhanced) == (550, "5.1.1")
            new = await store.create_account("carol@localhost", "not-a-hash")
            (r,) = await delivery.deliver("s@x.example", ["carol@localhost"], b"C\r\n", trace)
            assert r.code == 250, r
            box = await store.get_mailbox(new.id, INBOX)
            assert box is not None
            (msg,) = await store.list_messages(box.id)
            assert (await store.read_content(msg.content_id)).endswith(b"\r\nC\r\n")
        finally:
            await store.close()

    asyncio.run(go())


def test_deliveries_to_one_mailbox_share_appends(tmp_path: Path) -> None:
    """Deliveries to one mailbox that arrive while an append to it is in
    flight go together as one append (Delivery._append): fewer store calls
    than messages, each caller still told its own message's UID, and when
    the mailbox is gone every delivery of a batch gets 550 5.1.1."""
    store = SQLiteStore(tmp_path / "data")
    delivery = Delivery(store, Config(data_dir=tmp_path / "data"))
    trace = TraceInfo("LMTP", "client.example", "127.0.0.1")
    calls: list[int] = []
    real_append = store.append

    async def counting_append(
        mailbox_id: MailboxID, requests: Sequence[AppendRequest]
    ) -> AppendResult:
        calls.append(len(requests))
        return await real_append(mailbox_id, requests)

    store.append = counting_append  # type: ignore[method-assign]

    async def go() -> None:
        await store.open()
        try:
            account = await store.create_account("dora@localhost", "not-a-hash")
            checked = {"dora@localhost": account.id}
            bodies = [b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i) for i in range(30)]
            results = await asyncio.gather(
                *(
                    delivery.deliver("s@x.example", ["dora@localhost"], body, trace, checked)
                    for body in bodies
                )
            )
            assert sum(calls) == 30 and len(calls) < 10, calls
            box = await store.get_mailbox(account.id, INBOX)
            assert box is not None
            stored = {m.uid: m for m in await store.list_messages(box.id)}
            for body, (r,) in zip(bodies, results, strict=True):
                assert r.code == 250, r
                uid = UID(int(r.text.rsplit(" ", 1)[1]))
                assert (await store.read_content(stored[uid].content_id)).endswith(body)
            assert len(stored) == 30
            # The INBOX is remembered; once the account is gone, the direct
            # append and the batch behind it both fail, and each recipient
            # is refused after looking the INBOX up again.
            await store.delete_account(account.id)
            calls.clear()
            results = await asyncio.gather(
                *(
                    delivery.deliver("s@x.example", ["dora@localhost"], b"late\r\n", trace, checked)
                    for _ in range(10)
                )
            )
            assert [(r.code, r.enhanced) for (r,) in results] == [(550, "5.1.1")] * 10
            assert sum(calls) == 10 and len(calls) < 10, calls
        finally:
            await store.close()

    asyncio.run(go())
