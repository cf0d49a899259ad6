"""Value types shared by every store backend.

Sequence numbers never appear here: backends speak UIDs and mod-sequences only
(DESIGN.md §1). Everything is immutable so it can be handed across threads and
sessions without copying.
"""

from __future__ import annotations

import datetime as dt
import re
from array import array
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NewType

AccountID = NewType("AccountID", int)
MailboxID = NewType("MailboxID", int)
UID = NewType("UID", int)
UIDValidity = NewType("UIDValidity", int)
ModSeq = NewType("ModSeq", int)
ContentID = NewType("ContentID", str)

# Hierarchy separator for mailbox names (issue 2: "Hierarchy separator `/`").
SEPARATOR = "/"
INBOX = "INBOX"

# System flags as they appear on the wire. `\Recent` is not stored: it is a
# per-session property computed by the selected view (RFC 3501 §2.3.2).
SEEN = "\\Seen"
ANSWERED = "\\Answered"
FLAGGED = "\\Flagged"
DELETED = "\\Deleted"
DRAFT = "\\Draft"
SYSTEM_FLAGS: tuple[str, ...] = (SEEN, ANSWERED, FLAGGED, DELETED, DRAFT)
# A system flag's bit in MessageIndex.flags (and the SQLite `flags` column).
FLAG_BIT: dict[str, int] = {flag: 1 << i for i, flag in enumerate(SYSTEM_FLAGS)}
_SYSTEM_BY_LOWER = {f.lower(): f for f in SYSTEM_FLAGS}


def normalize_flag(flag: str) -> str:
    """Return the canonical spelling of a flag.

    System flags are case-insensitive (RFC 9051 §2.3.2) and get their canonical
    case; keywords keep the case in which they were first given.
    """
    return _SYSTEM_BY_LOWER.get(flag.lower(), flag)


class SpecialUse(StrEnum):
    """RFC 6154 special-use attributes."""

    DRAFTS = "\\Drafts"
    SENT = "\\Sent"
    TRASH = "\\Trash"
    JUNK = "\\Junk"
    ARCHIVE = "\\Archive"
    ALL = "\\All"
    FLAGGED = "\\Flagged"


# Mailboxes every new account gets (issue 2), with their special use.
DEFAULT_MAILBOXES: tuple[tuple[str, SpecialUse | None], ...] = (
    (INBOX, None),
    ("Drafts", SpecialUse.DRAFTS),
    ("Sent", SpecialUse.SENT),
    ("Trash", SpecialUse.TRASH),
    ("Junk", SpecialUse.JUNK),
    ("Archive", SpecialUse.ARCHIVE),
)


def canonical_mailbox_name(name: str) -> str:
    """INBOX is case-insensitive (RFC 9051 §5.1), including as a hierarchy prefix."""
    head, sep, tail = name.partition(SEPARATOR)
    if head.upper() == INBOX:
        return INBOX + sep + tail
    return name


@dataclass(slots=True, frozen=True)
class Account:
    id: AccountID
    address: str  # always `local@domain`, lower-cased domain
    created: dt.datetime


@dataclass(slots=True, frozen=True)
class Mailbox:
    id: MailboxID
    account_id: AccountID
    name: str  # full hierarchical name, `/`-separated, UTF-8
    uidvalidity: UIDValidity
    uidnext: UID
    highestmodseq: ModSeq
    subscribed: bool
    special_use: SpecialUse | None
    # First UID not yet seen by any rev1 session; used for \Recent (RFC 3501 §2.3.2).
    first_recent_uid: UID = UID(1)


@dataclass(slots=True, frozen=True)
class MailboxStatus:
    """Counts for STATUS / SELECT, computed by the backend in one query."""

    messages: int
    unseen: int
    deleted: int
    size: int
    recent: int
    uidnext: UID
    uidvalidity: UIDValidity
    highestmodseq: ModSeq
    first_unseen_uid: UID | None


@dataclass(slots=True, frozen=True)
class ResponseForms:
    """The IMAP ENVELOPE, BODY and BODYSTRUCTURE of one content, serialised at
    delivery (ASCII, the same for every client; see
    `mailbag.proto.imap.structures`). FETCH copies these instead of walking
    the facts trees; contents without them are serialised per FETCH."""

    envelope: bytes
    body: bytes
    bodystructure: bytes


@dataclass(slots=True, frozen=True)
class MessageFacts:
    """What is parsed once at delivery and served from the store afterwards.

    `envelope`, `bodystructure` and `parts` are JSON-compatible nested lists
    produced by :mod:`mailbag.message`; the store keeps them opaque. `header_fields` holds the
    decoded values of the headers SEARCH/SORT/THREAD use, keyed by lower-case name.
    """

    envelope: Any = None
    bodystructure: Any = None
    header_size: int = 0  # octets of the header block including the empty line
    body_lines: int = 0
    header_fields: dict[str, str] = field(default_factory=dict)
    sent_date: dt.datetime | None = None
    # The MIME part tree with byte offsets, for BODY[section] and BINARY[section]
    # (see mailbag.message.sections); JSON-compatible like `bodystructure`.
    parts: Any = None
    # Derived from envelope/bodystructure; stores keep it apart from the
    # other facts so that FETCH can read it alone (`get_forms`).
    forms: ResponseForms | None = None


@dataclass(slots=True, frozen=True)
class Message:
    """One message in one mailbox (metadata only; bytes come from `open_content`)."""

    mailbox_id: MailboxID
    uid: UID
    modseq: ModSeq
    flags: frozenset[str]
    internal_date: dt.datetime  # timezone-aware
    size: int  # octets of the stored bytes (CRLF line ends)
    content_id: ContentID


# Columns MessageStore.message_index can return besides the UIDs.
INDEX_COLUMNS = frozenset({"flags", "keywords", "days", "sizes", "modseqs", "dates", "zones"})


@dataclass(slots=True, frozen=True)
class MessageIndex:
    """Metadata of a whole mailbox as columns, entry i for the i-th UID
    (ascending): what SEARCH evaluates flag, date and size keys over without
    one object per message. Columns not asked for are None."""

    uids: array[int]
    flags: array[int] | None = None  # system flags as FLAG_BIT bits
    keywords: dict[int, frozenset[str]] | None = None  # UID -> keywords, for those with any
    days: array[int] | None = None  # date.toordinal() of the internal date in its own zone
    sizes: array[int] | None = None
    modseqs: array[int] | None = None
    # The internal date as unix seconds and its zone's UTC offset in seconds
    # (FETCH INTERNALDATE of a whole mailbox without a datetime per message).
    dates: array[int] | None = None
    zones: array[int] | None = None


_BARE_LF = re.compile(rb"(?<!\r)\n")
# The same, "\n" first: the engine skips to each LF at C speed (one search of
# a 16 KB message ~20 us, against ~33 us for counting LF and CRLF).
_BARE_LF_AT = re.compile(rb"\n(?<!\r\n)")


def crlf_line_ends(data: bytes) -> bytes:
    """`data` with every bare LF made CRLF (bare CRs stay): the line ends
    stored messages have (AppendRequest.data) whatever the client sent."""
    if _BARE_LF_AT.search(data) is None:
        return data  # well-formed mail: no substitution pass
    return _BARE_LF.sub(b"\r\n", data)


@dataclass(slots=True, frozen=True)
class AppendRequest:
    """One message to add to a mailbox (APPEND, delivery, import, COPY of bytes)."""

    data: bytes  # the full message, CRLF line ends
    flags: frozenset[str] = frozenset()
    internal_date: dt.datetime | None = None  # default: now
    facts: MessageFacts | None = None  # computed by the store when missing


@dataclass(slots=True, frozen=True)
class AppendResult:
    mailbox_id: MailboxID
    uidvalidity: UIDValidity
    uids: tuple[UID, ...]


@dataclass(slots=True, frozen=True)
class CopyResult:
    """COPYUID/MOVE data (RFC 4315 §3): source UIDs and the UIDs they got."""

    uidvalidity: UIDValidity
    source_uids: tuple[UID, ...]
    dest_uids: tuple[UID, ...]


class FlagOp(StrEnum):
    REPLACE = "replace"
    ADD = "add"
    REMOVE = "remove"


@dataclass(slots=True, frozen=True)
class FlagUpdate:
    uid: UID
    modseq: ModSeq
    flags: frozenset[str]
