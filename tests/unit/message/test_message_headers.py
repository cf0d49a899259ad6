"""Header field parsing, RFC 2047 decoding, MIME parameters and addresses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbag.message import decode_value
from mailbag.message.headers import (
    for_humans,
    header_fields,
    nolf,
    parse_fields,
    split_header,
    to_unicode,
)
from mailbag.message.rfc822 import (
    Cursor,
    _simple_addresses,
    content_language,
    mime_params,
    parse_addresses,
    parse_addresses_full,
)


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        (b"plain text", "plain text"),
        (b"=?utf-8?q?Gr=C3=BC=C3=9Fe?=", "Grüße"),
        (b"=?UTF-8?B?SsO2cmc=?= M\xc3\xbcller", "Jörg Müller"),
        # RFC 2047 §6.2: white space between encoded-words is dropped ...
        (b"=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
        (b"=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab"),
        # ... but not between an encoded-word and text
        (b"x =?utf-8?q?a?= y", "x a y"),
        (b"=?iso-8859-1?q?caf=E9_cr=E8me?=", "café crème"),
        # a UTF-8 character split across two words
        (b"=?utf-8?b?w6k=?= =?utf-8?b?w6k=?=", "éé"),
        # "w6" gives one byte (0xC3), a lone "k" none
        (b"=?utf-8?b?w6?= =?utf-8?b?k=?=", "\ufffd"),
        (b"=?utf-8?q?=C3?==?utf-8?q?=A9?=", "é"),
        # RFC 2231 §5 language suffix
        (b"=?utf-8*en?q?hello?=", "hello"),
        # broken words decode as well as they can
        (b"=?utf-8?b?!!aGk=?=", "hi"),
        (b"=?no-such-charset?q?abc?=", "abc"),
        (b"=?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
        (b"=?utf-8?x?abc?=", "=?utf-8?x?abc?="),
        (b"=??q?abc?=", "abc"),
        (b"raw \xff byte", "raw \ufffd byte"),
        (b"=?utf-8?q?bad=ZZescape?=", "bad=ZZescape"),
    ],
)
def test_decode_value(raw: bytes, decoded: str) -> None:
    assert decode_value(raw) == decoded


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_decode_value_never_raises(raw: bytes) -> None:
    assert isinstance(decode_value(raw), str)


@given(
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40),
    st.sampled_from(["B", "Q"]),
    st.sampled_from(["utf-8", "latin-1"]),
)
@settings(max_examples=200, deadline=None)
def test_decode_value_round_trips_email_encoding(text: str, enc: str, charset: str) -> None:
    import email.charset
    import email.header

    try:
        text.encode(charset)
    except UnicodeEncodeError:
        return
    cs = email.charset.Charset(charset)
    cs.header_encoding = email.charset.BASE64 if enc == "B" else email.charset.QP
    encoded = email.header.Header(text, cs).encode()
    assert decode_value(encoded.encode()) == text


def test_header_fields_are_decoded_and_first_wins() -> None:
    fields = header_fields(
        b"Subject: =?utf-8?q?caf=C3=A9?=\r\nSubject: second\r\nFrom: a@b\r\nX-Other: 1\r\n"
    )
    assert fields == {"subject": "café", "from": "a@b"}


def test_parse_fields_follows_dovecot_value_rules() -> None:
    header = (
        b"Subject:   three spaces\r\n"
        b"X-Empty:   \r\n"
        b"X-Folded: a\r\n\tb\r\n"
        b"Name With Space : v\r\n"
        b"no colon line\r\n"
        b"X-Last: no newline"
    )
    assert parse_fields(header, 0, len(header)) == [
        (b"subject", b"three spaces"),
        (b"x-empty", b"  "),  # all white space: only one byte is skipped
        (b"x-folded", b"a\r\n\tb"),
        (b"name with space", b"v"),
        (b"no colon line", b""),
        (b"x-last", b"no newline"),
    ]


def test_split_header() -> None:
    assert split_header(b"A: 1\r\n\r\nbody") == (b"A: 1\r\n", 8)
    assert split_header(b"A: 1\n\nbody") == (b"A: 1\n", 6)
    assert split_header(b"\r\nbody") == (b"", 2)
    assert split_header(b"A: 1") == (b"A: 1", 4)


def test_nolf_and_for_humans() -> None:
    assert nolf(b"a\r\n b") == b"a b"
    assert nolf(b"a\r\n\tb") == b"a\tb"
    assert nolf(b"a\rb") == b"a b"  # a lone line break still separates words
    assert for_humans(b"  a \t b\r\n  c  ") == b"a b c"
    assert for_humans(b" \t ") == b""


def _params(value: bytes) -> list[tuple[bytes, bytes]]:
    cur = Cursor(value)
    return mime_params(cur)


@pytest.mark.parametrize(
    ("value", "params"),
    [
        (b'; a=1; B="two words"', [(b"a", b"1"), (b"B", b"two words")]),
        (b'; q="a\\"b"', [(b"q", b'a"b')]),
        (b"; a=1 (comment) ; b=2", [(b"a", b"1"), (b"b", b"2")]),
        # RFC 2231 §3: continuations are joined, in number order
        (b'; t*1="two"; t*0="one "', [(b"t", b"one two")]),
        # RFC 2231 §4: charset'language' kept, %-escapes kept (as Dovecot)
        (b"; f*=utf-8''%E2%82%AC", [(b"f*", b"utf-8''%E2%82%AC")]),
        (b"; f*0*=utf-8''%E2; f*1=a%b", [(b"f*", b"utf-8''%E2a%25b")]),
        # a gap in the numbers: the parts are left apart
        (b"; a*0=x; a*2=z", [(b"a*0", b"x"), (b"a*2", b"z")]),
        # broken input: skip what does not parse, keep the rest
        # (like Dovecot, resuming byte by byte finds no further ";" here)
        (b"; =novalue; noequals; ok=1", [(b"", b"novalue")]),
        (b"; noequals;; ok=1", [(b"ok", b"1")]),
        (b'; x="unterminated', []),
        (b"; name==?utf-8?b?w6k=?=", [(b"name", b"=?utf-8?b?w6k=?=")]),
        (b";", []),
        (b"", []),
    ],
)
def test_mime_params(value: bytes, params: list[tuple[bytes, bytes]]) -> None:
    assert _params(value) == params


def test_content_language() -> None:
    assert content_language(b"en-US, (comment) de ,fr") == [b"en-US", b"de", b"fr"]
    assert content_language(b"") == []


def _addr(value: bytes) -> list[tuple[bytes | None, ...]]:
    return [(a.name, a.route, a.mailbox, a.domain) for a in parse_addresses(value)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"a@b.c", [(None, None, b"a", b"b.c")]),
        (b"Name <a@b>", [(b"Name", None, b"a", b"b")]),
        (b'"Last, First" <a@b>', [(b"Last, First", None, b"a", b"b")]),
        (b"a@b (Comment Name)", [(b"Comment Name", None, b"a", b"b")]),
        (b"<@r1,@r2:a@b>", [(None, b"@r1,@r2", b"a", b"b")]),
        (b'"john doe"@example.com', [(None, None, b"john doe", b"example.com")]),
        (b"a@[192.0.2.1]", [(None, None, b"a", b"[192.0.2.1]")]),
        (b"g: a@b, c@d;", [
            (None, None, b"g", None),
            (None, None, b"a", b"b"),
            (None, None, b"c", b"d"),
            (None, None, None, None),
        ]),
        (b"", []),
        (b"  ", []),
        (b"foo", [(None, None, b"foo", b"MISSING_DOMAIN")]),
        (b"<>", [(None, None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")]),
        (b"Name <a@b", [(b"Name", None, b"a", b"SYNTAX_ERROR")]),
    ],
)  # fmt: skip
def test_addresses(value: bytes, expected: list[tuple[bytes | None, ...]]) -> None:
    assert _addr(value) == expected


_atom = st.text(alphabet="abcxyzABC019!#$%&'*+-/=?^_`{|}~é", min_size=1, max_size=6)
_dot_atom = st.lists(_atom, min_size=1, max_size=3).map(".".join)
_word = st.one_of(
    _atom,
    st.text(alphabet="ab ,.;:<>@()é", max_size=8).map(lambda s: f'"{s}"'),
)
_phrase = st.lists(_word, min_size=0, max_size=3).map(" ".join)
_address = st.one_of(
    st.builds(lambda lp, d: f"{lp}@{d}", _dot_atom, _dot_atom),
    st.builds(lambda p, lp, d: f"{p} <{lp}@{d}>", _phrase, _dot_atom, _dot_atom),
)
_list = st.lists(_address, min_size=1, max_size=4).map(", ".join)


@given(_list)
@settings(max_examples=400, deadline=None)
def test_address_fast_path_agrees_with_full_parser(value: str) -> None:
    raw = value.encode()
    fast = _simple_addresses(raw)
    full = parse_addresses_full(raw)

    def flat(addrs: list) -> list:  # type: ignore[type-arg]
        return [(a.name, a.route, a.mailbox, a.domain) for a in addrs]

    if fast is not None:
        assert flat(fast) == flat(full)


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_address_parser_never_raises(raw: bytes) -> None:
    for a in parse_addresses(raw):
        assert a.mailbox is not None or a.domain is None


def test_to_unicode() -> None:
    assert to_unicode("é".encode("latin-1"), "ISO-8859-1") == "é"
    assert to_unicode("é".encode(), None) == "é"
    assert to_unicode(b"\xff", "us-ascii") == "\ufffd"
    assert to_unicode("é".encode(), "no-such-charset") == "é"
    assert to_unicode("é".encode(), "../../etc") == "é"
