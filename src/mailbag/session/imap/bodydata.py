"""The octets of FETCH BODY[section] and BINARY[section] (RFC 9051 §6.4.5, RFC 3516).

Everything is served from the facts computed at delivery (the part tree with
byte offsets, `mailbag.message.sections`) and from byte ranges of the stored
content (`store.read_content(cid, offset, length)`); nothing is re-parsed at
FETCH time. A section of up to :data:`INLINE_MAX` octets is read whole before
the response is written (so a failing read can still become a tagged NO); a
larger one is streamed in :data:`CHUNK` pieces and never held whole, so a
50 MB message costs a few hundred kilobytes of memory per FETCH.

Choices where the RFCs leave room, taken from Dovecot 2.3:

* A NUL in BODY[...] data is sent as 0x80: a `literal` may not hold NUL
  (RFC 9051 §4.3 CHAR8); BINARY keeps it and uses `literal8` instead.
* A section that does not exist (BODY[9] of a two-part message, BINARY[1.1]
  of a text part) is an empty string; BINARY.SIZE of it is 0.
* BINARY of a multipart or message part, and BINARY[] of the whole message,
  follow Dovecot's index-mail-binary.c: the entity is sent with every
  base64 / quoted-printable leaf inside it decoded, the
  Content-Transfer-Encoding field of each such leaf's header dropped and
  "Content-Transfer-Encoding: binary" added at the end of that header. The
  header of the entity itself is included only for BINARY[] (the message).
  Unlike Dovecot 2.3.19 (which answers BINARY.SIZE[1] 2 for a multipart that
  BINARY[1] sends as 286 octets), BINARY.SIZE always equals the size of what
  BINARY sends, as RFC 3516 §4.3 requires.
* `literal8` (`~{n}`) is used when the data holds a NUL or anything in it
  was decoded from base64 / quoted-printable (Dovecot's rule); otherwise a
  plain literal (RFC 3516 §4.3: "8bit" data without NUL SHOULD be a string).
* An encoding we cannot decode anywhere in the requested entity raises
  :class:`UnknownCTE` (the handler answers NO [UNKNOWN-CTE], RFC 3516 §4.3).
"""

from __future__ import annotations

import binascii
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ...message import UnknownCTE, find_part, header_subset, resolve_section
from ...message.decode import KNOWN, decode_qp, decode_transfer
from ...message.headers import field_spans
from ...message.sections import (
    BINARY_SIZE,
    BODY_START,
    CHILDREN,
    ENCODING,
    END,
    KIND,
    LEAF,
    START,
)
from ...proto.imap.fetch import Partial, Section
from ...proto.imap.responses import StreamingLiteral
from ...store.interface import Store
from ...store.models import Message, MessageFacts

CHUNK = 256 * 1024  # read size when streaming
INLINE_MAX = 256 * 1024  # sections up to this size are read whole

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_DELETE = bytes(b for b in range(256) if b not in _B64_ALPHABET)
_CONVERTED = frozenset({"base64", "quoted-printable"})
_CTE_BINARY = b"Content-Transfer-Encoding: binary\r\n"
_QP_MAX_CARRY = 1024 * 1024  # a QP "line" longer than this is cut at a safe place


@dataclass(slots=True, eq=False)
class SectionData:
    """What one FETCH item sends: `size` octets, inline or streamed."""

    size: int
    data: bytes | None = None  # inline data (exactly `size` octets)
    stream: AsyncIterator[bytes] | None = None  # streamed data
    binary: bool = False  # send as literal8

    def literal(self) -> StreamingLiteral:
        chunks: Iterable[bytes] | AsyncIterator[bytes] = ()
        if self.stream is not None:
            chunks = _guarded(self.stream)
        elif self.data:
            chunks = (self.data,)
        return StreamingLiteral(self.size, chunks, self.binary)


async def _guarded(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Once a literal's length is on the wire, a failing read (the message was
    expunged meanwhile, the store went away) cannot become a tagged NO: the
    connection has to end (DESIGN.md §2.6)."""
    try:
        async for piece in stream:
            yield piece
    except Exception as e:
        raise ConnectionAbortedError(f"message data unreadable while streaming: {e!r}") from e


def plausible_facts(facts: Any, size: int) -> bool:
    """Whether stored facts can be served as they are (a cheap shape check;
    anything else is recomputed from the message bytes)."""
    if not isinstance(facts, MessageFacts):
        return False
    env, bs, parts = facts.envelope, facts.bodystructure, facts.parts
    return (
        isinstance(env, list)
        and len(env) == 10
        and isinstance(bs, list)
        and len(bs) > 1
        and isinstance(parts, list)
        and len(parts) == 9
        and isinstance(parts[END], int)
        and parts[END] <= size
        and isinstance(facts.header_size, int)
        and 0 <= facts.header_size <= size
        and (facts.header_size > 0 or size == 0)
    )


def window(size: int, partial: Partial | None) -> tuple[int, int]:
    """(start, length) of `<offset.length>` inside `size` octets.

    RFC 9051 §6.4.5: a partial that starts beyond the end is an empty string;
    one that runs past the end is truncated.
    """
    if partial is None:
        return 0, size
    start = min(partial.offset, size)
    return start, min(partial.length, size - start)


def no_nul(data: bytes) -> bytes:
    return data.replace(b"\x00", b"\x80") if b"\x00" in data else data


async def read_range(
    store: Store, message: Message, offset: int, length: int, chunk: int = CHUNK
) -> AsyncIterator[bytes]:
    """The stored octets [offset, offset+length) in pieces of at most `chunk`."""
    end = offset + length
    pos = offset
    while pos < end:
        n = min(chunk, end - pos)
        data = await store.read_content(message.content_id, pos, n)
        if not data:
            return  # the content is shorter than the facts say; the caller checks
        yield data
        pos += len(data)


async def _nul_filtered(source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for piece in source:
        yield no_nul(piece)


# ---- BODY[section] ------------------------------------------------------------


async def body_section(
    store: Store,
    message: Message,
    facts: MessageFacts,
    section: Section,
    partial: Partial | None,
) -> SectionData:
    """BODY[section]<partial> (also RFC822, RFC822.HEADER, RFC822.TEXT)."""
    text = section.text or ""
    rng = resolve_section(facts, section.part, text)
    if rng is None:
        return SectionData(0, b"")
    offset, length = rng
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        offset, length = _clamp(message, offset, length)
        header = await store.read_content(message.content_id, offset, length)
        # RFC 9051 §6.4.5: no blank line for a message that has neither body nor one.
        whole_message_is_header = not section.part and facts.header_size >= message.size
        has_blank = header.endswith((b"\n\r\n", b"\n\n")) or header in (b"\r\n", b"\n")
        blank = has_blank or not whole_message_is_header
        subset = header_subset(
            header, section.fields, exclude=text == "HEADER.FIELDS.NOT", blank_line=blank
        )
        start, n = window(len(subset), partial)
        data = no_nul(subset[start : start + n])
        return SectionData(len(data), data)
    return await byte_range(store, message, offset, length, partial)


def _clamp(message: Message, offset: int, length: int) -> tuple[int, int]:
    # Never trust offsets beyond what is stored (stale or odd facts).
    offset = max(0, min(offset, message.size))
    return offset, max(0, min(length, message.size - offset))


async def byte_range(
    store: Store, message: Message, offset: int, length: int, partial: Partial | None
) -> SectionData:
    """Stored octets [offset, offset+length), then `<partial>` of that."""
    offset, length = _clamp(message, offset, length)
    start, n = window(length, partial)
    if n <= INLINE_MAX:
        data = await store.read_content(message.content_id, offset + start, n) if n else b""
        if len(data) != n:
            raise ValueError("stored content is shorter than its facts say")
        return SectionData(n, no_nul(data))
    stream = _nul_filtered(read_range(store, message, offset + start, n))
    return SectionData(n, stream=stream)


# ---- BINARY[section] -------------------------------------------------------------

# A plan is a list of segments, in order:
#   ("raw", start, end)              stored octets as they are
#   ("hdr", start, end)              a header block with its CTE field replaced
#   ("decode", start, end, cte, n)   a leaf body decoded, n octets once decoded
Segment = tuple[Any, ...]


def _plan_node(node: list[Any], include_header: bool, out: list[Segment]) -> bool:
    """Append the segments of `node`; whether anything was decoded."""
    cte: str = node[ENCODING]
    if cte not in KNOWN:
        raise UnknownCTE(cte)
    converted = cte in _CONVERTED
    if include_header and node[BODY_START] > node[START]:
        out.append(("hdr" if converted else "raw", node[START], node[BODY_START]))
    children = node[CHILDREN]
    if node[KIND] != LEAF:
        pos = node[BODY_START]
        for child in children:
            if child[START] > pos:
                out.append(("raw", pos, child[START]))
            converted = _plan_node(child, True, out) or converted
            pos = max(pos, child[END])
        if node[END] > pos:
            out.append(("raw", pos, node[END]))
        return converted
    if node[END] <= node[BODY_START]:
        return converted
    if converted:
        size = int(node[BINARY_SIZE])
        if size < 0:
            raise UnknownCTE(cte)
        out.append(("decode", node[BODY_START], node[END], cte, size))
    else:
        out.append(("raw", node[BODY_START], node[END]))
    return converted


def binary_plan(facts: MessageFacts, path: Sequence[int]) -> tuple[list[Segment], bool] | None:
    """The segments of BINARY[path] and whether any are decoded; None when the
    part does not exist. Raises UnknownCTE."""
    node = find_part(facts, path)
    if node is None:
        return None
    out: list[Segment] = []
    converted = _plan_node(node, not path, out)
    return out, converted


def rewrite_header(header: bytes) -> bytes:
    """A header block without its Content-Transfer-Encoding fields and with
    "Content-Transfer-Encoding: binary" before the blank line (Dovecot)."""
    end = len(header)
    if header.endswith(b"\n\r\n") or header == b"\r\n":
        end -= 2
    elif header.endswith(b"\n\n") or header == b"\n":
        end -= 1
    out = bytearray()
    for name, s, e in field_spans(header, 0, end):
        if name == b"content-transfer-encoding":
            continue
        out += header[s:e]
        if not out.endswith(b"\n"):
            out += b"\r\n"
    out += _CTE_BINARY
    out += header[end:] if end < len(header) else b"\r\n"
    return bytes(out)


def _render(span: bytes, base: int, segments: list[Segment]) -> bytes:
    out = bytearray()
    for seg in segments:
        piece = span[seg[1] - base : seg[2] - base]
        if seg[0] == "raw":
            out += piece
        elif seg[0] == "hdr":
            out += rewrite_header(piece)
        else:
            out += decode_transfer(piece, seg[3])
    return bytes(out)


class Base64Stream:
    """Incremental base64 decoding with exactly the result of
    `mailbag.message.headers.lenient_base64` on the whole input."""

    __slots__ = ("carry", "done")

    def __init__(self) -> None:
        self.carry = b""
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        if self.done:
            return b""
        eq = chunk.find(b"=")
        if eq >= 0:  # RFC 2045 §6.8: "=" ends the data
            chunk = chunk[:eq]
            self.done = True
        clean = self.carry + chunk.translate(None, _B64_DELETE)
        n = len(clean) // 4 * 4
        self.carry = clean[n:]
        return binascii.a2b_base64(clean[:n]) if n else b""

    def finish(self) -> bytes:
        clean = self.carry
        self.carry = b""
        if len(clean) % 4 == 1:  # a lone sextet cannot make an octet
            clean = clean[:-1]
        if not clean:
            return b""
        return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))


class QPStream:
    """Incremental quoted-printable decoding with exactly the result of
    `mailbag.message.decode.decode_qp` on the whole input: complete lines are
    decoded as they arrive (soft line breaks and trailing white space are
    line-local), the last partial line at the end."""

    __slots__ = ("carry",)

    def __init__(self) -> None:
        self.carry = b""

    def feed(self, chunk: bytes) -> bytes:
        buf = self.carry + chunk
        cut = buf.rfind(b"\n") + 1
        if cut == 0 and len(buf) > _QP_MAX_CARRY:
            cut = _qp_safe_cut(buf)
        if cut == 0:
            self.carry = buf
            return b""
        self.carry = buf[cut:]
        return decode_qp(buf[:cut])

    def finish(self) -> bytes:
        rest, self.carry = self.carry, b""
        return decode_qp(rest) if rest else b""


def _qp_safe_cut(buf: bytes) -> int:
    """A cut point in a very long line where decoding is not context dependent:
    not inside an "=XX" escape, not after white space or CR."""
    p = len(buf)
    while p > 3:
        if buf[p - 1 : p] not in (b" ", b"\t", b"\r", b"=") and b"=" not in buf[p - 2 : p]:
            return p
        p -= 1
    return 0


def _decoder(cte: str) -> Base64Stream | QPStream:
    return Base64Stream() if cte == "base64" else QPStream()


def _segment_size(seg: Segment, headers: dict[int, bytes]) -> int:
    if seg[0] == "raw":
        return int(seg[2] - seg[1])
    if seg[0] == "hdr":
        return len(headers[seg[1]])
    return int(seg[4])


async def _rewritten_headers(
    store: Store, message: Message, segments: list[Segment]
) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for seg in segments:
        if seg[0] == "hdr":
            raw = await store.read_content(message.content_id, seg[1], seg[2] - seg[1])
            out[seg[1]] = rewrite_header(raw)
    return out


async def _stream_segments(
    store: Store,
    message: Message,
    segments: list[Segment],
    headers: dict[int, bytes],
    start: int,
    length: int,
    chunk: int = CHUNK,
) -> AsyncIterator[bytes]:
    """The octets [start, start+length) of the concatenated segments."""
    pos = 0  # offset of the current segment in the output
    end = start + length
    for seg in segments:
        size = _segment_size(seg, headers)
        seg_start, seg_end = pos, pos + size
        pos = seg_end
        if seg_end <= start:
            continue
        if seg_start >= end:
            break
        lo = max(start, seg_start) - seg_start  # wanted range inside the segment
        hi = min(end, seg_end) - seg_start
        if seg[0] == "raw":
            async for piece in read_range(store, message, seg[1] + lo, hi - lo, chunk):
                yield piece
        elif seg[0] == "hdr":
            yield headers[seg[1]][lo:hi]
        else:
            async for piece in _decoded_window(store, message, seg, lo, hi, chunk):
                yield piece


async def _decoded_window(
    store: Store, message: Message, seg: Segment, lo: int, hi: int, chunk: int
) -> AsyncIterator[bytes]:
    """Decoded octets [lo, hi) of a "decode" segment."""
    dec = _decoder(seg[3])
    done = 0  # decoded octets produced so far
    finished = False
    async for piece in read_range(store, message, seg[1], seg[2] - seg[1], chunk):
        out = dec.feed(piece)
        a, done = done, done + len(out)
        if done > lo and a < hi:
            yield out[max(lo - a, 0) : hi - a]
        if done >= hi:
            finished = True
            break
    if not finished:
        out = dec.finish()
        a, done = done, done + len(out)
        if done > lo and a < hi:
            yield out[max(lo - a, 0) : hi - a]


async def _has_nul(store: Store, message: Message, segments: list[Segment]) -> bool:
    for seg in segments:
        if seg[0] != "raw":
            continue
        async for piece in read_range(store, message, seg[1], seg[2] - seg[1]):
            if b"\x00" in piece:
                return True
    return False


async def binary_section(
    store: Store,
    message: Message,
    facts: MessageFacts,
    path: Sequence[int],
    partial: Partial | None,
) -> SectionData:
    """BINARY[path]<partial>; raises UnknownCTE."""
    plan = binary_plan(facts, path)
    if plan is None:
        return SectionData(0, b"")
    segments, converted = plan
    if not segments:
        return SectionData(0, b"", binary=converted)
    lo, hi = segments[0][1], max(s[2] for s in segments)
    if hi - lo <= INLINE_MAX:
        span = await store.read_content(message.content_id, lo, hi - lo)
        data = _render(span, lo, segments)
        start, n = window(len(data), partial)
        data = data[start : start + n]
        return SectionData(n, data, binary=converted or b"\x00" in data)
    headers = await _rewritten_headers(store, message, segments)
    total = sum(_segment_size(s, headers) for s in segments)
    start, n = window(total, partial)
    binary = converted or await _has_nul(store, message, segments)
    stream = _stream_segments(store, message, segments, headers, start, n)
    return SectionData(n, stream=stream, binary=binary)


async def binary_size(
    store: Store, message: Message, facts: MessageFacts, path: Sequence[int]
) -> int:
    """BINARY.SIZE[path]: the size BINARY[path] sends; raises UnknownCTE."""
    plan = binary_plan(facts, path)
    if plan is None:
        return 0
    segments, _converted = plan
    if not segments:
        return 0
    lo, hi = segments[0][1], max(s[2] for s in segments)
    if hi - lo <= INLINE_MAX:
        span = await store.read_content(message.content_id, lo, hi - lo)
        return len(_render(span, lo, segments))
    headers = await _rewritten_headers(store, message, segments)
    return sum(_segment_size(s, headers) for s in segments)
