"""Several LMTP/SMTP transactions in flight on one connection (RFC 2920).

A client that sends the next transaction, message included, without waiting
for the replies to the previous one gets every reply in command order
(RFC 2920 §3.2 (1)), while the messages are stored concurrently: on the SQLite
store they share commits (group commit on one connection). Real sockets, the
default SQLite store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from smtp_support import LMTP_ONLY, Wire, inbox, lmtp_server, split_trace, wait_until

from mailbag.session.smtp.session import MAX_PIPELINED
from mailbag.store.sqlite.backend import SQLiteStore
from mailbag.testing.server import ServerThread


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with lmtp_server(tmp_path) as srv:
        yield srv


def body(n: int, size: int = 2000) -> bytes:
    text = (f"line of message {n} " * 8 + "\r\n").encode()
    return (
        f"From: sender@example.net\r\nSubject: pipelined {n}\r\n"
        f"Message-ID: <{n}@example.net>\r\n\r\n"
    ).encode() + text * (size // len(text) + 1)


def transaction(n: int, rcpts: tuple[str, ...] = ("alice@localhost",), size: int = 2000) -> bytes:
    """MAIL, RCPTs, DATA and the message, as one group."""
    env = b"MAIL FROM:<sender@example.net>\r\n"
    env += b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in rcpts)
    return env + b"DATA\r\n" + body(n, size) + b".\r\n"


def connect(server: ServerThread, protocol: str) -> Wire:
    wire = Wire(server.port(protocol))
    assert wire.reply()[0].startswith("220 ")
    wire.send(b"LHLO client.example\r\n" if protocol == "lmtp" else b"EHLO client.example\r\n")
    assert wire.reply()[-1].startswith("250 ")
    return wire


def stored_subjects(server: ServerThread, address: str) -> list[str]:
    out = []
    for raw in inbox(server, address):
        _trace, original = split_trace(raw)
        subject = next(x for x in original.split(b"\r\n") if x.startswith(b"Subject: "))
        out.append(subject[9:].decode())
    return out


def commits(server: ServerThread) -> int:
    store = server.store
    assert isinstance(store, SQLiteStore)
    return store.commit_count


def test_many_transactions_in_one_write_are_answered_in_order(server: ServerThread) -> None:
    """RFC 2920 §3.2 (1): replies in the order of the commands, each message's
    250 after its MAIL/RCPT/DATA replies, across 40 transactions sent at once."""
    wire = connect(server, "lmtp")
    count = 40
    before = commits(server)
    wire.send(b"".join(transaction(n) for n in range(count)) + b"QUIT\r\n")
    uids = []
    for _n in range(count):
        assert wire.reply() == ["250 2.1.0 Ok"]
        assert wire.reply() == ["250 2.1.5 Ok"]
        assert wire.reply() == ["354 End data with <CR><LF>.<CR><LF>"]
        (done,) = wire.reply()
        assert done.startswith("250 2.0.0 <alice@localhost> Delivered UID "), done
        uids.append(int(done.rsplit(" ", 1)[1]))
    assert wire.reply() == ["221 2.0.0 Bye"]
    assert wire.closed()
    wire.close()
    assert sorted(uids) == list(range(1, count + 1))
    assert sorted(stored_subjects(server, "alice@localhost")) == sorted(
        f"pipelined {n}" for n in range(count)
    )
    # Messages of one connection shared commits (group commit).
    assert commits(server) - before < count


def test_commands_behind_a_message_wait_for_its_reply(server: ServerThread) -> None:
    """NOOP, RSET, a refused RCPT and a refused DATA queued behind a message
    being stored are answered after it, in order."""
    wire = connect(server, "lmtp")
    wire.send(
        transaction(1)
        + b"NOOP\r\nRSET\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<nobody@localhost>\r\n"
        + b"DATA\r\nRSET\r\n"
        + transaction(2, ("alice@localhost", "bob@localhost"))
    )
    assert [wire.reply()[0] for _ in range(3)] == [
        "250 2.1.0 Ok",
        "250 2.1.5 Ok",
        "354 End data with <CR><LF>.<CR><LF>",
    ]
    assert wire.reply()[0].startswith("250 2.0.0 <alice@localhost> Delivered UID ")
    assert [wire.reply()[0] for _ in range(6)] == [
        "250 2.0.0 Ok",
        "250 2.0.0 Ok",
        "250 2.1.0 Ok",
        "550 5.1.1 No such user here",
        "554 5.5.1 Error: no valid recipients",
        "250 2.0.0 Ok",
    ]
    assert [wire.reply()[0] for _ in range(4)] == [
        "250 2.1.0 Ok",
        "250 2.1.5 Ok",
        "250 2.1.5 Ok",
        "354 End data with <CR><LF>.<CR><LF>",
    ]
    # RFC 2033 §4.2: one reply per recipient, in RCPT order.
    assert wire.reply()[0].startswith("250 2.0.0 <alice@localhost> Delivered UID ")
    assert wire.reply()[0].startswith("250 2.0.0 <bob@localhost> Delivered UID ")
    wire.send(b"QUIT\r\n")
    assert wire.reply() == ["221 2.0.0 Bye"]
    wire.close()
    assert sorted(stored_subjects(server, "alice@localhost")) == ["pipelined 1", "pipelined 2"]
    assert stored_subjects(server, "bob@localhost") == ["pipelined 2"]


def test_too_big_message_between_two_good_ones(server: ServerThread, tmp_path: Path) -> None:
    """A refusal decided without the store does not overtake the reply of the
    message before it."""
    small = ServerThread(tmp_path / "small", ports=LMTP_ONLY, max_message_size=5000).start()
    try:
        small.run(small.store.create_account("alice@localhost", "not-a-hash"))
        wire = connect(small, "smtp")
        wire.send(transaction(1) + transaction(2, size=20_000) + transaction(3))
        replies = [wire.reply()[0] for _ in range(12)]
        assert replies == [
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 Ok: delivered",
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
            "552 5.3.4 Message size exceeds fixed maximum message size",
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 Ok: delivered",
        ]
        wire.close()
        assert sorted(stored_subjects(small, "alice@localhost")) == ["pipelined 1", "pipelined 3"]
    finally:
        small.stop()


def test_more_messages_than_the_pipelining_limit(server: ServerThread) -> None:
    """Past MAX_PIPELINED messages in flight the session stops reading until
    one is stored; nothing is lost or reordered, and bigger messages (over the
    byte limit together) go through too."""
    wire = connect(server, "smtp")
    count = MAX_PIPELINED * 2 + 3
    wire.send(b"".join(transaction(n, size=400_000 if n % 20 == 0 else 1500) for n in range(count)))
    for _n in range(count):
        assert [wire.reply()[0] for _ in range(4)] == [
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 Ok: delivered",
        ]
    wire.send(b"QUIT\r\n")
    assert wire.reply() == ["221 2.0.0 Bye"]
    wire.close()
    assert len(stored_subjects(server, "alice@localhost")) == count


def test_client_gone_with_messages_in_flight(server: ServerThread) -> None:
    """A client that closes with messages still being stored: they are stored
    or not, the server stays up, and the next client is served normally."""
    wire = connect(server, "lmtp")
    wire.send(b"".join(transaction(n) for n in range(10)))
    wire.close()
    again = connect(server, "lmtp")
    again.send(transaction(100) + b"QUIT\r\n")
    assert [again.reply()[0] for _ in range(3)][2].startswith("354")
    assert again.reply()[0].startswith("250 2.0.0 <alice@localhost> Delivered UID ")
    assert again.reply() == ["221 2.0.0 Bye"]
    again.close()
    store = server.store
    assert isinstance(store, SQLiteStore)
    # The first client's messages may still be on their way into the store
    # (files written, rows not yet committed): wait until nothing is left over.
    assert wait_until(lambda: store.verify() == ([], []))
    subjects = stored_subjects(server, "alice@localhost")
    assert "pipelined 100" in subjects
    # Each message is there at most once, whole.
    assert len(subjects) == len(set(subjects))


def test_sequential_client_sees_no_difference(server: ServerThread) -> None:
    """A client that waits for every reply (as RFC 2920 §3.1 makes it wait for
    354) gets the same dialogue as before, one write per group of replies."""
    wire = connect(server, "lmtp")
    for n in range(3):
        wire.send(b"MAIL FROM:<s@example.net>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n")
        assert [wire.reply()[0] for _ in range(3)] == [
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
        ]
        wire.send(body(n) + b".\r\n")
        assert wire.reply() == [f"250 2.0.0 <alice@localhost> Delivered UID {n + 1}"]
    wire.send(b"QUIT\r\n")
    assert wire.reply() == ["221 2.0.0 Bye"]
    wire.close()
    with sqlite3.connect(Path(server.config.data_dir) / "mailbag.db") as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (3,)
