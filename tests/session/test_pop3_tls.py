"""POP3 over TLS: STLS (RFC 2595 §4) incl. the command-injection case, implicit
TLS on the pop3s port (RFC 8314), and Python's poplib against both."""

from __future__ import annotations

import poplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from pop3_helpers import PASSWORD, USER, POP3Env, pop3_server

MESSAGE = b"Subject: tls\r\n\r\n.over TLS\r\n"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[POP3Env]:
    with pop3_server(tmp_path) as e:
        e.add(MESSAGE)
        yield e


def test_stls(env: POP3Env) -> None:
    """RFC 2595 §4: STLS, TLS from right after the +OK CRLF; the session stays in
    AUTHORIZATION; afterwards STLS is gone from CAPA and refused."""
    with env.connect() as c:
        assert c.cmd("CAPA") == "+OK Capability list follows"
        assert "STLS" in c.multiline()
        assert c.cmd("STLS") == "+OK Begin TLS negotiation"
        c.starttls()
        assert isinstance(c.sock, ssl.SSLSocket) and c.sock.version() is not None
        assert c.cmd("CAPA") == "+OK Capability list follows"
        assert "STLS" not in c.multiline()
        c.transcript("""
            C: STLS
            S: -ERR Command not permitted when TLS active
            C: STAT
            S: -ERR STAT is not allowed before login
        """)
        c.login()
        assert c.cmd("STAT") == f"+OK 1 {len(MESSAGE)}"


def test_stls_forgets_user_given_in_clear(env: POP3Env) -> None:
    """RFC 2595 §4: the client starts over after TLS; a USER sent before does not
    carry over."""
    with env.connect() as c:
        assert c.cmd(f"USER {USER}") == "+OK"
        assert c.cmd("STLS") == "+OK Begin TLS negotiation"
        c.starttls()
        assert c.cmd(f"PASS {PASSWORD}") == "-ERR No user name given: send USER first"


def test_stls_injection_is_discarded(env: POP3Env) -> None:
    """RFC 2595 §4 (and CVE-2011-0411's class): commands pipelined after STLS in
    the same packet are plaintext an attacker may have injected; they must never
    run, neither before the handshake (the client's TLS would then fail on the
    stray plaintext) nor after it (the injected CAPA would be answered first)."""
    with env.connect() as c:
        c.send(b"STLS\r\nCAPA\r\nUSER alice\r\n")
        assert c.line() == "+OK Begin TLS negotiation"
        c.starttls()  # asserts no plaintext followed the +OK line
        c.send(b"QUIT\r\n")
        assert c.line() == "+OK Logging out."  # not "+OK Capability list follows"
        c.assert_closed()


def test_stls_not_in_transaction(env: POP3Env) -> None:
    """RFC 2595 §4: STLS is only permitted in AUTHORIZATION."""
    with env.connect() as c:
        c.login()
        assert c.cmd("STLS") == "-ERR STLS is not allowed after login"


def test_pop3s_implicit_tls_with_poplib(env: POP3Env) -> None:
    """RFC 8314 §3.3: POP3 on the pop3s port speaks TLS from the first byte;
    STLS is then neither offered nor accepted."""
    pop = poplib.POP3_SSL("127.0.0.1", env.pop3s_port, context=env.tls_context(), timeout=5)
    try:
        assert pop.getwelcome() == b"+OK mailbag POP3 ready."
        caps = pop.capa()
        assert "STLS" not in caps and "USER" in caps
        pop.user(USER)
        pop.pass_(PASSWORD)
        assert pop.stat() == (1, len(MESSAGE))
        _, lines, _ = pop.retr(1)
        assert lines == [b"Subject: tls", b"", b".over TLS"]
    finally:
        pop.quit()
    with env.connect(tls=True) as c:
        assert c.cmd("STLS") == "-ERR Command not permitted when TLS active"


def test_poplib_stls(env: POP3Env) -> None:
    """RFC 2595 §4 with a real client: poplib checks CAPA for STLS, upgrades, and
    logs in over TLS."""
    pop = poplib.POP3("127.0.0.1", env.port, timeout=5)
    try:
        pop.stls(context=env.tls_context())
        assert "STLS" not in pop.capa()
        pop.user(USER)
        pop.pass_(PASSWORD)
        assert pop.stat() == (1, len(MESSAGE))
    finally:
        pop.quit()
