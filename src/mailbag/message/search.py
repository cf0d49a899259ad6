"""Decoded text of a message for SEARCH and the full-text index.

IMAP SEARCH matches substrings case-insensitively on decoded text (RFC 9051
§6.4.4: "the server MUST... decode"). What is searched follows Dovecot's
message-search:

* SEARCH HEADER <field> <string>: the decoded values of that field
  (:func:`header_values`); an empty string matches any message that has the
  field;
* SEARCH BODY <string>: the decoded bodies of every part whose type is text/*
  or message/* (or that has no Content-Type), transfer encoding undone and
  the charset converted (:func:`body_text`); preambles, epilogues and binary
  attachments are not searched, nor is any header;
* SEARCH TEXT <string>: the same bodies plus the decoded headers of every
  entity, the top-level header and those of parts and encapsulated messages
  (:func:`message_text`).

Parts are joined with a newline so a match does not run across two parts.
:func:`contains` does the case-insensitive substring test (Unicode case
folding, close to Dovecot's i;unicode-casemap).
"""

from __future__ import annotations

from ..store.models import MessageFacts
from .decode import UnknownCTE, decode_transfer
from .facts import compute_facts
from .headers import decode_value, header_end, parse_fields, to_unicode
from .sections import BODY_START, CHARSET, CHILDREN, ENCODING, END, KIND, LEAF, START, TYPE, Node


def _tree(data: bytes, facts: MessageFacts | None) -> Node:
    if facts is None or facts.parts is None:
        facts = compute_facts(data)
    return facts.parts  # type: ignore[no-any-return]


def decoded_headers(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[str, str]]:
    """(lower-case name, decoded value) of the header block at `start`
    (the top-level header by default); `end` bounds the block."""
    hdr_end, _ = header_end(data, start)
    if end is not None:
        hdr_end = min(hdr_end, end)
    return [
        (name.decode("utf-8", "replace"), decode_value(value))
        for name, value in parse_fields(data, start, hdr_end)
        if name
    ]


def header_values(data: bytes, name: str) -> list[str]:
    """Decoded values of every top-level field called `name` (any case)."""
    wanted = name.lower()
    return [v for n, v in decoded_headers(data) if n == wanted]


def header_text(data: bytes, facts: MessageFacts | None = None) -> str:
    """The decoded top-level header, one "name: value" line per field."""
    end = facts.header_size if facts is not None else None
    return "".join(f"{n}: {v}\n" for n, v in decoded_headers(data, 0, end))


def _searchable(node: Node) -> bool:
    ctype: str = node[TYPE]
    return ctype.startswith(("text/", "message/"))


def part_text(data: bytes, node: Node) -> str:
    """The decoded body of one leaf part."""
    body = data[node[BODY_START] : node[END]]
    try:
        raw = decode_transfer(body, node[ENCODING])
    except UnknownCTE:
        raw = body
    return to_unicode(raw, node[CHARSET] or None)


def _walk(data: bytes, tree: Node, headers: bool, limit: int | None) -> str:
    out: list[str] = []
    size = 0
    stack = [tree]
    while stack and (limit is None or size < limit):
        node = stack.pop()
        if headers and node[BODY_START] > node[START]:
            for n, v in decoded_headers(data, node[START], node[BODY_START]):
                out.append(f"{n}: {v}\n")
                size += len(n) + len(v) + 3
        if node[KIND] == LEAF and _searchable(node):
            piece = part_text(data, node)
            out.append(piece + "\n")
            size += len(piece) + 1
        stack.extend(reversed(node[CHILDREN]))
    text = "".join(out)
    return text if limit is None else text[:limit]


def body_text(data: bytes, facts: MessageFacts | None = None, limit: int | None = None) -> str:
    """What SEARCH BODY looks in: decoded text/* and message/* bodies."""
    return _walk(data, _tree(data, facts), False, limit)


def message_text(data: bytes, facts: MessageFacts | None = None, limit: int | None = None) -> str:
    """What SEARCH TEXT looks in: every decoded header and text body."""
    return _walk(data, _tree(data, facts), True, limit)


def contains(haystack: str, needle: str) -> bool:
    """Case-insensitive substring test for SEARCH."""
    return needle.casefold() in haystack.casefold()
