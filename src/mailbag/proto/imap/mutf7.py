"""Modified UTF-7 for IMAP4rev1 mailbox names (RFC 3501 §5.1.3).

IMAP4rev2 and UTF8=ACCEPT sessions use raw UTF-8 instead; this codec is for
clients that did not enable either. The decoder is strict: a name has exactly
one valid spelling, so anything `encode` would not have produced is rejected
(a server that accepted two spellings of one name could create look-alike
mailboxes).
"""

from __future__ import annotations

import base64
import binascii
import re

from ...errors import ProtocolError


class MUTF7Error(ProtocolError, ValueError):
    """Not a valid modified UTF-7 string."""


# RFC 3501 §5.1.3: modified BASE64 uses "," instead of "/".
_B64_CHARS = re.compile(r"[A-Za-z0-9+,]*\Z")


def _is_direct(ch: str) -> bool:
    # RFC 3501 §5.1.3: printable US-ASCII (0x20-0x7E) represents itself
    # ("&" is escaped as "&-"); everything else is base64-encoded UTF-16.
    return " " <= ch <= "~"


def encode(name: str) -> str:
    """Encode a Unicode mailbox name as modified UTF-7 (pure ASCII)."""
    if "&" not in name and name.isascii() and name.isprintable():
        return name
    out: list[str] = []
    i = 0
    n = len(name)
    while i < n:
        ch = name[i]
        if _is_direct(ch):
            out.append("&-" if ch == "&" else ch)
            i += 1
            continue
        j = i + 1
        while j < n and not _is_direct(name[j]):
            j += 1
        try:
            raw = name[i:j].encode("utf-16-be")
        except UnicodeEncodeError:
            raise MUTF7Error("name contains a lone surrogate") from None
        b64 = base64.b64encode(raw).rstrip(b"=").replace(b"/", b",").decode("ascii")
        out.append(f"&{b64}-")
        i = j
    return "".join(out)


def decode(data: str | bytes) -> str:
    """Decode a modified UTF-7 mailbox name, rejecting every non-canonical form."""
    if isinstance(data, bytes):
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise MUTF7Error("8-bit byte in a modified UTF-7 name") from None
    else:
        text = data
    if "&" not in text and text.isascii() and text.isprintable():
        # Printable ASCII without "&" stands for itself (nearly every name a
        # client sends: APPEND to INBOX on every message).
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    after_shift = False
    while i < n:
        ch = text[i]
        if not _is_direct(ch):
            raise MUTF7Error(f"character {ch!r} must be base64-encoded")
        if ch != "&":
            out.append(ch)
            after_shift = False
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise MUTF7Error('unterminated "&" sequence')
        b64 = text[i + 1 : end]
        i = end + 1
        if not b64:
            out.append("&")
            after_shift = False
            continue
        if after_shift:
            # The encoder merges runs of non-ASCII text into one sequence.
            raise MUTF7Error("adjacent base64 sequences must be merged")
        if not _B64_CHARS.match(b64):
            raise MUTF7Error("invalid character in base64 sequence")
        nbytes, rest = divmod(len(b64) * 6, 8)
        if rest >= 6 or nbytes % 2:
            raise MUTF7Error("base64 sequence is not a whole number of UTF-16 units")
        padded = b64.replace(",", "/") + "=" * (-len(b64) % 4)
        try:
            raw = base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError):
            raise MUTF7Error("invalid base64 sequence") from None
        if base64.b64encode(raw).rstrip(b"=").decode("ascii") != b64.replace(",", "/"):
            raise MUTF7Error("non-zero padding bits in base64 sequence")
        try:
            chunk = raw.decode("utf-16-be")
        except UnicodeDecodeError:
            raise MUTF7Error("invalid UTF-16 (unpaired surrogate)") from None
        if any(_is_direct(c) for c in chunk):
            # RFC 3501 §5.1.3: base64 MUST NOT encode printable US-ASCII.
            raise MUTF7Error("printable ASCII must not be base64-encoded")
        out.append(chunk)
        after_shift = True
    result = "".join(out)
    if encode(result) != text:  # belt and braces: one spelling per name
        raise MUTF7Error("non-canonical modified UTF-7")
    return result
