"""POP3 AUTHORIZATION state over real sockets: greeting, USER/PASS, AUTH (SASL),
APOP, UTF8, the plaintext rule, maildrop locking, bad input and logging."""

from __future__ import annotations

import base64
import logging
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from pop3_helpers import ADDRESS, PASSWORD, USER, POP3Env, pop3_server, wait_until


def b64(data: str) -> str:
    return base64.b64encode(data.encode("utf-8")).decode("ascii")


def plain(authcid: str, password: str, authzid: str = "") -> str:
    """An RFC 4616 PLAIN message, base64-encoded."""
    return b64(f"{authzid}\0{authcid}\0{password}")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[POP3Env]:
    with pop3_server(tmp_path) as e:
        yield e


def test_greeting_has_no_apop_timestamp(env: POP3Env) -> None:
    """RFC 1939 §4: +OK greeting; no <timestamp>, since APOP is not offered."""
    with env.connect() as c:
        assert c.greeting == "+OK mailbag POP3 ready."
        assert "<" not in c.greeting


def test_apop_refused_even_when_configured(tmp_path: Path) -> None:
    """RFC 1939 §7 APOP needs the plaintext secret on the server; mailbag keeps only
    argon2id hashes, so with pop3_apop on there is still no timestamp and APOP fails."""
    with pop3_server(tmp_path, pop3_apop=True) as env, env.connect() as c:
        assert "<" not in c.greeting
        c.transcript("""
            C: APOP alice c4c9334bac560ecc979e58001b3e22fb
            S: -ERR [AUTH] APOP is not available on this server
            C: APOP alice
            S: -ERR Wrong number of arguments for APOP
        """)


def test_user_pass_success(env: POP3Env) -> None:
    """RFC 1939 §7 USER/PASS; the password is the rest of the line, spaces included."""
    env.add(b"Subject: x\r\n\r\nhello\r\n")
    with env.connect() as c:
        c.transcript(f"""
            C: USER {USER}
            S: +OK
            C: PASS {PASSWORD}
            S: +OK Logged in, 1 messages (21 octets).
            C: STAT
            S: +OK 1 21
        """)


def test_user_name_is_a_full_address_or_local_part(env: POP3Env) -> None:
    """The account is alice@localhost; both spellings log in (auth.addresses)."""
    with env.connect() as c:
        assert c.login(ADDRESS).startswith("+OK Logged in")


def test_user_pass_failure_stays_in_authorization(env: POP3Env) -> None:
    """RFC 1939 §7: a failed PASS returns to AUTHORIZATION; USER must be re-sent.
    RFC 3206 §4: [AUTH] says the credentials were wrong."""
    with env.connect() as c:
        c.transcript(f"""
            C: USER {USER}
            S: +OK
            C: PASS wrong
            S: -ERR [AUTH] Authentication failed
            C: PASS {PASSWORD}
            S: -ERR No user name given: send USER first
            C: USER nobody
            S: +OK
            C: PASS {PASSWORD}
            S: -ERR [AUTH] Authentication failed
            C: STAT
            S: -ERR STAT is not allowed before login
            C: USER {USER}
            S: +OK
            C: PASS {PASSWORD}
            S~ \\+OK Logged in.*
        """)


def test_pass_without_argument(env: POP3Env) -> None:
    """RFC 1939 §7: PASS takes exactly one (non-empty) argument."""
    with env.connect() as c:
        c.transcript("""
            C: USER alice
            S: +OK
            C: PASS
            S: -ERR Wrong number of arguments for PASS
            C: USER
            S: -ERR Wrong number of arguments for USER
        """)


def test_auth_plain_with_initial_response(env: POP3Env) -> None:
    """RFC 5034 §4: AUTH mechanism initial-response; RFC 4616 PLAIN message."""
    with env.connect() as c:
        c.transcript(f"""
            C: AUTH PLAIN {plain(USER, PASSWORD)}
            S: +OK Logged in, 0 messages (0 octets).
            C: STAT
            S: +OK 0 0
        """)


def test_auth_plain_with_matching_authzid(env: POP3Env) -> None:
    """RFC 4616 §2: an authzid naming the same user is accepted, another is not."""
    with env.connect() as c:
        c.transcript(f"""
            C: AUTH PLAIN {plain(USER, PASSWORD, "bob")}
            S: -ERR [AUTH] Authentication failed
            C: AUTH PLAIN {plain(USER, PASSWORD, ADDRESS)}
            S~ \\+OK Logged in.*
        """)


def test_auth_plain_with_empty_challenge(env: POP3Env) -> None:
    """RFC 5034 §4: without an initial response the server sends "+ " (empty
    challenge) and the client answers with one base64 line."""
    with env.connect() as c:
        c.transcript(f"""
            C: AUTH PLAIN
            S: +\x20
            C: {plain(USER, PASSWORD)}
            S~ \\+OK Logged in.*
        """)


def test_auth_login(env: POP3Env) -> None:
    """draft-murchison-sasl-login: Username: and Password: challenges in base64."""
    with env.connect() as c:
        c.transcript(f"""
            C: AUTH LOGIN
            S: + VXNlcm5hbWU6
            C: {b64(USER)}
            S: + UGFzc3dvcmQ6
            C: {b64(PASSWORD)}
            S~ \\+OK Logged in.*
        """)


def test_auth_login_with_initial_response_and_lowercase_name(env: POP3Env) -> None:
    """RFC 5034 §4: the initial response is LOGIN's user name; mechanism names
    are case-insensitive (RFC 4422 §3.1)."""
    with env.connect() as c:
        c.transcript(f"""
            C: auth login {b64(USER)}
            S: + UGFzc3dvcmQ6
            C: {b64(PASSWORD)}
            S~ \\+OK Logged in.*
        """)


def test_auth_cancel(env: POP3Env) -> None:
    """RFC 5034 §4: a "*" response cancels; the server MUST reply -ERR, and the
    session stays in AUTHORIZATION."""
    with env.connect() as c:
        c.transcript(f"""
            C: AUTH LOGIN
            S: + VXNlcm5hbWU6
            C: *
            S: -ERR Authentication cancelled
            C: AUTH PLAIN
            S: +\x20
            C: *
            S: -ERR Authentication cancelled
            C: STAT
            S: -ERR STAT is not allowed before login
            C: AUTH PLAIN {plain(USER, PASSWORD)}
            S~ \\+OK Logged in.*
        """)


def test_auth_failures(env: POP3Env) -> None:
    """RFC 5034 §4: bad base64 and wrong credentials fail the AUTH command;
    "=" is the empty initial response, which PLAIN cannot accept."""
    with env.connect() as c:
        c.transcript(f"""
            C: AUTH PLAIN {plain(USER, "wrong")}
            S: -ERR [AUTH] Authentication failed
            C: AUTH PLAIN not*base64
            S: -ERR [AUTH] Invalid base64 in initial response
            C: AUTH PLAIN
            S: +\x20
            C: %%%%
            S: -ERR [AUTH] Invalid base64 in authentication response
            C: AUTH PLAIN =
            S: -ERR [AUTH] Authentication failed: malformed PLAIN response
            C: AUTH CRAM-MD5
            S: -ERR Unsupported authentication mechanism CRAM-MD5
            C: AUTH PLAIN a b
            S: -ERR Wrong number of arguments for AUTH
        """)


def test_auth_without_argument_lists_mechanisms(env: POP3Env) -> None:
    """The pre-RFC 5034 probe (RFC 1734 clients): AUTH alone lists mechanisms."""
    with env.connect() as c:
        c.transcript("""
            C: AUTH
            S: +OK Supported SASL mechanisms:
            S: PLAIN
            S: LOGIN
            S: .
        """)


def test_auth_response_line_too_long_ends_exchange(env: POP3Env) -> None:
    """Limits (DESIGN.md §2.5): an overlong SASL line fails the exchange; the
    connection survives."""
    with env.connect() as c:
        assert c.cmd("AUTH PLAIN") == "+ "
        c.send(b"A" * 10000 + b"\r\n")
        assert c.line() == "-ERR Line too long"
        assert c.cmd("CAPA") == "+OK Capability list follows"


def test_transaction_commands_refused_before_login(env: POP3Env) -> None:
    """RFC 1939 §3: each command is valid only in its states."""
    with env.connect() as c:
        for command in ("STAT", "LIST", "LIST 1", "RETR 1", "DELE 1", "NOOP", "RSET",
                        "TOP 1 0", "UIDL", "UIDL 1"):  # fmt: skip
            keyword = command.split()[0]
            assert c.cmd(command) == f"-ERR {keyword} is not allowed before login"


def test_authorization_commands_refused_after_login(env: POP3Env) -> None:
    """RFC 1939 §3 / RFC 2595 §4 / RFC 6856 §2: USER, PASS, APOP, AUTH, STLS and
    UTF8 are AUTHORIZATION-state commands."""
    with env.connect() as c:
        c.login()
        for command in ("USER alice", "PASS x", "APOP a b", "AUTH PLAIN", "STLS", "UTF8"):
            keyword = command.split()[0]
            assert c.cmd(command) == f"-ERR {keyword} is not allowed after login"
        assert c.cmd("NOOP") == "+OK"


def test_quit_in_authorization(env: POP3Env) -> None:
    """RFC 1939 §5: QUIT in AUTHORIZATION ends the session without UPDATE."""
    with env.connect() as c:
        assert c.cmd("QUIT") == "+OK Logging out."
        c.assert_closed()


def test_capa_in_authorization(env: POP3Env) -> None:
    """RFC 2449 §5/§6, RFC 2595 §4 (STLS), RFC 6856 §2 (UTF8). From loopback the
    plaintext mechanisms are offered (nothing crosses a wire)."""
    with env.connect() as c:
        c.transcript("""
            C: CAPA
            S: +OK Capability list follows
            S: TOP
            S: UIDL
            S: RESP-CODES
            S: AUTH-RESP-CODE
            S: PIPELINING
            S: USER
            S: SASL PLAIN LOGIN
            S: STLS
            S: EXPIRE NEVER
            S: LOGIN-DELAY 0
            S: UTF8 USER
            S: IMPLEMENTATION mailbag
            S: .
        """)


def test_capa_in_transaction(env: POP3Env) -> None:
    """RFC 2449 §5: what AUTHORIZATION announced is announced again; STLS is not,
    being permitted in AUTHORIZATION only (RFC 2595 §4)."""
    with env.connect() as c:
        c.login()
        assert c.cmd("CAPA") == "+OK Capability list follows"
        caps = c.multiline()
    assert caps == [
        "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER",
        "SASL PLAIN LOGIN", "EXPIRE NEVER", "LOGIN-DELAY 0", "UTF8 USER",
        "IMPLEMENTATION mailbag",
    ]  # fmt: skip


def test_plaintext_refused_when_not_exempt(tmp_path: Path) -> None:
    """RFC 2595 §2.3 / RFC 5034 §4: no clear-text passwords over a clear connection.

    Tests can only connect from loopback, which is exempt by default; the
    exemption is switched off here (`plaintext_auth_loopback = false`) so the
    connection is treated like one from elsewhere. USER/SASL vanish from CAPA,
    USER/PASS/AUTH are refused, and after STLS everything works.
    """
    with pop3_server(tmp_path, plaintext_auth_loopback=False) as env, env.connect() as c:
        assert c.cmd("CAPA") == "+OK Capability list follows"
        before = c.multiline()
        assert "USER" not in before and not any(x.startswith("SASL") for x in before)
        assert "STLS" in before
        refused = "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections"
        c.transcript(f"""
            C: USER {USER}
            S: {refused}
            C: PASS {PASSWORD}
            S: {refused}
            C: AUTH PLAIN {plain(USER, PASSWORD)}
            S: {refused}
            C: AUTH LOGIN
            S: {refused}
            C: AUTH
            S: +OK Supported SASL mechanisms:
            S: .
            C: STLS
            S: +OK Begin TLS negotiation
        """)
        c.starttls()
        assert c.cmd("CAPA") == "+OK Capability list follows"
        after = c.multiline()
        assert "USER" in after and "SASL PLAIN LOGIN" in after and "STLS" not in after
        c.login()


def test_plaintext_allowed_by_config(tmp_path: Path) -> None:
    """RFC 2595 §2.2: servers SHOULD have a mode that allows the base protocol's
    mechanisms anyway: `allow_plaintext_auth = true`."""
    with (
        pop3_server(tmp_path, plaintext_auth_loopback=False, allow_plaintext_auth=True) as env,
        env.connect() as c,
    ):
        c.login()


def test_utf8_command_and_utf8_credentials(tmp_path: Path) -> None:
    """RFC 6856 §2.1: UTF8 in AUTHORIZATION; §2.2 (UTF8 USER): UTF-8 user names and
    passwords are accepted, and STLS is refused after UTF8."""
    with pop3_server(tmp_path) as env:
        env.server.add_user("jürgen", "pässwörd")
        with env.connect() as c:
            c.transcript("""
                C: UTF8
                S: +OK UTF8 enabled
                C: STLS
                S: -ERR STLS is not allowed after UTF8
                C: USER jürgen
                S: +OK
                C: PASS pässwörd
                S~ \\+OK Logged in.*
                C: UTF8
                S: -ERR UTF8 is not allowed after login
            """)


def test_second_session_gets_in_use(env: POP3Env) -> None:
    """RFC 1939 §8 / RFC 2449 §8.1.2: one session per maildrop; [IN-USE] otherwise.
    The lock is released by QUIT."""
    with env.connect() as first, env.connect() as second:
        first.login()
        second.transcript(f"""
            C: USER {USER}
            S: +OK
            C: PASS {PASSWORD}
            S: -ERR [IN-USE] Mailbox is locked by another POP3 session
            C: AUTH PLAIN {plain(USER, PASSWORD)}
            S: -ERR [IN-USE] Mailbox is locked by another POP3 session
        """)
        assert first.cmd("QUIT").startswith("+OK")
        # released before the +OK was written
        second.login()


def test_lock_released_after_dropped_connection(env: POP3Env) -> None:
    """RFC 1939 §6: a connection that ends without QUIT releases the maildrop."""
    first = env.connect()
    first.login()
    # linger on, timeout 0: close() sends RST at once, no QUIT
    first.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    first.close()

    def can_login() -> bool:
        with env.connect() as c:
            assert c.cmd(f"USER {USER}") == "+OK"
            reply = c.cmd(f"PASS {PASSWORD}")
            return reply.startswith("+OK")

    wait_until(can_login)


@pytest.mark.parametrize(
    ("data", "reply"),
    [
        (b"FOO\r\n", "-ERR Unknown command: FOO"),
        (b"\x00\x01\x02\r\n", "-ERR NUL character in command"),
        (b"USER al\x00ice\r\n", "-ERR NUL character in command"),
        (b"USER \xff\xfe\r\n", "-ERR command is not valid UTF-8"),
        (b"\r\n", "-ERR empty command"),
        (b"USER " + b"x" * 600 + b"\r\n", "-ERR Line too long"),
        (b"X" * 100_000 + b"\r\n", "-ERR Line too long"),
    ],
    ids=["junk", "nul", "nul-arg", "not-utf8", "empty", "long", "very-long"],
)
def test_bad_input_answered_and_connection_survives(env: POP3Env, data: bytes, reply: str) -> None:
    """RFC 1939 §3 / RFC 2449 §4: bad lines get -ERR; the session goes on."""
    with env.connect() as c:
        c.send(data)
        assert c.line() == reply
        c.login()


def test_too_many_bad_commands_disconnects(env: POP3Env) -> None:
    """Bad input must not keep a connection busy forever: 20 failures and out."""
    with env.connect() as c:
        c.send(b"JUNK\r\n" * 25)
        replies = [c.line() for _ in range(20)]
        assert replies[:19] == ["-ERR Unknown command: JUNK"] * 19
        assert replies[19] == "-ERR Unknown command: JUNK; too many bad commands, disconnecting"
        c.assert_closed()


def test_login_logging_masks_credentials(env: POP3Env, caplog: pytest.LogCaptureFixture) -> None:
    """Logins are logged at INFO; the DEBUG trace never shows PASS or SASL data."""
    secret_login = "login-password-xyz"
    with caplog.at_level(logging.DEBUG, logger="mailbag.pop3"), env.connect() as c:
        c.transcript(f"""
            C: USER {USER}
            S: +OK
            C: PASS wrong-password-abc
            S: -ERR [AUTH] Authentication failed
            C: AUTH PLAIN {plain(USER, "wrong-plain-def")}
            S: -ERR [AUTH] Authentication failed
            C: AUTH LOGIN
            S: + VXNlcm5hbWU6
            C: {b64(USER)}
            S: + UGFzc3dvcmQ6
            C: {b64(secret_login)}
            S: -ERR [AUTH] Authentication failed
            C: PASS {PASSWORD}
            S: -ERR No user name given: send USER first
            C: USER {USER}
            S: +OK
            C: PASS {PASSWORD}
            S~ \\+OK Logged in.*
            C: QUIT
            S~ \\+OK.*
        """)
        c.assert_closed()
    text = caplog.text
    for secret in ("wrong-password-abc", "wrong-plain-def", secret_login, PASSWORD):
        assert secret not in text
        assert b64(secret) not in text
    assert plain(USER, "wrong-plain-def") not in text
    pop3 = [r for r in caplog.records if r.name == "mailbag.pop3"]
    assert any(r.levelno == logging.INFO and "login failed" in r.getMessage() for r in pop3)
    assert any(r.levelno == logging.INFO and "login ok" in r.getMessage() for r in pop3)
    assert any("C: PASS ***" in r.getMessage() for r in pop3)
    assert any("C: AUTH PLAIN ***" in r.getMessage() for r in pop3)
