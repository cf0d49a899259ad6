"""The store interface every backend implements (DESIGN.md §1, §3).

Sessions and delivery talk to the store only through these protocols: account
addresses, mailbox names, UIDs, flags. Never SQL, never file paths, never
sequence numbers. Every mutating method commits durably before it returns and
publishes its change records on `changes` after the commit (DESIGN.md §2).

Errors are the exceptions of :mod:`mailbag.errors`: `NotFound`,
`AlreadyExists`, `Cannot`, `StoreUnavailable`.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .changes import ChangeHub
from .models import (
    UID,
    Account,
    AccountID,
    AppendRequest,
    AppendResult,
    ContentID,
    CopyResult,
    FlagOp,
    FlagUpdate,
    Mailbox,
    MailboxID,
    MailboxStatus,
    Message,
    MessageFacts,
    MessageIndex,
    ModSeq,
    ResponseForms,
    SpecialUse,
)


@runtime_checkable
class AccountStore(Protocol):
    async def create_account(self, address: str, password_hash: str) -> Account:
        """Create an account and its default mailboxes (models.DEFAULT_MAILBOXES).

        Raises AlreadyExists. `address` is already normalised (local@domain).
        """
        ...

    async def get_account(self, address: str) -> Account | None: ...

    async def get_password_hash(self, account_id: AccountID) -> str | None: ...

    async def set_password_hash(self, account_id: AccountID, password_hash: str) -> None: ...

    async def list_accounts(self) -> list[Account]: ...

    async def delete_account(self, account_id: AccountID) -> None:
        """Remove the account, its mailboxes and messages (content refcounts drop)."""
        ...


@runtime_checkable
class MailboxStore(Protocol):
    async def list_mailboxes(self, account_id: AccountID) -> list[Mailbox]:
        """All mailboxes of the account, sorted by name."""
        ...

    async def get_mailbox(self, account_id: AccountID, name: str) -> Mailbox | None:
        """Look up by name; INBOX is matched case-insensitively."""
        ...

    async def get_mailbox_by_id(self, mailbox_id: MailboxID) -> Mailbox | None: ...

    async def create_mailbox(
        self, account_id: AccountID, name: str, special_use: SpecialUse | None = None
    ) -> Mailbox:
        """Create one mailbox (not its parents; the session creates those).

        A fresh UIDVALIDITY is chosen that differs from any earlier mailbox of
        the same name (RFC 9051 §2.3.1.1). Raises AlreadyExists.
        """
        ...

    async def delete_mailbox(self, account_id: AccountID, name: str) -> None:
        """Delete the mailbox and its messages. Raises NotFound; Cannot for INBOX."""
        ...

    async def rename_mailbox(self, account_id: AccountID, old: str, new: str) -> Mailbox:
        """Rename `old` and every `old/...` child to `new`, atomically.

        Renaming INBOX moves its messages to a new mailbox `new` and leaves
        INBOX empty (RFC 9051 §6.3.6). Raises NotFound, AlreadyExists.
        """
        ...

    async def subscribe(self, account_id: AccountID, name: str) -> None:
        """Subscriptions may name mailboxes that do not exist (RFC 9051 §6.3.7)."""
        ...

    async def unsubscribe(self, account_id: AccountID, name: str) -> None: ...

    async def list_subscriptions(self, account_id: AccountID) -> list[str]: ...

    async def mailbox_status(self, mailbox_id: MailboxID) -> MailboxStatus: ...

    async def claim_recent(self, mailbox_id: MailboxID) -> UID:
        """Return the mailbox's first_recent_uid and advance it to UIDNEXT.

        The caller (one rev1 session) treats UIDs >= the returned value as
        \\Recent; later sessions will not (RFC 3501 §2.3.2).
        """
        ...


@runtime_checkable
class MessageStore(Protocol):
    async def append(
        self, mailbox_id: MailboxID, requests: Sequence[AppendRequest]
    ) -> AppendResult:
        """Add messages atomically (all or none, RFC 3502) and durably.

        UIDs are assigned in order. Facts are computed when a request has none.
        Raises NotFound when the mailbox no longer exists.
        """
        ...

    async def list_messages(
        self, mailbox_id: MailboxID, uids: Iterable[UID] | None = None
    ) -> list[Message]:
        """Messages in UID order; all of them, or those of `uids` that exist."""
        ...

    async def get_facts(self, content_id: ContentID) -> MessageFacts:
        """The facts computed at delivery (`forms` may be left out: get_forms)."""
        ...

    async def get_forms(self, content_ids: Iterable[ContentID]) -> dict[ContentID, ResponseForms]:
        """The serialised FETCH forms of those contents that have them, in one call."""
        ...

    async def list_uids(self, mailbox_id: MailboxID) -> array[int]:
        """The mailbox's UIDs, ascending, as a compact array (SELECT of a big
        mailbox must not build one object per message). Raises NotFound."""
        ...

    async def message_index(
        self, mailbox_id: MailboxID, columns: frozenset[str] = frozenset()
    ) -> MessageIndex:
        """The mailbox's UIDs and the `columns` (models.INDEX_COLUMNS) asked
        for, read in one snapshot. Raises NotFound."""
        ...

    async def unseen_uids(self, mailbox_id: MailboxID) -> array[int]:
        """The UIDs of the mailbox's messages without \\Seen, ascending. Clients
        ask SEARCH UNSEEN at every sync, and in a big mailbox few messages
        are unseen: a backend answers from what it keeps of those alone, not
        from every message's flags. Raises NotFound."""
        ...

    async def list_keywords(self, mailbox_id: MailboxID) -> list[str]:
        """The keywords the mailbox's messages carry, sorted. Raises NotFound."""
        ...

    async def read_content(
        self, content_id: ContentID, offset: int = 0, length: int | None = None
    ) -> bytes:
        """The stored bytes, or a range of them (reads only that range)."""
        ...

    async def read_contents(self, content_ids: Iterable[ContentID]) -> dict[ContentID, bytes]:
        """The whole bytes of those of `content_ids` the store holds, in one
        call (FETCH 1:* BODY[] and pipelined POP3 RETR read many small
        messages; one read per message costs more than the bytes). The caller
        bounds the total size; ids not stored are left out."""
        ...

    async def store_flags(
        self,
        mailbox_id: MailboxID,
        uids: Iterable[UID],
        op: FlagOp,
        flags: Iterable[str],
        unchanged_since: ModSeq | None = None,
    ) -> list[FlagUpdate]:
        """Change flags; returns the messages whose flags actually changed.

        Each changed message gets a new mod-sequence (RFC 7162 §3.1).
        """
        ...

    async def expunge(
        self,
        mailbox_id: MailboxID,
        uids: Iterable[UID] | None = None,
        require_deleted: bool = True,
    ) -> list[UID]:
        """Remove messages; returns the UIDs removed, ascending.

        With `require_deleted` only messages that still carry \\Deleted at
        commit time are removed (another session may have cleared it).
        `uids=None` means every message of the mailbox. Removed UIDs are
        remembered with their mod-sequence for QRESYNC (RFC 7162 §3.2.10).
        """
        ...

    async def copy(self, source: MailboxID, uids: Iterable[UID], dest: MailboxID) -> CopyResult:
        """Copy messages (rows, not bytes); flags travel along. Raises NotFound."""
        ...

    async def move(self, source: MailboxID, uids: Iterable[UID], dest: MailboxID) -> CopyResult:
        """Copy then expunge in one transaction (RFC 6851 §3)."""
        ...


@dataclass(slots=True, frozen=True)
class TextMatches:
    """A full-text index's answer for one search key over one mailbox."""

    uids: frozenset[UID]  # messages whose text matches
    # Messages the index holds no text for (too big, not indexed yet): the
    # caller decides those by reading them. Never in `uids`.
    unindexed: frozenset[UID]


@runtime_checkable
class FullTextSearch(Protocol):
    """Optional capability: answer SEARCH text keys from an index.

    The answer must be exactly what reading the messages gives
    (`mailbag.message.search`): ``needle.casefold()`` a substring of the
    case-folded decoded text, for `field` one of BODY (text bodies), TEXT
    (every header line and text body), FROM, TO, CC, BCC, SUBJECT (decoded
    values of that top-level field; only messages that have the field match,
    even for an empty needle).
    """

    async def search_text(
        self,
        mailbox_id: MailboxID,
        field: str,
        needle: str,
        uids: Iterable[UID] | None = None,
    ) -> TextMatches | None:
        """Matches among the mailbox's messages (or those of `uids` that
        exist); None when this key cannot be answered exactly (scan instead)."""
        ...


@runtime_checkable
class MaildropLocks(Protocol):
    def try_lock_maildrop(self, account_id: AccountID) -> bool:
        """Exclusive POP3 lock on an account's maildrop (RFC 1939 §8: [IN-USE])."""
        ...

    def unlock_maildrop(self, account_id: AccountID) -> None: ...


@runtime_checkable
class Store(AccountStore, MailboxStore, MessageStore, MaildropLocks, Protocol):
    """A whole backend. `changes` carries committed change records."""

    changes: ChangeHub

    async def open(self) -> None:
        """Prepare the backend (create schema, recover from a crash)."""
        ...

    async def close(self) -> None:
        """Finish in-flight writes and release resources."""
        ...
