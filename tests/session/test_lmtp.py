"""LMTP session transcripts over real sockets (RFC 2033)."""

from __future__ import annotations

import smtplib
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

from mailbag.testing.server import ServerThread

SIZE = 50 * 1024 * 1024
GREETING = f"S: 220 {HOST} LMTP mailbag"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    srv = start_server(tmp_path)
    yield srv
    srv.stop()


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    c = Client(server.port("lmtp"))
    yield c
    c.close()


def lhlo(size: int = SIZE) -> str:
    """The LHLO exchange as transcript lines (the reply is EHLO's, RFC 2033 §4.1)."""
    return "C: LHLO client.example\n" + EHLO_REPLY.format(size=size)


LHLO = lhlo()
LHLO_LINES = EHLO_REPLY.format(size=SIZE)


def test_greeting_and_lhlo(client: Client) -> None:
    """RFC 2033 §4.1: LHLO replaces EHLO; PIPELINING and ENHANCEDSTATUSCODES are offered."""
    transcript(
        client,
        f"""
        {GREETING}
        {LHLO}
        C: QUIT
        S: 221 2.0.0 Bye
        S: <closed>
        """,
    )


def test_helo_and_ehlo_are_refused(client: Client) -> None:
    """RFC 2033 §4.1: an LMTP server must not answer HELO or EHLO with success."""
    transcript(
        client,
        f"""
        {GREETING}
        C: EHLO client.example
        S: 500 5.5.1 Error: this is LMTP, use LHLO
        C: HELO client.example
        S: 500 5.5.1 Error: this is LMTP, use LHLO
        C: MAIL FROM:<a@b.example>
        S: 503 5.5.1 Error: send LHLO first
        """,
    )


def test_one_reply_per_recipient_in_rcpt_order(server: ServerThread, client: Client) -> None:
    """RFC 2033 §4.2: after DATA, one reply per accepted RCPT, in RCPT order.

    The refused recipient (550 at RCPT) gets no reply after the data.
    """
    transcript(
        client,
        f"""
        {GREETING}
        {LHLO}
        C: MAIL FROM:<sender@example.org>
        S: 250 2.1.0 Ok
        C: RCPT TO:<bob@localhost>
        S: 250 2.1.5 Ok
        C: RCPT TO:<nobody@localhost>
        S: 550 5.1.1 No such user here
        C: RCPT TO:<alice>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        C: Subject: lmtp
        C:
        C: ..dot
        C: .
        S: 250 2.0.0 <bob@localhost> Delivered UID 1
        S: 250 2.0.0 <alice@localhost> Delivered UID 1
        C: NOOP
        S: 250 2.0.0 Ok
        """,
    )
    for user in ("alice", "bob"):
        (stored,) = inbox(server, f"{user}@localhost")
        trace, original = split_trace(stored)
        assert original == b"Subject: lmtp\r\n\r\n.dot\r\n"
        assert trace["protocol"] == "LMTP"
        assert trace["sender"] == "sender@example.org"


def test_mixed_results_after_data(server: ServerThread, client: Client) -> None:
    """RFC 2033 §4.2: each recipient gets its own result, success or failure.

    bob's account disappears between RCPT and DATA: alice 250, bob 550, carol 250.
    """
    transcript(
        client,
        f"""
        {GREETING}
        {LHLO}
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<alice@localhost>
        S: 250 2.1.5 Ok
        C: RCPT TO:<bob@localhost>
        S: 250 2.1.5 Ok
        C: RCPT TO:<carol@localhost>
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
        S: 250 2.0.0 <alice@localhost> Delivered UID 1
        S: 550 5.1.1 <bob@localhost> No such user here
        S: 250 2.0.0 <carol@localhost> Delivered UID 1
        """,
    )
    assert len(inbox(server, "alice@localhost")) == 1
    assert len(inbox(server, "carol@localhost")) == 1


def test_rcpt_answers_follow_account_changes(server: ServerThread, client: Client) -> None:
    """RCPT may answer from a lookup of the same address a few seconds old
    (Delivery.ACCEPT_TTL), which never lets mail reach a deleted account nor
    keeps it from a new one: an account deleted after an accepted RCPT gets
    550 at DATA (its INBOX is gone), and a refused address is looked up
    again, so an account created meanwhile gets its mail at once."""
    transcript(
        client,
        f"""
        {GREETING}
        {LHLO}
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<bob@localhost>
        S: 250 2.1.5 Ok
        C: RCPT TO:<dave@localhost>
        S: 550 5.1.1 No such user here
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        C: Subject: one
        C: .
        S: 250 2.0.0 <bob@localhost> Delivered UID 1
        """,
    )
    delete_account(server, "bob@localhost")
    server.run(server.store.create_account("dave@localhost", "not-a-hash"))
    transcript(
        client,
        """
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<bob@localhost>
        S: 250 2.1.5 Ok
        C: RCPT TO:<dave@localhost>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        C: Subject: two
        C: .
        S: 550 5.1.1 <bob@localhost> No such user here
        S: 250 2.0.0 <dave@localhost> Delivered UID 1
        """,
    )
    assert len(inbox(server, "dave@localhost")) == 1


def test_duplicate_rcpt_gets_two_replies_one_copy(server: ServerThread, client: Client) -> None:
    """RFC 2033 §4.2: a reply for every successful RCPT, even a repeated one."""
    transcript(
        client,
        f"""
        {GREETING}
        {LHLO}
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<alice@localhost>
        S: 250 2.1.5 Ok
        C: RCPT TO:<ALICE>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        C: Subject: twice
        C: .
        S: 250 2.0.0 <alice@localhost> Delivered UID 1
        S: 250 2.0.0 <alice@localhost> Delivered UID 1
        """,
    )
    assert len(inbox(server, "alice@localhost")) == 1


def test_too_big_gets_one_refusal_per_recipient(tmp_path: Path) -> None:
    """RFC 2033 §4.2 with RFC 1870 §6.3: 552 for each recipient, nothing stored."""
    with running(tmp_path, max_message_size=50) as srv:
        c = Client(srv.port("lmtp"))
        transcript(
            c,
            f"""
            {GREETING}
            {lhlo(size=50)}
            C: MAIL FROM:<a@b.example>
            S: 250 2.1.0 Ok
            C: RCPT TO:<alice@localhost>
            S: 250 2.1.5 Ok
            C: RCPT TO:<bob@localhost>
            S: 250 2.1.5 Ok
            C: DATA
            S: 354 End data with <CR><LF>.<CR><LF>
            """,
        )
        c.send(b"z" * 100 + b"\r\n.\r\n")
        assert c.reply() == ["552 5.3.4 Message size exceeds fixed maximum message size"]
        assert c.reply() == ["552 5.3.4 Message size exceeds fixed maximum message size"]
        c.close()
        assert inbox(srv, "alice@localhost") == []
        assert inbox(srv, "bob@localhost") == []


def test_smuggling_gets_one_refusal_per_recipient(server: ServerThread, client: Client) -> None:
    """RFC 2033 §4.2 and SMTP smuggling: <LF>.<CR><LF> is not the end; 550 5.5.2 each."""
    client.send(
        "LHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@localhost>\r\n"
        "RCPT TO:<bob@localhost>\r\nDATA\r\n"
    )
    client.send(
        b"Subject: s\r\n\r\nhi\n.\r\nMAIL FROM:<x@y.example>\r\nRCPT TO:<carol@localhost>\r\n"
        b"DATA\r\nforged\r\n.\r\n"
    )
    transcript(
        client,
        f"""
        {GREETING}
        {LHLO_LINES}
        S: 250 2.1.0 Ok
        S: 250 2.1.5 Ok
        S: 250 2.1.5 Ok
        S: 354 End data with <CR><LF>.<CR><LF>
        S: 550 5.5.2 Error: bare <LF> received in end-of-data sequence
        S: 550 5.5.2 Error: bare <LF> received in end-of-data sequence
        C: NOOP
        S: 250 2.0.0 Ok
        """,
    )
    for user in ("alice", "bob", "carol"):
        assert inbox(server, f"{user}@localhost") == []


def test_pipelined_transactions(server: ServerThread, client: Client) -> None:
    """RFC 2033 §4.2 with RFC 2920: two transactions in one packet, replies in order."""
    client.send(
        "LHLO c.example\r\n"
        "MAIL FROM:<a@b.example>\r\nRCPT TO:<alice@localhost>\r\nRCPT TO:<bob@localhost>\r\n"
        "DATA\r\nSubject: one\r\n.\r\n"
        "MAIL FROM:<>\r\nRCPT TO:<carol@localhost>\r\nRCPT TO:<ghost@localhost>\r\n"
        "DATA\r\nSubject: two\r\n.\r\nQUIT\r\n"
    )
    transcript(
        client,
        f"""
        {GREETING}
        {LHLO_LINES}
        S: 250 2.1.0 Ok
        S: 250 2.1.5 Ok
        S: 250 2.1.5 Ok
        S: 354 End data with <CR><LF>.<CR><LF>
        S: 250 2.0.0 <alice@localhost> Delivered UID 1
        S: 250 2.0.0 <bob@localhost> Delivered UID 1
        S: 250 2.1.0 Ok
        S: 250 2.1.5 Ok
        S: 550 5.1.1 No such user here
        S: 354 End data with <CR><LF>.<CR><LF>
        S: 250 2.0.0 <carol@localhost> Delivered UID 1
        S: 221 2.0.0 Bye
        S: <closed>
        """,
    )
    assert split_trace(inbox(server, "carol@localhost")[0])[0]["sender"] == ""


def test_bdat_transactions_pipelined_without_waiting(server: ServerThread, client: Client) -> None:
    """RFC 3030 with RFC 2920 and RFC 2033 §4.2: whole BDAT transactions sent
    back to back in one write; one reply per recipient after each BDAT LAST,
    in order, and every message stored."""
    bodies = [b"Subject: m%d\r\n\r\n.\r\nbody %d\r\n" % (i, i) for i in range(20)]
    wire = b"LHLO c.example\r\n"
    for body in bodies:
        wire += (
            b"MAIL FROM:<a@b.example>\r\nRCPT TO:<alice@localhost>\r\nRCPT TO:<bob@localhost>\r\n"
            + b"BDAT %d LAST\r\n" % len(body)
            + body
        )
    client.send(wire + b"QUIT\r\n")
    transcript(client, f"{GREETING}\n{LHLO_LINES}")
    for _ in bodies:
        assert client.reply() == ["250 2.1.0 Ok"]
        assert client.reply() == ["250 2.1.5 Ok"]
        assert client.reply() == ["250 2.1.5 Ok"]
        for user in ("alice", "bob"):
            line = client.line()
            assert line.startswith(f"250 2.0.0 <{user}@localhost> Delivered UID "), line
    assert client.reply() == ["221 2.0.0 Bye"]
    for user in ("alice", "bob"):
        # Messages stored at once may take UIDs in another order (session docstring).
        stored = sorted(split_trace(m)[1] for m in inbox(server, f"{user}@localhost"))
        assert stored == sorted(bodies)


def test_bdat_last_refusals_one_per_recipient(tmp_path: Path) -> None:
    """RFC 2033 §4.2: a BDAT LAST whose message is refused (too big) gets one
    reply per recipient, as DATA would; a failed earlier chunk gets one."""
    with running(tmp_path, max_message_size=50) as srv:
        c = Client(srv.port("lmtp"))
        c.send(
            b"LHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@localhost>\r\n"
            b"RCPT TO:<bob@localhost>\r\nBDAT 30\r\n" + b"x" * 30 + b"BDAT 30 LAST\r\n" + b"y" * 30
        )
        transcript(
            c,
            f"""
            {GREETING}
            {EHLO_REPLY.format(size=50)}
            S: 250 2.1.0 Ok
            S: 250 2.1.5 Ok
            S: 250 2.1.5 Ok
            S: 250 2.0.0 Ok: 30 octets received
            S: 552 5.3.4 Message size exceeds fixed maximum message size
            S: 552 5.3.4 Message size exceeds fixed maximum message size
            C: MAIL FROM:<a@b.example>
            S: 250 2.1.0 Ok
            C: RCPT TO:<alice@localhost>
            S: 250 2.1.5 Ok
            C: RCPT TO:<bob@localhost>
            S: 250 2.1.5 Ok
            C: BDAT 60
            C: {"z" * 58}
            S: 552 5.3.4 Message size exceeds fixed maximum message size
            C: BDAT 0 LAST
            S: 503 5.5.1 Error: previous data chunk failed, send RSET first
            """,
        )
        c.close()
        assert inbox(srv, "alice@localhost") == []
        assert inbox(srv, "bob@localhost") == []


def test_lmtp_starttls_traced_as_lmtps(server: ServerThread, client: Client) -> None:
    """RFC 3207 over LMTP: after STARTTLS the trace says LMTPS; state reset to LHLO."""
    transcript(
        client,
        f"""
        {GREETING}
        {LHLO}
        C: STARTTLS
        S: 220 2.0.0 Ready to start TLS
        """,
    )
    client.starttls(server.config.data_dir / "tls" / "cert.pem")
    transcript(
        client,
        """
        C: MAIL FROM:<a@b.example>
        S: 503 5.5.1 Error: send LHLO first
        C: LHLO client.example
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S~ 250-.*
        S: 250 SMTPUTF8
        C: MAIL FROM:<a@b.example>
        S: 250 2.1.0 Ok
        C: RCPT TO:<alice@localhost>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        C: Subject: tls
        C: .
        S: 250 2.0.0 <alice@localhost> Delivered UID 1
        """,
    )
    trace, _ = split_trace(inbox(server, "alice@localhost")[0])
    assert trace["protocol"] == "LMTPS"


def test_smtplib_lmtp_end_to_end(server: ServerThread) -> None:
    """RFC 2033 with Python's smtplib.LMTP (one recipient: smtplib reads one reply)."""
    original = (
        b"From: s@example.org\r\nTo: bob@localhost\r\nSubject: via smtplib.LMTP\r\n\r\n"
        b".dot line\r\n.\r\nbye\r\n"
    )
    with smtplib.LMTP("127.0.0.1", server.port("lmtp"), local_hostname="mta.example") as s:
        assert s.sendmail("s@example.org", ["bob@localhost"], original) == {}
    (stored,) = inbox(server, "bob@localhost")
    trace, body = split_trace(stored)
    assert body == original
    assert trace["protocol"] == "LMTP"
    assert trace["helo"] == "mta.example"
    assert trace["rcpt"] == "bob@localhost"
    assert stored.startswith(b"Return-Path: <s@example.org>\r\nReceived: from mta.example")
