"""Decoded header and body text for SEARCH HEADER / BODY / TEXT (RFC 9051 §6.4.4)."""

from __future__ import annotations

import pathlib

from mailbag.message import (
    body_text,
    compute_facts,
    contains,
    header_text,
    header_values,
    message_text,
)

CORPUS = pathlib.Path(__file__).resolve().parents[2] / "corpus"


def _load(name: str) -> bytes:
    return (CORPUS / f"{name}.eml").read_bytes()


def test_body_text_decodes_transfer_encoding_and_charset() -> None:
    data = _load("alternative_in_mixed")
    text = body_text(data, compute_facts(data))
    assert "Café au lait, s'il vous plaît." in text  # quoted-printable, iso-8859-1
    assert "Long line that is soft broken." in text  # soft line break undone
    assert "<p>Café au lait</p>" in text  # base64, utf-8
    # the base64 attachment (application/octet-stream) is not searched
    assert "AAECAwQF" not in text
    # nor the preamble or any header
    assert "multi-part message" not in text
    assert "Sender" not in text


def test_body_text_html_in_windows_1252() -> None:
    data = _load("html_latin1")
    text = body_text(data)
    assert "Soldes d'été à moitié prix" in text
    assert "<h1>Soldes d'été</h1>" in text


def test_body_text_includes_encapsulated_messages() -> None:
    data = _load("nested_rfc822")
    text = body_text(data, compute_facts(data))
    assert "See below." in text
    assert "Original text." in text
    assert "Innermost body\r\nwith two lines." in text
    assert "the original" not in text  # a Subject: header, not body text


def test_header_text_and_values_are_decoded() -> None:
    data = _load("encoded_words_envelope")
    facts = compute_facts(data)
    text = header_text(data, facts)
    assert "from: Jörg Müller <joerg@example.de>" in text
    assert "subject: Grüße und mehr plain" in text
    assert "body" not in text
    assert header_values(data, "To") == ['André <andre@example.fr>, "quoted" <q@example.com>']
    assert header_values(data, "x-raw-utf8") == ["Grüße"]
    assert header_values(data, "x-missing") == []


def test_message_text_has_headers_of_every_entity() -> None:
    data = _load("nested_rfc822")
    text = message_text(data, compute_facts(data))
    assert "subject: Fwd: the original" in text  # top-level header
    assert "content-description: forwarded message" in text  # a part's MIME header
    assert "subject: innermost" in text  # an encapsulated message's header
    assert "Innermost body" in text


def test_contains_is_case_insensitive() -> None:
    data = _load("alternative_in_mixed")
    text = body_text(data)
    assert contains(text, "CAFÉ AU LAIT")
    assert contains(text, "café")
    assert not contains(text, "thé")
    assert contains("Straße", "STRASSE")  # Unicode case folding


def test_limit_bounds_the_text() -> None:
    data = _load("alternative_in_mixed")
    assert len(body_text(data, limit=10)) == 10


def test_unknown_encoding_and_charset_still_searchable() -> None:
    data = (
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=x-no-such\r\n"
        b"Content-Transfer-Encoding: x-weird\r\n\r\nfindme \xc3\xa9\r\n"
    )
    assert "findme é" in body_text(data)
