"""The sans-I/O SMTP/LMTP codec: commands, limits, DATA, smuggling, replies.

Every valid input is fed whole, one byte at a time, and split in two at every
point (DESIGN.md §1); the events must not depend on how the bytes arrived.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbag.proto.smtp import (
    MAX_LINE,
    MAX_PATH,
    Bdat,
    ChunkReceived,
    CommandError,
    Data,
    Event,
    Hello,
    Help,
    InvalidCommand,
    LineTooLong,
    Mail,
    MessageReceived,
    Noop,
    Quit,
    Rcpt,
    Reply,
    Rset,
    SMTPReceiver,
    StartTLS,
    Vrfy,
    parse_command,
)
from mailbag.proto.smtp.commands import parse_command_fully


def run(chunks: list[bytes], max_size: int = 10_000) -> list[Event]:
    """Feed chunks like the session does: DATA switches to message mode."""
    rx = SMTPReceiver(max_chunk=max_size)
    events: list[Event] = []
    for chunk in chunks:
        rx.feed(chunk)
        while (event := rx.next_event()) is not None:
            events.append(event)
            if isinstance(event, Data):
                rx.start_data(max_size)
    return events


def splits(data: bytes) -> Iterator[list[bytes]]:
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]


def assert_any_split(data: bytes, expected: list[Event], max_size: int = 10_000) -> None:
    for chunks in splits(data):
        assert run(chunks, max_size) == expected, [len(c) for c in chunks]


# ---- commands (RFC 5321 §4.1) ---------------------------------------------------

VALID: list[tuple[bytes, Event]] = [
    (b"EHLO client.example\r\n", Hello("EHLO", "client.example")),
    (b"ehlo [127.0.0.1]\r\n", Hello("EHLO", "[127.0.0.1]")),
    (b"HELO client.example\r\n", Hello("HELO", "client.example")),
    (b"LHLO client.example\r\n", Hello("LHLO", "client.example")),
    (b"MAIL FROM:<alice@example.org>\r\n", Mail("alice@example.org")),
    (b"MAIL FROM:<>\r\n", Mail("")),
    (b"mail from: <a@b.example>\r\n", Mail("a@b.example")),
    (
        b"MAIL FROM:<a@b.example> SIZE=1000 BODY=8bitmime SMTPUTF8\r\n",
        Mail("a@b.example", size=1000, body="8BITMIME", smtputf8=True),
    ),
    (b"MAIL FROM:<a@b.example> BODY=7BIT\r\n", Mail("a@b.example", body="7BIT")),
    # RFC 5321 §4.1.1.2 / Appendix C: a source route is accepted and dropped.
    (b"MAIL FROM:<@hosta.int,@jkl.org:userc@d.bar.org>\r\n", Mail("userc@d.bar.org")),
    (b'MAIL FROM:<"john doe"@example.org>\r\n', Mail('"john doe"@example.org')),
    (b"MAIL FROM:<user@[192.0.2.1]>\r\n", Mail("user@[192.0.2.1]")),
    (b"MAIL FROM:<user@[IPv6:2001:db8::1]>\r\n", Mail("user@[IPv6:2001:db8::1]")),
    (
        "MAIL FROM:<jörg@bücher.example> SMTPUTF8\r\n".encode(),
        Mail("jörg@bücher.example", smtputf8=True),
    ),
    (b"RCPT TO:<bob@localhost>\r\n", Rcpt("bob@localhost")),
    (b"rcpt to:<bob>\r\n", Rcpt("bob")),
    # RFC 5321 §4.1.1.3: <Postmaster> without a domain must be accepted.
    (b"RCPT TO:<Postmaster>\r\n", Rcpt("Postmaster")),
    (b"RCPT TO:<@relay.example:bob@localhost>\r\n", Rcpt("bob@localhost")),
    (b"RSET\r\n", Rset()),
    (b"NOOP\r\n", Noop()),
    (b"NOOP anything at all\r\n", Noop("anything at all")),
    (b"QUIT\r\n", Quit()),
    (b"VRFY bob\r\n", Vrfy("bob")),
    (b"HELP\r\n", Help()),
    (b"STARTTLS\r\n", StartTLS()),
    (b"starttls\r\n", StartTLS()),
    (b"NOOP\n", Noop()),  # a bare LF ends a command line too
]


@pytest.mark.parametrize(("wire", "expected"), VALID, ids=[repr(w) for w, _ in VALID])
def test_valid_command_any_split(wire: bytes, expected: Event) -> None:
    """RFC 5321 §4.1.1: each command parses the same whole or split anywhere."""
    assert_any_split(wire, [expected])


INVALID: list[tuple[bytes, int, str]] = [
    (b"FOO\r\n", 500, "5.5.2"),
    (b"\r\n", 500, "5.5.2"),
    (b"EXPN staff\r\n", 502, "5.5.1"),
    (b"BDAT\r\n", 501, "5.5.4"),
    (b"BDAT LAST\r\n", 501, "5.5.4"),
    (b"BDAT -1\r\n", 501, "5.5.4"),
    (b"BDAT 1x\r\n", 501, "5.5.4"),
    (b"BDAT 5  LAST\r\n", 501, "5.5.4"),
    (b"BDAT 5 LAST x\r\n", 501, "5.5.4"),
    (b"BDAT 5 FIRST\r\n", 501, "5.5.4"),
    (b"BDAT 123456789012345678901\r\n", 501, "5.5.4"),
    (b"EHLO\r\n", 501, "5.5.4"),
    (b"HELO   \r\n", 501, "5.5.4"),
    (b"MAIL TO:<a@b.example>\r\n", 501, "5.5.4"),
    (b"MAIL FROM:a@b.example\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b.example\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b.example>SIZE=1\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a..b@c.example>\r\n", 501, "5.1.7"),
    (b"MAIL FROM:<.a@c.example>\r\n", 501, "5.1.7"),
    (b"MAIL FROM:<a@>\r\n", 501, "5.1.7"),
    (b"MAIL FROM:<a@-b.example>\r\n", 501, "5.1.7"),
    (b"MAIL FROM:<a b@c.example>\r\n", 501, "5.1.7"),
    (b"MAIL FROM:<@route.example>\r\n", 501, "5.1.7"),
    (b"MAIL FROM:<" + b"a" * 250 + b"@b.example>\r\n", 501, "5.1.7"),
    (b"MAIL FROM:<a@b.example> SIZE=abc\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b.example> SIZE\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b.example> SIZE=1 SIZE=2\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b.example> BODY=BINARYMIME\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b.example> SMTPUTF8=yes\r\n", 501, "5.5.4"),
    (b"MAIL FROM:<a@b.example> =x\r\n", 501, "5.5.4"),
    # RFC 5321 §4.1.1.11: unknown parameters get 555.
    (b"MAIL FROM:<a@b.example> RET=HDRS\r\n", 555, "5.5.4"),
    (b"RCPT TO:<>\r\n", 501, "5.1.3"),
    (b"RCPT TO:bob\r\n", 501, "5.5.4"),
    (b"RCPT FROM:<bob>\r\n", 501, "5.5.4"),
    (b"RCPT TO:<bob@localhost> NOTIFY=NEVER\r\n", 555, "5.5.4"),
    (b"DATA now\r\n", 501, "5.5.4"),
    (b"RSET x\r\n", 501, "5.5.4"),
    (b"QUIT x\r\n", 501, "5.5.4"),
    # RFC 3207 §4: STARTTLS takes no parameters.
    (b"STARTTLS x\r\n", 501, "5.5.4"),
    (b"VRFY\r\n", 501, "5.5.4"),
    (b"NOOP \x00\r\n", 500, "5.5.2"),
    (b"MA\x00IL FROM:<a@b.example>\r\n", 500, "5.5.2"),
    (b"NOOP \xff\xfe\r\n", 500, "5.5.2"),
    (b"MAIL FROM:<\xe9@b.example>\r\n", 500, "5.5.2"),
    (b"NOOP \x1b[0m\r\n", 500, "5.5.2"),
    (b"NOOP a\rb\r\n", 500, "5.5.2"),
]


@pytest.mark.parametrize(("wire", "code", "enhanced"), INVALID, ids=[repr(w) for w, *_ in INVALID])
def test_invalid_command_any_split(wire: bytes, code: int, enhanced: str) -> None:
    """RFC 5321 §4.2.4 / §4.3.2: syntax errors get 500/501/502/555, never a crash."""
    line = wire.removesuffix(b"\n").removesuffix(b"\r")
    events = run([wire])
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, InvalidCommand)
    assert event.line == line
    assert (event.reply.code, event.reply.enhanced) == (code, enhanced)
    assert_any_split(wire, events)


def test_parse_command_direct() -> None:
    assert parse_command(b"MAIL FROM:<a@b.example> SIZE=0") == Mail("a@b.example", size=0)


def test_pipelined_commands_any_split() -> None:
    """RFC 2920 §3.1: every complete command of a packet comes out, in order."""
    wire = b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob>\r\nNOOP\r\nQUIT\r\n"
    expected: list[Event] = [
        Hello("EHLO", "c.example"),
        Mail("a@b.example"),
        Rcpt("bob"),
        Noop(),
        Quit(),
    ]
    assert_any_split(wire, expected)


# ---- line limit (RFC 5321 §4.5.3.1.4) -------------------------------------------------


def test_line_of_exactly_the_limit_is_accepted() -> None:
    """RFC 5321 §4.5.3.1: the limit counts the CRLF."""
    wire = b"NOOP " + b"x" * (MAX_LINE - 7) + b"\r\n"
    assert len(wire) == MAX_LINE
    assert_any_split(wire, [Noop("x" * (MAX_LINE - 7))])
    bare_lf = b"NOOP " + b"x" * (MAX_LINE - 6) + b"\n"
    assert len(bare_lf) == MAX_LINE
    assert run([bare_lf]) == [Noop("x" * (MAX_LINE - 6))]


def test_line_over_the_limit_is_skipped_and_the_next_line_parsed() -> None:
    """RFC 5321 §4.5.3.1.4: an overlong line is an error; the connection goes on."""
    wire = b"NOOP " + b"x" * (MAX_LINE - 6) + b"\r\nRSET\r\n"
    assert len(wire) == MAX_LINE + 1 + 6
    assert_any_split(wire, [LineTooLong(MAX_LINE), Rset()])


def test_endless_line_keeps_the_buffer_bounded() -> None:
    rx = SMTPReceiver()
    events: list[Event] = []
    for _ in range(1000):
        rx.feed(b"A" * 1000)
        while (event := rx.next_event()) is not None:
            events.append(event)
        assert rx.buffered <= 2 * MAX_LINE
    assert events == [LineTooLong(MAX_LINE)]
    rx.feed(b"tail\r\nQUIT\r\n")
    assert rx.next_event() == Quit()
    assert rx.next_event() is None
    assert rx.idle


def test_discard_drops_pipelined_bytes() -> None:
    """RFC 3207 §4.2: nothing received before the TLS handshake may run after it."""
    rx = SMTPReceiver()
    rx.feed(b"STARTTLS\r\nRSET\r\nMAIL FROM:<a@b.example>\r\nPARTI")
    assert rx.next_event() == StartTLS()
    assert rx.discard() == len(b"RSET\r\nMAIL FROM:<a@b.example>\r\nPARTI")
    assert rx.next_event() is None
    assert rx.idle
    rx.feed(b"EHLO x\r\n")
    assert rx.next_event() == Hello("EHLO", "x")


# ---- DATA (RFC 5321 §4.1.1.4, §4.5.2) --------------------------------------------------


def message(body: bytes, size: int | None = None) -> MessageReceived:
    return MessageReceived(body, len(body) if size is None else size)


DATA_CASES: list[tuple[bytes, bytes]] = [
    (b"Subject: x\r\n\r\nbody\r\n", b"Subject: x\r\n\r\nbody\r\n"),
    (b"", b""),
    (b"\r\n", b"\r\n"),
    # RFC 5321 §4.5.2: the first of the leading dots is removed.
    (b"..\r\n", b".\r\n"),
    (b"..x\r\n", b".x\r\n"),
    (b"...\r\n", b"..\r\n"),
    (b".x\r\n", b"x\r\n"),
    (b"a.\r\nb.c\r\n", b"a.\r\nb.c\r\n"),
    (b"a\r\n..\r\n..\r\nb\r\n", b"a\r\n.\r\n.\r\nb\r\n"),
    # Bare LF becomes CRLF, and a line after it is a line (unstuffed).
    (b"a\nb\r\n", b"a\r\nb\r\n"),
    (b"a\n..b\r\n", b"a\r\n.b\r\n"),
    (b"a\n\n\r\n", b"a\r\n\r\n\r\n"),
    # A bare CR is content: kept, and what follows it is not a new line.
    (b"a\rb\r\n", b"a\rb\r\n"),
    (b"a\r..b\r\n", b"a\r..b\r\n"),
    (b"a\r\r\n", b"a\r\r\n"),
    (b"8bit \xc3\xa9 \x00 \xff\r\n", b"8bit \xc3\xa9 \x00 \xff\r\n"),
]


@pytest.mark.parametrize(("content", "stored"), DATA_CASES, ids=[repr(c) for c, _ in DATA_CASES])
def test_data_any_split(content: bytes, stored: bytes) -> None:
    """RFC 5321 §4.1.1.4: content up to CRLF.CRLF, dots unstuffed, CRLF line ends."""
    wire = b"DATA\r\n" + content + b".\r\nQUIT\r\n"
    assert_any_split(wire, [Data(), message(stored), Quit()])


def test_data_then_next_transaction_pipelined() -> None:
    """RFC 2920 §3.1: commands may follow the end of data in the same packet."""
    wire = (
        b"MAIL FROM:<a@b.example>\r\nRCPT TO:<bob>\r\nDATA\r\none\r\n.\r\n"
        b"MAIL FROM:<>\r\nRCPT TO:<bob>\r\nDATA\r\ntwo\r\n.\r\nQUIT\r\n"
    )
    expected: list[Event] = [
        Mail("a@b.example"),
        Rcpt("bob"),
        Data(),
        message(b"one\r\n"),
        Mail(""),
        Rcpt("bob"),
        Data(),
        message(b"two\r\n"),
        Quit(),
    ]
    assert_any_split(wire, expected)


def test_commands_inside_data_are_content() -> None:
    wire = b"DATA\r\nQUIT\r\nRSET\r\n.\r\nNOOP\r\n"
    assert run([wire]) == [Data(), message(b"QUIT\r\nRSET\r\n"), Noop()]


def test_long_data_lines_are_content() -> None:
    """The 1000-octet limit is for command lines; DATA only has the size limit."""
    line = b"y" * 5000 + b"\r\n"
    assert run([b"DATA\r\n" + line + b".\r\n"]) == [Data(), message(line)]


# ---- size limit (RFC 1870 §6.3) -----------------------------------------------------------


def test_message_at_the_size_limit_is_kept() -> None:
    content = b"x" * 8 + b"\r\n"
    assert_any_split(b"DATA\r\n" + content + b".\r\n", [Data(), message(content)], max_size=10)


def test_message_over_the_size_limit_is_counted_not_stored() -> None:
    """RFC 1870 §6.3: read to the end of data, then refuse (552)."""
    content = b"x" * 9 + b"\r\n"
    wire = b"DATA\r\n" + content + b".\r\nNOOP\r\n"
    expected: list[Event] = [Data(), MessageReceived(b"", 11, too_big=True), Noop()]
    assert_any_split(wire, expected, max_size=10)


def test_huge_message_memory_is_bounded() -> None:
    rx = SMTPReceiver()
    rx.feed(b"DATA\r\n")
    assert rx.next_event() == Data()
    rx.start_data(1000)
    chunk = (b"z" * 99 + b"\n") * 100
    for _ in range(200):
        rx.feed(chunk)
        assert rx.next_event() is None
        assert rx.buffered <= 2
    rx.feed(b"\r\n.\r\n")
    event = rx.next_event()
    assert event == MessageReceived(b"", 200 * 100 * 101 + 2, too_big=True)


def test_start_data_twice_is_a_bug() -> None:
    rx = SMTPReceiver()
    rx.start_data(10)
    with pytest.raises(RuntimeError):
        rx.start_data(10)


# ---- SMTP smuggling -------------------------------------------------------------------------

BREAKS = {b"\r\n": "<CR><LF>", b"\n": "bare <LF>", b"\r": "bare <CR>"}
SMUGGLING = [
    (before, after)
    for before in BREAKS
    for after in BREAKS
    if not (before == b"\r\n" and after == b"\r\n")
]


@pytest.mark.parametrize(
    ("before", "after"), SMUGGLING, ids=[repr(b + b"." + a) for b, a in SMUGGLING]
)
def test_smuggled_end_of_data_is_never_the_end(before: bytes, after: bytes) -> None:
    """SMTP smuggling (CVE-2023-51764 class): "." with a bare CR or LF beside it.

    The fake end must not end the message (the smuggled MAIL/RCPT/DATA stay
    content), and the message is marked so the session refuses it.
    """
    wire = (
        b"DATA\r\nSubject: hi\r\n\r\nhello"
        + before
        + b"."
        + after
        + b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<bob>\r\nDATA\r\nforged\r\n"
        + b".\r\nNOOP\r\n"
    )
    expected_kind = BREAKS[before] if before != b"\r\n" else BREAKS[after]
    events = run([wire])
    assert len(events) == 3
    assert events[0] == Data()
    received = events[1]
    assert isinstance(received, MessageReceived)
    assert received.smuggling == expected_kind
    assert received.data == b""
    assert events[2] == Noop()
    assert_any_split(wire, events)


@pytest.mark.parametrize("after", [b"\n", b"\r"])
def test_smuggled_marker_right_after_data(after: bytes) -> None:
    """The DATA line's CRLF counts as the break before a first-line "."."""
    wire = b"DATA\r\n." + after + b"x\r\n.\r\nQUIT\r\n"
    events = run([wire])
    assert [type(e) for e in events] == [Data, MessageReceived, Quit]
    assert isinstance(events[1], MessageReceived)
    assert events[1].smuggling == BREAKS[after]
    assert_any_split(wire, events)


def test_dot_cr_lf_pair_split_is_the_real_end() -> None:
    """`<CR><LF>.<CR>` then `<LF>` in a later chunk is the genuine end."""
    assert run([b"DATA\r\nx\r\n.\r", b"\nNOOP\r\n"]) == [Data(), message(b"x\r\n"), Noop()]


# ---- random splits (hypothesis) ---------------------------------------------------------------

SESSION = (
    b"EHLO c.example\r\nMAIL FROM:<a@b.example> SIZE=20\r\nRCPT TO:<bob>\r\n"
    b"DATA\r\nSubject: s\r\n\r\n..dots\n\rx\r\n.\r\nVRFY bob\r\n"
    b"MAIL FROM:<>\r\nDATA\r\nx\n.\ny\r\n.\r\n" + b"NOOP " + b"n" * 1200 + b"\r\nQUIT\r\n"
)


@given(st.lists(st.integers(min_value=0, max_value=len(SESSION)), max_size=30))
def test_random_splits_match_whole_feed(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    bounds = [0, *points, len(SESSION)]
    chunks = [SESSION[a:b] for a, b in itertools.pairwise(bounds)]
    assert run(chunks) == run([SESSION])


def test_random_split_reference_events() -> None:
    events = run([SESSION])
    assert events[4] == message(b"Subject: s\r\n\r\n.dots\r\n\rx\r\n")
    assert events[5:8] == [Vrfy("bob"), Mail(""), Data()]
    received = events[8]
    assert isinstance(received, MessageReceived)
    assert received.smuggling == "bare <LF>"
    assert events[9:] == [LineTooLong(MAX_LINE), Quit()]


# ---- replies (RFC 5321 §4.2, RFC 2034) ------------------------------------------------------


def test_reply_single_line() -> None:
    assert Reply(250, "2.0.0", "Ok").to_bytes() == b"250 2.0.0 Ok\r\n"
    assert Reply(354, "", "End data").to_bytes() == b"354 End data\r\n"


def test_reply_multiline_repeats_code_and_enhanced_code() -> None:
    """RFC 5321 §4.2.1 continuation lines; RFC 2034 §4 the code on every line."""
    assert Reply(250, "", "host\nPIPELINING\nSIZE 10").to_bytes() == (
        b"250-host\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
    )
    assert Reply(550, "5.1.1", "a\nb").to_bytes() == b"550-5.1.1 a\r\n550 5.1.1 b\r\n"


def test_reply_never_carries_a_bare_cr() -> None:
    assert Reply(250, "", "x\ry").to_bytes() == b"250 xy\r\n"


# ---- BDAT chunks (RFC 3030 §2) --------------------------------------------------------------


def test_bdat_chunks_any_split() -> None:
    """The stated number of octets follows each BDAT line, taken as they are:
    no dot-stuffing, no end marker, command-like lines are content."""
    first = b".\r\nQUIT\r\n..x\nBDAT 1\r\n"
    wire = (
        b"BDAT %d\r\n" % len(first)
        + first
        + b"bdat 0\r\nBDAT 3 last\r\n\x00\r.BDAT 0 LAST\r\nNOOP\r\n"
    )
    expected: list[Event] = [
        ChunkReceived(len(first), False, first),
        ChunkReceived(0, False, b""),
        ChunkReceived(3, True, b"\x00\r."),
        ChunkReceived(0, True, b""),
        Noop(),
    ]
    assert_any_split(wire, expected)


def test_bdat_parse() -> None:
    assert parse_command(b"BDAT 0") == Bdat(0, False)
    assert parse_command(b"BDAT 00012 LaSt") == Bdat(12, True)
    assert parse_command(b"BDAT " + b"9" * 20) == Bdat(10**20 - 1, False)


def test_bdat_over_the_limit_is_counted_not_stored() -> None:
    """RFC 3030 §2: a chunk that will be refused is still read to its end."""
    wire = b"BDAT 11 LAST\r\n" + b"x" * 11 + b"RSET\r\n"
    assert_any_split(wire, [ChunkReceived(11, True, b"", too_big=True), Rset()], max_size=10)
    at_limit = b"BDAT 10\r\n" + b"y" * 10
    assert_any_split(at_limit, [ChunkReceived(10, False, b"y" * 10)], max_size=10)


def test_huge_bdat_memory_is_bounded() -> None:
    rx = SMTPReceiver(max_chunk=1000)
    rx.feed(b"BDAT %d LAST\r\n" % (10**9))
    assert rx.next_event() is None
    for _ in range(100):
        rx.feed(b"z" * 100_000)
        assert rx.next_event() is None
        assert rx.buffered == 0
        assert not rx.idle
    assert rx.discard() == 0
    assert rx.idle
    rx.feed(b"NOOP\r\n")
    assert rx.next_event() == Noop()


def test_partial_bdat_is_not_idle() -> None:
    """The command timer runs while a chunk is incomplete (session._busy_since)."""
    rx = SMTPReceiver(max_chunk=100)
    rx.feed(b"BDAT 4\r\nab")
    assert rx.next_event() is None
    assert not rx.idle
    rx.feed(b"cd")
    assert rx.next_event() == ChunkReceived(4, False, b"abcd")
    assert rx.idle


# ---- the shortcut for plain MAIL and RCPT ---------------------------------------------------

_VERBS = st.sampled_from(
    ["MAIL FROM:", "RCPT TO:", "mail from:", "Rcpt To:", "MAIL FROM: ", "MAIL  FROM:", "RCPT TO"]
)
_ATOMS = st.sampled_from(["a", "Z9", "!#$%&'*+/=?^_`{|}~", "", "-", "\u00e9", '"q"', " ", "\x01"])
_LABELS = st.sampled_from(["a", "x-y", "-a", "a-", "9", "", "\u00e9", "[127.0.0.1]", "a_b"])
_TAILS = st.sampled_from(["", " ", "\t", " SIZE=10", " BODY=8BITMIME", "x", ">"])


@st.composite
def _envelope_lines(draw: st.DrawFn) -> bytes:
    local = ".".join(draw(st.lists(_ATOMS, min_size=1, max_size=4)))
    local *= draw(st.sampled_from([1, 1, 1, 40]))  # sometimes past the path limit
    domain = ".".join(draw(st.lists(_LABELS, min_size=1, max_size=4)))
    at = draw(st.sampled_from(["@", "@", "@", "", "@@"]))
    line = draw(_VERBS) + "<" + local + at + domain + ">" + draw(_TAILS)
    return line.encode()


@given(_envelope_lines())
def test_plain_envelope_shortcut_matches_the_full_parser(line: bytes) -> None:
    """parse_command's one-regex shortcut gives exactly what the full parser
    gives (the command, or the same refusal) for any line near its pattern."""

    def outcome(parse: Callable[[bytes], object]) -> object:
        try:
            return parse(line)
        except CommandError as e:
            return e.reply

    assert outcome(parse_command) == outcome(parse_command_fully)


def test_plain_envelope_shortcut_cases() -> None:
    assert parse_command(b"mail from:<a.b@c-d.example>  ") == Mail("a.b@c-d.example")
    assert parse_command(b"RCPT TO:<x@localhost>") == Rcpt("x@localhost")
    long_local = b"l" * (MAX_PATH - 2 - len(b"@b.example") + 1)
    with pytest.raises(CommandError) as e:
        parse_command(b"MAIL FROM:<" + long_local + b"@b.example>")
    assert e.value.reply.code == 501
