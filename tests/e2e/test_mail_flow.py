"""Mail in over SMTP/LMTP, out over POP3, against a real `mailbag serve` process."""

from __future__ import annotations

import poplib
import smtplib
import socket
from pathlib import Path

from mailbag.testing.process import ServeProcess

PASSWORD = "correct horse battery staple"  # as in conftest.py

MESSAGE = (
    b"From: Sender <sender@example.net>\r\n"
    b"To: alice@localhost\r\n"
    b"Subject: flow test\r\n"
    b"Message-ID: <flow-1@example.net>\r\n"
    b"\r\n"
    b"Line one.\r\n"
    b".A line that starts with a dot.\r\n"
    b"..Two dots.\r\n"
    b"\r\n"
    b"Last line.\r\n"
)


def retr_all(port: int, user: str, delete: bool = False) -> list[bytes]:
    pop = poplib.POP3("127.0.0.1", port, timeout=10)
    pop.user(user)
    pop.pass_(PASSWORD)
    count, _ = pop.stat()
    out = []
    for i in range(1, count + 1):
        _, lines, octets = pop.retr(i)
        raw = b"\r\n".join(lines) + b"\r\n"
        # poplib strips the dot-stuffing; LIST size counts the stuffed octets.
        assert octets >= len(raw)
        out.append(raw)
        if delete:
            pop.dele(i)
    pop.quit()
    return out


def body_of(stored: bytes) -> bytes:
    """Strip the Return-Path and Received trace headers mailbag adds."""
    assert stored.startswith(b"Return-Path: <")
    idx = stored.index(b"\r\n", stored.index(b"Received: "))
    # the Received header is folded with CRLF TAB continuation lines
    while stored[idx + 2 : idx + 3] == b"\t":
        idx = stored.index(b"\r\n", idx + 2)
    return stored[idx + 2 :]


def test_smtp_to_pop3_bytes_identical(served: ServeProcess) -> None:
    with smtplib.SMTP("127.0.0.1", served.port("smtp"), timeout=10) as smtp:
        smtp.ehlo("client.example.net")
        refused = smtp.sendmail("sender@example.net", ["alice@localhost"], MESSAGE)
        assert refused == {}
    messages = retr_all(served.port("pop3"), "alice", delete=True)
    assert len(messages) == 1
    assert body_of(messages[0]) == MESSAGE
    assert b"Return-Path: <sender@example.net>" in messages[0]
    assert b"with ESMTP" in messages[0]
    assert retr_all(served.port("pop3"), "alice") == []


def test_lmtp_per_recipient_replies_raw(served: ServeProcess) -> None:
    """RFC 2033 §4.2: one reply per successful RCPT after the final dot."""
    with socket.create_connection(("127.0.0.1", served.port("lmtp")), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220 ")
        s.sendall(b"LHLO client\r\n")
        while True:
            line = f.readline()
            if line.startswith(b"250 "):
                break
        s.sendall(
            b"MAIL FROM:<sender@example.net>\r\n"
            b"RCPT TO:<alice@localhost>\r\n"
            b"RCPT TO:<nobody@localhost>\r\n"
            b"RCPT TO:<bob>\r\n"
            b"DATA\r\n"
        )
        assert f.readline().startswith(b"250")
        assert f.readline().startswith(b"250")
        assert f.readline().startswith(b"550 5.1.1")
        assert f.readline().startswith(b"250")
        assert f.readline().startswith(b"354")
        s.sendall(MESSAGE.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        replies = [f.readline(), f.readline()]
        assert all(r.startswith(b"250 2.0.0") for r in replies), replies
        s.sendall(b"QUIT\r\n")
        assert f.readline().startswith(b"221")
    for user in ("alice", "bob"):
        got = retr_all(served.port("pop3"), user, delete=True)
        assert [body_of(m) for m in got] == [MESSAGE]
        assert b"with LMTP" in got[0]


def test_smtplib_lmtp_client(served: ServeProcess) -> None:
    lmtp = smtplib.LMTP("127.0.0.1", served.port("lmtp"), timeout=10)
    try:
        refused = lmtp.sendmail("s@example.net", ["alice@localhost", "bob@localhost"], MESSAGE)
        assert refused == {}
    finally:
        lmtp.quit()
    for user in ("alice", "bob"):
        assert [body_of(m) for m in retr_all(served.port("pop3"), user, delete=True)] == [MESSAGE]


def test_no_open_relay_and_unknown_user(served: ServeProcess) -> None:
    with smtplib.SMTP("127.0.0.1", served.port("smtp"), timeout=10) as smtp:
        smtp.ehlo("x")
        smtp.mail("a@example.net")
        code, msg = smtp.rcpt("victim@gmail.example")
        assert code == 550 and msg.startswith(b"5.7.1")
        code, msg = smtp.rcpt("ghost@localhost")
        assert code == 550 and msg.startswith(b"5.1.1")


def test_uidl_stable_across_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ServeProcess(data) as server:
        server.add_user("alice", PASSWORD)
        with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
            for i in range(3):
                smtp.sendmail("s@example.net", ["alice"], MESSAGE + b"n=%d\r\n" % i)
        pop = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
        pop.user("alice")
        pop.pass_(PASSWORD)
        before = pop.uidl()[1]
        pop.quit()
    with ServeProcess(data) as server:
        pop = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
        pop.user("alice")
        pop.pass_(PASSWORD)
        after = pop.uidl()[1]
        pop.quit()
    assert before == after and len(set(before)) == 3
