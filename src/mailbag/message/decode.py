"""Content-Transfer-Encoding decoding for FETCH BINARY (RFC 3516, RFC 9051 §6.4.5).

:func:`decode_transfer` undoes base64 and quoted-printable and passes the
identity encodings (7bit, 8bit, binary, or none) through. Any other encoding
raises :class:`UnknownCTE`, which the IMAP layer answers with
`NO [UNKNOWN-CTE]` (RFC 3516 §4.3).

Decoding is lenient and never fails on bad data, as RFC 2045 asks of
decoders: base64 ignores bytes outside its alphabet and stops at the first
"=" (§6.8); quoted-printable keeps an "=" that does not start a valid escape,
and drops white space that transport added at line ends (§6.7). Dovecot
answers `NO [PARSE]` for such data instead; we prefer to hand the client what
can be decoded.
"""

from __future__ import annotations

import binascii
import re

from .headers import _B64_DELETE, lenient_base64

IDENTITY = frozenset({"", "7bit", "8bit", "binary"})
KNOWN = IDENTITY | {"base64", "quoted-printable"}


class UnknownCTE(Exception):
    """The part's Content-Transfer-Encoding is one we cannot decode."""

    def __init__(self, encoding: str) -> None:
        super().__init__(f"unknown Content-Transfer-Encoding {encoding!r}")
        self.encoding = encoding


_TRAILING_WSP = re.compile(rb"[ \t]+(?=\r?\n|\Z)")


def decode_qp(data: bytes) -> bytes:
    """Quoted-printable (RFC 2045 §6.7): "=XX" escapes (either case), soft
    line breaks; invalid escapes are kept as they are."""
    if b" \r" in data or b" \n" in data or b"\t\r" in data or b"\t\n" in data:
        data = _TRAILING_WSP.sub(b"", data)
    return binascii.a2b_qp(data.rstrip(b" \t"))


def normalize_cte(encoding: str | bytes | None) -> str:
    """Lower-case encoding name; "" for none."""
    if encoding is None:
        return ""
    if isinstance(encoding, bytes):
        encoding = encoding.decode("ascii", "replace")
    return encoding.strip().lower()


def decode_transfer(data: bytes, encoding: str | bytes | None) -> bytes:
    """Undo the transfer encoding of a leaf part's body."""
    cte = normalize_cte(encoding)
    if cte in IDENTITY:
        return data
    if cte == "base64":
        return lenient_base64(data)
    if cte == "quoted-printable":
        return decode_qp(data)
    raise UnknownCTE(cte)


def decoded_size(data: bytes, encoding: str | bytes | None) -> int:
    """len(decode_transfer(data, encoding)), cheaper for base64."""
    cte = normalize_cte(encoding)
    if cte in IDENTITY:
        return len(data)
    if cte == "base64":
        # as lenient_base64() decodes, without building the bytes
        eq = data.find(b"=")
        n = len((data if eq < 0 else data[:eq]).translate(None, _B64_DELETE))
        return n // 4 * 3 + (0, 0, 1, 2)[n % 4]
    return len(decode_transfer(data, cte))
