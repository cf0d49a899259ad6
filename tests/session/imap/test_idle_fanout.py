"""The change feed's fan-out to idling sessions runs after the publisher resumed
(issue 4: an LMTP 250 or APPEND OK must not wait for thousands of IDLE pushes),
yet every subscriber still sees its records in commit order, exactly once
(DESIGN.md §2.2), whether a callback takes them or its queue does."""

from __future__ import annotations

import asyncio

import pytest

from mailbag.store import changes
from mailbag.store.changes import (
    Change,
    ChangeHub,
    FlagsChanged,
    MessagesAdded,
    Subscription,
)
from mailbag.store.models import UID, AccountID, MailboxID, ModSeq

ALICE = AccountID(1)
INBOX = MailboxID(7)


def added(uid: int) -> MessagesAdded:
    return MessagesAdded(ALICE, INBOX, (UID(uid),), ModSeq(uid))


class Watcher:
    """A subscriber that takes new mail until told to refuse, like IDLE."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.taken: list[Change] = []
        self.woken = 0
        self.refuse = False
        self.watch()

    def watch(self) -> None:
        self.sub.on_added = self.take
        self.sub.on_pending = self.wake

    def take(self, change: MessagesAdded) -> bool:
        if self.refuse:
            return False
        self.taken.append(change)
        return True

    def wake(self) -> None:
        self.woken += 1
        self.sub.on_added = self.sub.on_pending = None


def test_publish_returns_before_any_push_and_order_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Records are queued at once for every subscriber (so a session's own next
    poll sees them); the callbacks run later, in slices that let the loop run
    other callbacks between them; each subscriber gets every record once, in
    the order published, even when records arrive between slices."""
    # Every slice ends after 64 subscribers: many loop iterations per pass.
    monkeypatch.setattr(changes, "_PASS_SLICE", 0.0)

    async def run() -> None:
        hub = ChangeHub()
        watchers = [Watcher(hub.subscribe(ALICE)) for _ in range(300)]
        plain = hub.subscribe(ALICE)  # a session busy with a command: no callbacks
        hub.publish(added(1))
        hub.publish(added(2))
        assert all(w.taken == [] for w in watchers)
        assert all(w.sub.has_pending() for w in watchers)
        assert plain.has_pending()
        other_callback_ran = asyncio.Event()
        asyncio.get_running_loop().call_soon(other_callback_ran.set)
        await asyncio.sleep(0)  # one slice ran, the reply-like callback too
        assert other_callback_ran.is_set()
        assert 0 < sum(1 for w in watchers if w.taken) < len(watchers)
        hub.publish(added(3))  # while the first pass is half done
        await hub.pushed()
        for w in watchers:
            assert w.taken == [added(1), added(2), added(3)]
            assert not w.sub.has_pending() and w.woken == 0
        assert plain.drain() == [added(1), added(2), added(3)]
        # One record each (the pass's inline case) is sliced the same way.
        hub.publish(added(4))
        await asyncio.sleep(0)
        assert 0 < sum(1 for w in watchers if len(w.taken) == 4) < len(watchers)
        await hub.pushed()
        assert all(w.taken[3:] == [added(4)] and not w.sub.has_pending() for w in watchers)

    asyncio.run(run())


def test_queue_takes_over_in_order_when_a_push_is_refused() -> None:
    """RFC 9051 §7.4.1: when new mail cannot be written now, it and everything
    after it stays queued, and the session is woken once to poll them."""

    async def run() -> None:
        hub = ChangeHub()
        w = Watcher(hub.subscribe(ALICE))
        hub.publish(added(1))
        await hub.pushed()
        w.refuse = True
        flags = FlagsChanged(ALICE, INBOX, ((UID(1), ModSeq(9), frozenset({"\\Seen"})),))
        hub.publish(added(2))
        hub.publish(flags)
        hub.publish(added(3))
        await hub.pushed()
        assert w.taken == [added(1)] and w.woken == 1
        assert w.sub.drain() == [added(2), flags, added(3)]
        # Watching again (IDLE re-armed after poll): pushes resume.
        w.refuse = False
        w.watch()
        hub.publish(added(4))
        await hub.pushed()
        assert w.taken == [added(1), added(4)] and not w.sub.has_pending()

    asyncio.run(run())


def test_other_records_wake_the_session_to_poll() -> None:
    """Only new mail takes the fast path; anything else at the head of the
    queue wakes the session, which then polls the records in order."""

    async def run() -> None:
        hub = ChangeHub()
        w = Watcher(hub.subscribe(ALICE))
        flags = FlagsChanged(ALICE, INBOX, ((UID(1), ModSeq(9), frozenset()),))
        hub.publish(flags)
        hub.publish(added(2))
        assert w.woken == 0
        await hub.pushed()
        assert w.woken == 1 and w.taken == []
        assert w.sub.drain() == [flags, added(2)]

    asyncio.run(run())


def test_unwatched_or_closed_before_the_pass() -> None:
    """A session that left IDLE (DONE) before the pass reached it finds the
    records in its queue for its own poll, and is not pushed to; a closed
    subscription is skipped."""

    async def run() -> None:
        hub = ChangeHub()
        left = Watcher(hub.subscribe(ALICE))
        gone = Watcher(hub.subscribe(ALICE))
        stays = Watcher(hub.subscribe(ALICE))
        hub.publish(added(1))
        left.sub.on_added = left.sub.on_pending = None  # DONE: unwatch
        gone.sub.close()
        await hub.pushed()
        assert left.taken == [] and left.woken == 0
        assert left.sub.drain() == [added(1)]
        assert gone.taken == [] and gone.woken == 0
        assert stays.taken == [added(1)]
        assert hub.subscriber_count(ALICE) == 2

    asyncio.run(run())


def test_publish_without_a_loop_pushes_at_once() -> None:
    """A synchronous publisher (no running loop) has nobody to keep waiting:
    the pass runs inside publish."""
    hub = ChangeHub()
    w = Watcher(hub.subscribe(ALICE))
    hub.publish(added(1))
    assert w.taken == [added(1)] and not w.sub.has_pending()
