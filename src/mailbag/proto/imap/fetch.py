"""FETCH data items (RFC 9051 §6.4.5, RFC 3501 §6.4.5, RFC 3516, RFC 7162 §3.1.4)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from ...errors import ProtocolError
from .wire import ATOM_RE, client_string


class FetchAttributeError(ProtocolError, ValueError):
    """An impossible section or partial specification."""


class Attr(StrEnum):
    """The FETCH items that take no section."""

    ENVELOPE = "ENVELOPE"
    FLAGS = "FLAGS"
    INTERNALDATE = "INTERNALDATE"
    RFC822 = "RFC822"  # rev1 only: BODY[], sets \Seen
    RFC822_HEADER = "RFC822.HEADER"  # rev1 only: BODY.PEEK[HEADER]
    RFC822_SIZE = "RFC822.SIZE"
    RFC822_TEXT = "RFC822.TEXT"  # rev1 only: BODY[TEXT], sets \Seen
    BODY = "BODY"  # non-extensible BODYSTRUCTURE
    BODYSTRUCTURE = "BODYSTRUCTURE"
    UID = "UID"
    MODSEQ = "MODSEQ"  # RFC 7162 §3.1.4.1


SectionText = Literal["HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"]
SECTION_TEXTS: Final[tuple[SectionText, ...]] = (
    "HEADER",
    "HEADER.FIELDS",
    "HEADER.FIELDS.NOT",
    "TEXT",
    "MIME",
)


@dataclass(slots=True, frozen=True)
class Section:
    """`section-spec`: part numbers, then HEADER / HEADER.FIELDS[.NOT] (…) / TEXT / MIME.

    `Section()` is the whole message (`BODY[]`).
    """

    part: tuple[int, ...] = ()
    text: SectionText | None = None
    fields: tuple[str, ...] = ()  # header names for HEADER.FIELDS[.NOT], as given

    def __post_init__(self) -> None:
        if any(p < 1 for p in self.part):
            raise FetchAttributeError("section part numbers start at 1")
        if self.text is not None and self.text not in SECTION_TEXTS:
            raise FetchAttributeError(f"unknown section text {self.text!r}")
        if (self.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT")) != bool(self.fields):
            raise FetchAttributeError("HEADER.FIELDS takes a non-empty list of field names")
        # RFC 9051 §9 section-text: MIME only follows a part number.
        if self.text == "MIME" and not self.part:
            raise FetchAttributeError("MIME needs a part number")

    def spec(self) -> str:
        """The text between the brackets."""
        parts = ".".join(str(p) for p in self.part)
        if self.text is None:
            return parts
        text: str = self.text
        if self.fields:
            # Atoms where possible; anything else quoted, so a "]" in a name
            # cannot end the section early for a client reading the response.
            names = b" ".join(_field(f.encode("utf-8")) for f in self.fields)
            text = f"{text} ({names.decode('utf-8')})"
        return f"{parts}.{text}" if parts else text


def _field(name: bytes) -> bytes:
    return name if ATOM_RE.match(name) else client_string(name)


@dataclass(slots=True, frozen=True)
class Partial:
    """`<offset.length>`: 0-based first octet and octet count (RFC 9051 §6.4.5)."""

    offset: int
    length: int

    def __post_init__(self) -> None:
        if self.offset < 0 or self.length < 1:
            raise FetchAttributeError("partial needs offset >= 0 and length >= 1")


@dataclass(slots=True, frozen=True)
class BodySection:
    """BODY[section]<partial> and BODY.PEEK[…]."""

    section: Section = Section()
    partial: Partial | None = None
    peek: bool = False


@dataclass(slots=True, frozen=True)
class BinarySection:
    """RFC 3516 BINARY[part]<partial> and BINARY.PEEK[…]: content-transfer-decoded."""

    part: tuple[int, ...] = ()
    partial: Partial | None = None
    peek: bool = False


@dataclass(slots=True, frozen=True)
class BinarySize:
    """RFC 3516 BINARY.SIZE[part]."""

    part: tuple[int, ...] = ()


FetchAttribute = Attr | BodySection | BinarySection | BinarySize

# RFC 9051 §6.4.5 macros.
MACROS: Final[dict[str, tuple[FetchAttribute, ...]]] = {
    "ALL": (Attr.FLAGS, Attr.INTERNALDATE, Attr.RFC822_SIZE, Attr.ENVELOPE),
    "FAST": (Attr.FLAGS, Attr.INTERNALDATE, Attr.RFC822_SIZE),
    "FULL": (Attr.FLAGS, Attr.INTERNALDATE, Attr.RFC822_SIZE, Attr.ENVELOPE, Attr.BODY),
}


def _part(part: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in part)


def attribute_text(att: FetchAttribute) -> str:
    """The request form, as a client writes it."""
    match att:
        case Attr():
            return att.value
        case BodySection(section=section, partial=partial, peek=peek):
            tail = f"<{partial.offset}.{partial.length}>" if partial else ""
            return f"BODY{'.PEEK' if peek else ''}[{section.spec()}]{tail}"
        case BinarySection(part=part, partial=partial, peek=peek):
            tail = f"<{partial.offset}.{partial.length}>" if partial else ""
            return f"BINARY{'.PEEK' if peek else ''}[{_part(part)}]{tail}"
        case BinarySize(part=part):
            return f"BINARY.SIZE[{_part(part)}]"
    raise FetchAttributeError(f"not a fetch attribute: {att!r}")


def attributes_text(atts: tuple[FetchAttribute, ...]) -> str:
    if len(atts) == 1:
        return attribute_text(atts[0])
    return "(" + " ".join(attribute_text(a) for a in atts) + ")"


def response_name(att: FetchAttribute) -> str:
    """The item name in the FETCH response.

    RFC 9051 §7.5.2: BODY.PEEK answers as BODY, and a partial fetch names only
    the origin octet: `BODY[]<0>`.
    """
    match att:
        case Attr():
            return att.value
        case BodySection(section=section, partial=partial):
            tail = f"<{partial.offset}>" if partial else ""
            return f"BODY[{section.spec()}]{tail}"
        case BinarySection(part=part, partial=partial):
            tail = f"<{partial.offset}>" if partial else ""
            return f"BINARY[{_part(part)}]{tail}"
        case BinarySize(part=part):
            return f"BINARY.SIZE[{_part(part)}]"
    raise FetchAttributeError(f"not a fetch attribute: {att!r}")


def sets_seen(att: FetchAttribute) -> bool:
    """Whether fetching this item sets \\Seen (RFC 9051 §6.4.5, RFC 3501 §6.4.5)."""
    match att:
        case Attr.RFC822 | Attr.RFC822_TEXT:
            return True
        case BodySection(peek=peek) | BinarySection(peek=peek):
            return not peek
    return False
