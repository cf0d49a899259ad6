"""BODY[section] byte ranges and BINARY decoding (RFC 9051 §6.4.5, RFC 3516)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbag.message import (
    UnknownCTE,
    binary_section,
    binary_size,
    compute_facts,
    decode_transfer,
    find_part,
    header_subset,
    resolve_section,
)
from mailbag.message.decode import decoded_size

# The complex message of RFC 9051 §6.4.5, every section a known text. The
# line break after a closing boundary stays in the enclosing body when the
# next line is the outer boundary (as Dovecot counts it).
H_TOP = b"From: a@example.org\r\nSubject: complex\r\nMIME-Version: 1.0\r\n"
H_TOP += b"Content-Type: MULTIPART/MIXED; boundary=top\r\n\r\n"
P1_MIME = b"Content-Type: TEXT/PLAIN\r\n\r\n"
P1 = b"part one\r\nline two"
P2_MIME = b"Content-Type: APPLICATION/OCTET-STREAM\r\nContent-Transfer-Encoding: base64\r\n\r\n"
P2 = base64.encodebytes(b"\x00\x01binary\xff").rstrip(b"\n").replace(b"\n", b"\r\n")
P3_MIME = b"Content-Type: MESSAGE/RFC822\r\n\r\n"
P3_HEADER = b"Subject: three\r\nContent-Type: MULTIPART/MIXED; boundary=three\r\n\r\n"
P3_1_MIME = b"Content-Type: TEXT/PLAIN\r\n\r\n"
P3_1 = b"three dot one"
P3_2_MIME = b"Content-Type: APPLICATION/OCTET-STREAM\r\n\r\n"
P3_2 = b"three dot two"
P3_TEXT = (
    b"--three\r\n" + P3_1_MIME + P3_1 + b"\r\n--three\r\n" + P3_2_MIME + P3_2 + b"\r\n--three--\r\n"
)
P4_MIME = b"Content-Type: MULTIPART/MIXED; boundary=four\r\n\r\n"
P4_1_MIME = b"Content-Type: IMAGE/GIF\r\nContent-Transfer-Encoding: base64\r\n\r\n"
P4_1 = b"R0lGODlh"
P4_2_MIME = b"Content-Type: MESSAGE/RFC822\r\n\r\n"
P4_2_HEADER = b"Subject: four two\r\nContent-Type: MULTIPART/MIXED; boundary=fourtwo\r\n\r\n"
P4_2_1_MIME = b"Content-Type: TEXT/PLAIN\r\n\r\n"
P4_2_1 = b"four two one"
P4_2_2_MIME = b"Content-Type: MULTIPART/ALTERNATIVE; boundary=alt\r\n\r\n"
P4_2_2_1_MIME = b"Content-Type: TEXT/PLAIN\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
P4_2_2_1 = b"caf=C3=A9 soft=\r\nbreak"
P4_2_2_2_MIME = b"Content-Type: TEXT/RICHTEXT\r\n\r\n"
P4_2_2_2 = b"<bold>rich</bold>"
P4_2_2 = (
    b"--alt\r\n"
    + P4_2_2_1_MIME
    + P4_2_2_1
    + b"\r\n--alt\r\n"
    + P4_2_2_2_MIME
    + P4_2_2_2
    + b"\r\n--alt--\r\n"
)
P4_2_TEXT = (
    b"--fourtwo\r\n"
    + P4_2_1_MIME
    + P4_2_1
    + b"\r\n--fourtwo\r\n"
    + P4_2_2_MIME
    + P4_2_2
    + b"--fourtwo--\r\n"
)
P4 = (
    b"--four\r\n"
    + P4_1_MIME
    + P4_1
    + b"\r\n--four\r\n"
    + P4_2_MIME
    + P4_2_HEADER
    + P4_2_TEXT
    + b"--four--\r\n"
)
TOP_TEXT = (
    b"--top\r\n"
    + P1_MIME
    + P1
    + b"\r\n--top\r\n"
    + P2_MIME
    + P2
    + b"\r\n--top\r\n"
    + P3_MIME
    + P3_HEADER
    + P3_TEXT
    + b"--top\r\n"
    + P4_MIME
    + P4
    + b"--top--\r\n"
)
COMPLEX = H_TOP + TOP_TEXT

EXPECTED = {
    ("", ""): COMPLEX,
    ("", "HEADER"): H_TOP,
    ("", "TEXT"): TOP_TEXT,
    ("1", ""): P1,
    ("1", "MIME"): P1_MIME,
    ("2", ""): P2,
    ("2", "MIME"): P2_MIME,
    ("3", ""): P3_HEADER + P3_TEXT,
    ("3", "MIME"): P3_MIME,
    ("3", "HEADER"): P3_HEADER,
    ("3", "TEXT"): P3_TEXT,
    ("3.1", ""): P3_1,
    ("3.1", "MIME"): P3_1_MIME,
    ("3.2", ""): P3_2,
    ("4", ""): P4,
    ("4", "MIME"): P4_MIME,
    ("4.1", ""): P4_1,
    ("4.1", "MIME"): P4_1_MIME,
    ("4.2", ""): P4_2_HEADER + P4_2_TEXT,
    ("4.2", "MIME"): P4_2_MIME,
    ("4.2", "HEADER"): P4_2_HEADER,
    ("4.2", "TEXT"): P4_2_TEXT,
    ("4.2.1", ""): P4_2_1,
    ("4.2.2", ""): P4_2_2,
    ("4.2.2", "MIME"): P4_2_2_MIME,
    ("4.2.2.1", ""): P4_2_2_1,
    ("4.2.2.1", "MIME"): P4_2_2_1_MIME,
    ("4.2.2.2", ""): P4_2_2_2,
    ("4.2.2.2", "MIME"): P4_2_2_2_MIME,
}


def _path(section: str) -> list[int]:
    return [int(x) for x in section.split(".")] if section else []


def _fetch(data: bytes, section: str, kind: str) -> bytes | None:
    rng = resolve_section(compute_facts(data), _path(section), kind)
    return None if rng is None else data[rng[0] : rng[0] + rng[1]]


@pytest.mark.parametrize(("section", "kind"), sorted(EXPECTED))
def test_rfc9051_example_sections(section: str, kind: str) -> None:
    # RFC 9051 §6.4.5: the part specifiers of the complex example message
    assert _fetch(COMPLEX, section, kind) == EXPECTED[section, kind]


@pytest.mark.parametrize(
    ("section", "kind"),
    [
        ("5", ""),  # no such part
        ("0", ""),
        ("1.1", ""),  # a text part has no subparts
        ("1", "HEADER"),  # HEADER/TEXT need a message/rfc822 part
        ("1", "TEXT"),
        ("4", "HEADER"),
        ("3.3", ""),
        ("", "MIME"),  # RFC 9051 §6.4.5: MIME must follow a part number
        ("1", "BOGUS"),
    ],
)
def test_sections_that_do_not_exist(section: str, kind: str) -> None:
    assert _fetch(COMPLEX, section, kind) is None


def test_header_fields_subset() -> None:
    rng = resolve_section(compute_facts(COMPLEX), [], "HEADER.FIELDS")
    assert rng is not None
    header = COMPLEX[rng[0] : rng[0] + rng[1]]
    assert header_subset(header, ["subject", "FROM"]) == (
        b"From: a@example.org\r\nSubject: complex\r\n\r\n"
    )
    assert header_subset(header, ["subject", "from"], exclude=True) == (
        b"MIME-Version: 1.0\r\nContent-Type: MULTIPART/MIXED; boundary=top\r\n\r\n"
    )
    # RFC 9051 §6.4.5: the blank line is always there, even with no match
    assert header_subset(header, ["x-none"]) == b"\r\n"
    # a folded field comes whole; a last line without CRLF gets one
    folded = b"Subject: a\r\n b\r\nX: 1"
    assert header_subset(folded, ["subject", "x"]) == b"Subject: a\r\n b\r\nX: 1\r\n\r\n"


def test_non_multipart_message_has_part_one() -> None:
    # RFC 9051 §6.4.5: "MIME messages that are not multipart ... only have a part 1"
    msg = b"Subject: s\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
    assert _fetch(msg, "1", "") == b"body\r\n"
    assert _fetch(msg, "1", "MIME") == b"Subject: s\r\nContent-Type: text/plain\r\n\r\n"
    assert _fetch(msg, "2", "") is None
    assert _fetch(msg, "", "TEXT") == b"body\r\n"


def test_message_rfc822_with_simple_inner_message() -> None:
    inner = b"Subject: inner\r\n\r\ninner body"
    msg = b"Content-Type: message/rfc822\r\n\r\n" + inner
    assert _fetch(msg, "1", "") == inner
    assert _fetch(msg, "1", "HEADER") == b"Subject: inner\r\n\r\n"
    assert _fetch(msg, "1.1", "") == b"inner body"  # part 1 of the inner message
    assert _fetch(msg, "1.1", "MIME") == b"Subject: inner\r\n\r\n"
    assert _fetch(msg, "1.2", "") is None


def test_multipart_without_parts_has_an_empty_part() -> None:
    msg = b"Content-Type: multipart/mixed\r\n\r\nno boundary here\r\n"
    facts = compute_facts(msg)
    assert resolve_section(facts, [1], "") == (len(msg), 0)
    assert resolve_section(facts, [1], "MIME") == (len(msg), 0)
    assert resolve_section(facts, [2], "") is None


def test_header_only_message() -> None:
    msg = b"From: a@b\r\nSubject: x"
    facts = compute_facts(msg)
    assert facts.header_size == len(msg)
    assert _fetch(msg, "", "HEADER") == msg
    assert _fetch(msg, "", "TEXT") == b""
    assert _fetch(msg, "1", "") == b""


# --- BINARY (RFC 3516) -------------------------------------------------------


def test_binary_base64_and_size() -> None:
    facts = compute_facts(COMPLEX)
    assert binary_section(COMPLEX, facts, [2]) == b"\x00\x01binary\xff"
    assert binary_size(facts, [2]) == 9


def test_binary_quoted_printable() -> None:
    facts = compute_facts(COMPLEX)
    assert binary_section(COMPLEX, facts, [4, 2, 2, 1]) == "café softbreak".encode()
    assert binary_size(facts, [4, 2, 2, 1]) == len("café softbreak".encode())


def test_binary_identity_and_non_leaf_parts() -> None:
    facts = compute_facts(COMPLEX)
    assert binary_section(COMPLEX, facts, [1]) == P1
    # Dovecot returns multipart and message parts as stored
    assert binary_section(COMPLEX, facts, [4]) == P4
    assert binary_section(COMPLEX, facts, [3]) == P3_HEADER + P3_TEXT
    assert binary_section(COMPLEX, facts, [9]) is None
    assert binary_size(facts, [9]) is None


def test_binary_unknown_encoding_is_distinguishable() -> None:
    msg = (
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=u\r\n\r\n"
        b"--u\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 f\r\n"
        b"--u\r\nContent-Transfer-Encoding: 8bit\r\n\r\nok\r\n--u--\r\n"
    )
    facts = compute_facts(msg)
    with pytest.raises(UnknownCTE) as err:
        binary_section(msg, facts, [1])
    assert err.value.encoding == "x-uuencode"
    with pytest.raises(UnknownCTE):
        binary_size(facts, [1])
    assert binary_section(msg, facts, [2]) == b"ok"


@pytest.mark.parametrize(
    ("encoding", "encoded", "decoded"),
    [
        ("base64", b"aGVsbG8gd29ybGQK", b"hello world\n"),
        ("BASE64", b"aGVs\r\nbG8K\r\n", b"hello\n"),
        # RFC 2045 §6.8: characters outside the alphabet are ignored
        ("base64", b"aGV*sb!G8K", b"hello\n"),
        # ... and "=" ends the data
        ("base64", b"aGk=aGk=", b"hi"),
        ("base64", b"aGVsbG8", b"hello"),  # missing padding
        ("base64", b"aGVsbG8gd", b"hello "),  # a dangling sextet is dropped
        ("base64", b"", b""),
        ("quoted-printable", b"a=3Db=3d=\r\nc", b"a=b=c"),
        ("quoted-printable", b"trail  \r\nx=20\r\n", b"trail\r\nx \r\n"),
        # RFC 2045 §6.7: an "=" that starts no valid escape is kept
        ("quoted-printable", b"=XY =", b"=XY "),
        ("7bit", b"as is=3D", b"as is=3D"),
        ("8bit", "Grüße".encode(), "Grüße".encode()),
        ("binary", b"\x00\xff", b"\x00\xff"),
        (None, b"x", b"x"),
    ],
)
def test_decode_transfer(encoding: str | None, encoded: bytes, decoded: bytes) -> None:
    assert decode_transfer(encoded, encoding) == decoded


def test_decode_transfer_unknown() -> None:
    with pytest.raises(UnknownCTE):
        decode_transfer(b"x", "x-gzip")


def test_find_part_walks_the_tree() -> None:
    facts = compute_facts(COMPLEX)
    node = find_part(facts, [4, 2, 2, 2])
    assert node is not None and node[4] == "text/richtext"
    assert find_part(facts, []) is facts.parts


@given(st.binary(max_size=300), st.sampled_from(["base64", "quoted-printable", "7bit", None]))
@settings(max_examples=300, deadline=None)
def test_decoded_size_matches_decoding(data: bytes, encoding: str | None) -> None:
    assert decoded_size(data, encoding) == len(decode_transfer(data, encoding))
