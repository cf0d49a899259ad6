"""Typed IMAP commands: one frozen dataclass per command (RFC 9051 §6, RFC 3501 §6).

Mailbox names are already decoded (modified UTF-7 or UTF-8, depending on the
session's mode) and `INBOX` in any case is `"INBOX"` (RFC 9051 §5.1). Flags
are canonical for system flags (`\\Seen`), keywords keep their case. Message
data (APPEND) stays bytes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from .fetch import FetchAttribute
from .search import SearchKey
from .seqset import SeqSet


@dataclass(slots=True, frozen=True)
class CapabilityCommand:
    tag: str


@dataclass(slots=True, frozen=True)
class NoopCommand:
    tag: str


@dataclass(slots=True, frozen=True)
class LogoutCommand:
    tag: str


@dataclass(slots=True, frozen=True)
class StartTLSCommand:
    tag: str


@dataclass(slots=True, frozen=True)
class AuthenticateCommand:
    tag: str
    mechanism: str  # upper-cased
    # RFC 4959 SASL-IR: None = no initial response; b"" = "=" (empty response).
    initial_response: bytes | None = None


@dataclass(slots=True, frozen=True)
class LoginCommand:
    tag: str
    username: str
    password: str


@dataclass(slots=True, frozen=True)
class EnableCommand:
    """RFC 5161."""

    tag: str
    capabilities: tuple[str, ...]  # upper-cased, in the order given


@dataclass(slots=True, frozen=True)
class QResyncParams:
    """RFC 7162 §3.2.5: SELECT … (QRESYNC (uidvalidity modseq [known-uids] [(seqs uids)]))."""

    uidvalidity: int
    modseq: int
    known_uids: SeqSet | None = None
    known_seqs: SeqSet | None = None  # seq-match-data: message numbers …
    known_seq_uids: SeqSet | None = None  # … and the UIDs they correspond to


@dataclass(slots=True, frozen=True)
class SelectCommand:
    tag: str
    mailbox: str
    condstore: bool = False  # RFC 7162 §3.1.8 (CONDSTORE) select parameter
    qresync: QResyncParams | None = None


@dataclass(slots=True, frozen=True)
class ExamineCommand:
    tag: str
    mailbox: str
    condstore: bool = False
    qresync: QResyncParams | None = None


@dataclass(slots=True, frozen=True)
class CreateCommand:
    tag: str
    mailbox: str
    special_use: tuple[str, ...] = ()  # RFC 6154 §3: CREATE … (USE (\Drafts))


@dataclass(slots=True, frozen=True)
class DeleteCommand:
    tag: str
    mailbox: str


@dataclass(slots=True, frozen=True)
class RenameCommand:
    tag: str
    mailbox: str
    new_name: str


@dataclass(slots=True, frozen=True)
class SubscribeCommand:
    tag: str
    mailbox: str


@dataclass(slots=True, frozen=True)
class UnsubscribeCommand:
    tag: str
    mailbox: str


# RFC 5258 §3 / RFC 6154 §5.1 / RFC 9051 §6.3.9.1
LIST_SELECT_OPTIONS: Final = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
# RFC 5258 §4 / RFC 5819 / RFC 6154 §5.2 / RFC 9051 §6.3.9.2 (STATUS is in status_items)
LIST_RETURN_OPTIONS: Final = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"})


@dataclass(slots=True, frozen=True)
class ListCommand:
    tag: str
    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()  # includes "STATUS" when status_items is set
    status_items: tuple[str, ...] | None = None  # RFC 5819 LIST-STATUS
    # RFC 9051 §6.3.9: extended syntax was used (an empty pattern is then ignored
    # rather than asking for the hierarchy delimiter).
    extended: bool = False


@dataclass(slots=True, frozen=True)
class LsubCommand:
    """RFC 3501 §6.3.9 (obsolete in IMAP4rev2)."""

    tag: str
    reference: str
    pattern: str


@dataclass(slots=True, frozen=True)
class NamespaceCommand:
    tag: str


STATUS_ITEMS: Final = frozenset(
    {
        "MESSAGES",
        "RECENT",  # RFC 3501 only
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "DELETED",  # RFC 9051
        "SIZE",  # RFC 9051
        "HIGHESTMODSEQ",  # RFC 7162 §3.1.7
    }
)


@dataclass(slots=True, frozen=True)
class StatusCommand:
    tag: str
    mailbox: str
    items: tuple[str, ...]  # upper-cased, de-duplicated, in the order given


@dataclass(slots=True, frozen=True)
class AppendMessage:
    flags: tuple[str, ...]
    internal_date: dt.datetime | None
    data: bytes
    binary: bool = False  # sent as literal8 (RFC 3516 §4.4): may contain NUL
    utf8: bool = False  # RFC 6855 §4: UTF8 (~{n} …) data extension


@dataclass(slots=True, frozen=True)
class AppendCommand:
    """APPEND with one message, or several with MULTIAPPEND (RFC 3502)."""

    tag: str
    mailbox: str
    messages: tuple[AppendMessage, ...]


@dataclass(slots=True, frozen=True)
class IdleCommand:
    """RFC 2177 / RFC 9051 §6.3.13: the session then reads a raw `DONE` line."""

    tag: str


@dataclass(slots=True, frozen=True)
class CheckCommand:
    """RFC 3501 §6.4.1 (removed in IMAP4rev2; behaves like NOOP)."""

    tag: str


@dataclass(slots=True, frozen=True)
class CloseCommand:
    tag: str


@dataclass(slots=True, frozen=True)
class UnselectCommand:
    tag: str


@dataclass(slots=True, frozen=True)
class ExpungeCommand:
    tag: str


@dataclass(slots=True, frozen=True)
class UIDExpungeCommand:
    """RFC 4315 §2.1 / RFC 9051 §6.4.9."""

    tag: str
    uids: SeqSet


SEARCH_RETURN_OPTIONS: Final = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})


@dataclass(slots=True, frozen=True)
class SearchCommand:
    tag: str
    criteria: SearchKey
    uid: bool = False
    charset: str | None = None  # upper-cased; string values are already decoded
    # None: no RETURN (rev1 answers `* SEARCH`); otherwise the ESEARCH options.
    # RFC 4731 §3.1: `RETURN ()` means ALL, and is given here as {"ALL"}.
    return_options: frozenset[str] | None = None


@dataclass(slots=True, frozen=True)
class FetchCommand:
    tag: str
    sequence_set: SeqSet
    attributes: tuple[FetchAttribute, ...]
    uid: bool = False
    changed_since: int | None = None  # RFC 7162 §3.1.4.1 CHANGEDSINCE
    vanished: bool = False  # RFC 7162 §3.2.6 VANISHED (UID FETCH only)


class StoreMode(StrEnum):
    REPLACE = "FLAGS"
    ADD = "+FLAGS"
    REMOVE = "-FLAGS"


@dataclass(slots=True, frozen=True)
class StoreCommand:
    tag: str
    sequence_set: SeqSet
    mode: StoreMode
    flags: tuple[str, ...]
    silent: bool = False
    uid: bool = False
    unchanged_since: int | None = None  # RFC 7162 §3.1.3 UNCHANGEDSINCE


@dataclass(slots=True, frozen=True)
class CopyCommand:
    tag: str
    sequence_set: SeqSet
    mailbox: str
    uid: bool = False


@dataclass(slots=True, frozen=True)
class MoveCommand:
    """RFC 6851 / RFC 9051 §6.4.8."""

    tag: str
    sequence_set: SeqSet
    mailbox: str
    uid: bool = False


Command = (
    CapabilityCommand
    | NoopCommand
    | LogoutCommand
    | StartTLSCommand
    | AuthenticateCommand
    | LoginCommand
    | EnableCommand
    | SelectCommand
    | ExamineCommand
    | CreateCommand
    | DeleteCommand
    | RenameCommand
    | SubscribeCommand
    | UnsubscribeCommand
    | ListCommand
    | LsubCommand
    | NamespaceCommand
    | StatusCommand
    | AppendCommand
    | IdleCommand
    | CheckCommand
    | CloseCommand
    | UnselectCommand
    | ExpungeCommand
    | UIDExpungeCommand
    | SearchCommand
    | FetchCommand
    | StoreCommand
    | CopyCommand
    | MoveCommand
)
