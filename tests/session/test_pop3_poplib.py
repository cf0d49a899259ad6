"""Python's poplib end to end against the real server (RFC 1939 as a client sees it)."""

from __future__ import annotations

import poplib
from pathlib import Path

from pop3_helpers import PASSWORD, USER, pop3_server

MESSAGES = [
    b"From: a@example.net\r\nSubject: first\r\n\r\nHello.\r\n",
    b"From: b@example.net\r\nSubject: dots\r\n\r\n.one\r\n..two\r\n.\r\nend\r\n",
    b"From: c@example.net\r\nSubject: third\r\n\r\nl1\r\nl2\r\nl3\r\nl4\r\n",
]


def test_poplib_session(tmp_path: Path) -> None:
    """USER/PASS, STAT, LIST, RETR, UIDL, TOP, DELE, QUIT and the next session."""
    with pop3_server(tmp_path) as env:
        uids = env.add(*MESSAGES)
        validity = env.uidvalidity()
        pop = poplib.POP3("127.0.0.1", env.port, timeout=5)
        assert pop.user(USER) == b"+OK"
        assert pop.pass_(PASSWORD).startswith(b"+OK Logged in")
        assert pop.stat() == (3, sum(map(len, MESSAGES)))
        _, listing, _ = pop.list()
        assert listing == [f"{i} {len(m)}".encode() for i, m in enumerate(MESSAGES, 1)]
        assert pop.list(2) == f"+OK 2 {len(MESSAGES[1])}".encode()
        for i, message in enumerate(MESSAGES, 1):
            _, lines, octets = pop.retr(i)
            # poplib removes the stuffing; its octet count then equals LIST's size
            assert b"\r\n".join(lines) + b"\r\n" == message
            assert octets == len(message)
        _, uidl, _ = pop.uidl()
        assert uidl == [f"{i} {uid:08X}{validity:08X}".encode() for i, uid in enumerate(uids, 1)]
        assert pop.uidl(3) == f"+OK 3 {uids[2]:08X}{validity:08X}".encode()
        _, top, _ = pop.top(3, 2)
        assert top == [b"From: c@example.net", b"Subject: third", b"", b"l1", b"l2"]
        _, top, _ = pop.top(2, 0)
        assert top == [b"From: b@example.net", b"Subject: dots", b""]
        assert pop.dele(1).startswith(b"+OK")
        assert pop.dele(3).startswith(b"+OK")
        assert pop.noop() == b"+OK"
        assert pop.quit().startswith(b"+OK")

        pop = poplib.POP3("127.0.0.1", env.port, timeout=5)
        pop.user(USER)
        pop.pass_(PASSWORD)
        assert pop.stat() == (1, len(MESSAGES[1]))
        _, uidl, _ = pop.uidl()
        assert uidl == [f"1 {uids[1]:08X}{validity:08X}".encode()]
        pop.quit()
