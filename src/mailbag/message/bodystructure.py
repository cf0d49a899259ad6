"""BODYSTRUCTURE and BODY (RFC 9051 §7.5.2, RFC 3501 §7.4.2) as plain lists.

The structure maps 1:1 onto the grammar: a list is a parenthesised list, a
`str` a string (quoted or literal), an `int` a number, None is NIL. A
serialiser needs no knowledge of MIME::

    body-type-1part (non-multipart), BODYSTRUCTURE form:
      [type, subtype, params, id, description, encoding, size,
       <type specific>, md5, disposition, language, location]
      <type specific> is
        text/*               -> lines                       (1 item)
        message/rfc822       -> envelope, body, lines       (3 items)
        message/global       -> envelope, body, lines       (3 items, RFC 9051 only)
        anything else        -> nothing
    body-type-mpart (multipart):
      [part1, part2, ..., subtype, params, disposition, language, location]

    params       None, or a flat list [name1, value1, name2, value2, ...]
    disposition  None, or [disposition-type, params]
    language     None, or a list of language tags
    envelope     see mailbag.message.envelope
    size, lines  int (octets and LF count of the body as stored)

A multipart is recognised by its first element being a list. BODY (the
non-extensible form) is :func:`body_from_bodystructure` of it: the extension
items (md5 onward for a single part, params onward for a multipart) dropped
at every level. IMAP4rev1 has no message/global in its grammar: for a rev1
session, :func:`rev1` turns message/global parts back into basic parts.

Choices where the RFC leaves room follow Dovecot 2.3 (checked against a live
Dovecot 2.3.19, see tests/corpus/dovecot-2.3.19/):

* type, subtype, parameter names and values, encoding are sent as written in
  the header (case kept); message/rfc822 parts are always "message" "rfc822";
* a part without Content-Type is "text" "plain" ("charset" "us-ascii"); a
  text part without a charset parameter gets ("charset" "us-ascii") added;
  a broken Content-Type keeps what could be read (e.g. "text" "" or "" "");
* a missing or invalid Content-Transfer-Encoding is "7bit";
* RFC 2231 continuations are joined but not decoded: `name*0*=utf-8''a;
  name*1*=b` becomes ("name*" "utf-8''ab"); plain parameters come first;
* a multipart with no parts (no boundary, or the boundary never appears)
  contains one empty text/plain part;
* parts nested deeper than the cap are "application" "octet-stream".
"""

from __future__ import annotations

from typing import Any

from . import mime
from .envelope import envelope
from .headers import nolf, text
from .mime import Part
from .rfc822 import MAX_STRUCTURED, Cursor, content_language, mime_params

BodyStructure = list[Any]

_EMPTY_TEXT: BodyStructure = [
    "text",
    "plain",
    ["charset", "us-ascii"],
    None,
    None,
    "7bit",
    0,
    0,
    None,
    None,
    None,
    None,
]


class PartData:
    """The Content-* header fields of one part, parsed (Dovecot's message_part_data)."""

    __slots__ = (
        "description",
        "disposition",
        "disposition_params",
        "encoding",
        "id",
        "language",
        "location",
        "md5",
        "params",
        "subtype",
        "type",
    )

    def __init__(self) -> None:
        self.type: bytes | None = None
        self.subtype: bytes = b""
        self.params: list[tuple[bytes, bytes]] = []
        self.id: bytes | None = None
        self.description: bytes | None = None
        self.encoding: bytes | None = None
        self.md5: bytes | None = None
        self.disposition: bytes | None = None
        self.disposition_params: list[tuple[bytes, bytes]] = []
        self.language: list[bytes] | None = None
        self.location: bytes | None = None


def part_data(part: Part) -> PartData:
    if part.data is not None:
        return part.data  # type: ignore[no-any-return]
    d = part.data = PartData()
    if not part.flags & mime.IS_MIME:
        # RFC 2045 §4: without MIME-Version (or a Content-Type, which Dovecot
        # also accepts) the Content-* fields do not apply.
        return d
    for name, value in part.fields:
        if not name.startswith(b"content-"):
            continue
        rest = name[8:]
        if rest == b"type":
            if d.type is None:
                ct, _, d.params = part.ctype or mime.parse_content_type(value)
                slash = ct.find(b"/")
                if slash < 0:
                    d.type, d.subtype = ct, b""
                else:
                    d.type, d.subtype = ct[:slash], ct[slash + 1 :]
        elif rest == b"transfer-encoding":
            if d.encoding is None:
                cur = Cursor(value)
                cur.skip_lwsp()
                tok = bytearray()
                # only a lone token counts: "base64; x" is invalid
                if cur.mime_token(tok) >= 0 and cur.skip_lwsp() == 0 and tok:
                    d.encoding = bytes(tok)
        elif rest == b"id":
            if d.id is None:
                d.id = value
        elif rest == b"description":
            if d.description is None:
                d.description = value
        elif rest == b"md5":
            if d.md5 is None:
                d.md5 = value
        elif rest == b"location":
            if d.location is None:
                d.location = value
        elif rest == b"language":
            if d.language is None:
                d.language = content_language(value) or None
        elif rest == b"disposition" and not d.disposition_params:
            cur = Cursor(value[:MAX_STRUCTURED])
            cur.skip_lwsp()
            tok = bytearray()
            if cur.mime_token(tok) >= 0:
                d.disposition = bytes(tok)
                d.disposition_params = mime_params(cur)
    return d


def _params(params: list[tuple[bytes, bytes]], default_charset: bool) -> list[str] | None:
    out: list[str] = []
    seen_charset = False
    for k, v in params:
        if default_charset and k.lower() == b"charset":
            seen_charset = True
        out.append(text(k))
        out.append(text(v))
    if default_charset and not seen_charset:
        out += ["charset", "us-ascii"]
    return out or None


def _nstring(value: bytes | None) -> str | None:
    return None if value is None else text(nolf(value))


def _extension(d: PartData) -> list[Any]:
    disposition = None
    if d.disposition is not None:
        disposition = [text(d.disposition), _params(d.disposition_params, False)]
    language = None if d.language is None else [text(x) for x in d.language]
    return [disposition, language, _nstring(d.location)]


def bodystructure(part: Part, data: bytes) -> BodyStructure:
    """BODYSTRUCTURE of `part` (the root part gives the message's)."""
    d = part_data(part)
    if part.flags & mime.MULTIPART:
        children = [bodystructure(c, data) for c in part.children] or [list(_EMPTY_TEXT)]
        return [
            *children,
            text(d.subtype),
            _params(d.params, False),
            *_extension(d),
        ]
    is_text = False
    params: list[str] | None
    if part.flags & mime.MESSAGE:
        out: list[Any] = ["message", "global" if part.flags & mime.GLOBAL else "rfc822"]
        params = _params(d.params, False)
    elif part.flags & mime.OPAQUE:
        out = ["application", "octet-stream"]
        params = _params(d.params, False)
    elif d.type is None:
        out = ["text", "plain"]
        is_text = True
        params = _params(d.params, True)
    else:
        out = [text(d.type), text(d.subtype)]
        is_text = d.type.lower() == b"text"
        params = _params(d.params, is_text)
    size = part.end - part.body_start
    out += [
        params,
        _nstring(d.id),
        _nstring(d.description),
        "7bit" if d.encoding is None else text(d.encoding),
        size,
    ]
    if is_text:
        out.append(data.count(b"\n", part.body_start, part.end))
    elif part.flags & mime.MESSAGE:
        child = part.children[0]
        out += [
            envelope(child.fields),
            bodystructure(child, data),
            data.count(b"\n", part.body_start, part.end),
        ]
    out.append(_nstring(d.md5))
    out += _extension(d)
    return out


def _is_message(bs: BodyStructure) -> bool:
    return len(bs) > 9 and isinstance(bs[7], list) and isinstance(bs[8], list)


def body_from_bodystructure(bs: BodyStructure) -> BodyStructure:
    """The BODY (non-extensible) form of a BODYSTRUCTURE."""
    if isinstance(bs[0], list):
        n = 0
        while isinstance(bs[n], list):
            n += 1
        return [*(body_from_bodystructure(c) for c in bs[:n]), bs[n]]
    if isinstance(bs[0], str) and bs[0].lower() == "text":
        return bs[:8]
    if _is_message(bs):
        return [*bs[:8], body_from_bodystructure(bs[8]), bs[9]]
    return bs[:7]


def rev1(bs: BodyStructure) -> BodyStructure:
    """A BODY or BODYSTRUCTURE an IMAP4rev1 client can parse (RFC 3501 has
    no message/global: such parts become basic parts, their nested envelope,
    body and lines dropped)."""
    if isinstance(bs[0], list):
        n = 0
        while isinstance(bs[n], list):
            n += 1
        return [*(rev1(c) for c in bs[:n]), *bs[n:]]
    if _is_message(bs):
        if str(bs[1]).lower() == "global":
            return [*bs[:7], *bs[10:]]
        return [*bs[:8], rev1(bs[8]), *bs[9:]]
    return bs
