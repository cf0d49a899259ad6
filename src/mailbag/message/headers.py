"""Header block splitting, field parsing and decoding helpers.

Two kinds of header values leave this module:

* *raw* values for ENVELOPE and BODYSTRUCTURE, which RFC 9051 §7.5.2 sends
  undecoded (encoded-words stay as they are). They are `str` decoded from the
  bytes as UTF-8 with ``surrogateescape``: a byte that is not UTF-8 becomes a
  lone surrogate U+DC80..U+DCFF, and :func:`wire` gives the exact bytes back.
* *decoded* values (RFC 2047 encoded-words, RFC 6532 UTF-8) for SEARCH and
  the full-text index: :func:`decode_value`, :func:`header_fields`.
"""

from __future__ import annotations

import binascii
import re

# Headers SEARCH/SORT/THREAD use most; their decoded values are kept as facts.
INDEXED_HEADERS = (
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "sender",
    "reply-to",
)
_MAX_VALUE = 4096

_BLANK_LINE = re.compile(rb"\n\r?\n")
# One header field: the name up to ":" (group 1), the colon (2), the white
# space after it (3), and the rest including continuation lines (lines that
# start with SP or HTAB) (4), then the line break.
_FIELD = re.compile(rb"([^:\n]*)(:?)([ \t]*)([^\n]*(?:\n[ \t][^\n]*)*)\n?")


def split_header(data: bytes) -> tuple[bytes, int]:
    """Return (header block including its last line end, offset of the body).

    The header ends at the first empty line (CRLF CRLF, or LF LF in sloppy
    mail); the offset points after it. A message with no empty line is all
    header (RFC 5322 §3.5 allows a message without a body).
    """
    end, body = header_end(data, 0)
    return data[:end], body


def header_end(data: bytes, start: int) -> tuple[int, int]:
    """(end of the last header line incl. its LF, start of the body) for the
    header block that begins at `start`; both are len(data) without a blank line."""
    if data.startswith(b"\n", start):
        return start, start + 1
    if data.startswith(b"\r\n", start):
        return start, start + 2
    m = _BLANK_LINE.search(data, start)
    if m is None:
        return len(data), len(data)
    return m.start() + 1, m.end()


_FIELD_BREAK = re.compile(rb"\n(?![ \t])")


def parse_fields(data: bytes, start: int, end: int) -> list[tuple[bytes, bytes]]:
    """(lower-case name, value) of every field in data[start:end], in order.

    The value follows Dovecot's header parser: white space after the colon is
    skipped (only one byte of it when the first line is all white space), the
    folding line breaks stay in, the final line break does not. A line without
    a colon is kept with its whole text as the name and an empty value.
    """
    block = data[start:end]
    last_has_newline = block.endswith(b"\n")
    if last_has_newline:
        block = block[:-1]
    if not block:
        return []
    out: list[tuple[bytes, bytes]] = []
    append = out.append
    fields = _FIELD_BREAK.split(block)
    last = len(fields) - 1
    for i, f in enumerate(fields):
        if f[-1:] == b"\r" and (i < last or last_has_newline):
            f = f[:-1]  # the CR of the CRLF that ends the field
        name, colon, rest = f.partition(b":")
        if not colon or b"\n" in name:
            append((f.lower(), b""))  # no colon on the first line
            continue
        value = rest.lstrip(b" \t")
        if not value or value[0] in b"\r\n":
            # the first line is all white space: Dovecot skips one byte only
            value = rest[1:] if rest[:1] in (b" ", b"\t") else rest
        append((name.rstrip(b" \t").lower(), value))
    return out


def field_spans(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(lower-case name, start, end) of every field, end after its line break;
    the name is empty for a line without a colon."""
    out: list[tuple[bytes, int, int]] = []
    for m in _FIELD.finditer(data, start, end):
        if m.end() == m.start():
            break
        name = m.group(1).rstrip(b" \t").lower() if m.group(2) else b""
        out.append((name, m.start(), m.end()))
    return out


def text(value: bytes) -> str:
    """Raw header bytes as str (surrogateescape; NUL becomes U+FFFD like Dovecot)."""
    s = value.decode("utf-8", "surrogateescape")
    return s.replace("\x00", "\ufffd") if "\x00" in s else s


def wire(value: str) -> bytes:
    """The bytes a value from :func:`text` stands for (the inverse of text())."""
    return value.encode("utf-8", "surrogateescape")


_NEWLINE_NOT_BEFORE_WSP = re.compile(rb"[\r\n](?![ \t\r\n]|$)")


def nolf(value: bytes) -> bytes:
    """Drop CR and LF; a line break not followed by white space becomes a space.

    This is how Dovecot writes the unstructured ENVELOPE/BODYSTRUCTURE
    strings (imap_append_nstring_nolf): folding becomes plain unfolding.
    """
    if b"\r" not in value and b"\n" not in value:
        return value
    return _NEWLINE_NOT_BEFORE_WSP.sub(b" ", value).replace(b"\r", b"").replace(b"\n", b"")


_LWSP_RUN = re.compile(rb"[ \t\r\n]+")


def for_humans(value: bytes) -> bytes:
    """Collapse white space runs into one space and trim both ends.

    Dovecot writes the ENVELOPE subject this way
    (imap_append_string_for_humans).
    """
    return _LWSP_RUN.sub(b" ", value).strip(b" ")


def iter_headers(header: bytes) -> list[tuple[str, bytes]]:
    """(lower-case name, raw unfolded value) pairs in order."""
    out: list[tuple[str, bytes]] = []
    for name, value in parse_fields(header, 0, len(header)):
        if not name or name != name.strip() or b" " in name:
            continue
        out.append((name.decode("ascii", "replace"), re.sub(rb"\r?\n", b"", value).strip()))
    return out


# --- RFC 2047 --------------------------------------------------------------

_ENCODED_WORD = re.compile(rb"=\?([^?\s]*)\?([bBqQ])\?([^?]*)\?=")
_WSP_ONLY = re.compile(rb"[ \t\r\n]*")
_CHARSET_NAME = re.compile(r"[a-z0-9][a-z0-9._:+-]{0,39}")
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_DELETE = bytes(b for b in range(256) if b not in _B64_ALPHABET)
_Q_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")


def lenient_base64(data: bytes) -> bytes:
    """Decode base64 the RFC 2045 §6.8 way: bytes outside the alphabet are
    ignored and the first "=" ends the data; never raises."""
    eq = data.find(b"=")
    clean = (data if eq < 0 else data[:eq]).translate(None, _B64_DELETE)
    if len(clean) % 4 == 1:  # a lone sextet cannot make an octet
        clean = clean[:-1]
    try:
        return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))
    except binascii.Error:  # pragma: no cover - the input is clean by now
        return b""


def _q_decode(data: bytes) -> bytes:
    return _Q_HEX.sub(lambda m: bytes((int(m.group(1), 16),)), data.replace(b"_", b" "))


def normalize_charset(charset: str | bytes | None) -> str | None:
    """A charset name safe to give to codecs, or None when there is none."""
    if isinstance(charset, bytes):
        charset = charset.decode("ascii", "replace")
    if not charset:
        return None
    name = charset.strip().strip('"').lower()
    star = name.find("*")  # RFC 2231 §5: charset*language
    if star >= 0:
        name = name[:star]
    return name if _CHARSET_NAME.fullmatch(name) else None


def to_unicode(data: bytes, charset: str | bytes | None) -> str:
    """Decode text in `charset`; unknown or missing charsets are taken as
    UTF-8 (us-ascii mail is UTF-8 too) with U+FFFD for what does not decode."""
    name = normalize_charset(charset)
    if name is not None and name not in ("us-ascii", "ascii", "utf-8", "utf8"):
        try:
            return data.decode(name, "replace")
        except (LookupError, ValueError):
            pass
    return data.decode("utf-8", "replace")


def decode_value(raw: bytes) -> str:
    """Decode RFC 2047 encoded-words; other bytes are taken as UTF-8 (RFC 6532).

    White space between two encoded-words is dropped (RFC 2047 §6.2), adjacent
    words in the same charset are decoded together so a multi-byte character
    split across them survives, and broken words (bad base64, unknown charset)
    decode as well as they can instead of failing.
    """
    raw = raw.replace(b"\r\n", b"").replace(b"\n", b"")
    if b"=?" not in raw:
        return raw.decode("utf-8", "replace")
    out: list[str] = []
    pending = bytearray()
    pending_charset: bytes | None = None
    pos = 0
    for m in _ENCODED_WORD.finditer(raw):
        between = raw[pos : m.start()]
        if pending_charset is None or _WSP_ONLY.fullmatch(between) is None:
            if pending_charset is not None:
                out.append(to_unicode(bytes(pending), pending_charset))
                pending.clear()
                pending_charset = None
            out.append(between.decode("utf-8", "replace"))
        charset, enc, payload = m.group(1, 2, 3)
        word = lenient_base64(payload) if enc in b"bB" else _q_decode(payload)
        if pending_charset is not None and charset.lower() != pending_charset.lower():
            out.append(to_unicode(bytes(pending), pending_charset))
            pending.clear()
        pending_charset = charset
        pending += word
        pos = m.end()
    if pending_charset is not None:
        out.append(to_unicode(bytes(pending), pending_charset))
    out.append(raw[pos:].decode("utf-8", "replace"))
    return "".join(out)


def header_fields(header: bytes) -> dict[str, str]:
    """Decoded values of INDEXED_HEADERS (first occurrence) for SEARCH/SORT."""
    return indexed_fields(parse_fields(header, 0, len(header)))


_INDEXED = frozenset(h.encode() for h in INDEXED_HEADERS)


def indexed_fields(fields: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """header_fields() from already parsed fields."""
    out: dict[str, str] = {}
    for name, value in fields:
        if name in _INDEXED:
            key = name.decode()
            if key not in out:
                out[key] = decode_value(value[: 4 * _MAX_VALUE].strip())[:_MAX_VALUE]
    return out
