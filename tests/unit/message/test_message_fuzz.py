"""compute_facts never raises, stays bounded, and its facts agree with the bytes."""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbag.message import (
    UnknownCTE,
    binary_section,
    body_from_bodystructure,
    body_text,
    compute_facts,
    message_text,
    resolve_section,
    rev1,
)
from mailbag.message.facts import _compute
from mailbag.message.mime import MAX_DEPTH, MAX_PARTS
from mailbag.message.sections import LEAF, MESSAGE, MULTIPART, iter_nodes
from mailbag.store.models import MessageFacts

CORPUS = pathlib.Path(__file__).resolve().parents[2] / "corpus"
CORPUS_DATA = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]


def _plain(value: Any) -> None:
    """Only the types the IMAP serialiser knows: list, str, int, None."""
    if isinstance(value, list):
        for v in value:
            _plain(v)
    else:
        assert value is None or isinstance(value, str | int), value


def _check_tree(node: list[Any], lo: int, hi: int, depth: int) -> None:
    start, body, end, kind, ctype, _enc, _cs, bsize, children = node
    assert lo <= start <= body <= end <= hi, node[:4]
    assert depth < MAX_DEPTH
    assert "/" in ctype
    prev = body
    for child in children:
        assert child[0] >= prev
        _check_tree(child, body, end, depth + 1)
        prev = child[2]
    if kind == LEAF:
        assert children == []
    elif kind == MESSAGE:
        assert len(children) == 1
    else:
        assert kind == MULTIPART
        assert bsize == end - body


def _check_bodystructure(bs: list[Any], node: list[Any], data: bytes) -> None:
    _start, body, end, kind, _ctype, _enc, _cs, _bsize, children = node
    if isinstance(bs[0], list):
        assert kind == MULTIPART
        n = 0
        while isinstance(bs[n], list):
            n += 1
        if children:
            assert n == len(children)
            for sub, child in zip(bs[:n], children, strict=True):
                _check_bodystructure(sub, child, data)
        else:
            assert n == 1 and bs[0][6] == 0  # the stand-in empty text/plain
        assert len(bs) == n + 5
        return
    assert kind != MULTIPART
    assert bs[6] == end - body  # size: octets of the body as stored
    if bs[0].lower() == "text":
        assert bs[7] == data.count(b"\n", body, end)  # lines
        assert len(bs) == 12
    elif kind == MESSAGE:
        assert len(bs[7]) == 10  # envelope
        assert bs[9] == data.count(b"\n", body, end)
        _check_bodystructure(bs[8], children[0], data)
        assert len(bs) == 14
    else:
        assert len(bs) == 11


def _paths(node: list[Any], prefix: list[int]) -> list[list[int]]:
    """Every numeric section path the tree has (bounded for big trees)."""
    out: list[list[int]] = []
    if node[KIND_INDEX] == MULTIPART:
        parts = node[8] or []
    elif node[KIND_INDEX] == MESSAGE:
        inner = node[8][0]
        parts = inner[8] if inner[KIND_INDEX] == MULTIPART else [inner]
    else:
        return out
    for i, child in enumerate(parts[:20], 1):
        out.append([*prefix, i])
        if len(out) < 200:
            out.extend(_paths(child, [*prefix, i]))
    return out


KIND_INDEX = 3


def check(data: bytes) -> MessageFacts:
    # the real parser, not the fallback compute_facts would use if it raised
    facts = _compute(data)
    assert compute_facts(data) == facts
    tree = facts.parts
    assert tree[0] == 0 and tree[2] == len(data)
    _check_tree(tree, 0, len(data), 0)
    assert facts.header_size == tree[1]
    assert facts.body_lines == data.count(b"\n", facts.header_size)
    assert len(facts.envelope) == 10
    _check_bodystructure(facts.bodystructure, tree, data)
    for value in (facts.envelope, facts.bodystructure, facts.parts):
        _plain(value)
        assert json.loads(json.dumps(value)) == value
    _plain(body_from_bodystructure(facts.bodystructure))
    _plain(rev1(facts.bodystructure))
    top = [[1]] if tree[KIND_INDEX] != MULTIPART else []
    for path in top + _paths(tree, []):
        for kind in ("", "MIME", "HEADER", "TEXT"):
            rng = resolve_section(facts, path, kind)
            if rng is not None:
                assert rng[0] >= 0 and rng[1] >= 0 and rng[0] + rng[1] <= len(data)
        try:
            binary_section(data, facts, path)
        except UnknownCTE:
            pass
    assert isinstance(body_text(data, facts), str)
    assert isinstance(message_text(data, facts, limit=10_000), str)
    return facts


FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@given(st.binary(max_size=3000))
@FUZZ
def test_random_bytes(data: bytes) -> None:
    check(data)


# A generator of MIME-shaped messages: small alphabets so that boundaries
# collide and prefix each other, random line ends, truncation.
_boundary = st.sampled_from(["b", "bb", "b-1", "=_x", "outer", "out", ""])
_ctype = st.sampled_from(
    [
        "text/plain",
        "text/html; charset=utf-8",
        "application/octet-stream",
        "message/rfc822",
        "message/global",
        "multipart/digest",
        "TEXT",
        ";;",
        "",
    ]
)
_cte = st.sampled_from(["", "base64", "quoted-printable", "7bit", "x-unknown", "base64; x"])
_body = st.sampled_from(["", "text\r\n", "aGVsbG8=\r\n", "=3D=\r\nx", "--b\r\n", "--\r\n", "\r\n"])


@st.composite
def _entity(draw: st.DrawFn, depth: int = 0) -> str:
    headers = []
    if draw(st.booleans()):
        headers.append("MIME-Version: 1.0")
    kind = draw(st.sampled_from(["leaf", "multi", "message"]) if depth < 4 else st.just("leaf"))
    if kind == "multi":
        b = draw(_boundary)
        sub = draw(st.sampled_from(["mixed", "alternative", "digest"]))
        headers.append(f'Content-Type: multipart/{sub}; boundary="{b}"')
        parts = draw(st.lists(_entity(depth + 1), max_size=3))
        body = draw(st.sampled_from(["", "preamble\r\n"]))
        for p in parts:
            body += f"--{b}\r\n{p}\r\n"
        if draw(st.booleans()):
            body += f"--{b}--\r\n"
        body += draw(st.sampled_from(["", "epilogue\r\n"]))
    elif kind == "message":
        headers.append("Content-Type: message/rfc822")
        body = draw(_entity(depth + 1))
    else:
        ct = draw(_ctype)
        if ct:
            headers.append(f"Content-Type: {ct}")
        cte = draw(_cte)
        if cte:
            headers.append(f"Content-Transfer-Encoding: {cte}")
        body = draw(_body)
    if draw(st.booleans()):
        headers.append("Subject: =?utf-8?q?x?= \t folded\r\n\tline")
    sep = draw(st.sampled_from(["\r\n", "\r\n", ""]))
    return "\r\n".join(headers) + "\r\n" + sep + body


@given(_entity(), st.booleans(), st.integers(min_value=0, max_value=10_000))
@FUZZ
def test_mime_shaped_messages(text: str, bare_lf: bool, cut: int) -> None:
    data = text.encode()
    if bare_lf:
        data = data.replace(b"\r\n", b"\n")
    check(data)
    check(data[: cut % (len(data) + 1)])


@given(st.sampled_from(CORPUS_DATA), st.integers(min_value=0), st.binary(max_size=20))
@FUZZ
def test_corpus_mutations(data: bytes, where: int, junk: bytes) -> None:
    i = where % (len(data) + 1)
    check(data[:i])  # truncated
    check(data[:i] + junk + data[i:])  # something inserted
    check(data[:i] + data[i + len(junk) :])  # something removed


def test_corpus_passes_the_checks() -> None:
    for data in CORPUS_DATA:
        check(data)


def _timed(data: bytes) -> tuple[MessageFacts, float]:
    t0 = time.perf_counter()
    facts = check(data)
    return facts, time.perf_counter() - t0


def _depth(node: list[Any]) -> int:
    depth = 0
    stack = [(node, 0)]
    while stack:
        n, d = stack.pop()
        depth = max(depth, d)
        stack.extend((c, d + 1) for c in n[8])
    return depth


def test_deep_multipart_nesting_is_capped() -> None:
    n = 1000
    parts = ["Content-Type: multipart/mixed; boundary=b0000x\r\n\r\n"]
    for i in range(1, n):
        parts.append(
            f"--b{i - 1:04d}x\r\nContent-Type: multipart/mixed; boundary=b{i:04d}x\r\n\r\n"
        )
    data = "".join(parts).encode() + b"--b0999x\r\n\r\nleaf\r\n"
    facts, seconds = _timed(data)
    assert _depth(facts.parts) == MAX_DEPTH - 1
    assert seconds < 5


def test_deep_rfc822_nesting_is_capped() -> None:
    data = b"Subject: x\r\nContent-Type: message/rfc822\r\n\r\n" * 5000 + b"\r\nbody"
    facts, seconds = _timed(data)
    assert _depth(facts.parts) == MAX_DEPTH - 1
    # the deepest encapsulated message is an opaque part (as in Dovecot)
    bs = facts.bodystructure
    for _ in range(MAX_DEPTH - 1):
        bs = bs[8]
    assert bs[:2] == ["application", "octet-stream"]
    assert seconds < 5


def test_part_count_is_capped() -> None:
    data = b"Content-Type: multipart/mixed; boundary=p\r\n\r\n" + b"--p\r\n\r\nx\r\n" * 30_000
    facts, seconds = _timed(data)
    assert len(iter_nodes(facts)) <= MAX_PARTS
    assert seconds < 10


def test_many_boundary_like_lines() -> None:
    junk = b"--realboundar\r\n--\r\n-- \r\n" * 50_000
    data = (
        b"Content-Type: multipart/mixed; boundary=realboundary\r\n\r\n--realboundary\r\n\r\n"
        + junk
        + b"--realboundary--\r\n"
    )
    facts, seconds = _timed(data)
    # none of the lines is the boundary; the CRLF before the real one is not body
    assert facts.bodystructure[0][6] == len(junk) - 2
    assert seconds < 5


@given(_entity(), st.booleans())
@FUZZ
def test_regex_boundary_search_agrees_with_the_plain_loop(text: str, bare_lf: bool) -> None:
    """The C-level regex paths (used for deep stacks and many near-miss lines)
    split exactly like the plain loops they stand in for."""
    import mailbag.message.mime as mime

    data = text.encode()
    if bare_lf:
        data = data.replace(b"\r\n", b"\n")
    plain = _compute(data)
    shallow, misses = mime._SHALLOW, mime._MISSES_BEFORE_REGEX
    mime._SHALLOW, mime._MISSES_BEFORE_REGEX = 0, 0
    try:
        regex = _compute(data)
    finally:
        mime._SHALLOW, mime._MISSES_BEFORE_REGEX = shallow, misses
    assert regex == plain


def test_regex_boundary_search_on_the_corpus() -> None:
    import mailbag.message.mime as mime

    for data in CORPUS_DATA:
        plain = _compute(data)
        shallow, misses = mime._SHALLOW, mime._MISSES_BEFORE_REGEX
        mime._SHALLOW, mime._MISSES_BEFORE_REGEX = 0, 0
        try:
            assert _compute(data) == plain
        finally:
            mime._SHALLOW, mime._MISSES_BEFORE_REGEX = shallow, misses
