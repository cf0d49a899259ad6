"""SEARCH criteria as a typed tree (RFC 9051 §6.4.4, RFC 3501 §6.4.4, RFC 7162 §3.1.5).

The parser (grammar.py) builds these; the session evaluates them. Each node
also serialises back to the client form, which tests use for round trips and
a test client can use to send searches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal

from ...errors import ProtocolError
from .seqset import SeqSet
from .wire import ATOM_RE, client_astring, client_string, format_date


class SearchKeyError(ProtocolError, ValueError):
    """A search tree that cannot be written in IMAP syntax."""


@dataclass(slots=True, frozen=True)
class AllKey:
    pass


@dataclass(slots=True, frozen=True)
class FlagKey:
    """ANSWERED/UNANSWERED … KEYWORD/UNKEYWORD; RECENT and OLD use `\\Recent`."""

    flag: str  # canonical system flag (`\\Seen`) or a keyword as given
    present: bool = True


@dataclass(slots=True, frozen=True)
class NewKey:
    """RFC 3501 NEW: recent and not seen."""


StringField = Literal["BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"]
STRING_FIELDS: Final[tuple[StringField, ...]] = (
    "BCC",
    "BODY",
    "CC",
    "FROM",
    "SUBJECT",
    "TEXT",
    "TO",
)


@dataclass(slots=True, frozen=True)
class StringKey:
    field: StringField
    value: str


@dataclass(slots=True, frozen=True)
class HeaderKey:
    name: str
    value: str


DateField = Literal["INTERNAL", "SENT"]
DateRelation = Literal["BEFORE", "ON", "SINCE"]


@dataclass(slots=True, frozen=True)
class DateKey:
    """BEFORE/ON/SINCE compare the internal date, SENT* the Date: header (dates only)."""

    field: DateField
    relation: DateRelation
    date: dt.date


@dataclass(slots=True, frozen=True)
class SizeKey:
    larger: bool  # LARGER if True, SMALLER if False
    size: int


@dataclass(slots=True, frozen=True)
class UIDKey:
    uids: SeqSet


@dataclass(slots=True, frozen=True)
class SeqKey:
    seqs: SeqSet


@dataclass(slots=True, frozen=True)
class ModSeqKey:
    """RFC 7162 §3.1.5: MODSEQ ["/flags/<flag>" priv|shared|all] <modseq>."""

    modseq: int
    entry: str | None = None  # e.g. "/flags/\\seen"
    entry_type: Literal["priv", "shared", "all"] | None = None


@dataclass(slots=True, frozen=True)
class NotKey:
    key: SearchKey


@dataclass(slots=True, frozen=True)
class OrKey:
    left: SearchKey
    right: SearchKey


@dataclass(slots=True, frozen=True)
class AndKey:
    """A parenthesised group, or the top-level list of keys (all must match)."""

    keys: tuple[SearchKey, ...]


SearchKey = (
    AllKey
    | FlagKey
    | NewKey
    | StringKey
    | HeaderKey
    | DateKey
    | SizeKey
    | UIDKey
    | SeqKey
    | ModSeqKey
    | NotKey
    | OrKey
    | AndKey
)


def leaves(key: SearchKey) -> Iterator[SearchKey]:
    """The keys of the tree that are not NOT/OR/AND, in the order written
    (what a question about a whole criteria list walks)."""
    match key:
        case NotKey(key=inner):
            yield from leaves(inner)
        case OrKey(left=left, right=right):
            yield from leaves(left)
            yield from leaves(right)
        case AndKey(keys=keys):
            for k in keys:
                yield from leaves(k)
        case _:
            yield key


# keyword → (flag, present) for the flag keys without an argument.
FLAG_KEYS: Final[dict[str, tuple[str, bool]]] = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "RECENT": ("\\Recent", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
    "OLD": ("\\Recent", False),
}
_FLAG_KEY_NAMES: Final = {v: k for k, v in FLAG_KEYS.items()}


def key_bytes(key: SearchKey, *, top: bool = False) -> bytes:
    """The client form of one key; `top` writes an AndKey without parentheses."""
    match key:
        case AllKey():
            return b"ALL"
        case NewKey():
            return b"NEW"
        case FlagKey(flag=flag, present=present):
            name = _FLAG_KEY_NAMES.get((flag, present))
            if name is not None:
                return name.encode("ascii")
            raw = flag.encode("utf-8")
            if not ATOM_RE.match(raw):
                raise SearchKeyError(f"flag {flag!r} cannot be searched for")
            return (b"KEYWORD " if present else b"UNKEYWORD ") + raw
        case StringKey(field=field, value=value):
            return field.encode("ascii") + b" " + client_astring(value.encode("utf-8"))
        case HeaderKey(name=name, value=value):
            return (
                b"HEADER "
                + client_astring(name.encode("utf-8"))
                + b" "
                + client_astring(value.encode("utf-8"))
            )
        case DateKey(field=field, relation=relation, date=date):
            prefix = "SENT" if field == "SENT" else ""
            return f"{prefix}{relation} {format_date(date)}".encode("ascii")
        case SizeKey(larger=larger, size=size):
            return b"%s %d" % (b"LARGER" if larger else b"SMALLER", size)
        case UIDKey(uids=uids):
            return b"UID " + uids.to_bytes()
        case SeqKey(seqs=seqs):
            return seqs.to_bytes()
        case ModSeqKey(modseq=modseq, entry=entry, entry_type=entry_type):
            if entry is None:
                return b"MODSEQ %d" % modseq
            return b"MODSEQ %s %s %d" % (
                client_string(entry.encode("utf-8")),
                (entry_type or "all").encode("ascii"),
                modseq,
            )
        case NotKey(key=inner):
            return b"NOT " + key_bytes(inner)
        case OrKey(left=left, right=right):
            return b"OR " + key_bytes(left) + b" " + key_bytes(right)
        case AndKey(keys=keys):
            if not keys:
                raise SearchKeyError("empty key group")
            inner_bytes = b" ".join(key_bytes(k) for k in keys)
            return inner_bytes if top else b"(" + inner_bytes + b")"
    raise SearchKeyError(f"not a search key: {key!r}")


def program_bytes(key: SearchKey, charset: str | None = None) -> bytes:
    """`search-program` as a client sends it after `SEARCH `."""
    body = key_bytes(key, top=True)
    if charset is not None:
        return b"CHARSET " + client_astring(charset.encode("ascii")) + b" " + body
    return body
