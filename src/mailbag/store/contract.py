"""The store contract: behaviour every backend must show, as reusable checks.

Each check is an async function taking a :class:`Harness`; it uses only the
public :class:`~mailbag.store.interface.Store` interface (plus the harness's
optional hooks) and plain ``assert``. A test module runs every check against
every backend::

    @pytest.mark.parametrize("check", contract.CHECKS, ids=contract.check_id)
    def test_contract(check, tmp_path):
        harness = contract.Harness("mine", lambda: MyStore(tmp_path), features)
        if contract.requires(check) <= harness.features:
            contract.run(check, harness)

Checks that need something not every backend has (persistence, content files
on disk) declare it with ``@check(FEATURE)``; run a check only on harnesses
whose ``features`` include ``requires(check)``. No pytest import here: the suite is plain code, so
any runner (and the PostgreSQL backend's tests) can drive it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AlreadyExists, Cannot, NotFound
from ..message.facts import compute_facts
from .changes import (
    Change,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
    Subscription,
)
from .interface import Store
from .models import (
    DEFAULT_MAILBOXES,
    DELETED,
    FLAG_BIT,
    FLAGGED,
    INBOX,
    INDEX_COLUMNS,
    SEEN,
    UID,
    Account,
    AppendRequest,
    ContentID,
    FlagOp,
    FlagUpdate,
    Mailbox,
    Message,
    MessageFacts,
    ModSeq,
    SpecialUse,
)

PERSISTENT = "persistent"  # a new instance on the same storage sees old data
BLOB_FILES = "blob_files"  # content lives in files the harness can locate


@dataclass
class Harness:
    """How the contract drives one backend.

    `make` returns a new, unopened store on the harness's storage (called
    again by :meth:`reopen`). `blob_path` maps a content id to its file, for
    backends with the BLOB_FILES feature. `settle` waits until the store's
    background work is done (derived data such as the FETCH forms may be
    made after the append returned).
    """

    name: str
    make: Callable[[], Store]
    features: frozenset[str] = frozenset()
    blob_path: Callable[[ContentID], Path] | None = None
    settle: Callable[[Store], Awaitable[None]] | None = None
    store: Store = field(init=False)

    async def settled(self) -> None:
        if self.settle is not None:
            await self.settle(self.store)

    async def start(self) -> Store:
        self.store = self.make()
        await self.store.open()
        return self.store

    async def reopen(self) -> Store:
        await self.store.close()
        return await self.start()

    async def stop(self) -> None:
        await self.store.close()


Check = Callable[[Harness], Awaitable[None]]


CHECKS: list[Check] = []
_REQUIRES: dict[Check, frozenset[str]] = {}


def check(*requires: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS.append(fn)
        _REQUIRES[fn] = frozenset(requires)
        return fn

    return register


def check_id(fn: Check) -> str:
    return fn.__name__.removeprefix("check_")


def requires(fn: Check) -> frozenset[str]:
    return _REQUIRES[fn]


def run(fn: Check, harness: Harness, timeout: float = 30.0) -> None:
    """Run one check on a fresh event loop with an opened store."""

    async def main() -> None:
        await harness.start()
        try:
            async with asyncio.timeout(timeout):
                await fn(harness)
        finally:
            await harness.stop()

    asyncio.run(main())


# ---- helpers ---------------------------------------------------------------
ALICE = "alice@example.org"
BOB = "bob@example.org"


def message(n: int, body_size: int = 0, subject: str | None = None) -> bytes:
    subject = subject if subject is not None else f"message {n}"
    body = (b"x" * 70 + b"\r\n") * (body_size // 72 + 1) if body_size else b""
    return (
        f"From: sender{n}@example.net\r\nTo: alice@example.org\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{n}@example.net>\r\n\r\n"
        f"Body of message {n}.\r\n"
    ).encode() + body


async def account(store: Store, address: str = ALICE) -> Account:
    return await store.create_account(address, "hash-of-" + address)


async def mailbox(store: Store, acct: Account, name: str = INBOX) -> Mailbox:
    box = await store.get_mailbox(acct.id, name)
    assert box is not None, name
    return box


async def deleted_mailbox(store: Store, acct: Account) -> Mailbox:
    """A mailbox that existed and is gone: its id must give NotFound."""
    box = await store.create_mailbox(acct.id, "gone")
    await store.delete_mailbox(acct.id, "gone")
    return box


async def fill(store: Store, box: Mailbox, count: int, **kw: object) -> tuple[UID, ...]:
    reqs = [AppendRequest(message(i), **kw) for i in range(count)]  # type: ignore[arg-type]
    return (await store.append(box.id, reqs)).uids


def drained(sub: Subscription) -> list[Change]:
    return sub.drain()


async def highest(store: Store, box: Mailbox) -> ModSeq:
    fresh = await store.get_mailbox_by_id(box.id)
    assert fresh is not None
    return fresh.highestmodseq


async def raises(exc: type[BaseException], aw: Awaitable[object]) -> BaseException:
    try:
        await aw
    except exc as e:
        return e
    raise AssertionError(f"expected {exc.__name__}")


def uids_of(messages: Iterable[Message]) -> list[int]:
    return [m.uid for m in messages]


def by_uid(messages: Iterable[Message]) -> dict[int, Message]:
    return {int(m.uid): m for m in messages}


def flag_pairs(updates: Iterable[FlagUpdate]) -> list[tuple[int, frozenset[str]]]:
    return [(int(u.uid), u.flags) for u in updates]


# ---- accounts --------------------------------------------------------------
@check()
async def check_account_create_get_list(h: Harness) -> None:
    s = h.store
    bob = await account(s, BOB)
    alice = await account(s, ALICE)
    assert alice.address == ALICE and alice.id != bob.id
    assert alice.created.tzinfo is not None
    assert abs((dt.datetime.now(dt.UTC) - alice.created).total_seconds()) < 60
    assert await s.get_account(ALICE) == alice
    assert await s.get_account("nobody@example.org") is None
    assert [a.address for a in await s.list_accounts()] == [ALICE, BOB]


@check()
async def check_account_duplicate(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    await raises(AlreadyExists, s.create_account(ALICE, "other"))
    assert await s.list_accounts() == [alice]
    assert await s.get_password_hash(alice.id) == "hash-of-" + ALICE
    assert len(await s.list_mailboxes(alice.id)) == len(DEFAULT_MAILBOXES)


@check()
async def check_account_password(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    assert await s.get_password_hash(alice.id) == "hash-of-" + ALICE
    await s.set_password_hash(alice.id, "$argon2id$new")
    assert await s.get_password_hash(alice.id) == "$argon2id$new"
    missing = type(alice.id)(alice.id + 1000)
    assert await s.get_password_hash(missing) is None
    await raises(NotFound, s.set_password_hash(missing, "x"))


@check()
async def check_account_delete(h: Harness) -> None:
    s = h.store
    alice, bob = await account(s), await account(s, BOB)
    a_inbox, b_inbox = await mailbox(s, alice), await mailbox(s, bob)
    only_alice = AppendRequest(message(1, subject="only alice"))
    shared = AppendRequest(message(2, subject="both"))
    await s.append(a_inbox.id, [only_alice, shared])
    await s.append(b_inbox.id, [shared])
    a_msgs = await s.list_messages(a_inbox.id)
    await s.delete_account(alice.id)
    assert await s.get_account(ALICE) is None
    assert [a.address for a in await s.list_accounts()] == [BOB]
    assert await s.get_mailbox_by_id(a_inbox.id) is None
    assert await s.list_mailboxes(alice.id) == []
    assert await s.get_password_hash(alice.id) is None
    # Content only alice referenced is gone; shared content is still there.
    await raises(NotFound, s.read_content(a_msgs[0].content_id))
    assert await s.read_content(a_msgs[1].content_id) == shared.data
    assert len(await s.list_messages(b_inbox.id)) == 1
    await raises(NotFound, s.delete_account(alice.id))
    # The address can be used again, with fresh mailboxes.
    again = await account(s)
    assert again.id != alice.id
    assert (await s.mailbox_status((await mailbox(s, again)).id)).messages == 0


# ---- mailboxes -------------------------------------------------------------
@check()
async def check_default_mailboxes(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    boxes = await s.list_mailboxes(alice.id)
    assert [b.name for b in boxes] == sorted(name for name, _ in DEFAULT_MAILBOXES)
    uses = {b.name: b.special_use for b in boxes}
    assert uses == dict(DEFAULT_MAILBOXES)
    for b in boxes:
        assert b.account_id == alice.id
        assert b.subscribed
        assert b.uidnext == 1 and b.uidvalidity > 0 and b.highestmodseq >= 1
    assert sorted(await s.list_subscriptions(alice.id)) == sorted(n for n, _ in DEFAULT_MAILBOXES)


@check()
async def check_inbox_case_insensitive(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    for spelling in ("inbox", "InBox", "INBOX"):
        assert await s.get_mailbox(alice.id, spelling) == inbox
    child = await s.create_mailbox(alice.id, "inbox/Sub")
    assert child.name == "INBOX/Sub"
    assert await s.get_mailbox(alice.id, "Inbox/Sub") == child
    # Only INBOX is case-insensitive.
    await s.create_mailbox(alice.id, "work")
    assert await s.get_mailbox(alice.id, "Work") is None


@check()
async def check_mailbox_create(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    sub = s.changes.subscribe(alice.id)
    box = await s.create_mailbox(alice.id, "Lists/python", SpecialUse.ARCHIVE)
    assert box.name == "Lists/python" and box.special_use is SpecialUse.ARCHIVE
    assert box.uidnext == 1 and not box.subscribed and box.account_id == alice.id
    assert await s.get_mailbox(alice.id, "Lists/python") == box
    assert await s.get_mailbox_by_id(box.id) == box
    assert drained(sub) == [MailboxCreated(alice.id, box.id, "Lists/python")]
    await raises(AlreadyExists, s.create_mailbox(alice.id, "Lists/python"))
    await raises(AlreadyExists, s.create_mailbox(alice.id, "inbox"))
    assert drained(sub) == []
    plain = await s.create_mailbox(alice.id, "Ünïcödé ✓")
    assert plain.special_use is None
    names = [b.name for b in await s.list_mailboxes(alice.id)]
    assert names == sorted(names) and "Ünïcödé ✓" in names
    # The parent is the session's business, not the store's.
    assert await s.get_mailbox(alice.id, "Lists") is None


@check()
async def check_mailbox_delete(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    parent = await s.create_mailbox(alice.id, "a")
    child = await s.create_mailbox(alice.id, "a/b")
    await fill(s, parent, 2)
    sub = s.changes.subscribe(alice.id)
    await s.delete_mailbox(alice.id, "a")
    assert drained(sub) == [MailboxDeleted(alice.id, parent.id, "a")]
    assert await s.get_mailbox(alice.id, "a") is None
    assert await s.get_mailbox_by_id(parent.id) is None
    assert await s.get_mailbox(alice.id, "a/b") == child
    await raises(NotFound, s.delete_mailbox(alice.id, "a"))
    await raises(NotFound, s.append(parent.id, [AppendRequest(message(9))]))
    await raises(NotFound, s.list_messages(parent.id))
    await raises(NotFound, s.mailbox_status(parent.id))
    for spelling in ("INBOX", "inbox"):
        await raises(Cannot, s.delete_mailbox(alice.id, spelling))
    assert await s.get_mailbox(alice.id, INBOX) is not None
    assert drained(sub) == []


@check()
async def check_mailbox_rename(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    a = await s.create_mailbox(alice.id, "a")
    ab = await s.create_mailbox(alice.id, "a/b")
    abc = await s.create_mailbox(alice.id, "a/b/c")
    sibling = await s.create_mailbox(alice.id, "ab")  # shares the prefix, not a child
    await fill(s, ab, 3)
    sub = s.changes.subscribe(alice.id)
    renamed = await s.rename_mailbox(alice.id, "a", "z/y")
    assert renamed.id == a.id and renamed.name == "z/y" and renamed.uidvalidity == a.uidvalidity
    names = {b.id: b.name for b in await s.list_mailboxes(alice.id)}
    assert names[a.id] == "z/y" and names[ab.id] == "z/y/b" and names[abc.id] == "z/y/b/c"
    assert names[sibling.id] == "ab"
    moved = await mailbox(s, alice, "z/y/b")
    assert moved.uidvalidity == ab.uidvalidity and moved.uidnext == 4
    assert uids_of(await s.list_messages(ab.id)) == [1, 2, 3]
    changes = drained(sub)
    assert sorted(changes, key=lambda c: c.mailbox_id) == [
        MailboxRenamed(alice.id, a.id, "a", "z/y"),
        MailboxRenamed(alice.id, ab.id, "a/b", "z/y/b"),
        MailboxRenamed(alice.id, abc.id, "a/b/c", "z/y/b/c"),
    ]
    await raises(NotFound, s.rename_mailbox(alice.id, "a", "q"))
    await raises(AlreadyExists, s.rename_mailbox(alice.id, "ab", "z/y"))
    await raises(AlreadyExists, s.rename_mailbox(alice.id, "ab", "Sent"))
    # A child's new name colliding makes the whole rename fail, changing nothing.
    await s.create_mailbox(alice.id, "n/b")
    drained(sub)
    await raises(AlreadyExists, s.rename_mailbox(alice.id, "z/y", "n"))
    assert (await mailbox(s, alice, "z/y")).id == a.id
    assert (await mailbox(s, alice, "z/y/b/c")).id == abc.id
    assert drained(sub) == []


@check()
async def check_rename_inbox(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    child = await s.create_mailbox(alice.id, "INBOX/kid")
    await fill(s, inbox, 3, flags=frozenset({SEEN}))
    await s.store_flags(inbox.id, [UID(2)], FlagOp.ADD, [FLAGGED])
    before = await s.list_messages(inbox.id)
    sub = s.changes.subscribe(alice.id)
    old = await s.rename_mailbox(alice.id, "inbox", "Old mail")
    # RFC 9051 §6.3.6: a new mailbox gets INBOX's messages; INBOX stays, empty.
    assert old.name == "Old mail" and old.id != inbox.id
    assert old.uidvalidity != inbox.uidvalidity
    moved = await s.list_messages(old.id)
    assert uids_of(moved) == [1, 2, 3]
    assert [m.flags for m in moved] == [m.flags for m in before]
    assert [m.content_id for m in moved] == [m.content_id for m in before]
    assert [m.internal_date for m in moved] == [m.internal_date for m in before]
    after = await mailbox(s, alice)
    assert after.id == inbox.id and after.uidvalidity == inbox.uidvalidity
    assert after.uidnext == 4  # UIDs are never reused in a UIDVALIDITY
    assert await s.list_messages(inbox.id) == []
    assert await s.get_mailbox(alice.id, "INBOX/kid") == child
    changes = drained(sub)
    assert changes[0] == MailboxCreated(alice.id, old.id, "Old mail")
    added = [c for c in changes if isinstance(c, MessagesAdded)]
    gone = [c for c in changes if isinstance(c, MessagesExpunged)]
    assert len(added) == 1 and added[0].mailbox_id == old.id and added[0].uids == (1, 2, 3)
    assert len(gone) == 1 and gone[0].mailbox_id == inbox.id and gone[0].uids == (1, 2, 3)
    await raises(AlreadyExists, s.rename_mailbox(alice.id, INBOX, "Old mail"))


@check()
async def check_subscriptions(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    base = set(await s.list_subscriptions(alice.id))
    await s.subscribe(alice.id, "does/not/exist")  # RFC 9051 §6.3.7
    await s.subscribe(alice.id, "does/not/exist")
    subs = await s.list_subscriptions(alice.id)
    assert subs == sorted(subs) and set(subs) == base | {"does/not/exist"}
    box = await s.create_mailbox(alice.id, "does/not/exist")
    assert box.subscribed
    await s.unsubscribe(alice.id, "does/not/exist")
    assert not (await mailbox(s, alice, "does/not/exist")).subscribed
    await raises(NotFound, s.unsubscribe(alice.id, "does/not/exist"))
    await s.unsubscribe(alice.id, "inbox")
    assert INBOX not in await s.list_subscriptions(alice.id)
    assert not (await mailbox(s, alice)).subscribed
    await s.subscribe(alice.id, "Inbox")
    assert INBOX in await s.list_subscriptions(alice.id)
    bob = await account(s, BOB)
    assert "does/not/exist" not in await s.list_subscriptions(bob.id)


# ---- messages --------------------------------------------------------------
@check()
async def check_append(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    when = dt.datetime(2024, 2, 29, 13, 5, 9, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
    r1 = await s.append(
        inbox.id, [AppendRequest(message(1), frozenset({"\\seen", "$Forwarded"}), when)]
    )
    assert r1.mailbox_id == inbox.id and r1.uidvalidity == inbox.uidvalidity and r1.uids == (1,)
    r2 = await s.append(inbox.id, [AppendRequest(message(2))])
    assert r2.uids == (2,)
    msgs = await s.list_messages(inbox.id)
    assert uids_of(msgs) == [1, 2]
    m1, m2 = msgs
    assert m1.flags == {SEEN, "$Forwarded"}  # system flags canonical, keywords as given
    assert m1.internal_date == when and m1.internal_date.utcoffset() == when.utcoffset()
    assert m1.size == len(message(1)) and m1.mailbox_id == inbox.id
    assert m2.flags == frozenset()
    assert m2.internal_date.tzinfo is not None
    assert abs((dt.datetime.now(dt.UTC) - m2.internal_date).total_seconds()) < 60
    assert m2.modseq > m1.modseq
    assert await s.read_content(m1.content_id) == message(1)
    box = await mailbox(s, alice)
    assert box.uidnext == 3 and box.highestmodseq == m2.modseq
    # Facts computed by the store when the request has none.
    facts = await s.get_facts(m1.content_id)
    assert facts.header_size == message(1).index(b"\r\n\r\n") + 4
    assert facts.header_fields.get("subject") == "message 1"
    await raises(NotFound, s.get_facts(ContentID("0" * 64)))


@check()
async def check_append_facts_kept(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    facts = MessageFacts(
        envelope=["Thu, 1 Feb 2024 10:00:00 +0100", "Grüße ✓", [["A", None, "a", "x.org"]], None],
        bodystructure=[["text", "plain", ["charset", "utf-8"], None, None, "7bit", 12, 1], "mixed"],
        header_size=42,
        body_lines=7,
        header_fields={"subject": "Grüße ✓", "from": "A <a@x.org>"},
        sent_date=dt.datetime(2024, 2, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    )
    r = await s.append(inbox.id, [AppendRequest(message(1), facts=facts)])
    (msg,) = await s.list_messages(inbox.id, r.uids)
    got = await s.get_facts(msg.content_id)
    assert got == facts
    assert got.sent_date is not None and got.sent_date.utcoffset() == dt.timedelta(hours=1)


MIME_MESSAGE = (
    b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.net>\r\nTo: alice@example.org\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nDate: Thu, 1 Feb 2024 10:00:00 +0100\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=xx\r\n\r\n"
    b"--xx\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello \xff\xfe\r\n"
    b"--xx\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody\r\n"
    b"--xx--\r\n"
)


@check()
async def check_computed_facts(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    r = await s.append(inbox.id, [AppendRequest(MIME_MESSAGE)])
    (msg,) = await s.list_messages(inbox.id, r.uids)
    # What the store serves is exactly what the parser produced at delivery.
    assert await s.get_facts(msg.content_id) == compute_facts(MIME_MESSAGE)


@check()
async def check_multi_append(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    await fill(s, inbox, 2)
    sub = s.changes.subscribe(alice.id)
    reqs = [AppendRequest(message(10 + i), frozenset({f"k{i}"})) for i in range(5)]
    r = await s.append(inbox.id, reqs)
    # RFC 3502: one command, consecutive UIDs in order, all or nothing.
    assert r.uids == (3, 4, 5, 6, 7)
    msgs = await s.list_messages(inbox.id, r.uids)
    assert [await s.read_content(m.content_id) for m in msgs] == [q.data for q in reqs]
    assert [m.flags for m in msgs] == [{f"k{i}"} for i in range(5)]
    assert len({m.modseq for m in msgs}) == 1
    (change,) = drained(sub)
    # The record names the keywords the new messages carry (IMAP's FLAGS).
    keywords = frozenset(f"k{i}" for i in range(5))
    assert change == MessagesAdded(alice.id, inbox.id, r.uids, msgs[0].modseq, keywords)
    # Appending to a mailbox that is gone fails whole and publishes nothing.
    gone = await deleted_mailbox(s, alice)
    drained(sub)
    await raises(NotFound, s.append(gone.id, reqs))
    assert drained(sub) == []
    # An empty append changes nothing.
    before = await mailbox(s, alice)
    empty = await s.append(inbox.id, [])
    assert empty.uids == () and empty.uidvalidity == inbox.uidvalidity
    assert await mailbox(s, alice) == before
    assert drained(sub) == []


@check()
async def check_concurrent_appends(h: Harness) -> None:
    s = h.store
    alice, bob = await account(s), await account(s, BOB)
    a, b = await mailbox(s, alice), await mailbox(s, bob)

    async def one(box: Mailbox, n: int) -> tuple[UID, ...]:
        return (await s.append(box.id, [AppendRequest(message(n))])).uids

    results = await asyncio.gather(*(one(a if n % 2 else b, n) for n in range(60)))
    a_uids = sorted(u for n, r in enumerate(results) if n % 2 for u in r)
    b_uids = sorted(u for n, r in enumerate(results) if not n % 2 for u in r)
    assert a_uids == list(range(1, 31)) and b_uids == list(range(1, 31))
    assert uids_of(await s.list_messages(a.id)) == a_uids
    assert (await s.mailbox_status(b.id)).messages == 30
    for n, r in enumerate(results):
        box = a if n % 2 else b
        (msg,) = await s.list_messages(box.id, r)
        assert await s.read_content(msg.content_id) == message(n)


@check()
async def check_list_messages_filter(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    await fill(s, inbox, 6)
    await s.expunge(inbox.id, [UID(3)], require_deleted=False)
    assert uids_of(await s.list_messages(inbox.id)) == [1, 2, 4, 5, 6]
    picked = await s.list_messages(inbox.id, [UID(6), UID(1), UID(3), UID(99), UID(1)])
    assert uids_of(picked) == [1, 6]
    assert await s.list_messages(inbox.id, []) == []
    assert uids_of(await s.list_messages(inbox.id, (UID(u) for u in range(1, 200)))) == [
        1,
        2,
        4,
        5,
        6,
    ]
    empty = await s.create_mailbox(alice.id, "empty")
    assert await s.list_messages(empty.id) == []


@check()
async def check_uids_keywords_forms(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    empty = await s.create_mailbox(alice.id, "empty")
    assert list(await s.list_uids(empty.id)) == []
    assert await s.list_keywords(empty.id) == []
    await fill(s, inbox, 5)
    await s.expunge(inbox.id, [UID(2)], require_deleted=False)
    assert list(await s.list_uids(inbox.id)) == [1, 3, 4, 5]
    await s.store_flags(inbox.id, [UID(1), UID(3)], FlagOp.ADD, ["$b", SEEN, "$A"])
    await s.store_flags(inbox.id, [UID(4)], FlagOp.ADD, ["$b", "x"])
    # Keywords only (system flags are not keywords), each once, sorted.
    assert await s.list_keywords(inbox.id) == ["$A", "$b", "x"]
    await s.store_flags(inbox.id, [UID(4)], FlagOp.REMOVE, ["x"])
    assert await s.list_keywords(inbox.id) == ["$A", "$b"]
    gone = await deleted_mailbox(s, alice)
    await raises(NotFound, s.list_uids(gone.id))
    await raises(NotFound, s.list_keywords(gone.id))
    # Forms: what compute_facts made, for every content asked about that has
    # them (a store may make them after the append: then once settled).
    plain, mime = message(7), MIME_MESSAGE
    r = await s.append(inbox.id, [AppendRequest(plain), AppendRequest(mime)])
    msgs = await s.list_messages(inbox.id, r.uids)
    cids = [m.content_id for m in msgs]
    forms = await s.get_forms([*cids, ContentID("0" * 64)])
    assert set(forms) <= set(cids)
    for cid, form in forms.items():
        assert form == compute_facts(plain if cid == cids[0] else mime).forms
    await h.settled()
    forms = await s.get_forms([*cids, ContentID("0" * 64)])
    assert set(forms) == set(cids)
    assert forms[cids[0]] == compute_facts(plain).forms
    assert forms[cids[1]] == compute_facts(mime).forms
    assert await s.get_forms([]) == {}


@check()
async def check_message_index(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    west = dt.timezone(-dt.timedelta(hours=5))
    dates = [
        dt.datetime(2024, 3, 1, 23, 30, tzinfo=west),  # 2 March in UTC, 1 March here
        dt.datetime(1969, 12, 31, 23, 0, tzinfo=dt.UTC),  # before the epoch
        dt.datetime(2024, 3, 2, 0, 15, tzinfo=dt.timezone(dt.timedelta(hours=14))),
    ]
    flags = [frozenset({SEEN, "$A"}), frozenset(), frozenset({DELETED, "\\Flagged", "b"})]
    reqs = [AppendRequest(message(i), flags[i], dates[i]) for i in range(3)]
    r = await s.append(inbox.id, reqs)
    await s.store_flags(inbox.id, [r.uids[1]], FlagOp.ADD, ["\\Answered"])
    await s.expunge(inbox.id, [r.uids[0]], require_deleted=False)
    r2 = await s.append(inbox.id, [reqs[0]])
    msgs = await s.list_messages(inbox.id)
    bare = await s.message_index(inbox.id)
    assert list(bare.uids) == [m.uid for m in msgs] == [2, 3, 4]
    assert (bare.flags, bare.keywords, bare.days, bare.sizes, bare.modseqs) == (None,) * 5
    assert (bare.dates, bare.zones) == (None, None)
    full = await s.message_index(inbox.id, INDEX_COLUMNS)
    assert list(full.uids) == [2, 3, 4]
    assert full.flags is not None and list(full.flags) == [
        FLAG_BIT["\\Answered"],
        FLAG_BIT[DELETED] | FLAG_BIT["\\Flagged"],
        FLAG_BIT[SEEN],
    ]
    assert full.keywords == {3: frozenset({"b"}), 4: frozenset({"$A"})}
    assert full.days is not None
    assert [dt.date.fromordinal(d) for d in full.days] == [
        dt.date(1969, 12, 31),
        dt.date(2024, 3, 2),
        dt.date(2024, 3, 1),
    ]
    assert full.sizes is not None and list(full.sizes) == [m.size for m in msgs]
    assert full.modseqs is not None and list(full.modseqs) == [m.modseq for m in msgs]
    assert full.dates is not None and full.zones is not None
    stored = [
        dt.datetime.fromtimestamp(t, dt.timezone(dt.timedelta(seconds=z)))
        for t, z in zip(full.dates, full.zones, strict=True)
    ]
    assert stored == [m.internal_date for m in msgs] == [dates[1], dates[2], dates[0]]
    assert [z for z in full.zones] == [0, 14 * 3600, -5 * 3600]
    assert r2.uids == (4,)
    gone = await deleted_mailbox(s, alice)
    await raises(NotFound, s.message_index(gone.id))


@check()
async def check_unseen_uids(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    other = await s.create_mailbox(alice.id, "other")
    assert list(await s.unseen_uids(inbox.id)) == []
    reqs = [
        AppendRequest(message(i), frozenset({SEEN}) if i % 3 else frozenset()) for i in range(9)
    ]
    r = await s.append(inbox.id, reqs)
    await s.append(other.id, [AppendRequest(message(20))])

    async def expected() -> list[int]:
        index = await s.message_index(inbox.id, frozenset({"flags"}))
        assert index.flags is not None
        return [u for u, f in zip(index.uids, index.flags, strict=True) if not f & FLAG_BIT[SEEN]]

    assert (
        list(await s.unseen_uids(inbox.id)) == await expected() == [r.uids[0], r.uids[3], r.uids[6]]
    )
    await s.store_flags(inbox.id, [r.uids[0]], FlagOp.ADD, [SEEN])
    await s.store_flags(inbox.id, [r.uids[1], r.uids[2]], FlagOp.REMOVE, [SEEN])
    await s.store_flags(inbox.id, [r.uids[8]], FlagOp.REPLACE, ["\\Flagged"])
    await s.expunge(inbox.id, [r.uids[6]], require_deleted=False)
    moved = await s.move(inbox.id, [r.uids[3]], other.id)
    unseen = list(await s.unseen_uids(inbox.id))
    assert unseen == await expected() == [r.uids[1], r.uids[2], r.uids[8]]
    assert list(await s.unseen_uids(other.id)) == [1, *moved.dest_uids]
    gone = await deleted_mailbox(s, alice)
    await raises(NotFound, s.unseen_uids(gone.id))


@check()
async def check_read_content_ranges(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    small, big = message(1), message(2, body_size=300_000)
    await s.append(inbox.id, [AppendRequest(small), AppendRequest(big)])
    m_small, m_big = await s.list_messages(inbox.id)
    assert m_big.size == len(big)
    cid = m_small.content_id
    assert await s.read_content(cid) == small
    assert await s.read_content(cid, 5) == small[5:]
    assert await s.read_content(cid, 5, 10) == small[5:15]
    assert await s.read_content(cid, 0, 0) == b""
    assert await s.read_content(cid, len(small) - 3, 100) == small[-3:]
    assert await s.read_content(cid, len(small) + 10, 5) == b""
    assert await s.read_content(m_big.content_id) == big
    assert await s.read_content(m_big.content_id, 200_000, 70_000) == big[200_000:270_000]
    assert await s.read_content(m_big.content_id, 250_000) == big[250_000:]
    await raises(NotFound, s.read_content(ContentID("f" * 64)))
    await raises(NotFound, s.read_content(ContentID("../../../../etc/passwd")))


@check()
async def check_read_contents(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    datas = [message(1), message(2, body_size=300_000), message(3, body_size=0)]
    await s.append(inbox.id, [AppendRequest(d) for d in datas])
    msgs = await s.list_messages(inbox.id)
    cids = [m.content_id for m in msgs]
    missing = ContentID("f" * 64)
    got = await s.read_contents([cids[2], missing, cids[0], cids[1], cids[0]])
    assert got == dict(zip(cids, datas, strict=True))
    assert await s.read_contents([]) == {}
    assert await s.read_contents([ContentID("../../../../etc/passwd")]) == {}
    # After the last reference is expunged the bytes are no longer there.
    await s.expunge(inbox.id, [msgs[0].uid], require_deleted=False)
    assert await s.read_contents(cids) == dict(zip(cids[1:], datas[1:], strict=True))


@check()
async def check_store_flags(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    await fill(s, inbox, 4)
    sub = s.changes.subscribe(alice.id)
    m0 = await highest(s, inbox)

    ups = await s.store_flags(inbox.id, [UID(1), UID(2), UID(77)], FlagOp.ADD, ["\\seen", "Work"])
    assert [u.uid for u in ups] == [1, 2]
    assert all(u.flags == {SEEN, "Work"} for u in ups)
    m1 = ups[0].modseq
    assert m1 > m0 and all(u.modseq == m1 for u in ups)  # RFC 7162 §3.1
    assert await highest(s, inbox) == m1
    assert drained(sub) == [
        FlagsChanged(alice.id, inbox.id, tuple((u.uid, m1, u.flags) for u in ups))
    ]

    # Only messages whose flags change are returned and get a new modseq.
    ups = await s.store_flags(inbox.id, [UID(1), UID(3)], FlagOp.ADD, [SEEN])
    assert flag_pairs(ups) == [(3, frozenset({SEEN}))]
    m2 = ups[0].modseq
    assert m2 > m1
    msgs = by_uid(await s.list_messages(inbox.id))
    assert msgs[1].modseq == m1 and msgs[3].modseq == m2 and msgs[4].modseq < m1

    ups = await s.store_flags(inbox.id, [UID(1), UID(2)], FlagOp.REMOVE, ["work", SEEN])
    # Keywords keep their case; `work` is not `Work` here, \Seen goes.
    assert flag_pairs(ups) == [(1, frozenset({"Work"})), (2, frozenset({"Work"}))]

    ups = await s.store_flags(inbox.id, [UID(1), UID(4)], FlagOp.REPLACE, [FLAGGED, "\\DRAFT"])
    both = frozenset({FLAGGED, "\\Draft"})
    assert flag_pairs(ups) == [(1, both), (4, both)]
    ups = await s.store_flags(inbox.id, [UID(1)], FlagOp.REPLACE, [])
    assert flag_pairs(ups) == [(1, frozenset())]

    # Nothing changes: nothing returned, no new modseq, nothing published.
    drained(sub)
    before = await highest(s, inbox)
    assert await s.store_flags(inbox.id, [UID(4)], FlagOp.ADD, [FLAGGED]) == []
    assert await s.store_flags(inbox.id, [UID(1)], FlagOp.REMOVE, [SEEN]) == []
    assert await s.store_flags(inbox.id, [UID(99)], FlagOp.ADD, [SEEN]) == []
    assert await highest(s, inbox) == before
    assert drained(sub) == []

    # UNCHANGEDSINCE (RFC 7162 §3.2): messages modified after it are left alone.
    msgs = by_uid(await s.list_messages(inbox.id))
    since = msgs[3].modseq
    assert msgs[1].modseq > since and msgs[2].modseq > since
    ups = await s.store_flags(
        inbox.id, [UID(1), UID(2), UID(3)], FlagOp.ADD, [DELETED], unchanged_since=since
    )
    assert [u.uid for u in ups] == [3]
    after = by_uid(await s.list_messages(inbox.id))
    assert DELETED not in after[1].flags and DELETED in after[3].flags
    await raises(NotFound, s.store_flags(type(inbox.id)(inbox.id + 999), [UID(1)], FlagOp.ADD, []))


@check()
async def check_expunge(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    await fill(s, inbox, 6)
    await s.store_flags(inbox.id, [UID(2), UID(4), UID(5)], FlagOp.ADD, [DELETED])
    sub = s.changes.subscribe(alice.id)
    before = await highest(s, inbox)
    # Only \Deleted messages among those named.
    assert await s.expunge(inbox.id, [UID(5), UID(1), UID(2)]) == [2, 5]
    (change,) = drained(sub)
    assert isinstance(change, MessagesExpunged) and change.uids == (2, 5)
    assert change.mailbox_id == inbox.id and change.modseq > before
    assert await highest(s, inbox) == change.modseq
    # Another session cleared \Deleted: expunge must look at the current flags.
    await s.store_flags(inbox.id, [UID(4)], FlagOp.REMOVE, [DELETED])
    drained(sub)
    assert await s.expunge(inbox.id) == []
    assert drained(sub) == []
    await s.store_flags(inbox.id, [UID(6), UID(3)], FlagOp.ADD, [DELETED])
    assert await s.expunge(inbox.id) == [3, 6]
    assert uids_of(await s.list_messages(inbox.id)) == [1, 4]
    # require_deleted=False removes what is named, flags or not; None is all.
    assert await s.expunge(inbox.id, [UID(4), UID(9)], require_deleted=False) == [4]
    await fill(s, inbox, 2)
    assert await s.expunge(inbox.id, None, require_deleted=False) == [1, 7, 8]
    assert await s.list_messages(inbox.id) == []
    st = await s.mailbox_status(inbox.id)
    assert st.messages == 0 and st.uidnext == 9 and st.size == 0


@check()
async def check_copy(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox, archive = await mailbox(s, alice), await mailbox(s, alice, "Archive")
    when = dt.datetime(2023, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    await fill(s, inbox, 4, internal_date=when)
    await fill(s, archive, 2)
    await s.store_flags(inbox.id, [UID(2)], FlagOp.ADD, [SEEN, "Important"])
    sub = s.changes.subscribe(alice.id)
    result = await s.copy(inbox.id, [UID(4), UID(2), UID(42)], archive.id)
    # RFC 4315 §3: COPYUID source and destination UIDs, in the same order.
    assert result.uidvalidity == archive.uidvalidity
    assert result.source_uids == (2, 4) and result.dest_uids == (3, 4)
    src = by_uid(await s.list_messages(inbox.id))
    copies = by_uid(await s.list_messages(archive.id))
    assert copies[3].flags == {SEEN, "Important"} and copies[4].flags == frozenset()
    assert copies[3].content_id == src[2].content_id  # rows, not bytes
    assert copies[3].internal_date == when and copies[3].size == src[2].size
    assert sorted(src) == [1, 2, 3, 4]  # the source is untouched
    (change,) = drained(sub)
    added = MessagesAdded(
        alice.id, archive.id, (UID(3), UID(4)), copies[3].modseq, frozenset({"Important"})
    )
    assert change == added
    # Copying into the same mailbox works too.
    again = await s.copy(inbox.id, [UID(1)], inbox.id)
    assert again.dest_uids == (5,)
    empty = await s.copy(inbox.id, [UID(99)], archive.id)
    assert empty.source_uids == () and empty.dest_uids == ()
    gone = await deleted_mailbox(s, alice)
    await raises(NotFound, s.copy(inbox.id, [UID(1)], gone.id))
    await raises(NotFound, s.copy(gone.id, [UID(1)], inbox.id))


@check()
async def check_move(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox, trash = await mailbox(s, alice), await mailbox(s, alice, "Trash")
    await fill(s, inbox, 3)
    await s.store_flags(inbox.id, [UID(1)], FlagOp.ADD, [FLAGGED])
    cids = {int(m.uid): m.content_id for m in await s.list_messages(inbox.id)}
    sub = s.changes.subscribe(alice.id)
    result = await s.move(inbox.id, [UID(1), UID(3)], trash.id)
    assert result.source_uids == (1, 3) and result.dest_uids == (1, 2)
    assert result.uidvalidity == trash.uidvalidity
    assert uids_of(await s.list_messages(inbox.id)) == [2]
    moved = await s.list_messages(trash.id)
    assert [m.flags for m in moved] == [{FLAGGED}, frozenset()]
    assert [m.content_id for m in moved] == [cids[1], cids[3]]
    assert await s.read_content(moved[0].content_id) == message(0)
    changes = drained(sub)
    assert [type(c) for c in changes] == [MessagesAdded, MessagesExpunged]
    assert changes[0].mailbox_id == trash.id and changes[0].uids == (1, 2)  # type: ignore[union-attr]
    assert changes[1].mailbox_id == inbox.id and changes[1].uids == (1, 3)  # type: ignore[union-attr]
    assert (await s.move(inbox.id, [UID(7)], trash.id)).dest_uids == ()


@check()
async def check_mailbox_status(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    st = await s.mailbox_status(inbox.id)
    assert (st.messages, st.unseen, st.deleted, st.size, st.recent) == (0, 0, 0, 0, 0)
    assert st.uidnext == 1 and st.uidvalidity == inbox.uidvalidity
    assert st.first_unseen_uid is None
    await s.append(
        inbox.id,
        [
            AppendRequest(message(1), frozenset({SEEN})),
            AppendRequest(message(2)),
            AppendRequest(message(3), frozenset({SEEN, DELETED})),
            AppendRequest(message(4)),
        ],
    )
    st = await s.mailbox_status(inbox.id)
    assert (st.messages, st.unseen, st.deleted, st.recent) == (4, 2, 1, 4)
    assert st.size == sum(len(message(i)) for i in (1, 2, 3, 4))
    assert st.first_unseen_uid == 2 and st.uidnext == 5
    assert st.highestmodseq == await highest(s, inbox)
    await s.store_flags(inbox.id, [UID(2)], FlagOp.ADD, [SEEN, DELETED])
    await s.store_flags(inbox.id, [UID(3)], FlagOp.REMOVE, [SEEN])
    st = await s.mailbox_status(inbox.id)
    assert (st.unseen, st.deleted, st.first_unseen_uid) == (2, 2, 3)
    await s.store_flags(inbox.id, [UID(2)], FlagOp.REPLACE, [])
    assert (await s.mailbox_status(inbox.id)).first_unseen_uid == 2
    await s.expunge(inbox.id)
    st = await s.mailbox_status(inbox.id)
    assert (st.messages, st.unseen, st.deleted) == (3, 2, 0)
    assert st.size == sum(len(message(i)) for i in (1, 2, 4))
    await s.copy(inbox.id, [UID(1), UID(2)], (await mailbox(s, alice, "Trash")).id)
    st = await s.mailbox_status((await mailbox(s, alice, "Trash")).id)
    assert (st.messages, st.unseen, st.deleted) == (2, 1, 0)


@check()
async def check_claim_recent(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    await fill(s, inbox, 3)
    # RFC 3501 §2.3.2: the first session to see new messages gets \Recent.
    assert await s.claim_recent(inbox.id) == 1
    assert await s.claim_recent(inbox.id) == 4
    assert (await s.mailbox_status(inbox.id)).recent == 0
    await fill(s, inbox, 2)
    assert (await s.mailbox_status(inbox.id)).recent == 2
    assert (await mailbox(s, alice)).first_recent_uid == 4
    await s.expunge(inbox.id, [UID(1), UID(5)], require_deleted=False)
    assert (await s.mailbox_status(inbox.id)).recent == 1
    assert await s.claim_recent(inbox.id) == 4
    assert (await mailbox(s, alice)).first_recent_uid == 6
    await raises(NotFound, s.claim_recent(type(inbox.id)(inbox.id + 999)))


@check()
async def check_claim_recent_is_exclusive(h: Harness) -> None:
    """RFC 3501 §2.3.2: of sessions selecting at once, exactly one gets the new
    messages as \\Recent; STATUS counts none from the moment of the claim, and
    mail delivered after it is recent for the next claimer only."""
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    await fill(s, inbox, 3)
    got = await asyncio.gather(*(s.claim_recent(inbox.id) for _ in range(8)))
    assert sorted(got) == [1] + [4] * 7
    assert (await s.mailbox_status(inbox.id)).recent == 0
    await fill(s, inbox, 2)
    assert (await s.mailbox_status(inbox.id)).recent == 2
    got = await asyncio.gather(*(s.claim_recent(inbox.id) for _ in range(4)))
    assert sorted(got) == [4, 6, 6, 6]
    assert (await s.mailbox_status(inbox.id)).recent == 0
    assert await s.claim_recent(inbox.id) == 6
    assert (await mailbox(s, alice)).first_recent_uid == 6


@check()
async def check_uidvalidity_recreated(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    seen = {b.uidvalidity for b in await s.list_mailboxes(alice.id)}
    first = await s.create_mailbox(alice.id, "again")
    await fill(s, first, 2)
    for _ in range(3):
        await s.delete_mailbox(alice.id, "again")
        box = await s.create_mailbox(alice.id, "again")
        # RFC 9051 §2.3.1.1: a recreated name never reuses a UIDVALIDITY.
        assert box.uidvalidity not in seen and box.uidvalidity != first.uidvalidity
        assert box.uidnext == 1 and box.id != first.id
        seen.add(box.uidvalidity)
    assert 0 < max(seen) < 2**32


@check(PERSISTENT)
async def check_uidvalidity_across_restart(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    box = await s.create_mailbox(alice.id, "again")
    await s.delete_mailbox(alice.id, "again")
    s = await h.reopen()
    again = await s.create_mailbox(alice.id, "again")
    assert again.uidvalidity > box.uidvalidity


@check()
async def check_highestmodseq_grows(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox, trash = await mailbox(s, alice), await mailbox(s, alice, "Trash")
    values = [await highest(s, inbox)]

    async def step(aw: Awaitable[object], changes: bool = True) -> None:
        await aw
        now = await highest(s, inbox)
        assert now > values[-1] if changes else now == values[-1]
        values.append(now)

    await step(fill(s, inbox, 3))
    await step(s.store_flags(inbox.id, [UID(1)], FlagOp.ADD, [DELETED]))
    await step(s.store_flags(inbox.id, [UID(1)], FlagOp.ADD, [DELETED]), changes=False)
    await step(s.expunge(inbox.id))
    await step(s.expunge(inbox.id), changes=False)
    await step(s.copy(trash.id, [UID(1)], inbox.id), changes=False)
    await step(s.copy(inbox.id, [UID(2)], inbox.id))
    await step(s.move(inbox.id, [UID(2)], trash.id))
    await step(s.claim_recent(inbox.id), changes=False)
    for m in await s.list_messages(inbox.id):
        assert m.modseq <= values[-1]


@check()
async def check_changes_per_account(h: Harness) -> None:
    s = h.store
    alice, bob = await account(s), await account(s, BOB)
    a_sub, a_sub2, b_sub = (
        s.changes.subscribe(alice.id),
        s.changes.subscribe(alice.id),
        s.changes.subscribe(bob.id),
    )
    inbox = await mailbox(s, alice)
    r = await s.append(inbox.id, [AppendRequest(message(1))])
    # Published by the time the call returns, never to other accounts.
    assert a_sub.has_pending() and a_sub2.has_pending()
    (change,) = a_sub.drain()
    assert change == a_sub2.drain()[0]
    assert isinstance(change, MessagesAdded) and change.uids == r.uids
    assert change.account_id == alice.id and change.mailbox_id == inbox.id
    (msg,) = await s.list_messages(inbox.id)
    assert change.modseq == msg.modseq
    await s.store_flags(inbox.id, [UID(1)], FlagOp.ADD, [SEEN])
    await s.create_mailbox(alice.id, "x")
    await s.rename_mailbox(alice.id, "x", "y")
    await s.delete_mailbox(alice.id, "y")
    kinds = [type(c) for c in a_sub.drain()]
    assert kinds == [FlagsChanged, MailboxCreated, MailboxRenamed, MailboxDeleted]
    assert [type(c) for c in a_sub2.drain()] == kinds
    assert not b_sub.has_pending()
    # A waiting subscriber wakes up.
    waiter = asyncio.ensure_future(a_sub.wait())
    await asyncio.sleep(0)
    await s.append(inbox.id, [AppendRequest(message(2))])
    await asyncio.wait_for(waiter, 5)
    assert len(a_sub.drain()) == 1
    a_sub.close()
    await s.append(inbox.id, [AppendRequest(message(3))])
    assert not a_sub.has_pending() and len(a_sub2.drain()) == 2
    assert not b_sub.has_pending()


@check()
async def check_content_shared_and_freed(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox, archive = await mailbox(s, alice), await mailbox(s, alice, "Archive")
    data = message(7, body_size=5000)
    r1 = await s.append(inbox.id, [AppendRequest(data)])
    r2 = await s.append(inbox.id, [AppendRequest(data)])  # identical content, stored once
    m1, m2 = await s.list_messages(inbox.id, r1.uids + r2.uids)
    cid = m1.content_id
    assert m2.content_id == cid
    await s.copy(inbox.id, [m1.uid], archive.id)
    await s.delete_mailbox(alice.id, "Archive")
    await s.expunge(inbox.id, [m1.uid], require_deleted=False)
    assert await s.read_content(cid) == data
    if h.blob_path is not None:
        assert h.blob_path(cid).is_file()
    await s.expunge(inbox.id, [m2.uid], require_deleted=False)
    # The last reference is gone: so are the bytes.
    await raises(NotFound, s.read_content(cid))
    await raises(NotFound, s.get_facts(cid))
    if h.blob_path is not None:
        assert not h.blob_path(cid).exists()
    # ... and the same content can come back.
    r3 = await s.append(inbox.id, [AppendRequest(data)])
    (m3,) = await s.list_messages(inbox.id, r3.uids)
    assert await s.read_content(m3.content_id) == data


@check(BLOB_FILES)
async def check_blob_file_per_content(h: Harness) -> None:
    assert h.blob_path is not None
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    await fill(s, inbox, 3)
    for m in await s.list_messages(inbox.id):
        path = h.blob_path(m.content_id)
        assert path.read_bytes() == await s.read_content(m.content_id)


@check()
async def check_maildrop_lock(h: Harness) -> None:
    s = h.store
    alice, bob = await account(s), await account(s, BOB)
    assert s.try_lock_maildrop(alice.id)
    assert not s.try_lock_maildrop(alice.id)  # RFC 1939 §8: [IN-USE]
    assert s.try_lock_maildrop(bob.id)
    s.unlock_maildrop(alice.id)
    assert s.try_lock_maildrop(alice.id)
    s.unlock_maildrop(alice.id)
    s.unlock_maildrop(bob.id)


@check(PERSISTENT)
async def check_persistence(h: Harness) -> None:
    s = h.store
    alice = await account(s)
    inbox = await mailbox(s, alice)
    box = await s.create_mailbox(alice.id, "Lists/x", SpecialUse.FLAGGED)
    await s.subscribe(alice.id, "ghost")
    facts = MessageFacts(envelope=["e", None], header_fields={"subject": "s"}, body_lines=3)
    when = dt.datetime(2020, 5, 6, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    await s.append(inbox.id, [AppendRequest(message(1), frozenset({SEEN, "kw"}), when, facts)])
    await fill(s, box, 2)
    mime = (await s.append(box.id, [AppendRequest(MIME_MESSAGE)])).uids
    await s.store_flags(box.id, [UID(1)], FlagOp.ADD, [DELETED])
    await s.expunge(box.id)
    await s.claim_recent(inbox.id)
    accounts = await s.list_accounts()
    boxes = await s.list_mailboxes(alice.id)
    msgs = {b.id: await s.list_messages(b.id) for b in boxes}
    status = {b.id: await s.mailbox_status(b.id) for b in boxes}
    subs = await s.list_subscriptions(alice.id)

    s = await h.reopen()
    assert await s.list_accounts() == accounts
    assert await s.get_password_hash(alice.id) == "hash-of-" + ALICE
    assert await s.list_mailboxes(alice.id) == boxes
    assert {b.id: await s.list_messages(b.id) for b in boxes} == msgs
    assert {b.id: await s.mailbox_status(b.id) for b in boxes} == status
    assert await s.list_subscriptions(alice.id) == subs
    (m,) = msgs[inbox.id]
    assert m.internal_date == when and m.flags == {SEEN, "kw"}
    assert await s.get_facts(m.content_id) == facts
    assert await s.read_content(m.content_id) == message(1)
    (mm,) = await s.list_messages(box.id, mime)
    assert await s.get_facts(mm.content_id) == compute_facts(MIME_MESSAGE)
    # Counters carry on where they were.
    r = await s.append(box.id, [AppendRequest(message(5))])
    assert r.uids == (4,)
    assert await s.claim_recent(inbox.id) == 2
