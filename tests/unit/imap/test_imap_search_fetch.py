"""Search key trees and fetch attributes: serialise → parse round trips (hypothesis)."""

from __future__ import annotations

import datetime as dt
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from mailbag.proto.imap.commands import FetchCommand, SearchCommand
from mailbag.proto.imap.fetch import (
    MACROS,
    Attr,
    BinarySection,
    BinarySize,
    BodySection,
    FetchAttribute,
    Partial,
    Section,
    attributes_text,
    response_name,
    sets_seen,
)
from mailbag.proto.imap.receiver import IMAPReceiver, Limits
from mailbag.proto.imap.search import (
    FLAG_KEYS,
    STRING_FIELDS,
    AllKey,
    AndKey,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    NewKey,
    NotKey,
    OrKey,
    SearchKey,
    SeqKey,
    SizeKey,
    StringKey,
    UIDKey,
    key_bytes,
    program_bytes,
)
from mailbag.proto.imap.seqset import STAR, SeqSet

# Search strings: any Unicode but NUL (not even a literal may hold NUL, RFC 9051 §9).
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=30,
)
ATOM_CHARS = string.ascii_letters + string.digits + "$_-.!#&'+,/;<=>?@^`|~"
KEYWORDS = st.text(alphabet=ATOM_CHARS, min_size=1, max_size=12)
NUMBER = st.one_of(st.integers(1, 2**32 - 1), st.just(STAR))
SEQSETS = st.one_of(
    st.lists(st.tuples(NUMBER, NUMBER), min_size=1, max_size=5).map(lambda r: SeqSet(tuple(r))),
    st.just(SeqSet.last_result()),
)
FIELD_NAMES = st.text(
    alphabet="".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != ":"), min_size=1, max_size=20
)

LEAVES: st.SearchStrategy[SearchKey] = st.one_of(
    st.just(AllKey()),
    st.just(NewKey()),
    st.sampled_from([FlagKey(f, p) for f, p in FLAG_KEYS.values()]),
    st.builds(FlagKey, KEYWORDS, st.booleans()),
    st.builds(StringKey, st.sampled_from(STRING_FIELDS), TEXT),
    st.builds(HeaderKey, FIELD_NAMES, TEXT),
    st.builds(
        DateKey,
        st.sampled_from(["INTERNAL", "SENT"]),
        st.sampled_from(["BEFORE", "ON", "SINCE"]),
        st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31)),
    ),
    st.builds(SizeKey, st.booleans(), st.integers(0, 2**63 - 1)),
    st.builds(UIDKey, SEQSETS),
    st.builds(SeqKey, SEQSETS),
    st.builds(ModSeqKey, st.integers(0, 2**63 - 1)),
    st.builds(
        ModSeqKey,
        st.integers(0, 2**63 - 1),
        st.sampled_from(["/flags/\\seen", "/flags/$mdnsent"]),
        st.sampled_from(["priv", "shared", "all"]),
    ),
)
KEYS: st.SearchStrategy[SearchKey] = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.builds(NotKey, inner),
        st.builds(OrKey, inner, inner),
        st.lists(inner, min_size=1, max_size=4).map(lambda ks: AndKey(tuple(ks))),
    ),
    max_leaves=25,
)


def parse_one(data: bytes) -> object:
    r = IMAPReceiver(Limits(max_literal=1 << 20))
    events = r.feed(data)
    assert len(events) == 1, events
    return events[0]


def top_level(key: SearchKey) -> SearchKey:
    # At the top level "A B" is the AND of its keys, so a one-key AndKey would
    # come back as its only key: the parser keeps what was written.
    while isinstance(key, AndKey) and len(key.keys) == 1:
        key = key.keys[0]
    return key


@settings(max_examples=100, deadline=None)
@given(KEYS, st.booleans(), st.sampled_from([None, "UTF-8"]))
def test_search_round_trip(key: SearchKey, uid: bool, charset: str | None) -> None:
    key = top_level(key)
    data = b"t1 " + (b"UID " if uid else b"") + b"SEARCH " + program_bytes(key, charset) + b"\r\n"
    assert parse_one(data) == SearchCommand("t1", key, uid, charset)


@given(KEYS)
def test_search_round_trip_with_return_options(key: SearchKey) -> None:
    key = top_level(key)
    data = b"t2 SEARCH RETURN (MIN MAX) " + program_bytes(key) + b"\r\n"
    assert parse_one(data) == SearchCommand("t2", key, return_options=frozenset({"MIN", "MAX"}))


def test_search_key_bytes_examples() -> None:
    key = AndKey(
        (
            FlagKey("\\Flagged"),
            DateKey("INTERNAL", "SINCE", dt.date(1994, 2, 1)),
            NotKey(StringKey("FROM", "Smith")),
        )
    )
    # RFC 9051 §6.4.4 example A282 (which quotes "Smith"; an atom is equivalent)
    assert program_bytes(key) == b"FLAGGED SINCE 1-Feb-1994 NOT FROM Smith"
    assert key_bytes(StringKey("TEXT", "a\r\nb")) == b"TEXT {4+}\r\na\r\nb"
    assert key_bytes(FlagKey("\\Recent", False)) == b"OLD"
    assert key_bytes(ModSeqKey(5, "/flags/\\draft", "all")) == b'MODSEQ "/flags/\\\\draft" all 5'


SECTION_PARTS = st.lists(st.integers(1, 2**32 - 1), max_size=4).map(tuple)
PARTIALS = st.one_of(
    st.none(), st.builds(Partial, st.integers(0, 2**63 - 1), st.integers(1, 2**63 - 1))
)


@st.composite
def sections(draw: st.DrawFn) -> Section:
    part = draw(SECTION_PARTS)
    texts: list[str | None] = [None, "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"]
    if part:
        texts.append("MIME")
    text = draw(st.sampled_from(texts))
    fields: tuple[str, ...] = ()
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        fields = tuple(draw(st.lists(FIELD_NAMES, min_size=1, max_size=4)))
    return Section(part, text, fields)  # type: ignore[arg-type]


ATTRIBUTES: st.SearchStrategy[FetchAttribute] = st.one_of(
    st.sampled_from(list(Attr)),
    st.builds(BodySection, sections(), PARTIALS, st.booleans()),
    st.builds(BinarySection, SECTION_PARTS, PARTIALS, st.booleans()),
    st.builds(BinarySize, SECTION_PARTS),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(ATTRIBUTES, min_size=1, max_size=6).map(tuple), SEQSETS, st.booleans())
def test_fetch_round_trip(atts: tuple[FetchAttribute, ...], seqs: SeqSet, uid: bool) -> None:
    text = attributes_text(atts).encode("ascii")
    data = b"f " + (b"UID " if uid else b"") + b"FETCH " + seqs.to_bytes() + b" " + text + b"\r\n"
    assert parse_one(data) == FetchCommand("f", seqs, atts, uid)


@given(st.sampled_from(sorted(MACROS)))
def test_fetch_macros(name: str) -> None:
    assert parse_one(b"f FETCH 1 " + name.lower().encode() + b"\r\n") == FetchCommand(
        "f", SeqSet.single(1), MACROS[name]
    )


def test_response_names() -> None:
    # RFC 9051 §7.5.2: BODY.PEEK answers as BODY; a partial names only its origin.
    assert response_name(BodySection(Section((), "TEXT"), Partial(0, 2048), peek=True)) == (
        "BODY[TEXT]<0>"
    )
    assert response_name(BodySection(Section((), "HEADER.FIELDS", ("DATE", "FROM")))) == (
        "BODY[HEADER.FIELDS (DATE FROM)]"
    )
    assert response_name(BodySection(Section((1, 2), "MIME"))) == "BODY[1.2.MIME]"
    assert response_name(BinarySection((1,), Partial(5, 6), peek=True)) == "BINARY[1]<5>"
    assert response_name(BinarySize(())) == "BINARY.SIZE[]"
    assert response_name(Attr.RFC822_SIZE) == "RFC822.SIZE"


def test_which_items_set_seen() -> None:
    # RFC 9051 §6.4.5: BODY[…] and BINARY[…] set \Seen; .PEEK variants do not.
    assert sets_seen(BodySection())
    assert not sets_seen(BodySection(peek=True))
    assert sets_seen(BinarySection())
    assert not sets_seen(BinarySection(peek=True))
    assert sets_seen(Attr.RFC822) and sets_seen(Attr.RFC822_TEXT)
    assert not sets_seen(Attr.RFC822_HEADER) and not sets_seen(Attr.FLAGS)
