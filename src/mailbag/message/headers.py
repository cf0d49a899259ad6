"""Header block splitting and decoding helpers."""

from __future__ import annotations

import email.header
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


def split_header(data: bytes) -> tuple[bytes, int]:
    """Return (header block including its last line end, offset of the body).

    The header ends at the first empty line (CRLF CRLF, or LF LF in sloppy
    mail); the offset points after it. A message with no empty line is all
    header (RFC 5322 §3.5 allows a message without a body).
    """
    for blank in (b"\r\n", b"\n"):
        if data.startswith(blank):
            return b"", len(blank)
    m = re.search(rb"\n\r?\n", data)
    if m is None:
        return data, len(data)
    return data[: m.start() + 1], m.end()


def iter_headers(header: bytes) -> list[tuple[str, bytes]]:
    """(lower-case name, raw unfolded value) pairs in order."""
    out: list[tuple[str, bytes]] = []
    for raw in re.split(rb"\r?\n(?![ \t])", header):
        name, colon, value = raw.partition(b":")
        if not colon or not name or (b" " in name.strip() and name.strip() != name):
            continue
        out.append(
            (name.strip().decode("ascii", "replace").lower(), re.sub(rb"\r?\n", b"", value).strip())
        )
    return out


def decode_value(raw: bytes) -> str:
    """Decode RFC 2047 words; 8-bit bytes are taken as UTF-8 (RFC 6532)."""
    text = raw.decode("utf-8", "replace")
    if "=?" not in text:
        return text
    try:
        parts = email.header.decode_header(text)
    except Exception:
        return text
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            try:
                out.append(chunk.decode(charset or "ascii", "replace"))
            except LookupError:
                out.append(chunk.decode("utf-8", "replace"))
        else:
            out.append(chunk)
    return "".join(out)


def header_fields(header: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in iter_headers(header):
        if name in INDEXED_HEADERS and name not in fields:
            fields[name] = decode_value(value)[:_MAX_VALUE]
    return fields
