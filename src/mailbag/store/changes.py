"""The change feed: typed records of committed changes, fanned out to sessions.

Invariant (DESIGN.md §2.2): a record is published only after its transaction
committed. A backend publishes through :class:`ChangeHub`; sessions subscribe per
account and read records from an unbounded-but-coalescing queue. The hub is
in-process; a multi-node backend (PostgreSQL) will feed the same hub from
LISTEN/NOTIFY hints after re-reading the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .models import UID, AccountID, MailboxID, ModSeq

log = logging.getLogger("mailbag.store")

# Seconds of IDLE pushes per loop iteration before other callbacks get a turn.
_PASS_SLICE = 0.002


@dataclass(slots=True, frozen=True)
class MessagesAdded:
    account_id: AccountID
    mailbox_id: MailboxID
    uids: tuple[UID, ...]
    modseq: ModSeq
    # The keywords the new messages carry (all of them together): a session
    # that has the mailbox selected announces new ones (FLAGS, RFC 9051 §7.3.5).
    keywords: frozenset[str] = frozenset()


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
    lines). `publish` queues every record here at once; a subscriber with
    callbacks is then visited by the hub's push pass, in a later loop
    iteration, so that the publisher (an LMTP 250, an APPEND OK) never waits
    for the fan-out:

    - `on_added`: handed the MessagesAdded records at the head of the queue,
      in order; each one it takes (returns True) leaves the queue.
    - `on_pending`: called once (then cleared) when records stay queued.
    """

    __slots__ = (
        "_due",
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
        # In the hub's push queue (at most once).
        self._due = False
        self.closed = False
        # Returns True when it fully handled the record (nothing to queue);
        # False sends the record down the ordinary queue-and-wake path.
        self.on_added: Callable[[MessagesAdded], bool] | None = None
        self.on_pending: Callable[[], None] | None = None

    def _deliver(self) -> None:
        """The push pass's visit: hand queued new mail to `on_added`, in order,
        and call `on_pending` if anything stays queued."""
        pending = self._pending
        on_added = self.on_added
        if on_added is not None:
            taken = 0
            for change in pending:
                if not isinstance(change, MessagesAdded):
                    break
                try:
                    if not on_added(change):
                        break
                except Exception:
                    # One subscriber's bug must not keep the record from the
                    # others; this one gets it through its queue.
                    log.exception("on_added callback failed")
                    break
                taken += 1
            if taken:
                del pending[:taken]
        self._notify_pending()

    def _notify_pending(self) -> None:
        on_pending = self.on_pending
        if self._pending and on_pending is not None:
            self.on_pending = None
            try:
                on_pending()
            except Exception:
                # The push pass goes on for the other subscribers.
                log.exception("on_pending callback failed")

    def drain(self) -> list[Change]:
        """Return and forget every record received so far (never blocks)."""
        pending, self._pending = self._pending, []
        return pending

    def has_pending(self) -> bool:
        return bool(self._pending)

    def queued(self) -> tuple[Change, ...]:
        """The records received so far, left queued (drain takes them)."""
        return tuple(self._pending)

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
        # Subscribers with callbacks and newly queued records, in the order
        # they were first due; walked by `_push_pass` after `publish` returned.
        self._due: deque[Subscription] = deque()
        self._pass_scheduled = False
        self._passes_done: asyncio.Event | None = None

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
        """Queue `change` for every subscriber of its account, synchronously
        (so a session's own next poll() sees it), and leave the callbacks to
        the push pass (so the caller, e.g. the writer settling an LMTP
        delivery, resumes before 10,000 IDLE pushes are written)."""
        subs = self._subs.get(change.account_id)
        if subs:
            due = self._due
            for sub in subs:  # nothing below adds or removes subscribers
                sub._pending.append(change)
                waiter = sub._waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                if not sub._due and (sub.on_added is not None or sub.on_pending is not None):
                    sub._due = True
                    due.append(sub)
            if due and not self._pass_scheduled:
                self._schedule_pass()
        for listener in self._listeners:
            listener(change)

    def _schedule_pass(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # No loop (a synchronous caller): nobody to keep waiting.
            self._push_pass()
            return
        self._pass_scheduled = True
        loop.call_soon(self._push_pass)

    def _push_pass(self) -> None:
        """Visit due subscribers in the order they became due (so each one's
        records still go out in commit order), a slice per loop iteration: the
        loop's other callbacks (replies, reads) run between slices."""
        self._pass_scheduled = False
        due = self._due
        deadline = time.monotonic() + _PASS_SLICE
        n = 0
        while due:
            n += 1
            if n % 64 == 0 and time.monotonic() >= deadline:
                self._schedule_pass()
                return
            sub = due.popleft()
            sub._due = False
            if sub.closed:
                continue
            pending = sub._pending
            on_added = sub.on_added
            # The common case inline (one new message for a session in IDLE):
            # a call less per session when 10,000 of them idle.
            if on_added is not None and len(pending) == 1 and type(pending[0]) is MessagesAdded:
                try:
                    if on_added(pending[0]):
                        pending.clear()
                        continue
                except Exception:
                    log.exception("on_added callback failed")
                sub._notify_pending()  # refused: it stays queued
                continue
            sub._deliver()
        if self._passes_done is not None:
            self._passes_done.set()
            self._passes_done = None

    async def pushed(self) -> None:
        """Wait until every callback due so far has run (for tests and for
        callers that must observe the pushes)."""
        while self._due:
            if self._passes_done is None:
                self._passes_done = asyncio.Event()
            await self._passes_done.wait()

    def subscriber_count(self, account_id: AccountID) -> int:
        return len(self._subs.get(account_id, ()))


# ---- records between processes ------------------------------------------------
# Several processes may share one store (the server and `mailbag deliver`, or
# several server processes): each writes the records of a commit to the store
# in the same transaction, and the others read them back and publish them on
# their own hub (sqlite/follow.py). JSON, not pickle: the text is data read
# from disk, never code.


def encode_changes(changes: Iterable[Change]) -> str:
    out: list[list[Any]] = []
    for c in changes:
        if type(c) is MessagesAdded:
            out.append(["a", c.account_id, c.mailbox_id, c.uids, c.modseq, sorted(c.keywords)])
        elif type(c) is MessagesExpunged:
            out.append(["x", c.account_id, c.mailbox_id, c.uids, c.modseq])
        elif type(c) is FlagsChanged:
            # A STORE over a big mailbox changes many messages to a few
            # distinct flag sets: each set is written once, and each message
            # as three integers (uid, modseq, index of its set). 10,000
            # messages: ~3 ms to encode, against ~25 with a list per message.
            sets: dict[frozenset[str], int] = {}
            flat: list[int] = []
            for uid, modseq, flags in c.changes:
                index = sets.get(flags)
                if index is None:
                    index = sets[flags] = len(sets)
                flat += (uid, modseq, index)
            out.append(["f", c.account_id, c.mailbox_id, [sorted(f) for f in sets], flat])
        elif type(c) is MailboxCreated:
            out.append(["c", c.account_id, c.mailbox_id, c.name])
        elif type(c) is MailboxRenamed:
            out.append(["r", c.account_id, c.mailbox_id, c.old_name, c.new_name])
        elif type(c) is MailboxDeleted:
            out.append(["d", c.account_id, c.mailbox_id, c.name])
        else:
            raise TypeError(f"not a change record: {c!r}")
    return json.dumps(out, separators=(",", ":"))


def decode_changes(text: str) -> list[Change]:
    """The records `encode_changes` wrote (ValueError when `text` is not that)."""
    out: list[Change] = []
    try:
        for item in json.loads(text):
            kind, aid, mid = item[0], AccountID(item[1]), MailboxID(item[2])
            if kind == "a":
                out.append(
                    MessagesAdded(aid, mid, tuple(item[3]), ModSeq(item[4]), frozenset(item[5]))
                )
            elif kind == "x":
                out.append(MessagesExpunged(aid, mid, tuple(item[3]), ModSeq(item[4])))
            elif kind == "f":
                sets = [frozenset(f) for f in item[3]]
                flat = item[4]
                if len(flat) % 3:
                    raise ValueError("flag changes are not (uid, modseq, set) triples")
                out.append(
                    FlagsChanged(
                        aid,
                        mid,
                        tuple(
                            (UID(flat[i]), ModSeq(flat[i + 1]), sets[flat[i + 2]])
                            for i in range(0, len(flat), 3)
                        ),
                    )
                )
            elif kind == "c":
                out.append(MailboxCreated(aid, mid, item[3]))
            elif kind == "r":
                out.append(MailboxRenamed(aid, mid, item[3], item[4]))
            elif kind == "d":
                out.append(MailboxDeleted(aid, mid, item[3]))
            else:
                raise ValueError(f"unknown change record kind {kind!r}")
    except (TypeError, IndexError, KeyError) as e:
        raise ValueError(f"malformed change records: {e}") from e
    return out
