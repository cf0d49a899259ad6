"""The IMAP receiver: framing, literals, raw lines, limits (DESIGN.md §1, §2.5)."""

from __future__ import annotations

import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbag.config import Config
from mailbag.proto.imap.commands import (
    AppendCommand,
    AuthenticateCommand,
    IdleCommand,
    LoginCommand,
    NoopCommand,
    SearchCommand,
    SelectCommand,
    StartTLSCommand,
)
from mailbag.proto.imap.receiver import (
    CommandError,
    ContinuationRequest,
    Event,
    IMAPReceiver,
    Limits,
    RawLine,
)


def feed_bytewise(data: bytes, receiver: IMAPReceiver | None = None) -> list[tuple[int, Event]]:
    """Feed one byte at a time; return (index of the byte that completed it, event)."""
    r = receiver or IMAPReceiver()
    out: list[tuple[int, Event]] = []
    for i in range(len(data)):
        for ev in r.feed(data[i : i + 1]):
            out.append((i, ev))
    return out


FRAGMENTS = [
    b"\r\n",
    b"a1 ",
    b"APPEND INBOX ",
    b"{5}\r\n",
    b"{3+}\r\n",
    b"~{2}\r\n",
    b"{999999+}\r\n",
    b"(",
    b")",
    b'"',
    b"\\",
    b"FETCH 1:* (BODY[HEADER.FIELDS (",
    b"SEARCH OR NOT ",
    b"LOGIN ",
    b"SELECT &AOQ-",
    b"\x00",
    b"\xff",
]


# -- literals -------------------------------------------------------------------


def test_sync_literal_continuation_comes_once_right_after_the_announcement() -> None:
    # RFC 9051 §4.3: the client waits for "+" after {n}CRLF, so the event must
    # come when the LF of that line arrives, and before any literal byte.
    data = b"a1 LOGIN {5}\r\nalice {3}\r\npwd\r\n"
    events = feed_bytewise(data)
    conts = [(i, ev) for i, ev in events if isinstance(ev, ContinuationRequest)]
    assert conts == [
        (data.index(b"{5}\r\n") + 4, ContinuationRequest("a1", "LOGIN", 5)),
        (data.index(b"{3}\r\n") + 4, ContinuationRequest("a1", "LOGIN", 3)),
    ]
    assert events[-1] == (len(data) - 1, LoginCommand("a1", "alice", "pwd"))


def test_nonsync_literal_asks_for_nothing() -> None:
    data = b"a1 LOGIN {5+}\r\nalice {3+}\r\npwd\r\n"
    assert [ev for _, ev in feed_bytewise(data)] == [LoginCommand("a1", "alice", "pwd")]


def test_literal8_in_append_is_binary_and_asks_for_continuation() -> None:
    r = IMAPReceiver()
    assert r.feed(b"a APPEND INBOX ~{3}\r\n") == [
        ContinuationRequest("a", "APPEND", 3, binary=True)
    ]
    (cmd,) = r.feed(b"\x00\xff\x00\r\n")
    assert isinstance(cmd, AppendCommand)
    assert cmd.messages[0].data == b"\x00\xff\x00"
    assert cmd.messages[0].binary


def test_nul_in_a_plain_literal_is_refused() -> None:
    # RFC 9051 §9: literal = … *CHAR8, and CHAR8 excludes NUL.
    (err,) = IMAPReceiver().feed(b"a LOGIN {3+}\r\na\x00b pw\r\n")
    assert isinstance(err, CommandError) and err.tag == "a" and "NUL" in err.text


def test_literal_data_arrives_as_bytes_not_ints() -> None:
    r = IMAPReceiver()
    r.feed(b"a APPEND INBOX {4+}\r\nab")
    (cmd,) = r.feed(b"cd\r\n")
    assert isinstance(cmd, AppendCommand)
    assert type(cmd.messages[0].data) is bytes


def test_session_can_refuse_a_synchronising_literal() -> None:
    r = IMAPReceiver()
    r.receive_data(b"a APPEND INBOX {100}\r\nb NOOP\r\n")
    assert r.next_event() == ContinuationRequest("a", "APPEND", 100)
    r.reject_literal()  # e.g. APPEND before login: the session writes "a NO …"
    # The client never sends the literal; the next line is a new command.
    assert r.next_event() == NoopCommand("b")
    assert r.next_event() is None
    with pytest.raises(RuntimeError):
        r.reject_literal()


def test_literal_that_never_arrives_just_waits_without_reserving_memory() -> None:
    r = IMAPReceiver()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        assert r.feed(b"a APPEND INBOX {50000000}\r\n") == [
            ContinuationRequest("a", "APPEND", 50_000_000)
        ]
        assert r.feed(b"0123456789") == []
        for _ in range(1000):  # no busy loop: every call returns at once
            assert r.next_event() is None
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 100_000
    assert r.buffered == 0


def test_announced_4294967295_octets_is_refused_and_the_next_command_works() -> None:
    r = IMAPReceiver()
    # A synchronising APPEND literal over the message limit: NO [TOOBIG], and
    # the client, seeing no "+", sends no data (RFC 9051 §7.5).
    assert r.feed(b"a APPEND INBOX {4294967295}\r\n") == [
        CommandError("a", "Message larger than 52428800 octets", "NO", "TOOBIG", "APPEND")
    ]
    (err,) = r.feed(b"b LOGIN {4294967295}\r\n")
    assert isinstance(err, CommandError)
    assert (err.tag, err.status, err.code) == ("b", "BAD", "TOOBIG")
    (err,) = r.feed(b"c LOGIN {99999999999999999999999999}\r\n")
    assert isinstance(err, CommandError) and err.code == "TOOBIG"
    assert r.feed(b"d NOOP\r\n") == [NoopCommand("d")]


def test_too_large_nonsync_literal_is_swallowed_without_buffering() -> None:
    # RFC 7888 §4 option 1: answer BAD, then read and discard the literal.
    limits = Limits(max_append_literal=1000)
    r = IMAPReceiver(limits)
    (err,) = r.feed(b"a APPEND INBOX (\\Seen) {200000+}\r\n")
    assert isinstance(err, CommandError)
    # RFC 7888 §5: a refused non-synchronizing APPEND literal gets BAD [TOOBIG].
    assert (err.tag, err.status, err.code) == ("a", "BAD", "TOOBIG")
    chunk = b"x" * 10_000
    for _ in range(20):
        assert r.feed(chunk) == []
        assert r.buffered == 0
    # The rest of the refused command (here another LITERAL+ literal) goes too.
    assert r.feed(b" {3+}\r\nabc\r\nb NOOP\r\n") == [NoopCommand("b")]


def test_literal_minus_limits_nonsync_literals_to_4096() -> None:
    r = IMAPReceiver(Limits(max_nonsync_literal=4096))
    (err,) = r.feed(b"a APPEND INBOX {5000+}\r\n")
    assert isinstance(err, CommandError) and err.code == "TOOBIG" and err.status == "BAD"
    assert r.feed(b"y" * 5000 + b"\r\nb NOOP\r\n") == [NoopCommand("b")]
    # A synchronising literal of the same size is fine.
    assert r.feed(b"c APPEND INBOX {5000}\r\n") == [ContinuationRequest("c", "APPEND", 5000)]


def test_small_limit_for_literals_outside_append() -> None:
    r = IMAPReceiver(Limits(max_literal=100, max_append_literal=10_000))
    assert r.feed(b"a APPEND INBOX {5000}\r\n") == [ContinuationRequest("a", "APPEND", 5000)]
    r2 = IMAPReceiver(Limits(max_literal=100, max_append_literal=10_000))
    # The mailbox name of an APPEND is not message data.
    (err,) = r2.feed(b"a APPEND {5000}\r\n")
    assert isinstance(err, CommandError) and err.code == "TOOBIG"
    (err,) = r2.feed(b"b SEARCH TEXT {101}\r\n")
    assert isinstance(err, CommandError) and err.status == "BAD" and err.code == "TOOBIG"


def test_total_command_size_is_capped() -> None:
    r = IMAPReceiver(Limits(max_command=10_000, max_append_literal=6000))
    (cont,) = r.feed(b"a APPEND INBOX {6000}\r\n")
    assert isinstance(cont, ContinuationRequest)
    # The second message would take the command past 10 000 octets.
    events = r.feed(b"m" * 6000 + b" {6000}\r\n")
    assert len(events) == 1 and isinstance(events[0], CommandError)
    assert events[0].code == "TOOBIG"
    assert r.feed(b"b NOOP\r\n") == [NoopCommand("b")]


def test_bad_command_is_refused_before_its_literal_is_requested() -> None:
    r = IMAPReceiver()
    (err,) = r.feed(b"a FROB {5}\r\n")
    assert isinstance(err, CommandError) and err.text == "Unknown command FROB"
    (err,) = r.feed(b"b NOOP {5}\r\n")
    assert isinstance(err, CommandError) and err.tag == "b"
    (err,) = r.feed(b" LOGIN {5}\r\n")  # no tag
    assert isinstance(err, CommandError) and err.tag is None
    assert r.feed(b"d NOOP\r\n") == [NoopCommand("d")]


def test_many_literals_in_one_command_are_linear() -> None:
    # A MULTIAPPEND of 3000 messages: past the precheck budget the receiver
    # must not re-parse the growing command at every literal.
    parts = [b"a APPEND INBOX"]
    for _ in range(3000):
        parts.append(b" (\\Seen) {5+}\r\nhello")
    data = b"".join(parts) + b"\r\n"
    r = IMAPReceiver()
    start = time.perf_counter()
    (cmd,) = r.feed(data)
    elapsed = time.perf_counter() - start
    assert isinstance(cmd, AppendCommand) and len(cmd.messages) == 3000
    assert elapsed < 2.0


_APPEND_MAILBOXES = [b"INBOX", b'"Sent Items"', b"{5+}\r\nDraft", b"&AOQ-b", b"{4}\r\na&-b"]
_APPEND_HEADS = [
    b"",
    b"(\\Seen) ",
    b"() ",
    b'" 2-Feb-2021 01:02:03 -0000" ',
    b'(\\Flagged $x) "12-Jan-2020 10:11:12 +0100" ',
]
_APPEND_DATA = [b"{3+}\r\nabc", b"{3}\r\nx\r\n", b"~{2}\r\n\x00y", b"{0+}\r\n", b"UTF8 (~{1}\r\nz)"]
_APPEND_TAILS = [b"", b" junk", b" (\\Seen)", b' "bad date" {1+}\r\nq']


@settings(max_examples=300, deadline=None)
@given(
    mailbox=st.sampled_from(_APPEND_MAILBOXES),
    messages=st.lists(
        st.tuples(st.sampled_from(_APPEND_HEADS), st.sampled_from(_APPEND_DATA)),
        min_size=1,
        max_size=4,
    ),
    tail=st.sampled_from(_APPEND_TAILS),
    chunk=st.integers(1, 64),
)
def test_append_parsed_from_where_the_literal_check_stopped_equals_a_full_parse(
    mailbox: bytes, messages: list[tuple[bytes, bytes]], tail: bytes, chunk: int
) -> None:
    # The prefix check before each literal hands its place to the next parse
    # (grammar.AppendResume). With the check off, every command is parsed
    # from its first token once complete: both must give the same events.
    data = b"a APPEND " + mailbox + b"".join(b" " + h + d for h, d in messages) + tail + b"\r\n"
    data += b"b NOOP\r\n"

    def events(limits: Limits) -> list[Event]:
        r = IMAPReceiver(limits)
        out: list[Event] = []
        for i in range(0, len(data), chunk):
            out += [
                e for e in r.feed(data[i : i + chunk]) if not isinstance(e, ContinuationRequest)
            ]
        return out

    resumed = events(Limits())
    whole = events(Limits(precheck_tokens=0))
    assert resumed == whole
    assert resumed[-1] == NoopCommand("b")
    if not tail:
        (cmd,) = resumed[:-1]
        assert isinstance(cmd, AppendCommand) and len(cmd.messages) == len(messages)


# -- limits on structure -------------------------------------------------------------


def test_ten_thousand_nested_parentheses_give_bad_quickly() -> None:
    line = b"a SEARCH " + b"(" * 10_000 + b"ALL" + b")" * 10_000 + b"\r\n"
    r = IMAPReceiver()
    start = time.perf_counter()
    (err,) = r.feed(line + b"b NOOP\r\n")[:1]
    assert time.perf_counter() - start < 0.5
    assert isinstance(err, CommandError) and err.tag == "a" and "nested" in err.text
    assert r.feed(b"c NOOP\r\n") == [NoopCommand("c")]


@pytest.mark.parametrize("prefix", [b"NOT ", b"OR ALL "])
def test_deep_search_key_chains_give_bad_without_recursion_error(prefix: bytes) -> None:
    line = b"a SEARCH " + prefix * 5000 + b"ALL\r\n"  # within the 64 KiB line limit
    events = IMAPReceiver().feed(line)
    assert len(events) == 1 and isinstance(events[0], CommandError)
    assert "nested deeper" in events[0].text


def test_nesting_at_the_limit_is_fine() -> None:
    line = b"a SEARCH " + b"(" * 99 + b"ALL" + b")" * 99 + b"\r\n"
    (cmd,) = IMAPReceiver().feed(line)
    assert isinstance(cmd, SearchCommand)


def test_a_million_ranges_give_bad_quickly() -> None:
    seqset = b",".join(b"%d" % (2 * i + 1) for i in range(1_000_000))
    line = b"a FETCH " + seqset + b" FLAGS\r\n"
    # With the default line limit the line itself is refused …
    r = IMAPReceiver()
    start = time.perf_counter()
    events = r.feed(line + b"b NOOP\r\n")
    assert time.perf_counter() - start < 1.0
    assert isinstance(events[0], CommandError) and "Line longer" in events[0].text
    assert events[1:] == [NoopCommand("b")]
    # … and with a huge line limit the range limit still holds.
    r = IMAPReceiver(Limits(max_line=len(line) + 10, max_command=len(line) * 2))
    start = time.perf_counter()
    (err,) = r.feed(line)
    assert time.perf_counter() - start < 1.0
    assert isinstance(err, CommandError) and "100000 ranges" in err.text


@pytest.mark.parametrize("chunk", [1 << 20, 1000, 7])
def test_overlong_line_gives_bad_and_the_next_command_parses(chunk: int) -> None:
    r = IMAPReceiver(Limits(max_line=1000))
    data = b"a1 LOGIN " + b"x" * 5000 + b" pw\r\nb NOOP\r\n"
    events: list[Event] = []
    for i in range(0, len(data), chunk):
        events += r.feed(data[i : i + chunk])
        assert r.buffered <= 1100  # bounded while discarding
    assert events == [CommandError("a1", "Line longer than 1000 octets"), NoopCommand("b")]


@pytest.mark.parametrize("chunk", [1, 7, 33, 1 << 20])
def test_overlong_line_ending_in_a_nonsync_literal_skips_the_literal(chunk: int) -> None:
    r = IMAPReceiver(Limits(max_line=100))
    data = b"a1 APPEND " + b"x" * 500 + b" {10+}\r\n0123456789\r\nb NOOP\r\n"
    events: list[Event] = []
    for i in range(0, len(data), chunk):
        events += r.feed(data[i : i + chunk])
    assert len(events) == 2
    assert isinstance(events[0], CommandError) and events[0].tag == "a1"
    assert events[1] == NoopCommand("b")


def test_bad_lines_are_reported_and_parsing_continues() -> None:
    r = IMAPReceiver()
    events = r.feed(
        b'a "unterminated\r\n'
        b"b NOOP\x01\r\n"
        b"\r\n"  # blank lines between commands are ignored
        b"c SELECT INBOX)\r\n"
        b"d NOOP\r\n"
    )
    assert [type(e) for e in events] == [CommandError] * 3 + [NoopCommand]
    assert [e.tag for e in events[:3] if isinstance(e, CommandError)] == ["a", "b", "c"]


def test_many_pipelined_commands_in_one_chunk_are_linear() -> None:
    data = b"".join(b"a%d NOOP\r\n" % i for i in range(50_000))
    r = IMAPReceiver()
    start = time.perf_counter()
    events = r.feed(data)
    assert time.perf_counter() - start < 2.0
    assert len(events) == 50_000 and events[-1] == NoopCommand("a49999")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(FRAGMENTS)), max_size=30))
def test_arbitrary_input_never_raises(parts: list[bytes]) -> None:
    # DESIGN.md §2.6: bad input gives protocol errors, never an exception.
    r = IMAPReceiver(Limits(max_line=200, max_literal=300, max_append_literal=300))
    for part in parts:
        for ev in r.feed(part):
            assert isinstance(ev, (CommandError, ContinuationRequest, RawLine)) or hasattr(
                ev, "tag"
            )
        assert r.buffered <= 200 + 2 + 40 + 300


def test_bare_lf_ends_a_line() -> None:
    assert IMAPReceiver().feed(b"a NOOP\nb NOOP\r\n") == [NoopCommand("a"), NoopCommand("b")]


# -- session modes --------------------------------------------------------------------


def test_idle_done_pipelined_in_one_packet() -> None:
    # RFC 2177 / RFC 9051 §6.3.13: DONE is a raw line, not a command.
    r = IMAPReceiver()
    r.receive_data(b"a IDLE\r\nDONE\r\nb NOOP\r\n")
    assert r.next_event() == IdleCommand("a")
    r.expect_raw_line()
    assert r.next_event() == RawLine(b"DONE")
    assert r.next_event() == NoopCommand("b")
    assert r.next_event() is None


def test_authenticate_exchange_uses_raw_lines_byte_by_byte() -> None:
    r = IMAPReceiver()
    data = b"A001 AUTHENTICATE PLAIN\r\nAGFsaWNlAHB3\r\n*\r\n"
    events: list[Event] = []
    for i in range(len(data)):
        r.receive_data(data[i : i + 1])
        while (ev := r.next_event()) is not None:
            events.append(ev)
            if isinstance(ev, (AuthenticateCommand, RawLine)):
                r.expect_raw_line()
    assert events == [
        AuthenticateCommand("A001", "PLAIN"),
        RawLine(b"AGFsaWNlAHB3"),
        RawLine(b"*"),
    ]


def test_raw_line_mode_never_treats_braces_as_literals() -> None:
    r = IMAPReceiver()
    r.expect_raw_line()
    assert r.feed(b"abc {5}\r\n") == [RawLine(b"abc {5}")]
    assert r.feed(b"a NOOP\r\n") == [NoopCommand("a")]


def test_overlong_raw_line_is_an_error_without_tag() -> None:
    r = IMAPReceiver(Limits(max_line=100))
    r.expect_raw_line()
    events = r.feed(b"Q" * 300)
    assert events == [CommandError(None, "Line too long")]
    assert r.feed(b"QQQ {5+}\r\na NOOP\r\n") == [NoopCommand("a")]


def test_starttls_discards_pipelined_plaintext() -> None:
    # DEPENDENCIES.md: STARTTLS command injection; RFC 9051 §6.2.1.
    r = IMAPReceiver()
    r.receive_data(b"a STARTTLS\r\nb LOGIN evil pw\r\n")
    assert r.next_event() == StartTLSCommand("a")
    assert r.discard_buffered() == len(b"b LOGIN evil pw\r\n")
    assert r.next_event() is None


def test_utf8_mode_switch_between_pipelined_commands() -> None:
    r = IMAPReceiver()
    r.receive_data(b'a ENABLE UTF8=ACCEPT\r\nb SELECT "Entw\xc3\xbcrfe"\r\nc SELECT &AOQ-\r\n')
    r.next_event()
    r.utf8_names = True  # the session accepted ENABLE
    assert r.next_event() == SelectCommand("b", "Entwürfe")
    assert r.next_event() == SelectCommand("c", "&AOQ-")


def test_8bit_mailbox_name_without_utf8_is_bad() -> None:
    (err,) = IMAPReceiver().feed(b'b SELECT "Entw\xc3\xbcrfe"\r\n')
    assert isinstance(err, CommandError) and "modified UTF-7" in err.text


def test_mode_changes_only_between_commands() -> None:
    r = IMAPReceiver()
    r.feed(b"a LOGIN {3}\r\n")
    with pytest.raises(RuntimeError):
        r.expect_raw_line()


def test_limits_from_config() -> None:
    limits = Limits.from_config(Config(max_message_size=1234), max_nonsync_literal=4096)
    assert limits.max_append_literal == 1234
    assert limits.max_nonsync_literal == 4096
    r = IMAPReceiver(limits)
    (err,) = r.feed(b"a APPEND INBOX {1235}\r\n")
    assert isinstance(err, CommandError) and err.code == "TOOBIG"
