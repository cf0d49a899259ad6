"""The change feed: typed records of committed changes, fanned out to sessions.

Invariant (DESIGN.md §2.2): a record is published only after its transaction
committed. A backend publishes through :class:`ChangeHub`; sessions subscribe per
account and read records from an unbounded-but-coalescing queue. The hub is
in-process; a multi-node backend (PostgreSQL) will feed the same hub from
LISTEN/NOTIFY hints after re-reading the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from .models import UID, AccountID, MailboxID, ModSeq

log = logging.getLogger("mailbag.store")


@dataclass(slots=True, frozen=True)
class MessagesAdded:
    account_id: AccountID
    mailbox_id: MailboxID
    uids: tuple[UID, ...]
    modseq: ModSeq


@dataclass(slots=True, frozen=True)
class MessagesExpunged:
    account_id: AccountID
    mailbox_id: MailboxID
    uids: tuple[UID, ...]
    modseq: ModSeq


@dataclass(slots=True, frozen=True)
class FlagsChanged:
    account_id: AccountID
    mailbox_id: MailboxID
    # (uid, modseq, flags) for each changed message
    changes: tuple[tuple[UID, ModSeq, frozenset[str]], ...]


@dataclass(slots=True, frozen=True)
class MailboxCreated:
    account_id: AccountID
    mailbox_id: MailboxID
    name: str


@dataclass(slots=True, frozen=True)
class MailboxRenamed:
    account_id: AccountID
    mailbox_id: MailboxID
    old_name: str
    new_name: str


@dataclass(slots=True, frozen=True)
class MailboxDeleted:
    account_id: AccountID
    mailbox_id: MailboxID
    name: str


Change = (
    MessagesAdded
    | MessagesExpunged
    | FlagsChanged
    | MailboxCreated
    | MailboxRenamed
    | MailboxDeleted
)


class Subscription:
    """One session's view of the feed for one account.

    Cheap on purpose: an idle IMAP connection holds one of these, so it is a
    deque-backed list and an Event created only while someone waits.

    Two callbacks let a subscriber wait without a task (issue 4: an IMAP
    session in IDLE; a parked task and its coroutines cost ~1.5 KB, and waking
    10,000 of them per delivery costs far more than writing 10,000 EXISTS
    lines):

    - `on_added`: while nothing is queued here, `publish` hands it each
      MessagesAdded synchronously instead of queueing the record.
    - `on_pending`: called once (then cleared) when a record is queued.
    """

    __slots__ = (
        "_hub",
        "_pending",
        "_waiter",
        "account_id",
        "closed",
        "on_added",
        "on_pending",
    )

    def __init__(self, hub: ChangeHub, account_id: AccountID) -> None:
        self._hub = hub
        self.account_id = account_id
        self._pending: list[Change] = []
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        # Returns True when it fully handled the record (nothing to queue);
        # False sends the record down the ordinary queue-and-wake path.
        self.on_added: Callable[[MessagesAdded], bool] | None = None
        self.on_pending: Callable[[], None] | None = None

    def _push(self, change: Change) -> None:
        self._pending.append(change)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        on_pending = self.on_pending
        if on_pending is not None:
            self.on_pending = None
            try:
                on_pending()
            except Exception:
                # Publishing goes on for the other subscribers.
                log.exception("on_pending callback failed")

    def drain(self) -> list[Change]:
        """Return and forget every record received so far (never blocks)."""
        pending, self._pending = self._pending, []
        return pending

    def has_pending(self) -> bool:
        return bool(self._pending)

    async def wait(self) -> None:
        """Block until at least one record is pending."""
        if self._pending:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        self.on_added = self.on_pending = None
        if not self.closed:
            self.closed = True
            self._hub._unsubscribe(self)


class ChangeHub:
    """In-process fan-out of committed changes to subscribers, keyed by account.

    `publish` must be called on the event loop thread (backends that commit on
    a worker thread hop back with `call_soon_threadsafe`).
    """

    def __init__(self) -> None:
        self._subs: dict[AccountID, set[Subscription]] = {}
        self._listeners: list[Callable[[Change], None]] = []

    def subscribe(self, account_id: AccountID) -> Subscription:
        sub = Subscription(self, account_id)
        self._subs.setdefault(account_id, set()).add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.account_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.account_id]

    def add_listener(self, listener: Callable[[Change], None]) -> None:
        """Server-wide observers (metrics, full-text indexer, cross-node relay)."""
        self._listeners.append(listener)

    def publish(self, change: Change) -> None:
        subs = self._subs.get(change.account_id)
        if subs:
            if isinstance(change, MessagesAdded):
                for sub in tuple(subs):
                    on_added = sub.on_added
                    # Only while nothing is queued: records must reach a
                    # subscriber in the order they were published.
                    if on_added is not None and not sub._pending:
                        try:
                            if on_added(change):
                                continue
                        except Exception:
                            # One subscriber's bug must not keep the record from
                            # the others; this one gets it through its queue.
                            log.exception("on_added callback failed")
                    sub._push(change)
            else:
                for sub in tuple(subs):
                    sub._push(change)
        for listener in self._listeners:
            listener(change)

    def subscriber_count(self, account_id: AccountID) -> int:
        return len(self._subs.get(account_id, ()))
