"""The sans-I/O POP3 codec: framing, limits, parsing, responses, message octets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbag.proto.pop3 import (
    LINE_TOO_LONG,
    MAX_COMMAND_LINE,
    MAX_SASL_LINE,
    BadLine,
    Command,
    DotStuffer,
    Event,
    POP3Receiver,
    SASLResponse,
    TopLimiter,
    continuation,
    err,
    message_size,
    multiline,
    ok,
    parse_number,
    stuff_message,
)


def drain(rx: POP3Receiver) -> list[Event]:
    out: list[Event] = []
    while (ev := rx.next_event()) is not None:
        out.append(ev)
    return out


def feed_all(data: bytes) -> list[Event]:
    rx = POP3Receiver()
    rx.feed(data)
    return drain(rx)


# Every command of RFC 1939, RFC 2449, RFC 2595, RFC 5034, RFC 6856 in a valid form.
VALID: list[tuple[bytes, Command]] = [
    (b"USER alice\r\n", Command("USER", ("alice",), "alice")),
    (b"PASS secret\r\n", Command("PASS", ("secret",), "secret")),
    (b"PASS two words \r\n", Command("PASS", ("two", "words"), "two words ")),
    (
        b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n",
        Command(
            "APOP",
            ("mrose", "c4c9334bac560ecc979e58001b3e22fb"),
            "mrose c4c9334bac560ecc979e58001b3e22fb",
        ),
    ),
    (b"AUTH\r\n", Command("AUTH", (), "")),
    (b"AUTH PLAIN\r\n", Command("AUTH", ("PLAIN",), "PLAIN")),
    (
        b"AUTH PLAIN AGFsaWNlAHB3\r\n",
        Command("AUTH", ("PLAIN", "AGFsaWNlAHB3"), "PLAIN AGFsaWNlAHB3"),
    ),
    (b"AUTH LOGIN =\r\n", Command("AUTH", ("LOGIN", "="), "LOGIN =")),
    (b"STLS\r\n", Command("STLS", (), "")),
    (b"UTF8\r\n", Command("UTF8", (), "")),
    (b"CAPA\r\n", Command("CAPA", (), "")),
    (b"STAT\r\n", Command("STAT", (), "")),
    (b"LIST\r\n", Command("LIST", (), "")),
    (b"LIST 2\r\n", Command("LIST", ("2",), "2")),
    (b"RETR 1\r\n", Command("RETR", ("1",), "1")),
    (b"DELE 1\r\n", Command("DELE", ("1",), "1")),
    (b"NOOP\r\n", Command("NOOP", (), "")),
    (b"RSET\r\n", Command("RSET", (), "")),
    (b"TOP 1 10\r\n", Command("TOP", ("1", "10"), "1 10")),
    (b"UIDL\r\n", Command("UIDL", (), "")),
    (b"UIDL 3\r\n", Command("UIDL", ("3",), "3")),
    (b"QUIT\r\n", Command("QUIT", (), "")),
    # RFC 1939 §3: keywords are case-insensitive; arguments keep their case.
    (b"user Alice\r\n", Command("USER", ("Alice",), "Alice")),
    (b"rEtR 7\r\n", Command("RETR", ("7",), "7")),
    # RFC 6856 §2.2: UTF-8 user names.
    ("USER jürgen\r\n".encode(), Command("USER", ("jürgen",), "jürgen")),
    # Bare LF line ends are accepted.
    (b"NOOP\n", Command("NOOP", (), "")),
    # Runs of spaces separate arguments like one.
    (b"TOP  1   2\r\n", Command("TOP", ("1", "2"), " 1   2")),
]


@pytest.mark.parametrize(("line", "expected"), VALID, ids=[v[0].decode() for v in VALID])
def test_valid_command_whole_and_split_at_every_byte(line: bytes, expected: Command) -> None:
    assert feed_all(line) == [expected]
    for cut in range(len(line) + 1):
        rx = POP3Receiver()
        rx.feed(line[:cut])
        first = drain(rx)
        rx.feed(line[cut:])
        assert first + drain(rx) == [expected], cut
    # and one byte at a time, asking for events after every byte
    rx = POP3Receiver()
    got: list[Event] = []
    for i in range(len(line)):
        rx.feed(line[i : i + 1])
        got += drain(rx)
    assert got == [expected]


def test_pipelined_commands_in_one_chunk() -> None:
    """RFC 2449 §6.6: each pipelined command is processed in turn."""
    data = b"".join(line for line, _ in VALID)
    assert feed_all(data) == [cmd for _, cmd in VALID]


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_pipelined_commands_at_random_cuts(cuts: list[int]) -> None:
    data = b"".join(line for line, _ in VALID)
    points = sorted({min(c, len(data)) for c in cuts})
    rx = POP3Receiver()
    got: list[Event] = []
    prev = 0
    for p in [*points, len(data)]:
        rx.feed(data[prev:p])
        got += drain(rx)
        prev = p
    assert got == [cmd for _, cmd in VALID]


def test_255_octet_command_and_up_to_512_accepted() -> None:
    """RFC 2449 §4: commands up to 255 octets with CRLF MUST be accepted."""
    for total in (255, MAX_COMMAND_LINE):
        arg = "x" * (total - len("USER \r\n"))
        line = f"USER {arg}\r\n".encode()
        assert len(line) == total
        assert feed_all(line) == [Command("USER", (arg,), arg)]


def test_overlong_line_is_skipped_and_reported_once() -> None:
    line = b"USER " + b"x" * MAX_COMMAND_LINE + b"\r\n"
    assert feed_all(line + b"NOOP\r\n") == [BadLine(LINE_TOO_LONG), Command("NOOP", (), "")]


def test_overlong_line_memory_is_bounded() -> None:
    rx = POP3Receiver()
    got: list[Event] = []
    for _ in range(1000):
        rx.feed(b"y" * 1000)
        got += drain(rx)
        assert rx.buffered <= 1000 + MAX_COMMAND_LINE
    assert got == []
    rx.feed(b"tail\r\nQUIT\r\n")
    assert drain(rx) == [BadLine(LINE_TOO_LONG), Command("QUIT", (), "")]


def test_overlong_line_fed_byte_by_byte() -> None:
    rx = POP3Receiver()
    got: list[Event] = []
    for b in b"A" * 2000 + b"\r\nSTAT\r\n":
        rx.feed(bytes([b]))
        got += drain(rx)
        assert rx.buffered <= MAX_COMMAND_LINE + 1
    assert got == [BadLine(LINE_TOO_LONG), Command("STAT", (), "")]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"US\0ER alice\r\n", "NUL"),
        (b"PASS se\0cret\r\n", "NUL"),
        (b"USER \xff\xfe\r\n", "UTF-8"),
        (b"USER \xc3\r\n", "UTF-8"),
        (b"\r\n", "empty"),
        (b"   \r\n", "empty"),
        (b" NOOP\r\n", "keyword"),
        (b"N\x01OP\r\n", "keyword"),
    ],
)
def test_bad_lines(line: bytes, reason: str) -> None:
    (event,) = feed_all(line + b"NOOP\r\n")[:1]
    assert isinstance(event, BadLine)
    assert reason in event.reason
    # the connection stays in sync: the next command parses
    assert feed_all(line + b"NOOP\r\n")[1:] == [Command("NOOP", (), "")]


def test_sasl_mode_reads_exactly_one_line_as_response() -> None:
    """RFC 5034 §4: after a challenge the next line is a response, even pipelined."""
    rx = POP3Receiver()
    rx.feed(b"AUTH PLAIN\r\nQUIT\r\nQUIT\r\n")
    assert rx.next_event() == Command("AUTH", ("PLAIN",), "PLAIN")
    rx.expect_sasl_response()
    assert rx.in_sasl
    assert rx.next_event() == SASLResponse(b"QUIT")
    assert not rx.in_sasl
    assert rx.next_event() == Command("QUIT", (), "")


def test_sasl_line_limit() -> None:
    big = b"A" * (MAX_SASL_LINE - 2)
    rx = POP3Receiver()
    rx.expect_sasl_response()
    rx.feed(big + b"\r\n")
    assert rx.next_event() == SASLResponse(big)
    rx.expect_sasl_response()
    rx.feed(b"A" * (MAX_SASL_LINE + 10) + b"\r\nNOOP\r\n")
    assert drain(rx) == [BadLine(LINE_TOO_LONG), Command("NOOP", (), "")]


def test_sasl_response_split_at_every_byte() -> None:
    line = b"AGFsaWNlAHB3\r\n"
    for cut in range(len(line) + 1):
        rx = POP3Receiver()
        rx.expect_sasl_response()
        rx.feed(line[:cut])
        got = drain(rx)
        rx.feed(line[cut:])
        assert got + drain(rx) == [SASLResponse(b"AGFsaWNlAHB3")]


def test_discard_drops_everything_buffered() -> None:
    """RFC 2595 §4: what was pipelined after STLS must never be executed."""
    rx = POP3Receiver()
    rx.feed(b"STLS\r\nCAPA\r\nUSER evil\r\npartial")
    assert rx.next_event() == Command("STLS", (), "")
    assert rx.discard() == len(b"CAPA\r\nUSER evil\r\npartial")
    assert rx.next_event() is None
    rx.feed(b"NOOP\r\n")
    assert rx.next_event() == Command("NOOP", (), "")


@pytest.mark.parametrize(
    ("arg", "value"),
    [("1", 1), ("0", 0), ("0042", 42), ("4294967295", 4294967295)],
)
def test_parse_number_valid(arg: str, value: int) -> None:
    assert parse_number(arg) == value


@pytest.mark.parametrize("arg", ["", "-1", "+1", "1.0", "1e3", "x", "١", "12345678901", " 1"])
def test_parse_number_invalid(arg: str) -> None:
    assert parse_number(arg) is None


# ---- responses ---------------------------------------------------------------


def test_status_lines() -> None:
    assert ok() == b"+OK\r\n"
    assert ok("2 320") == b"+OK 2 320\r\n"
    assert err("Mailbox is locked", "IN-USE") == b"-ERR [IN-USE] Mailbox is locked\r\n"
    assert err("x", "SYS/TEMP") == b"-ERR [SYS/TEMP] x\r\n"
    assert continuation(b"") == b"+ \r\n"
    assert continuation(b"VXNlcm5hbWU6") == b"+ VXNlcm5hbWU6\r\n"


def test_status_text_cannot_inject_lines_and_is_capped() -> None:
    assert err("user\r\n+OK evil") == b"-ERR user  +OK evil\r\n"
    long = ok("é" * 600)
    assert len(long) <= 512 and long.endswith(b"\r\n")
    long.decode("utf-8")


def test_multiline_stuffs_and_terminates() -> None:
    """RFC 1939 §3: lines starting with "." get one more; "." CRLF ends the block."""
    assert multiline(ok("list"), ["1 120", ".hidden", b"2 200"]) == (
        b"+OK list\r\n1 120\r\n..hidden\r\n2 200\r\n.\r\n"
    )
    assert multiline(ok(), []) == b"+OK\r\n.\r\n"


# ---- message octets --------------------------------------------------------------

MESSAGES = [
    b"Subject: a\r\n\r\nbody\r\n",
    b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\nx.\r\n...end\r\n",
    b".starts with a dot\r\n\r\nbody\r\n",
    b"Subject: no final newline\r\n\r\nlast line",
    b"Subject: bare\n\nLF only\n.dot\n",
    b"Subject: empty body\r\n\r\n",
    b"",
    b"\r\n",
    b"Subject: cr\r\n\r\nlone\rcr\r\n",
]


def expected_wire(data: bytes) -> bytes:
    """A slow, obviously-correct reference: normalise, split lines, stuff, join."""
    text = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not text:
        return b".\r\n"
    lines = text.split(b"\r\n")
    if lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines) + (
        b".\r\n"
    )


@pytest.mark.parametrize("data", MESSAGES)
def test_stuff_message_matches_reference_split_anywhere(data: bytes) -> None:
    want = expected_wire(data)
    assert stuff_message(data) == want
    for cut in range(len(data) + 1):
        s = DotStuffer()
        assert s.feed(data[:cut]) + s.feed(data[cut:]) + s.finish() == want, cut
    s = DotStuffer()
    assert b"".join(s.feed(data[i : i + 1]) for i in range(len(data))) + s.finish() == want


@given(st.binary(max_size=200), st.lists(st.integers(min_value=0, max_value=200), max_size=6))
def test_stuffing_is_independent_of_chunking(data: bytes, cuts: list[int]) -> None:
    points = sorted({min(c, len(data)) for c in cuts})
    s = DotStuffer()
    out = b""
    prev = 0
    for p in [*points, len(data)]:
        out += s.feed(data[prev:p])
        prev = p
    assert out + s.finish() == stuff_message(data)


@pytest.mark.parametrize(
    "data", [m for m in MESSAGES if m.endswith(b"\r\n") and b"\n" not in m.replace(b"\r\n", b"")]
)
def test_list_size_and_retr_octets_agree(data: bytes) -> None:
    """RFC 1939 §11: the size is the CRLF message, dot-stuffing not counted twice.

    So the octets RETR sends before the terminating ".CRLF" are exactly the
    size plus one per line that starts with "." (the stuffed dots), for a
    message that ends with CRLF as the store keeps them.
    """
    size = message_size(data)
    assert size == len(data)  # stored with CRLF: the size is the stored length
    wire = stuff_message(data)
    body = wire[: -len(b".\r\n")]
    dot_lines = sum(1 for ln in data.split(b"\r\n") if ln.startswith(b"."))
    assert len(body) == size + dot_lines
    # and un-stuffing what was sent gives back exactly `size` octets
    unstuffed = b"".join(
        (ln[1:] if ln.startswith(b".") else ln) + b"\r\n" for ln in body.split(b"\r\n")[:-1]
    )
    assert unstuffed == data and len(unstuffed) == size


def test_size_counts_bare_lf_as_crlf() -> None:
    """RFC 1939 §11: a one-character line end counts as two octets."""
    data = b"Subject: bare\n\nLF only\n.dot\n"
    assert message_size(data) == len(data) + 4
    assert len(stuff_message(data)) == message_size(data) + 1 + 3


def test_message_without_final_crlf_gets_one_before_terminator() -> None:
    assert stuff_message(b"a\r\nlast") == b"a\r\nlast\r\n.\r\n"


# ---- TOP ----------------------------------------------------------------------------

TOP_MSG = b"From: a\r\nSubject: t\r\n\r\nl1\r\n.l2\r\nl3\r\nl4\r\n"


def top(data: bytes, n: int, cuts: tuple[int, ...] = ()) -> bytes:
    limiter = TopLimiter(n)
    stuffer = DotStuffer()
    out = b""
    prev = 0
    for p in [*cuts, len(data)]:
        if limiter.done:
            break
        out += stuffer.feed(limiter.feed(data[prev:p]))
        prev = p
    return out + stuffer.finish()


@pytest.mark.parametrize(
    ("n", "want"),
    [
        (0, b"From: a\r\nSubject: t\r\n\r\n.\r\n"),
        (1, b"From: a\r\nSubject: t\r\n\r\nl1\r\n.\r\n"),
        (3, b"From: a\r\nSubject: t\r\n\r\nl1\r\n..l2\r\nl3\r\n.\r\n"),
        (4, stuff_message(TOP_MSG)),
        (100, stuff_message(TOP_MSG)),
    ],
)
def test_top_lines(n: int, want: bytes) -> None:
    """RFC 1939 §7 TOP: the header, the blank line, then n body lines."""
    assert top(TOP_MSG, n) == want
    for cut in range(len(TOP_MSG) + 1):
        assert top(TOP_MSG, n, (cut,)) == want, cut
    assert top(TOP_MSG, n, tuple(range(1, len(TOP_MSG)))) == want


def test_top_stops_early() -> None:
    limiter = TopLimiter(1)
    assert limiter.feed(b"A: b\r\n\r\nl1\r\nl2\r\n") == b"A: b\r\n\r\nl1\r\n"
    assert limiter.done
    assert limiter.feed(b"more") == b""


@pytest.mark.parametrize(
    ("data", "n", "want"),
    [
        # no blank line: all header, sent whole
        (b"A: b\r\nC: d\r\n", 0, b"A: b\r\nC: d\r\n.\r\n"),
        # LF-only line ends
        (b"A: b\n\nx\ny\n", 1, b"A: b\r\n\r\nx\r\n.\r\n"),
        # a line of a single space is not the blank line
        (b"A: b\r\n \r\nB: c\r\n\r\nbody\r\n", 0, b"A: b\r\n \r\nB: c\r\n\r\n.\r\n"),
        # an empty message
        (b"", 0, b".\r\n"),
        # header block starts with the blank line
        (b"\r\nbody1\r\nbody2\r\n", 1, b"\r\nbody1\r\n.\r\n"),
    ],
)
def test_top_edge_cases(data: bytes, n: int, want: bytes) -> None:
    for cut in range(len(data) + 1):
        assert top(data, n, (cut,)) == want, cut
