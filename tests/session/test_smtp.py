"""SMTP session transcripts over real sockets (RFC 5321 and its extensions)."""

from __future__ import annotations

import smtplib
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from smtp_support import (
    EHLO_REPLY,
    HOST,
    Client,
    delete_account,
    inbox,
    running,
    split_trace,
    start_server,
    transcript,
)

from mailbag.session.delivery import RecipientResult
from mailbag.session.smtp.session import MAX_ERRORS, fold_results
from mailbag.testing.server import ServerThread

SIZE = 50 * 1024 * 1024
GREETING = f"S: 220 {HOST} ESMTP mailbag"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    srv = start_server(tmp_path)
    yield srv
    srv.stop()


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    c = Client(server.port("smtp"))
    yield c
    c.close()


def ehlo(name: str = "client.example", size: int = SIZE) -> str:
    """The EHLO exchange as transcript lines."""
    return f"C: EHLO {name}\n" + EHLO_REPLY.format(size=size)


EHLO = ehlo()
# The server's EHLO reply alone, for commands sent ahead in one packet.
EHLO_LINES = EHLO_REPLY.format(size=SIZE)


# ---- greeting, EHLO, HELO ---------------------------------------------------------------


def test_greeting_and_ehlo(client: Client) -> None:
    """RFC 5321 §4.2 / §4.1.1.1: 220 greeting; EHLO lists the extensions.

    PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152), CHUNKING (RFC 3030),
    ENHANCEDSTATUSCODES (RFC 2034: none in the greeting or EHLO reply),
    STARTTLS (RFC 3207) before TLS only, SMTPUTF8 (RFC 6531).
    """
    transcript(
        client,
        f"""
        {GREETING}
        {EHLO}
        C: QUIT
        S: 221 2.0.0 Bye
        S: <closed>
        """,
    )


def test_size_advertises_the_configured_limit(tmp_path: Path) -> None:
    """RFC 1870 §4: the SIZE keyword carries the server's fixed maximum."""
    with running(tmp_path, max_message_size=12345) as srv:
        c = Client(srv.port("smtp"))
        transcript(c, f"{GREETING}\n{ehlo(size=12345)}")
        c.close()


def test_helo_plain_smtp(server: ServerThread, client: Client) -> None:
    """RFC 5321 §4.1.1.1: HELO gets a one-line 250; the trace says "with SMTP"."""
    transcript(
        client,
        f"""
        {GREETING}
        C: HELO old.example
        S: 250 {HOST}
        C: MAIL FROM:<a@old.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<alice@localhost>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        C: Subject: plain
        C:
        C: hi
        C: .
        S: 250 2.0.0 Ok: delivered
        """,
    )
    (stored,) = inbox(server, "alice@localhost")
    trace, original = split_trace(stored)
    assert trace["protocol"] == "SMTP"
    assert trace["helo"] == "old.example"
    assert trace["peer"] == "127.0.0.1"
    assert original == b"Subject: plain\r\n\r\nhi\r\n"


def test_second_ehlo_resets_the_transaction(client: Client) -> None:
    """RFC 5321 §4.1.4: EHLO again is like RSET (the transaction is gone)."""
    transcript(
        client,
        f"""
        {GREETING}
        {EHLO}
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        {ehlo("again.example")}
        C: RCPT TO:<alice@localhost>
        S: 503 5.5.1 Error: need MAIL command
        """,
    )


def test_lhlo_is_not_smtp(client: Client) -> None:
    """RFC 2033 §4.1: LHLO belongs to LMTP; an SMTP server does not know it."""
    transcript(
        client,
        f"""
        {GREETING}
        C: LHLO client.example
        S: 500 5.5.2 Error: command not recognized
        """,
    )


# ---- command order (RFC 5321 §4.1.4, §3.3) ----------------------------------------------------


def test_bad_sequences(client: Client) -> None:
    """RFC 5321 §4.1.4 / §3.3: MAIL needs HELO, RCPT needs MAIL, no nested MAIL (503)."""
    transcript(
        client,
        f"""
        {GREETING}
        C: MAIL FROM:<a@b.example>
        S: 503 5.5.1 Error: send HELO/EHLO first
        C: RCPT TO:<alice@localhost>
        S: 503 5.5.1 Error: send HELO/EHLO first
        C: DATA
        S: 503 5.5.1 Error: send HELO/EHLO first
        C: BDAT 3 LAST
        C: a
        S: 503 5.5.1 Error: send HELO/EHLO first
        C: EHLO client.example
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S: 250 SMTPUTF8
        C: RCPT TO:<alice@localhost>
        S: 503 5.5.1 Error: need MAIL command
        C: DATA
        S: 503 5.5.1 Error: need MAIL command
        C: BDAT 3 LAST
        C: a
        S: 503 5.5.1 Error: need MAIL command
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: MAIL FROM:<a@b.example>
        S: 503 5.5.1 Error: nested MAIL command
        """,
    )


def test_data_without_valid_recipients(client: Client) -> None:
    """RFC 2920 §3.1 / RFC 5321 §3.3: DATA after only refused recipients → 554."""
    transcript(
        client,
        f"""
        {GREETING}
        {EHLO}
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<nobody@localhost>
        S: 550 5.1.1 No such user here
        C: DATA
        S: 554 5.5.1 Error: no valid recipients
        C: NOOP
        S: 250 2.0.0 Ok
        """,
    )


# ---- MAIL (RFC 5321 §4.1.1.2, RFC 1870, RFC 6531) ------------------------------------------


def test_mail_syntax_errors(client: Client) -> None:
    """RFC 5321 §4.1.1.2 and §4.1.1.11: 501 for bad syntax, 555 for unknown parameters."""
    transcript(
        client,
        f"""
        {GREETING}
        {EHLO}
        C: MAIL FROM:a@b.example
        S: 501 5.5.4 Syntax: MAIL FROM:<address>
        C: MAIL TO:<a@b.example>
        S: 501 5.5.4 Syntax: MAIL FROM:<address>
        C: MAIL FROM:<a..b@example.org>
        S: 501 5.1.7 Error: bad sender address syntax
        C: MAIL FROM:<a@b.example> SIZE=big
        S: 501 5.5.4 Error: bad SIZE parameter
        C: MAIL FROM:<a@b.example> BODY=BINARYMIME
        S: 501 5.5.4 Error: unsupported BODY type 'BINARYMIME'
        C: MAIL FROM:<a@b.example> RET=HDRS
        S: 555 5.5.4 Error: unsupported parameter RET
        C: MAIL FROM:<a@b.example> SIZE=10 BODY=8BITMIME
        S: 250 2.1.0 Ok
        """,
    )


def test_mail_size_over_the_limit(tmp_path: Path) -> None:
    """RFC 1870 §6.2: a declared SIZE above the maximum is refused with 552 at MAIL."""
    with running(tmp_path, max_message_size=1000) as srv:
        c = Client(srv.port("smtp"))
        transcript(
            c,
            f"""
            {GREETING}
            {ehlo(size=1000)}
            C: MAIL FROM:<a@b.example> SIZE=1001
            S: 552 5.3.4 Message size exceeds fixed maximum message size
            C: MAIL FROM:<a@b.example> SIZE=1000
            S: 250 2.1.0 Ok
            """,
        )
        c.close()


def test_null_reverse_path_and_source_route(server: ServerThread, client: Client) -> None:
    """RFC 5321 §4.5.5 (null reverse-path <>) and §4.1.1.2 / App. C (routes ignored)."""
    transcript(
        client,
        f"""
        {GREETING}
        {EHLO}
        C: MAIL FROM:<>
        S: 250 2.1.0 Ok
        C: RCPT TO:<@relay.example:alice@localhost>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        C: Subject: bounce
        C: .
        S: 250 2.0.0 Ok: delivered
        C: MAIL FROM:<@a.example,@b.example:routed@c.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<alice@localhost>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        C: Subject: routed
        C: .
        S: 250 2.0.0 Ok: delivered
        """,
    )
    first, second = inbox(server, "alice@localhost")
    assert split_trace(first)[0]["sender"] == ""
    assert split_trace(second)[0]["sender"] == "routed@c.example"


def test_smtputf8(server: ServerThread, client: Client) -> None:
    """RFC 6531 §3.5: non-ASCII addresses only in an SMTPUTF8 transaction (553 5.6.7)."""
    transcript(
        client,
        f"""
        {GREETING}
        {EHLO}
        C: MAIL FROM:<jörg@bücher.example>
        S: 553 5.6.7 Error: non-ASCII address requires SMTPUTF8
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<jörg@localhost>
        S: 553 5.6.7 Error: non-ASCII address requires SMTPUTF8
        C: RSET
        S: 250 2.0.0 Ok
        C: MAIL FROM:<jörg@bücher.example> SMTPUTF8
        S: 250 2.1.0 Ok
        C: RCPT TO:<alice@localhost>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        C: Subject: grüße
        C: .
        S: 250 2.0.0 Ok: delivered
        """,
    )
    (stored,) = inbox(server, "alice@localhost")
    trace, original = split_trace(stored)
    assert trace["sender"] == "jörg@bücher.example"
    assert original == "Subject: grüße\r\n".encode()


# ---- RCPT (RFC 5321 §4.1.1.3) --------------------------------------------------------------


def test_rcpt_unknown_user_and_no_open_relay(client: Client) -> None:
    """RFC 5321 §4.1.1.3 / §3.6.2: unknown local user 550 5.1.1; foreign domain 550 5.7.1."""
    transcript(
        client,
        f"""
        {GREETING}
        {EHLO}
        C: MAIL FROM:<spammer@evil.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<nobody@localhost>
        S: 550 5.1.1 No such user here
        C: RCPT TO:<victim@gmail.example>
        S: 550 5.7.1 Relaying denied
        C: RCPT TO:<alice@localhost.evil.example>
        S: 550 5.7.1 Relaying denied
        C: RCPT TO:<"quoted"@localhost>
        S: 501 5.1.3 Bad recipient address syntax
        C: RCPT TO:<>
        S: 501 5.1.3 Error: bad recipient address syntax
        C: DATA
        S: 554 5.5.1 Error: no valid recipients
        """,
    )


def test_bare_local_part_is_the_default_domain(server: ServerThread, client: Client) -> None:
    """RFC 5321 §4.1.1.3 (<Postmaster> form): `bob` means bob@localhost here."""
    transcript(
        client,
        f"""
        {GREETING}
        {EHLO}
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<bob>
        S: 250 2.1.5 Ok
        C: RCPT TO:<BOB@LOCALHOST>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        C: Subject: to bob
        C: .
        S: 250 2.0.0 Ok: delivered
        """,
    )
    # Both RCPTs name one mailbox: one copy, and the trace names it.
    (stored,) = inbox(server, "bob@localhost")
    assert split_trace(stored)[0]["rcpt"] == "bob@localhost"


def test_recipient_limit(tmp_path: Path) -> None:
    """RFC 5321 §4.5.3.1.10: past the recipient limit, 452 4.5.3; the rest is delivered."""
    with running(tmp_path, max_recipients=2) as srv:
        c = Client(srv.port("smtp"))
        transcript(
            c,
            f"""
            {GREETING}
            {EHLO}
            C: MAIL FROM:<a@b.example>
            S: 250 2.1.0 Ok
            C: RCPT TO:<alice@localhost>
            S: 250 2.1.5 Ok
            C: RCPT TO:<bob@localhost>
            S: 250 2.1.5 Ok
            C: RCPT TO:<carol@localhost>
            S: 452 4.5.3 Error: too many recipients
            C: DATA
            S: 354 End data with <CR><LF>.<CR><LF>
            C: Subject: two of three
            C: .
            S: 250 2.0.0 Ok: delivered
            """,
        )
        c.close()
        assert len(inbox(srv, "alice@localhost")) == 1
        assert len(inbox(srv, "bob@localhost")) == 1
        assert inbox(srv, "carol@localhost") == []


# ---- DATA (RFC 5321 §4.1.1.4, §4.5.2) -------------------------------------------------------


def test_data_delivers_unstuffed_with_trace(server: ServerThread, client: Client) -> None:
    """RFC 5321 §4.5.2 (dot-stuffing undone) and §4.4 (Return-Path, Received added)."""
    transcript(
        client,
        f"""
        {GREETING}
        {EHLO}
        C: MAIL FROM:<sender@example.org>
        S: 250 2.1.0 Ok
        C: RCPT TO:<alice@localhost>
        S: 250 2.1.5 Ok
        C: RCPT TO:<bob@localhost>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        C: Subject: dots
        C:
        C: ..leading dot
        C: ...
        C: end.
        C: .
        S: 250 2.0.0 Ok: delivered
        C: QUIT
        S: 221 2.0.0 Bye
        S: <closed>
        """,
    )
    expected = b"Subject: dots\r\n\r\n.leading dot\r\n..\r\nend.\r\n"
    for user in ("alice", "bob"):
        (stored,) = inbox(server, f"{user}@localhost")
        trace, original = split_trace(stored)
        assert original == expected
        assert trace["sender"] == "sender@example.org"
        assert trace["protocol"] == "ESMTP"
        assert trace["helo"] == "client.example"
        # Two recipients: the trace names neither (no disclosure).
        assert trace["rcpt"] is None


def test_bare_lf_in_content_becomes_crlf(server: ServerThread, client: Client) -> None:
    """RFC 5321 §2.3.8: CR and LF only as CRLF; stored mail must be CRLF for IMAP."""
    client.send(
        "EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n"
    )
    transcript(
        client,
        f"""
        {GREETING}
        {EHLO_LINES}
        S: 250 2.1.0 Ok
        S: 250 2.1.5 Ok
        S: 354 End data with <CR><LF>.<CR><LF>
        """,
    )
    client.send(b"Subject: lf\n\nline one\nline two\r\n.\r\n")
    assert client.reply() == ["250 2.0.0 Ok: delivered"]
    (stored,) = inbox(server, "alice@localhost")
    assert split_trace(stored)[1] == b"Subject: lf\r\n\r\nline one\r\nline two\r\n"


def test_message_too_big(tmp_path: Path) -> None:
    """RFC 1870 §6.3 / RFC 5321 §4.5.3.1.10: over the limit → 552 after the data."""
    with running(tmp_path, max_message_size=100) as srv:
        c = Client(srv.port("smtp"))
        transcript(
            c,
            f"""
            {GREETING}
            {ehlo(size=100)}
            C: MAIL FROM:<a@b.example>
            S: 250 2.1.0 Ok
            C: RCPT TO:<alice@localhost>
            S: 250 2.1.5 Ok
            C: DATA
            S: 354 End data with <CR><LF>.<CR><LF>
            """,
        )
        c.send(b"x" * 98 + b"\r\n" + b"y" * 500 + b"\r\n.\r\n")
        assert c.reply() == ["552 5.3.4 Message size exceeds fixed maximum message size"]
        transcript(
            c,
            """
            C: MAIL FROM:<a@b.example>
            S: 250 2.1.0 Ok
            C: RCPT TO:<alice@localhost>
            S: 250 2.1.5 Ok
            C: DATA
            S: 354 End data with <CR><LF>.<CR><LF>
            """,
        )
        c.send(b"x" * 98 + b"\r\n.\r\n")
        assert c.reply() == ["250 2.0.0 Ok: delivered"]
        c.close()
        (stored,) = inbox(srv, "alice@localhost")
        assert split_trace(stored)[1] == b"x" * 98 + b"\r\n"


# ---- BDAT (CHUNKING, RFC 3030) -------------------------------------------------------------

# EHLO, MAIL and RCPT for alice, sent ahead in one packet.
OPEN_TRANSACTION = b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@localhost>\r\n"


def test_bdat_chunks_make_one_message(server: ServerThread, client: Client) -> None:
    """RFC 3030 §2: 250 per chunk; the message is the chunks as sent (no
    dot-stuffing: a "." line is content), bare LFs made CRLF as for DATA."""
    first = b"Subject: chunks\r\n\r\n.\r\nDATA\r\n"
    second = b"two\nthree\r\n"
    client.send(
        OPEN_TRANSACTION
        + b"BDAT %d\r\n" % len(first)
        + first
        + b"BDAT 0\r\n"
        + b"BDAT %d LAST\r\n" % len(second)
        + second
        + b"NOOP\r\n"
    )
    transcript(
        client,
        f"""
        {GREETING}
        {EHLO_LINES}
        S: 250 2.1.0 Ok
        S: 250 2.1.5 Ok
        S: 250 2.0.0 Ok: {len(first)} octets received
        S: 250 2.0.0 Ok: 0 octets received
        S: 250 2.0.0 Ok: delivered
        S: 250 2.0.0 Ok
        """,
    )
    (stored,) = inbox(server, "alice@localhost")
    trace, original = split_trace(stored)
    assert original == first + b"two\r\nthree\r\n"
    assert trace["protocol"] == "ESMTP"


def test_bdat_refusals_and_rset(server: ServerThread, client: Client) -> None:
    """RFC 3030 §2: a refused chunk is read and discarded; after a failure,
    more chunks and DATA get 503 until RSET; DATA and BDAT never mix."""
    transcript(
        client,
        f"""
        {GREETING}
        {EHLO}
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<ghost@localhost>
        S: 550 5.1.1 No such user here
        C: BDAT 6
        C: QUIT
        S: 554 5.5.1 Error: no valid recipients
        C: RCPT TO:<alice@localhost>
        S: 250 2.1.5 Ok
        C: BDAT 3 LAST
        C: x
        S: 503 5.5.1 Error: previous data chunk failed, send RSET first
        C: DATA
        S: 503 5.5.1 Error: previous data chunk failed, send RSET first
        C: RSET
        S: 250 2.0.0 Ok
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<alice@localhost>
        S: 250 2.1.5 Ok
        C: BDAT 3
        C: x
        S: 250 2.0.0 Ok: 3 octets received
        C: DATA
        S: 503 5.5.1 Error: DATA and BDAT in one transaction
        C: BDAT 3 LAST
        C: y
        S: 503 5.5.1 Error: previous data chunk failed, send RSET first
        C: RSET
        S: 250 2.0.0 Ok
        C: BDAT 1x
        S: 501 5.5.4 Syntax: BDAT chunk-size [LAST]
        """,
    )
    assert inbox(server, "alice@localhost") == []


def test_bdat_over_the_size_limit(tmp_path: Path) -> None:
    """RFC 1870 §6.3 for chunks: the chunk that crosses the limit gets 552
    (the message is dropped); a LAST chunk crossing it answers like DATA."""
    with running(tmp_path, max_message_size=100) as srv:
        c = Client(srv.port("smtp"))
        c.send(
            OPEN_TRANSACTION
            + b"BDAT 60\r\n"
            + b"a" * 60
            + b"BDAT 60\r\n"
            + b"b" * 60
            + b"BDAT 1 LAST\r\nc"
            b"RSET\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@localhost>\r\n"
            b"BDAT 99999999999 LAST\r\n" + b"z" * 5000
        )
        transcript(
            c,
            f"""
            {GREETING}
            {EHLO_REPLY.format(size=100)}
            S: 250 2.1.0 Ok
            S: 250 2.1.5 Ok
            S: 250 2.0.0 Ok: 60 octets received
            S: 552 5.3.4 Message size exceeds fixed maximum message size
            S: 503 5.5.1 Error: previous data chunk failed, send RSET first
            S: 250 2.0.0 Ok
            S: 250 2.1.0 Ok
            S: 250 2.1.5 Ok
            """,
        )
        # The huge chunk is still being read (RFC 3030 §2: read, then refuse):
        # the NOOP is taken as its data, not run; nothing was held or stored.
        c.send(b"NOOP\r\n")
        c.sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            c.line()
        c.close()
        assert inbox(srv, "alice@localhost") == []
        c = Client(srv.port("smtp"))
        c.send(
            OPEN_TRANSACTION
            + b"BDAT 60\r\n"
            + b"a" * 60
            + b"BDAT 41 LAST\r\n"
            + b"b" * 41
            + b"NOOP\r\n"
        )
        transcript(
            c,
            f"""
            {GREETING}
            {EHLO_REPLY.format(size=100)}
            S: 250 2.1.0 Ok
            S: 250 2.1.5 Ok
            S: 250 2.0.0 Ok: 60 octets received
            S: 552 5.3.4 Message size exceeds fixed maximum message size
            S: 250 2.0.0 Ok
            C: MAIL FROM:<a@b.example>
            S: 250 2.1.0 Ok
            C: RCPT TO:<alice@localhost>
            S: 250 2.1.5 Ok
            C: BDAT 100 LAST
            C: {"x" * 98}
            S: 250 2.0.0 Ok: delivered
            """,
        )
        c.close()
        (stored,) = inbox(srv, "alice@localhost")
        assert split_trace(stored)[1] == b"x" * 98 + b"\r\n"


@pytest.mark.parametrize(
    ("marker", "kind"),
    [
        (b"\n.\n", "bare <LF>"),
        (b"\n.\r\n", "bare <LF>"),
        (b"\r\n.\n", "bare <LF>"),
        (b"\r.\r", "bare <CR>"),
        (b"\r\n.\r", "bare <CR>"),
        (b"\r.\r\n", "bare <CR>"),
    ],
)
def test_smtp_smuggling_is_refused(
    server: ServerThread, client: Client, marker: bytes, kind: str
) -> None:
    """SMTP smuggling (RFC 5321 §4.1.1.4, §2.3.8): a "." with a bare CR/LF beside it.

    It is not the end of data (the smuggled second message never runs) and
    the whole message is refused with 550 5.5.2, Postfix-style.
    """
    transcript(
        client,
        f"""
        {GREETING}
        {EHLO}
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<alice@localhost>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        """,
    )
    client.send(
        b"Subject: innocent\r\n\r\nhello"
        + marker
        + b"MAIL FROM:<admin@localhost>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n"
        + b"Subject: forged\r\n\r\nsmuggled\r\n.\r\nNOOP\r\n"
    )
    assert client.reply() == [f"550 5.5.2 Error: {kind} received in end-of-data sequence"]
    assert client.reply() == ["250 2.0.0 Ok"]  # the NOOP after the real end
    assert inbox(server, "alice@localhost") == []
    assert inbox(server, "bob@localhost") == []


def test_disconnect_mid_data_delivers_nothing(server: ServerThread) -> None:
    """RFC 5321 §3.3 / §6.1: no 250 after the data, no responsibility, no delivery."""
    first = Client(server.port("smtp"))
    transcript(
        first,
        f"""
        {GREETING}
        {EHLO}
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<alice@localhost>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        """,
    )
    first.send(b"Subject: cut\r\n\r\nalmost done\r\n.\r")
    first.close()
    # A later complete transaction shows the server went on; the cut one is gone.
    second = Client(server.port("smtp"))
    transcript(
        second,
        f"""
        {GREETING}
        {EHLO}
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<bob@localhost>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        C: Subject: whole
        C: .
        S: 250 2.0.0 Ok: delivered
        C: QUIT
        S: 221 2.0.0 Bye
        """,
    )
    second.close()
    assert len(inbox(server, "bob@localhost")) == 1
    assert inbox(server, "alice@localhost") == []


def test_permanent_failure_at_delivery_wins(server: ServerThread, client: Client) -> None:
    """RFC 5321 §3.3: one reply after DATA; a recipient gone since RCPT makes it a 5xx.

    Our folding rule (session/smtp/session.py): permanent failure beats
    temporary beats success; the recipient that could be stored keeps its copy.
    """
    transcript(
        client,
        f"""
        {GREETING}
        {EHLO}
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<alice@localhost>
        S: 250 2.1.5 Ok
        C: RCPT TO:<bob@localhost>
        S: 250 2.1.5 Ok
        """,
    )
    delete_account(server, "bob@localhost")
    transcript(
        client,
        """
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        C: Subject: x
        C: .
        S: 550 5.1.1 No such user here
        """,
    )
    assert len(inbox(server, "alice@localhost")) == 1


def test_fold_results_rule() -> None:
    """The SMTP fold of per-recipient results (RFC 5321 §3.3: one reply)."""
    ok = RecipientResult("a@x", 250, "2.0.0", "Delivered UID 1")
    temp = RecipientResult("b@x", 452, "4.3.1", "Insufficient system storage")
    perm = RecipientResult("c@x", 550, "5.1.1", "No such user here")
    assert fold_results([ok, ok]).to_bytes() == b"250 2.0.0 Ok: delivered\r\n"
    assert fold_results([ok, temp]).to_bytes() == b"451 4.3.0 Insufficient system storage\r\n"
    assert fold_results([temp, perm, ok]).to_bytes() == b"550 5.1.1 No such user here\r\n"
    assert fold_results([perm]).code == 550


# ---- RSET, NOOP, VRFY, HELP, QUIT (RFC 5321 §4.1.1.5-10) -------------------------------------


def test_rset_noop_vrfy_help_quit(client: Client) -> None:
    """RFC 5321 §4.1.1.5 RSET, §4.1.1.9 NOOP, §3.5.3 VRFY → 252, §4.1.1.10 QUIT → 221."""
    transcript(
        client,
        f"""
        {GREETING}
        C: NOOP
        S: 250 2.0.0 Ok
        C: VRFY alice
        S: 252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery
        C: VRFY
        S: 501 5.5.4 Syntax: VRFY address
        C: HELP
        S~ 214 2\\.0\\.0 .*
        C: EHLO client.example
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S: 250 SMTPUTF8
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: RSET
        S: 250 2.0.0 Ok
        C: RCPT TO:<alice@localhost>
        S: 503 5.5.1 Error: need MAIL command
        C: NOOP ignored argument
        S: 250 2.0.0 Ok
        C: EXPN staff
        S: 502 5.5.1 Error: command not implemented
        C: QUIT now
        S: 501 5.5.4 Syntax: QUIT
        C: QUIT
        S: 221 2.0.0 Bye
        S: <closed>
        """,
    )


def test_bad_input_errors(client: Client) -> None:
    """RFC 5321 §4.2.4 / §4.5.3.1.4: unknown 500 5.5.2; too long 500 5.5.6; session lives."""
    client.send(b"FROB\r\nNOOP \x00\r\nNOOP \xff\r\n" + b"NOOP " + b"x" * 2000 + b"\r\nNOOP\r\n")
    transcript(
        client,
        f"""
        {GREETING}
        S: 500 5.5.2 Error: command not recognized
        S: 500 5.5.2 Error: NUL character in command
        S: 500 5.5.2 Error: command is not valid UTF-8
        S: 500 5.5.6 Line too long
        S: 250 2.0.0 Ok
        """,
    )


def test_too_many_errors_closes(client: Client) -> None:
    """Like Postfix's hard error limit: after 20 protocol errors, 421 and close."""
    client.send("BOGUS\r\n" * (MAX_ERRORS + 5))
    lines = [client.line() for _ in range(1 + MAX_ERRORS + 1)]
    assert lines[0] == f"220 {HOST} ESMTP mailbag"
    assert lines[1:-1] == ["500 5.5.2 Error: command not recognized"] * MAX_ERRORS
    assert lines[-1] == f"421 4.7.0 {HOST} Error: too many errors"
    assert client.closed()
    assert client.buf == b""


# ---- PIPELINING (RFC 2920) -------------------------------------------------------------------


def test_whole_session_in_one_packet(server: ServerThread, client: Client) -> None:
    """RFC 2920 §3.1: every command of a packet is answered, in order, DATA included."""
    client.send(
        "EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@localhost>\r\n"
        "RCPT TO:<nobody@localhost>\r\nRCPT TO:<bob>\r\nDATA\r\nSubject: p\r\n\r\nbody\r\n.\r\n"
        "MAIL FROM:<>\r\nRCPT TO:<carol@localhost>\r\nDATA\r\nSubject: q\r\n.\r\nQUIT\r\n"
    )
    transcript(
        client,
        f"""
        {GREETING}
        {EHLO_LINES}
        S: 250 2.1.0 Ok
        S: 250 2.1.5 Ok
        S: 550 5.1.1 No such user here
        S: 250 2.1.5 Ok
        S: 354 End data with <CR><LF>.<CR><LF>
        S: 250 2.0.0 Ok: delivered
        S: 250 2.1.0 Ok
        S: 250 2.1.5 Ok
        S: 354 End data with <CR><LF>.<CR><LF>
        S: 250 2.0.0 Ok: delivered
        S: 221 2.0.0 Bye
        S: <closed>
        """,
    )
    assert split_trace(inbox(server, "alice@localhost")[0])[1] == b"Subject: p\r\n\r\nbody\r\n"
    assert split_trace(inbox(server, "bob@localhost")[0])[1] == b"Subject: p\r\n\r\nbody\r\n"
    assert split_trace(inbox(server, "carol@localhost")[0])[1] == b"Subject: q\r\n"


def test_commands_after_quit_are_ignored(client: Client) -> None:
    """RFC 5321 §4.1.1.10: after QUIT the server closes; nothing later runs."""
    transcript(
        client,
        f"""
        {GREETING}
        C: QUIT
        C: NOOP
        S: 221 2.0.0 Bye
        S: <closed>
        """,
    )
    assert client.buf == b""


# ---- STARTTLS (RFC 3207) ------------------------------------------------------------------------


def cafile(server: ServerThread) -> Path:
    return server.config.data_dir / "tls" / "cert.pem"


def test_starttls_injection_is_not_executed(server: ServerThread, client: Client) -> None:
    """RFC 3207 §4.2 / §6 (CVE-2011-0411): commands pipelined behind STARTTLS never run.

    `STARTTLS\\r\\nRSET\\r\\n` in one packet: the RSET is plaintext and must be
    thrown away, neither answered before nor after the handshake.
    """
    transcript(client, f"{GREETING}\n{EHLO}")
    client.send(b"STARTTLS\r\nRSET\r\n")
    assert client.line() == "220 2.0.0 Ready to start TLS"
    client.starttls(cafile(server))
    # The first reply over TLS answers our EHLO, not the injected RSET; and the
    # state was reset (RFC 3207 §4.2), so STARTTLS is no longer offered.
    transcript(
        client,
        """
        C: EHLO client.example
        S: 250-mailbag.test
        S: 250-PIPELINING
        S: 250-SIZE 52428800
        S: 250-8BITMIME
        S: 250-CHUNKING
        S: 250-ENHANCEDSTATUSCODES
        S: 250 SMTPUTF8
        C: NOOP
        S: 250 2.0.0 Ok
        C: QUIT
        S: 221 2.0.0 Bye
        """,
    )


def test_starttls_injected_transaction_is_not_executed(
    server: ServerThread, client: Client
) -> None:
    """RFC 3207 §4.2: an injected MAIL does not survive into the TLS session."""
    transcript(client, f"{GREETING}\n{EHLO}")
    client.send(b"STARTTLS\r\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<alice@localhost>\r\n")
    assert client.line() == "220 2.0.0 Ready to start TLS"
    client.starttls(cafile(server))
    transcript(
        client,
        """
        C: MAIL FROM:<a@b.example>
        S: 503 5.5.1 Error: send HELO/EHLO first
        C: EHLO client.example
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S: 250 SMTPUTF8
        C: RCPT TO:<alice@localhost>
        S: 503 5.5.1 Error: need MAIL command
        """,
    )


def test_starttls_rules_and_esmtps_trace(server: ServerThread, client: Client) -> None:
    """RFC 3207 §4: no parameters (501), not mid-transaction, not twice; RFC 3848 ESMTPS."""
    transcript(
        client,
        f"""
        {GREETING}
        {EHLO}
        C: STARTTLS now
        S: 501 5.5.4 Syntax: STARTTLS
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: STARTTLS
        S: 503 5.5.1 Error: MAIL transaction in progress
        C: RSET
        S: 250 2.0.0 Ok
        C: STARTTLS
        S: 220 2.0.0 Ready to start TLS
        """,
    )
    client.starttls(cafile(server))
    transcript(
        client,
        """
        C: EHLO secure.example
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S: 250 SMTPUTF8
        C: STARTTLS
        S: 503 5.5.1 Error: TLS already active
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<alice@localhost>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        C: Subject: secret
        C: .
        S: 250 2.0.0 Ok: delivered
        """,
    )
    (stored,) = inbox(server, "alice@localhost")
    trace, original = split_trace(stored)
    assert trace["protocol"] == "ESMTPS"
    assert trace["helo"] == "secure.example"
    assert trace["tls"] is not None and trace["tls"].startswith("TLSv1.")
    assert original == b"Subject: secret\r\n"


# ---- timeouts and shutdown (RFC 5321 §4.5.3.2) ----------------------------------------------


def test_idle_timeout(tmp_path: Path) -> None:
    """RFC 5321 §4.5.3.2: after the idle timeout the server says 421 and closes."""
    with running(tmp_path, smtp_idle_timeout=0.3) as srv:
        c = Client(srv.port("smtp"))
        transcript(
            c,
            f"""
            {GREETING}
            S: 421 4.4.2 {HOST} Error: timeout exceeded
            S: <closed>
            """,
        )
        c.close()


def test_command_timeout_on_a_trickled_line(tmp_path: Path) -> None:
    """RFC 5321 §4.5.3.2: a command that never completes ends in 421 4.4.2."""
    with running(tmp_path, smtp_idle_timeout=30, command_timeout=0.5) as srv:
        c = Client(srv.port("smtp"))
        assert c.line() == f"220 {HOST} ESMTP mailbag"
        started = time.monotonic()
        for byte in b"NOOP":
            c.send(bytes([byte]))
            time.sleep(0.05)
        assert c.line() == f"421 4.4.2 {HOST} Error: timeout exceeded"
        assert time.monotonic() - started < 5
        assert c.closed()
        c.close()


def test_data_timeout_delivers_nothing(tmp_path: Path) -> None:
    """RFC 5321 §4.5.3.2.6: DATA that outlasts the limit ends in 421; nothing stored."""
    with running(tmp_path, smtp_idle_timeout=30, command_timeout=0.6) as srv:
        c = Client(srv.port("smtp"))
        transcript(
            c,
            f"""
            {GREETING}
            {EHLO}
            C: MAIL FROM:<a@b.example>
            S: 250 2.1.0 Ok
            C: RCPT TO:<alice@localhost>
            S: 250 2.1.5 Ok
            C: DATA
            S: 354 End data with <CR><LF>.<CR><LF>
            """,
        )
        c.sock.settimeout(0.1)
        got = b""
        deadline = time.monotonic() + 5
        while b"\r\n" not in got and time.monotonic() < deadline:
            c.send(b"trickle\r\n")
            try:
                got += c.sock.recv(100)
            except TimeoutError:
                pass
        assert got.startswith(f"421 4.4.2 {HOST} Error: timeout exceeded\r\n".encode())
        c.close()
        assert inbox(srv, "alice@localhost") == []


def test_shutdown_says_goodbye(tmp_path: Path) -> None:
    """RFC 5321 §3.8: a server going down answers 421 and closes."""
    srv = start_server(tmp_path)
    try:
        c = Client(srv.port("smtp"))
        transcript(c, f"{GREETING}\n{EHLO}")
        stopper = threading.Thread(target=srv.stop)
        stopper.start()
        assert c.line() == "421 4.3.2 Service shutting down"
        assert c.closed()
        stopper.join(10)
        c.close()
    finally:
        srv.stop()


# ---- real clients ------------------------------------------------------------------------------

ORIGINAL = (
    b"From: Sender <sender@example.org>\r\n"
    b"To: alice@localhost\r\n"
    b"Subject: end to end\r\n"
    b"Message-ID: <e2e@example.org>\r\n"
    b"\r\n"
    b".leading dot survives stuffing\r\n"
    b"..two dots\r\n"
    b".\r\n"
    b"8bit: \xc3\xa9t\xc3\xa9\r\n"
)


def test_smtplib_end_to_end(server: ServerThread) -> None:
    """RFC 5321 §3.3 with Python's smtplib: the stored bytes are trace + the original."""
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), local_hostname="client.example") as s:
        refused = s.sendmail(
            "sender@example.org", ["alice@localhost", "nobody@localhost"], ORIGINAL
        )
        assert refused == {"nobody@localhost": (550, b"5.1.1 No such user here")}
    (stored,) = inbox(server, "alice@localhost")
    trace, original = split_trace(stored)
    assert original == ORIGINAL
    assert trace["sender"] == "sender@example.org"
    assert trace["protocol"] == "ESMTP"
    assert trace["rcpt"] == "alice@localhost"
    assert stored.startswith(b"Return-Path: <sender@example.org>\r\nReceived: from client.example")


def test_smtplib_starttls_end_to_end(server: ServerThread) -> None:
    """RFC 3207 with smtplib.starttls(): delivered over TLS, traced as ESMTPS."""
    context = ssl.create_default_context(cafile=str(cafile(server)))
    with smtplib.SMTP("localhost", server.port("smtp"), local_hostname="client.example") as s:
        s.starttls(context=context)
        s.sendmail("sender@example.org", ["bob"], ORIGINAL)
    (stored,) = inbox(server, "bob@localhost")
    trace, original = split_trace(stored)
    assert original == ORIGINAL
    assert trace["protocol"] == "ESMTPS"
