"""RETR and TOP fast paths: a message that fits in READ_CHUNK is cut and
byte-stuffed whole (`stuff_whole`, `top_part`), and the answers to a pipelined
run of commands are written together (FLUSH_AT). Checked over a real socket,
byte for byte, against an independent RFC 1939 reference written here, and
the codec shortcuts against the same reference on generated inputs.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from pop3_helpers import POP3Conn, POP3Env, pop3_server

from mailbag.proto.pop3 import DotStuffer, TopLimiter, stuff_whole, top_part
from mailbag.session.pop3.session import FLUSH_AT, READ_CHUNK
from mailbag.store.models import SEEN

# ---- the reference ------------------------------------------------------------


def ref_stuff(data: bytes) -> bytes:
    """RFC 1939 §3 octets after the +OK line: lines end in CRLF (a bare LF, or a
    lone CR at the very end, is a line end), a line starting with "." gets one
    more, a missing last line end is added, then "." CRLF."""
    text = re.sub(rb"(?<!\r)\n", b"\r\n", data)
    if text.endswith(b"\r"):
        text += b"\n"
    lines = text.split(b"\r\n")
    out = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out + b".\r\n"


def ref_top(data: bytes, n: int) -> bytes:
    """RFC 1939 §7: the header, the empty line that ends it, then n body lines.
    An empty line is one with nothing (or a lone CR) before its LF; a message
    without one is all header."""
    lines = re.findall(rb"[^\n]*\n|[^\n]+$", data)
    for i, line in enumerate(lines):
        if line in (b"\n", b"\r\n"):
            return b"".join(lines[: i + 1 + n])
    return data


def wire_retr(data: bytes) -> bytes:
    return b"+OK %d octets\r\n" % len(data) + ref_stuff(data)


def wire_top(data: bytes, n: int) -> bytes:
    return b"+OK\r\n" + ref_stuff(ref_top(data, n))


# ---- messages of every shape the fast path must get right -------------------------

PLAIN = b"From: a@example.net\r\nSubject: plain\r\n\r\nHello.\r\nSecond line.\r\n"
DOTS = (
    b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nmid.dle\r\n"
    b"x\r\n.\r\n.last line without end"
)
SHAPES: list[bytes] = [
    PLAIN,
    DOTS,
    b".Dot-Header: starts the message\r\n\r\nbody\r\n",
    b"Subject: bare LF\n\nline one\nline two\r\n.dot after bare LF\n",
    b"Subject: lone CR at the end\r\n\r\nbody\r",
    b"Subject: lone CR inside\r\n\r\na\rb\r\n.c\r\n",
    b"Subject: header only\r\nX: y\r\n",
    b"Subject: empty body\r\n\r\n",
    b"\r\nbody of a message with an empty header\r\n.x\r\n",
    b"Subject: no final line end\r\n\r\nlast",
    b"Subject: blank CR line\r\n\r\r\nnot the end of the header\r\n\r\nbody\r\n",
]


def sized(total: int, dot_at: int | None = None) -> bytes:
    """A CRLF message of exactly `total` octets; a "." line starts at `dot_at`."""
    head = b"Subject: sized\r\n\r\n"
    line = b"z" * 62 + b"\r\n"
    body = bytearray(head)
    while len(body) < total:
        body += line
    del body[total - 2 :]
    body += b"\r\n"
    if dot_at is not None:
        start = body.rfind(b"\r\n", 0, dot_at) + 2
        body[start] = ord(".")
    assert len(body) == total
    return bytes(body)


def read_exactly(c: POP3Conn, n: int) -> bytes:
    """The next n octets from the socket (never more, so `c` stays usable)."""
    assert not c.pending
    data = bytearray()
    while len(data) < n:
        chunk = c.sock.recv(min(1 << 20, n - len(data)))
        if not chunk:
            raise EOFError(f"closed after {len(data)} of {n} octets")
        data += chunk
    return bytes(data)


# ---- over a real socket ---------------------------------------------------------


def assert_pipelined(env: POP3Env, commands: list[bytes], want: bytes) -> None:
    """Log in, send `commands` in one go, and get exactly `want` back; the
    session still answers afterwards."""
    with env.connect() as c:
        c.login()
        c.send(b"".join(x + b"\r\n" for x in commands))
        assert read_exactly(c, len(want)) == want
        assert c.cmd("NOOP") == "+OK"


def test_pipelined_retr_and_top_of_every_shape(tmp_path: Path) -> None:
    """One packet of RETR and TOP n (n = 0, 1, 2, 50) for every shape: the
    answer stream equals the reference octet for octet, in command order."""
    with pop3_server(tmp_path) as env:
        env.add(*SHAPES)
        commands = []
        expected = []
        for number, data in enumerate(SHAPES, start=1):
            commands.append(b"RETR %d" % number)
            expected.append(wire_retr(data))
            for n in (0, 1, 2, 50):
                commands.append(b"TOP %d %d" % (number, n))
                expected.append(wire_top(data, n))
        assert_pipelined(env, commands, b"".join(expected))


def test_sizes_around_read_chunk(tmp_path: Path) -> None:
    """READ_CHUNK octets are still sent whole; one more is streamed. Both give
    the same octets, with "." lines at and right after the chunk boundary, and
    TOP counts body lines across it."""
    messages = [
        sized(READ_CHUNK, dot_at=READ_CHUNK - 40),
        sized(READ_CHUNK + 1, dot_at=READ_CHUNK),
        sized(READ_CHUNK + 70, dot_at=READ_CHUNK + 2),
        sized(READ_CHUNK - 1),
    ]
    with pop3_server(tmp_path) as env:
        env.add(*messages)
        with env.connect() as c:
            c.login()
            for number, data in enumerate(messages, start=1):
                lines_in_body = data.count(b"\n") - 2
                c.send(b"RETR %d\r\n" % number)
                assert read_exactly(c, len(wire_retr(data))) == wire_retr(data)
                for n in (0, 3, lines_in_body - 1, lines_in_body + 5):
                    c.send(b"TOP %d %d\r\n" % (number, n))
                    want = wire_top(data, n)
                    assert read_exactly(c, len(want)) == want, (number, n)


def test_many_pipelined_answers_span_several_writes(tmp_path: Path) -> None:
    """Answers larger than FLUSH_AT in total arrive complete and in order."""
    messages = [PLAIN.replace(b"Hello.", b"Hello %d.\r\n.dot %d" % (i, i)) for i in range(60)]
    messages += [sized(9000 + 37 * i, dot_at=4000 + i) for i in range(60)]
    with pop3_server(tmp_path) as env:
        env.add(*messages)
        want = b"".join(wire_retr(m) for m in messages) + b"+OK\r\n" * 3
        assert len(want) > 3 * FLUSH_AT
        with env.connect() as c:
            c.login()
            retrs = b"".join(b"RETR %d\r\n" % i for i in range(1, len(messages) + 1))
            c.send(retrs + b"NOOP\r\n" * 3)
            assert read_exactly(c, len(want)) == want


def test_read_ahead_of_a_pipelined_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipelined run reads small messages ahead in bulk (READ_AHEAD octets
    per store call): with a small READ_AHEAD, runs of RETR and TOP over many
    read-aheads, a streamed message in between, DELE'd messages skipped and
    a RETR of one answered -ERR, all give the reference octets in order."""
    from mailbag.session.pop3 import session

    monkeypatch.setattr(session, "READ_AHEAD", 20_000)
    messages = [sized(3000 + 101 * i, dot_at=1000 + i) for i in range(30)]
    messages[7] = sized(READ_CHUNK + 500, dot_at=READ_CHUNK + 10)
    messages[12] = messages[11]  # one content twice
    with pop3_server(tmp_path) as env:
        env.add(*messages)
        commands = [b"DELE 5"]
        want = [b"+OK Message 5 deleted.\r\n"]
        for number, data in enumerate(messages, start=1):
            if number == 5:
                commands.append(b"RETR 5")
                want.append(b"-ERR Message 5 already deleted\r\n")
                continue
            commands += [b"RETR %d" % number, b"TOP %d 1" % number]
            want += [wire_retr(data), wire_top(data, 1)]
        assert_pipelined(env, commands, b"".join(want))


def test_errors_inside_a_pipelined_run_answer_in_place(tmp_path: Path) -> None:
    """A failing command in a pipelined run is answered -ERR at its place; the
    commands around it are answered normally (RFC 2449 §6.6)."""
    with pop3_server(tmp_path) as env:
        env.add(PLAIN, DOTS)
        with env.connect() as c:
            c.login()
            c.send(
                b"RETR 1\r\nRETR 9\r\nFROB\r\nTOP 2 x\r\nDELE 2\r\nRETR 2\r\n"
                b"TOP 1 0\r\nLIST 2\r\nRSET\r\nTOP 2 1\r\n"
            )
            want = (
                wire_retr(PLAIN)
                + b"-ERR There's no message 9\r\n"
                + b"-ERR Unknown command: FROB\r\n"
                + b"-ERR Invalid number of lines: x\r\n"
                + b"+OK Message 2 deleted.\r\n"
                + b"-ERR Message 2 already deleted\r\n"
                + wire_top(PLAIN, 0)
                + b"-ERR Message 2 already deleted\r\n"
                + b"+OK maildrop has 2 messages (%d octets)\r\n" % (len(PLAIN) + len(DOTS))
                + wire_top(DOTS, 1)
            )
            assert read_exactly(c, len(want)) == want


def test_quit_inside_a_pipelined_run_ends_it(tmp_path: Path) -> None:
    """Commands after QUIT are not run: the answers end with QUIT's +OK, the
    connection closes, and UPDATE sets \\Seen on what RETR sent."""
    with pop3_server(tmp_path) as env:
        env.add(PLAIN, DOTS)
        with env.connect() as c:
            c.login()
            c.send(b"RETR 1\r\nQUIT\r\nRETR 2\r\nDELE 2\r\n")
            want = wire_retr(PLAIN) + b"+OK Logging out, 2 messages left.\r\n"
            assert read_exactly(c, len(want)) == want
            c.assert_closed()
        flags = [m.flags for m in env.messages()]
        assert SEEN in flags[0]
        assert SEEN not in flags[1]


def test_sasl_challenge_reaches_a_client_that_waits_for_it(tmp_path: Path) -> None:
    """An answer the client must see before it can go on (the AUTH challenge)
    is written when the received commands are done, not held for more."""
    with pop3_server(tmp_path) as env, env.connect() as c:
        assert c.cmd("AUTH LOGIN") == "+ VXNlcm5hbWU6"
        assert c.cmd("YWxpY2U=") == "+ UGFzc3dvcmQ6"
        assert c.cmd("c2VjcmV0IHB3").startswith("+OK Logged in")


# ---- the codec shortcuts against the reference ------------------------------------

ALPHABET = [b"\r", b"\n", b".", b"a", b"\r\n", b"\r\n.", b"\r\n\r\n", b"\n\n", b"\n.", b".."]


def generated(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = [b""]
    for _ in range(count):
        out.append(b"".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 14))))
    return out


@pytest.mark.parametrize("data", [*SHAPES, sized(5000, dot_at=2000)], ids=lambda d: repr(d[:24]))
def test_stuff_whole_and_top_part_on_the_shapes(data: bytes) -> None:
    body, tail = stuff_whole(data)
    assert body + tail == ref_stuff(data)
    for n in (0, 1, 2, 50):
        assert top_part(data, n) == ref_top(data, n)


def test_codec_shortcuts_equal_the_reference_on_generated_input() -> None:
    rng = random.Random(4)
    for data in generated(20000, seed=1939):
        body, tail = stuff_whole(data)
        want = ref_stuff(data)
        assert body + tail == want, data
        # The streaming path, cut anywhere, gives the same octets.
        cut1 = rng.randint(0, len(data))
        cut2 = rng.randint(cut1, len(data))
        stuffer = DotStuffer()
        got = stuffer.feed(data[:cut1]) + stuffer.feed(data[cut1:cut2]) + stuffer.feed(data[cut2:])
        assert got + stuffer.finish() == want, (data, cut1, cut2)
        for n in (0, 1, 3):
            assert top_part(data, n) == ref_top(data, n), (data, n)
            assert TopLimiter(n).feed(data) == ref_top(data, n), (data, n)


def test_stuff_whole_does_not_copy_a_message_that_needs_nothing() -> None:
    """The common case goes out as read: the same object, no copy."""
    body, tail = stuff_whole(PLAIN)
    assert body is PLAIN
    assert tail == b".\r\n"
