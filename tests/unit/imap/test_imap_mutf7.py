"""Modified UTF-7 (RFC 3501 §5.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbag.proto.imap import mutf7

NAMES = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


def test_rfc3501_example() -> None:
    # RFC 3501 §5.1.3
    assert mutf7.encode("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert mutf7.decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-") == "~peter/mail/台北/日本語"
    assert mutf7.decode(b"~peter/mail/&U,BTFw-/&ZeVnLIqe-") == "~peter/mail/台北/日本語"


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("", ""),
        ("INBOX", "INBOX"),
        ("&", "&-"),
        ("a&b", "a&-b"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("ä&", "&AOQ-&-"),
        ("\U0001f600", "&2D3eAA-"),  # astral: a surrogate pair
        ("tab\there", "tab&AAk-here"),  # control characters are encoded too
        ("~", "~"),
        ("\x7f", "&AH8-"),
    ],
)
def test_known_encodings(text: str, wire: str) -> None:
    assert mutf7.encode(text) == wire
    assert mutf7.decode(wire) == text


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        ("&", "unterminated"),
        ("abc&AOQ", "unterminated"),
        ("&U,BTFw-&ZeVnLIqe-", "adjacent"),  # RFC 3501 §5.1.3: "not permitted"
        ("&AGE-", "printable ASCII"),  # "a" encoded
        ("&ACY-", "printable ASCII"),  # "&" encoded instead of "&-"
        ("&A-", "whole number"),
        ("&AOQA-", "whole number"),  # 30 bits: 3 bytes, half a UTF-16 unit
        ("&AOR-", "padding bits"),  # "AOQ" with non-zero trailing bits
        ("&AO/-", "invalid character"),  # "/" instead of ","
        ("&AO=-", "invalid character"),
        ("&2D0-", "surrogate"),  # a lone high surrogate
        ("Entwürfe", "must be base64"),  # raw 8-bit
        ("a\tb", "must be base64"),  # raw control character
    ],
)
def test_invalid_forms_are_rejected(wire: str, why: str) -> None:
    with pytest.raises(mutf7.MUTF7Error, match=why):
        mutf7.decode(wire)


def test_raw_8bit_bytes_are_rejected() -> None:
    with pytest.raises(mutf7.MUTF7Error):
        mutf7.decode("Entwürfe".encode())


def test_lone_surrogate_cannot_be_encoded() -> None:
    with pytest.raises(mutf7.MUTF7Error):
        mutf7.encode("\ud800")


@given(NAMES)
def test_round_trip(name: str) -> None:
    wire = mutf7.encode(name)
    assert all(" " <= c <= "~" for c in wire)
    assert mutf7.decode(wire) == name


@given(NAMES)
def test_encoding_is_canonical(name: str) -> None:
    # Decoding accepts exactly what encoding produces: every other spelling of
    # the same name is refused, so two spellings cannot name two mailboxes.
    wire = mutf7.encode(name)
    assert mutf7.encode(mutf7.decode(wire)) == wire
