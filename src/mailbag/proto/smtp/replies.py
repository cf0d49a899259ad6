"""SMTP/LMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 2034)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class Reply:
    """One reply; `text` may hold several lines separated by "\\n".

    `enhanced` is empty for the greeting, the HELO/EHLO/LHLO answer and 354,
    which carry no enhanced status code (RFC 2034 §3 (4), §4).
    """

    code: int
    enhanced: str
    text: str

    @property
    def is_error(self) -> bool:
        return self.code >= 400

    def lines(self) -> list[str]:
        # A reply must never let a value (an address, a HELO name) inject an
        # extra reply line, so CR and LF only ever come from our own "\n" splits.
        return [part.replace("\r", "") for part in self.text.split("\n")] or [""]

    def to_bytes(self) -> bytes:
        lines = self.lines()
        prefix = f"{self.enhanced} " if self.enhanced else ""
        out = []
        for i, line in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            # RFC 2034 §4: the same status code starts every line of a multi-line reply.
            out.append(f"{self.code}{sep}{prefix}{line}".rstrip(" ") + "\r\n")
        return "".join(out).encode("utf-8")

    def __str__(self) -> str:
        return self.to_bytes().decode("utf-8", "replace").rstrip("\r\n")
