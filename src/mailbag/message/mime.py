"""Offset-based MIME part splitter.

:func:`split` walks the stored bytes once and returns a tree of :class:`Part`:
for every MIME entity the offsets of its header block, body start and body
end, plus its parsed header fields. Nothing is copied; FETCH BODY[section]
later reads ranges of the stored file (RFC 9051 §6.4.5).

The boundary rules follow Dovecot's lib-mail message-parser, which is what
clients have been tested against for two decades (RFC 2046 §5.1.1 leaves much
of broken input open):

* a boundary line is a line that starts with "--" followed by the boundary of
  the current multipart *or of any enclosing one*; only the beginning has to
  match (the longest matching boundary wins), so an outer boundary closes all
  inner parts;
* the line break before a boundary line belongs to the boundary, not to the
  part before it; a boundary on the first line of a body leaves it empty;
* "--boundary--" ends the multipart; what follows (epilogue) belongs to the
  multipart's body, like the preamble;
* a boundary line inside a header block ends that header (and the part): the
  line break before it goes to the boundary; likewise when a boundary follows
  the blank line directly, that blank line goes to the boundary and the
  header block (BODY[n.MIME]) ends before it;
* a multipart without a boundary parameter, or whose boundary never shows up,
  has no children (BODYSTRUCTURE then shows one empty text/plain part);
* without a Content-Type, a part is text/plain, or message/rfc822 directly
  inside multipart/digest (RFC 2046 §5.1.5);
* message/rfc822 is parsed as an encapsulated message whatever its transfer
  encoding; message/global (RFC 6532 §3.5) is too when its encoding is an
  identity one, since RFC 9051 gives it nested part numbers as well;
* nesting is capped at MAX_DEPTH levels and MAX_PARTS entities: deeper
  multipart or message parts are opaque leaves (application/octet-stream in
  BODYSTRUCTURE, as Dovecot answers), so any input takes bounded time.
"""

from __future__ import annotations

import re
from typing import Any

from .headers import header_end, parse_fields
from .rfc822 import MAX_STRUCTURED, Cursor, content_type, mime_params

MULTIPART = 0x01
MESSAGE = 0x02  # message/rfc822 or message/global with an encapsulated message
TEXT = 0x04
DIGEST = 0x08  # multipart/digest: children default to message/rfc822
IS_MIME = 0x10  # Content-* headers apply (MIME-Version, Content-Type or a subpart)
OPAQUE = 0x20  # a multipart/message part beyond the nesting cap
GLOBAL = 0x40  # the MESSAGE part is message/global

# Parts at depth MAX_DEPTH - 1 (the top-level message is depth 0) can no
# longer contain parts; Dovecot uses the same numbers.
MAX_DEPTH = 100
MAX_PARTS = 10_000
# RFC 2046 §5.1.1: boundaries are at most 70 characters; Dovecot allows 80.
MAX_BOUNDARY = 80
_BOUNDARY_END_MAX = MAX_BOUNDARY + 4

_IDENTITY_CTE = (b"", b"7bit", b"8bit", b"binary")
_SHALLOW = 6  # up to this many enclosing boundaries a plain loop is faster
_MISSES_BEFORE_REGEX = 32


class Part:
    """One MIME entity: the header block is data[start:body_start] (blank line
    included when there is one), the body is data[body_start:end]."""

    __slots__ = (
        "body_start",
        "children",
        "ctype",
        "data",
        "depth",
        "end",
        "fields",
        "flags",
        "start",
    )

    def __init__(self, start: int, depth: int, flags: int = 0) -> None:
        self.start = start
        self.body_start = start
        self.end = start
        self.depth = depth
        self.flags = flags
        self.fields: list[tuple[bytes, bytes]] = []
        self.children: list[Part] = []
        self.data: Any = None  # parsed Content-* fields, cached by bodystructure
        # the first Content-Type parsed: (type/subtype, status, parameters)
        self.ctype: tuple[bytes, int, list[tuple[bytes, bytes]]] | None = None

    def first(self, name: bytes) -> bytes | None:
        """Value of the first field called `name` (lower case), or None."""
        for n, v in self.fields:
            if n == name:
                return v
        return None

    def __repr__(self) -> str:
        return (
            f"Part({self.start}, {self.body_start}, {self.end}, flags={self.flags:#x}, "
            f"children={self.children!r})"
        )


class _Boundary:
    __slots__ = ("part", "value")

    def __init__(self, value: bytes, part: Part) -> None:
        self.value = value
        self.part = part


class _Hit:
    """A boundary line: where it starts, where the body before it ends."""

    __slots__ = ("boundary", "closing", "cut", "line")

    def __init__(self, boundary: _Boundary, line: int, closing: bool) -> None:
        self.boundary = boundary
        self.line = line
        self.cut = line
        self.closing = closing


class _Splitter:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.n = len(data)
        self.stack: list[_Boundary] = []
        self.count = 1
        # Regexes over the current boundaries, rebuilt lazily after the stack
        # changes: one finds candidate lines in C (skipping the many lines
        # that start with "--" but no boundary), one picks the longest match.
        self._search_rx: re.Pattern[bytes] | None = None
        self._match_rx: re.Pattern[bytes] | None = None
        self._by_value: dict[bytes, _Boundary] = {}

    def _changed(self) -> None:
        self._search_rx = self._match_rx = None

    def _build(self) -> None:
        by_value: dict[bytes, _Boundary] = {}
        for b in self.stack:  # outermost first, so the innermost wins a tie
            by_value[b.value] = b
        alternatives = b"|".join(re.escape(v) for v in sorted(by_value, key=len, reverse=True))
        self._by_value = by_value
        self._match_rx = re.compile(alternatives)
        self._search_rx = re.compile(b"\n--(?:" + alternatives + b")")

    def _deep_match(self, s: int, size: int) -> _Boundary | None:
        if self._match_rx is None:
            self._build()
        assert self._match_rx is not None
        m = self._match_rx.match(self.data, s, s + size)
        return None if m is None else self._by_value[m.group(0)]

    # -- boundary lines -------------------------------------------------

    def _match(self, line: int) -> _Hit | None:
        data = self.data
        s = line + 2
        lf = data.find(b"\n", s)
        if lf >= 0:
            size = lf - s
            if size > 0 and data[lf - 1] == 0x0D:
                size -= 1
            if size > 2 and data[s + size - 2] == 0x2D and data[s + size - 1] == 0x2D:
                size -= 2
        else:
            size = min(self.n - s, _BOUNDARY_END_MAX)
        best: _Boundary | None = None
        if len(self.stack) > _SHALLOW:
            best = self._deep_match(s, size)
            if best is None:
                return None
            return _Hit(best, line, data.startswith(b"--", s + len(best.value)))
        for b in reversed(self.stack):  # innermost first: it wins a tie
            blen = len(b.value)
            if (
                blen <= size
                and data.startswith(b.value, s)
                and (best is None or len(best.value) < blen)
            ):
                best = b
                if blen == size:
                    break
        if best is None:
            return None
        return _Hit(best, line, data.startswith(b"--", s + len(best.value)))

    def _find(self, pos: int, end: int | None = None) -> _Hit | None:
        """The first boundary line starting in [pos, end) (pos is a line start)."""
        if not self.stack:
            return None
        data = self.data
        if end is None:
            end = self.n
        if data.startswith(b"--", pos) and pos < end:
            hit = self._match(pos)
            if hit is not None:
                return hit
        # Plain find() first; after many lines that start with "--" but are
        # no boundary, let a regex skip such lines in C.
        misses = 0
        j = data.find(b"\n--", pos, end)
        while j >= 0:
            hit = self._match(j + 1)
            if hit is not None:
                # RFC 2046 §5.1.1: the CRLF before the boundary is part of it
                hit.cut = j - 1 if j > pos and data[j - 1] == 0x0D else j
                return hit
            misses += 1
            if misses > _MISSES_BEFORE_REGEX:
                if self._search_rx is None:
                    self._build()
                assert self._search_rx is not None
                m = self._search_rx.search(data, j + 1, end)
                j = -1 if m is None else m.start()
            else:
                j = data.find(b"\n--", j + 1, end)
        return None

    # -- entities -------------------------------------------------------

    def _classify(self, part: Part, parent: Part | None) -> bytes | None:
        """Set the part's flags from its header; return its boundary, if any."""
        ctype: bytes | None = None
        is_mime = bool(part.flags & IS_MIME)
        for name, value in part.fields:
            if name == b"content-type":
                if ctype is None:
                    ctype = value
            elif name == b"mime-version":
                is_mime = True
        boundary: bytes | None = None
        flags = 0
        if ctype is not None:
            # Dovecot's default (not MIME_VERSION_STRICT): a Content-Type
            # header alone makes the part MIME.
            is_mime = True
            part.ctype = parsed = parse_content_type(ctype)
            ct = parsed[0].lower()
            if ct == b"message/rfc822":
                flags = MESSAGE
            elif ct == b"text" or ct.startswith(b"text/"):
                flags = TEXT
            elif ct.startswith(b"multipart/"):
                flags = MULTIPART | (DIGEST if ct == b"multipart/digest" else 0)
                for key, val in parsed[2]:
                    if key.lower() == b"boundary":
                        boundary = val[:MAX_BOUNDARY]
                        break
            elif ct == b"message/global" and _cte(part) in _IDENTITY_CTE:
                flags = MESSAGE | GLOBAL
        elif parent is not None and parent.flags & DIGEST:
            flags = MESSAGE
        else:
            flags = TEXT
        if flags & (MULTIPART | MESSAGE) and (
            part.depth >= MAX_DEPTH - 1 or self.count >= MAX_PARTS
        ):
            flags = OPAQUE
            boundary = None
        part.flags = flags | (IS_MIME if is_mime else 0)
        return boundary

    def entity(self, part: Part, parent: Part | None) -> _Hit | None:
        """Parse the entity starting at part.start; return the boundary line
        that ended it, or None when it runs to the end of the data."""
        data = self.data
        pos = part.start
        hdr_end, body_start = header_end(data, pos)
        hit = self._find(pos, hdr_end) if self.stack else None
        if hit is not None:
            part.fields = parse_fields(data, pos, hit.line)
            self._classify(part, parent)
            part.body_start = part.end = hit.cut
            if part.flags & MESSAGE:
                child = Part(hit.cut, part.depth + 1)
                self.count += 1
                part.children.append(child)
                self._classify(child, part)
            return hit
        part.fields = parse_fields(data, pos, hdr_end)
        boundary = self._classify(part, parent)
        part.body_start = body_start
        own: _Boundary | None = None
        if part.flags & MULTIPART and boundary is not None and body_start > hdr_end:
            # pushed before looking at the first body line, so that a first
            # line "--boundary" shared with an enclosing multipart is ours
            own = _Boundary(boundary, part)
            self.stack.append(own)
            self._changed()
        if self.stack and body_start > hdr_end and data.startswith(b"--", body_start):
            hit = self._match(body_start)
            if hit is not None and hit.boundary is not own:
                # The body is empty: the blank line's CRLF is the one that
                # precedes the boundary (RFC 2046 §5.1.1), so it leaves the
                # header block too (Dovecot serves BODY[n.MIME] this way).
                if own is not None:
                    self.stack.remove(own)
                    self._changed()
                part.body_start = part.end = hit.cut = hdr_end
                if part.flags & MESSAGE:
                    child = Part(hdr_end, part.depth + 1)
                    self.count += 1
                    part.children.append(child)
                    self._classify(child, part)
                return hit
        if own is not None:
            return self._multipart_body(part, own)
        if part.flags & MULTIPART:
            # no boundary, or the header ran into the end of the data
            return self._leaf_body(part)
        if part.flags & MESSAGE:
            child = Part(body_start, part.depth + 1)
            self.count += 1
            part.children.append(child)
            hit = self.entity(child, part)
            part.end = hit.cut if hit is not None else self.n
            return hit
        return self._leaf_body(part)

    def _leaf_body(self, part: Part) -> _Hit | None:
        hit = self._find(part.body_start)
        part.end = hit.cut if hit is not None else self.n
        return hit

    def _multipart_body(self, part: Part, own: _Boundary) -> _Hit | None:
        data = self.data
        boundary = own.value
        hit = self._find(part.body_start)  # the preamble is skipped
        while True:
            if hit is None:
                part.end = self.n
                return None
            if hit.boundary.part is not part:
                part.end = hit.cut
                return hit
            i = self.stack.index(hit.boundary)
            # a closing boundary forgets inner boundaries and itself, another
            # one only the inner boundaries (they were never closed)
            del self.stack[i if hit.closing else i + 1 :]
            self._changed()
            lf = data.find(b"\n", hit.line + 2 + len(boundary))
            if lf < 0:
                part.end = self.n
                return None
            if hit.closing or self.count >= MAX_PARTS:
                hit = self._find(lf + 1)  # epilogue
                continue
            child = Part(lf + 1, part.depth + 1, IS_MIME)
            self.count += 1
            part.children.append(child)
            hit = self.entity(child, part)


def parse_content_type(value: bytes) -> tuple[bytes, int, list[tuple[bytes, bytes]]]:
    """(type/subtype as written, status, parameters) of a Content-Type value;
    parameters are only read when the type/subtype part is valid."""
    cur = Cursor(value[:MAX_STRUCTURED])
    cur.skip_lwsp()
    ct, ret = content_type(cur)
    return ct, ret, (mime_params(cur) if ret >= 0 else [])


def _cte(part: Part) -> bytes:
    value = part.first(b"content-transfer-encoding")
    if value is None:
        return b""
    return value.strip(b" \t\r\n").lower()


def split(data: bytes) -> Part:
    """Split a message into its MIME entities (never raises on bad MIME)."""
    root = Part(0, 0)
    _Splitter(data).entity(root, None)
    return root


def iter_parts(root: Part) -> list[Part]:
    """All entities, depth first, without recursion."""
    out: list[Part] = []
    stack = [root]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(reversed(p.children))
    return out
