"""FETCH BODY[section] / BINARY[section] from byte ranges (RFC 9051 §6.4.5).

The part tree (`MessageFacts.parts`) is a JSON-compatible nested list; one
node per MIME entity::

    [start, body_start, end, kind, type, encoding, charset, binary_size, children]

    start         offset of the entity's header block
    body_start    offset of its body (the header block includes the blank line)
    end           offset just after its body
    kind          LEAF (0), MULTIPART (1) or MESSAGE (2, message/rfc822 or
                  message/global: children == [the encapsulated message])
    type          effective "type/subtype", lower case ("text/plain" by default)
    encoding      Content-Transfer-Encoding, lower case, "" when none/invalid
    charset       charset parameter, lower case, "" when none
    binary_size   octets after transfer decoding (BINARY.SIZE); -1 when the
                  encoding is unknown; the raw size for non-leaf parts
    children      list of nodes

The root node is the whole message. Section numbering (RFC 9051 §6.4.5):
the parts of a multipart are its children; a message that is not multipart
has a single part 1, itself (its body, with its header as the MIME header);
a message/rfc822 part's nested numbers are those of the encapsulated message.

Where Dovecot and the RFC leave it open, a section that does not exist
(BODY[9] of a 2-part message, BODY[1.HEADER] of a text part, ...) resolves to
None here; Dovecot answers such fetches with an empty string.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..store.models import MessageFacts
from . import mime
from .bodystructure import part_data
from .decode import UnknownCTE, decode_transfer, decoded_size, normalize_cte
from .headers import field_spans
from .mime import Part

START, BODY_START, END, KIND, TYPE, ENCODING, CHARSET, BINARY_SIZE, CHILDREN = range(9)
LEAF, MULTIPART, MESSAGE = 0, 1, 2

Node = list[Any]


def part_tree(part: Part, data: bytes) -> Node:
    """The stored node for `part` and its descendants."""
    d = part_data(part)
    if part.flags & mime.MULTIPART:
        kind = MULTIPART
        ctype = "multipart/" + d.subtype.decode("utf-8", "replace").lower()
    elif part.flags & mime.MESSAGE:
        kind = MESSAGE
        ctype = "message/global" if part.flags & mime.GLOBAL else "message/rfc822"
    else:
        kind = LEAF
        if part.flags & mime.OPAQUE:
            ctype = "application/octet-stream"
        elif d.type is None:
            ctype = "text/plain"
        else:
            ctype = (d.type + b"/" + d.subtype).decode("utf-8", "replace").lower()
    encoding = normalize_cte(d.encoding)
    charset = ""
    for k, v in d.params:
        if k.lower() == b"charset":
            charset = v.decode("utf-8", "replace").strip().lower()
            break
    body = data[part.body_start : part.end] if kind == LEAF else b""
    if kind != LEAF:
        size = part.end - part.body_start
    else:
        try:
            size = decoded_size(body, encoding)
        except UnknownCTE:
            size = -1
    return [
        part.start,
        part.body_start,
        part.end,
        kind,
        ctype,
        encoding,
        charset,
        size,
        [part_tree(c, data) for c in part.children],
    ]


def _tree(facts: MessageFacts | Node) -> Node:
    if isinstance(facts, MessageFacts):
        if facts.parts is None:
            raise ValueError("these facts have no part tree")
        return facts.parts  # type: ignore[no-any-return]
    return facts


def _empty_part(node: Node) -> Node:
    # RFC 2046 requires at least one part; like Dovecot we pretend an empty
    # text/plain one is there when a multipart has none.
    e = node[END]
    return [e, e, e, LEAF, "text/plain", "", "us-ascii", 0, []]


def _numbered(node: Node) -> list[Node]:
    """The parts that section numbers count below an entity that is a message."""
    if node[KIND] == MULTIPART:
        return node[CHILDREN] or [_empty_part(node)]
    return [node]


def find_part(facts: MessageFacts | Node, path: Sequence[int]) -> Node | None:
    """The node a numeric section path names ([] is the whole message)."""
    node = _tree(facts)
    if not path:
        return node
    parts = _numbered(node)
    for depth, n in enumerate(path):
        if n < 1 or n > len(parts):
            return None
        node = parts[n - 1]
        if depth == len(path) - 1:
            return node
        if node[KIND] == MULTIPART:
            parts = node[CHILDREN] or [_empty_part(node)]
        elif node[KIND] == MESSAGE:
            parts = _numbered(node[CHILDREN][0])
        else:
            return None
    return node


HEADER_KINDS = ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT")


def resolve_section(
    facts: MessageFacts | Node, path: Sequence[int], kind: str = ""
) -> tuple[int, int] | None:
    """(offset, length) in the stored bytes for BODY[<path>.<kind>].

    `kind` is "" (the part itself, or the whole message for an empty path),
    "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT" or "MIME". For the
    HEADER.FIELDS kinds the range is the whole header; pass its bytes to
    :func:`header_subset`. None when the section does not exist.
    """
    kind = kind.upper()
    node = find_part(facts, path)
    if node is None:
        return None
    if kind == "":
        if not path:
            return 0, node[END]
        return node[BODY_START], node[END] - node[BODY_START]
    if kind == "MIME":
        if not path:
            return None  # RFC 9051 §6.4.5: MIME must follow a part number
        return node[START], node[BODY_START] - node[START]
    if kind not in ("TEXT", *HEADER_KINDS):
        return None
    if path:
        # HEADER and TEXT of a part refer to the encapsulated message
        if node[KIND] != MESSAGE:
            return None
        node = node[CHILDREN][0]
    if kind == "TEXT":
        return node[BODY_START], node[END] - node[BODY_START]
    return node[START], node[BODY_START] - node[START]


def header_subset(
    header: bytes, names: Iterable[str], exclude: bool = False, blank_line: bool = True
) -> bytes:
    """BODY[HEADER.FIELDS (names)] (or .NOT when `exclude`) from a header block.

    Whole fields (with their continuation lines) whose name matches one of
    `names` ASCII-case-insensitively, in message order, then the blank line.
    RFC 9051 §6.4.5 includes it always "except in the case of a message that
    has no body and no blank line": the caller passes `blank_line=False` for
    such a (top-level) message. Dovecot 2.3.19 does the same, and still adds it
    for an encapsulated message whose header a boundary cut short.
    """
    wanted = {n.lower().encode("utf-8", "surrogateescape") for n in names}
    end = len(header)
    # the blank line ending the block is not a field
    if header.endswith(b"\n\r\n") or header == b"\r\n":
        end -= 2
    elif header.endswith(b"\n\n") or header == b"\n":
        end -= 1
    out = bytearray()
    for name, s, e in field_spans(header, 0, end):
        if not name:
            continue
        if (name in wanted) != exclude:
            out += header[s:e]
            if not out.endswith(b"\n"):
                out += b"\r\n"
    if blank_line:
        out += b"\r\n"
    return bytes(out)


def binary_section(data: bytes, facts: MessageFacts | Node, path: Sequence[int]) -> bytes | None:
    """BINARY[<path>]: the part's body with its transfer encoding undone.

    Raises UnknownCTE for an encoding we cannot decode (NO [UNKNOWN-CTE]).
    Multipart and message parts are returned as they are stored, as Dovecot
    does (RFC 3516 only defines BINARY for leaf parts). None when the part
    does not exist.
    """
    node = find_part(facts, path) if path else None
    if node is None:
        return None
    body = data[node[BODY_START] : node[END]]
    if node[KIND] != LEAF:
        return body
    return decode_transfer(body, node[ENCODING])


def binary_size(facts: MessageFacts | Node, path: Sequence[int]) -> int | None:
    """BINARY.SIZE[<path>] from the facts alone; raises UnknownCTE."""
    node = find_part(facts, path) if path else None
    if node is None:
        return None
    if node[BINARY_SIZE] < 0:
        raise UnknownCTE(node[ENCODING])
    return int(node[BINARY_SIZE])


def iter_nodes(facts: MessageFacts | Node) -> list[Node]:
    """All nodes depth first (the root first)."""
    out: list[Node] = []
    stack = [_tree(facts)]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(reversed(node[CHILDREN]))
    return out
