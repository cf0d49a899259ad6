"""In-memory backend: the reference semantics, used by fast tests.

Single event-loop only; every method finishes without awaiting, so each one
is atomic with respect to other sessions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import time
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from ...errors import AlreadyExists, Cannot, NotFound
from ...message.facts import compute_facts
from ..changes import (
    ChangeHub,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
)
from ..models import (
    DEFAULT_MAILBOXES,
    DELETED,
    FLAG_BIT,
    INBOX,
    SEEN,
    SEPARATOR,
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
    UIDValidity,
    canonical_mailbox_name,
    normalize_flag,
)


@dataclass(slots=True)
class _Content:
    data: bytes
    facts: MessageFacts
    refs: int = 0


@dataclass(slots=True)
class _Mailbox:
    box: Mailbox
    messages: dict[UID, Message] = field(default_factory=dict)
    expunged: dict[UID, ModSeq] = field(default_factory=dict)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class MemoryStore:
    def __init__(self) -> None:
        self.changes = ChangeHub()
        self._accounts: dict[AccountID, Account] = {}
        self._by_address: dict[str, AccountID] = {}
        self._hashes: dict[AccountID, str] = {}
        self._mailboxes: dict[MailboxID, _Mailbox] = {}
        self._subscriptions: dict[AccountID, set[str]] = {}
        self._contents: dict[ContentID, _Content] = {}
        self._locks: set[AccountID] = set()
        self._ids = itertools.count(1)
        self._last_uidvalidity = 0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # ---- accounts ---------------------------------------------------------
    async def create_account(self, address: str, password_hash: str) -> Account:
        if address in self._by_address:
            raise AlreadyExists(address)
        acct = Account(AccountID(next(self._ids)), address, _now())
        self._accounts[acct.id] = acct
        self._by_address[address] = acct.id
        self._hashes[acct.id] = password_hash
        self._subscriptions[acct.id] = set()
        for name, use in DEFAULT_MAILBOXES:
            self._new_mailbox(acct.id, name, use)
            self._subscriptions[acct.id].add(name)
        return acct

    async def get_account(self, address: str) -> Account | None:
        aid = self._by_address.get(address)
        return self._accounts.get(aid) if aid is not None else None

    async def get_password_hash(self, account_id: AccountID) -> str | None:
        return self._hashes.get(account_id)

    async def set_password_hash(self, account_id: AccountID, password_hash: str) -> None:
        if account_id not in self._accounts:
            raise NotFound("no such account")
        self._hashes[account_id] = password_hash

    async def list_accounts(self) -> list[Account]:
        return sorted(self._accounts.values(), key=lambda a: a.address)

    async def delete_account(self, account_id: AccountID) -> None:
        acct = self._accounts.pop(account_id, None)
        if acct is None:
            raise NotFound("no such account")
        del self._by_address[acct.address]
        self._hashes.pop(account_id, None)
        self._subscriptions.pop(account_id, None)
        for mid in [m for m, b in self._mailboxes.items() if b.box.account_id == account_id]:
            self._drop_mailbox(mid)

    # ---- mailboxes --------------------------------------------------------
    def _next_uidvalidity(self) -> UIDValidity:
        # Time-based so a recreated mailbox never reuses an old value, even
        # across restarts of a persistent backend (RFC 9051 §2.3.1.1).
        self._last_uidvalidity = max(self._last_uidvalidity + 1, int(time.time()))
        return UIDValidity(self._last_uidvalidity)

    def _new_mailbox(self, account_id: AccountID, name: str, use: SpecialUse | None) -> Mailbox:
        box = Mailbox(
            id=MailboxID(next(self._ids)),
            account_id=account_id,
            name=name,
            uidvalidity=self._next_uidvalidity(),
            uidnext=UID(1),
            highestmodseq=ModSeq(1),
            subscribed=False,
            special_use=use,
        )
        self._mailboxes[box.id] = _Mailbox(box)
        return box

    def _find(self, account_id: AccountID, name: str) -> _Mailbox | None:
        name = canonical_mailbox_name(name)
        for mb in self._mailboxes.values():
            if mb.box.account_id == account_id and mb.box.name == name:
                return mb
        return None

    def _get(self, mailbox_id: MailboxID) -> _Mailbox:
        mb = self._mailboxes.get(mailbox_id)
        if mb is None:
            raise NotFound("mailbox does not exist")
        return mb

    def _with_sub(self, box: Mailbox) -> Mailbox:
        subs = self._subscriptions.get(box.account_id, set())
        return replace(box, subscribed=box.name in subs)

    async def list_mailboxes(self, account_id: AccountID) -> list[Mailbox]:
        boxes = [
            self._with_sub(mb.box)
            for mb in self._mailboxes.values()
            if mb.box.account_id == account_id
        ]
        return sorted(boxes, key=lambda b: b.name)

    async def get_mailbox(self, account_id: AccountID, name: str) -> Mailbox | None:
        mb = self._find(account_id, name)
        return self._with_sub(mb.box) if mb else None

    async def get_mailbox_by_id(self, mailbox_id: MailboxID) -> Mailbox | None:
        mb = self._mailboxes.get(mailbox_id)
        return self._with_sub(mb.box) if mb else None

    async def create_mailbox(
        self, account_id: AccountID, name: str, special_use: SpecialUse | None = None
    ) -> Mailbox:
        name = canonical_mailbox_name(name)
        if self._find(account_id, name) is not None:
            raise AlreadyExists(name)
        box = self._new_mailbox(account_id, name, special_use)
        self.changes.publish(MailboxCreated(account_id, box.id, name))
        return self._with_sub(box)

    def _drop_mailbox(self, mailbox_id: MailboxID) -> None:
        mb = self._mailboxes.pop(mailbox_id)
        for msg in mb.messages.values():
            self._unref(msg.content_id)

    async def delete_mailbox(self, account_id: AccountID, name: str) -> None:
        name = canonical_mailbox_name(name)
        if name == INBOX:
            raise Cannot("INBOX cannot be deleted")
        mb = self._find(account_id, name)
        if mb is None:
            raise NotFound(name)
        self._drop_mailbox(mb.box.id)
        self.changes.publish(MailboxDeleted(account_id, mb.box.id, name))

    async def rename_mailbox(self, account_id: AccountID, old: str, new: str) -> Mailbox:
        old, new = canonical_mailbox_name(old), canonical_mailbox_name(new)
        src = self._find(account_id, old)
        if src is None:
            raise NotFound(old)
        if self._find(account_id, new) is not None:
            raise AlreadyExists(new)
        if old == INBOX:
            # RFC 9051 §6.3.6: move INBOX's messages to the new mailbox; INBOX stays.
            dest = self._new_mailbox(account_id, new, None)
            # Announce the mailbox before the messages added to it.
            self.changes.publish(MailboxCreated(account_id, dest.id, new))
            uids = sorted(src.messages)
            self._copy_into(src, uids, self._mailboxes[dest.id])
            self._expunge(src, uids)
            return self._with_sub(self._mailboxes[dest.id].box)
        prefix = old + SEPARATOR
        renamed: list[tuple[MailboxID, str, str]] = []
        for mb in list(self._mailboxes.values()):
            if mb.box.account_id != account_id:
                continue
            if mb.box.name == old or mb.box.name.startswith(prefix):
                new_name = new + mb.box.name[len(old) :]
                if self._find(account_id, new_name) is not None:
                    raise AlreadyExists(new_name)
                renamed.append((mb.box.id, mb.box.name, new_name))
        for mid, _old_name, new_name in renamed:
            mb = self._mailboxes[mid]
            mb.box = replace(mb.box, name=new_name)
        for mid, old_name, new_name in renamed:
            self.changes.publish(MailboxRenamed(account_id, mid, old_name, new_name))
        return self._with_sub(src.box)

    async def subscribe(self, account_id: AccountID, name: str) -> None:
        self._subscriptions.setdefault(account_id, set()).add(canonical_mailbox_name(name))

    async def unsubscribe(self, account_id: AccountID, name: str) -> None:
        subs = self._subscriptions.setdefault(account_id, set())
        name = canonical_mailbox_name(name)
        if name not in subs:
            raise NotFound(name)
        subs.discard(name)

    async def list_subscriptions(self, account_id: AccountID) -> list[str]:
        return sorted(self._subscriptions.get(account_id, ()))

    async def mailbox_status(self, mailbox_id: MailboxID) -> MailboxStatus:
        mb = self._get(mailbox_id)
        msgs = mb.messages.values()
        unseen = [m.uid for m in msgs if SEEN not in m.flags]
        return MailboxStatus(
            messages=len(mb.messages),
            unseen=len(unseen),
            deleted=sum(1 for m in msgs if DELETED in m.flags),
            size=sum(m.size for m in msgs),
            recent=sum(1 for u in mb.messages if u >= mb.box.first_recent_uid),
            uidnext=mb.box.uidnext,
            uidvalidity=mb.box.uidvalidity,
            highestmodseq=mb.box.highestmodseq,
            first_unseen_uid=min(unseen) if unseen else None,
        )

    async def claim_recent(self, mailbox_id: MailboxID) -> UID:
        mb = self._get(mailbox_id)
        first = mb.box.first_recent_uid
        mb.box = replace(mb.box, first_recent_uid=mb.box.uidnext)
        return first

    # ---- messages ---------------------------------------------------------
    def _ref(self, data: bytes, facts: MessageFacts | None) -> ContentID:
        cid = ContentID(hashlib.sha256(data).hexdigest())
        content = self._contents.get(cid)
        if content is None:
            content = _Content(data, facts or compute_facts(data))
            self._contents[cid] = content
        content.refs += 1
        return cid

    def _unref(self, cid: ContentID) -> None:
        content = self._contents[cid]
        content.refs -= 1
        if content.refs == 0:
            del self._contents[cid]

    def _bump(self, mb: _Mailbox) -> ModSeq:
        modseq = ModSeq(mb.box.highestmodseq + 1)
        mb.box = replace(mb.box, highestmodseq=modseq)
        return modseq

    def _add(
        self, mb: _Mailbox, make: Iterable[tuple[ContentID, frozenset[str], dt.datetime, int]]
    ) -> MessagesAdded:
        uids: list[UID] = []
        keywords: set[str] = set()
        modseq = self._bump(mb)
        for cid, flags, date, size in make:
            uid = mb.box.uidnext
            mb.box = replace(mb.box, uidnext=UID(uid + 1))
            mb.messages[uid] = Message(mb.box.id, uid, modseq, flags, date, size, cid)
            uids.append(uid)
            keywords.update(f for f in flags if not f.startswith("\\"))
        return MessagesAdded(mb.box.account_id, mb.box.id, tuple(uids), modseq, frozenset(keywords))

    async def append(
        self, mailbox_id: MailboxID, requests: Sequence[AppendRequest]
    ) -> AppendResult:
        mb = self._get(mailbox_id)
        if not requests:
            return AppendResult(mb.box.id, mb.box.uidvalidity, ())
        items = []
        for req in requests:
            cid = self._ref(req.data, req.facts)
            flags = frozenset(normalize_flag(f) for f in req.flags)
            items.append((cid, flags, req.internal_date or _now(), len(req.data)))
        added = self._add(mb, items)
        self.changes.publish(added)
        return AppendResult(mb.box.id, mb.box.uidvalidity, added.uids)

    async def list_messages(
        self, mailbox_id: MailboxID, uids: Iterable[UID] | None = None
    ) -> list[Message]:
        mb = self._get(mailbox_id)
        if uids is None:
            return [mb.messages[u] for u in sorted(mb.messages)]
        return [mb.messages[u] for u in sorted(set(uids)) if u in mb.messages]

    async def get_facts(self, content_id: ContentID) -> MessageFacts:
        content = self._contents.get(content_id)
        if content is None:
            raise NotFound("no such content")
        return content.facts

    async def get_forms(self, content_ids: Iterable[ContentID]) -> dict[ContentID, ResponseForms]:
        out: dict[ContentID, ResponseForms] = {}
        for cid in content_ids:
            content = self._contents.get(cid)
            if content is not None and content.facts.forms is not None:
                out[cid] = content.facts.forms
        return out

    async def list_uids(self, mailbox_id: MailboxID) -> array[int]:
        return (await self.message_index(mailbox_id)).uids

    async def unseen_uids(self, mailbox_id: MailboxID) -> array[int]:
        msgs = self._get(mailbox_id).messages
        return array("I", sorted(uid for uid, m in msgs.items() if SEEN not in m.flags))

    async def message_index(
        self, mailbox_id: MailboxID, columns: frozenset[str] = frozenset()
    ) -> MessageIndex:
        msgs = [m for _, m in sorted(self._get(mailbox_id).messages.items())]
        flags = keywords = days = sizes = modseqs = None
        if "flags" in columns:
            flags = array("B", [sum(FLAG_BIT.get(f, 0) for f in m.flags) for m in msgs])
        if "keywords" in columns:
            keywords = {
                int(m.uid): kws
                for m in msgs
                if (kws := frozenset(f for f in m.flags if f not in FLAG_BIT))
            }
        if "days" in columns:
            days = array("q", [m.internal_date.date().toordinal() for m in msgs])
        if "sizes" in columns:
            sizes = array("Q", [m.size for m in msgs])
        if "modseqs" in columns:
            modseqs = array("Q", [m.modseq for m in msgs])
        dates = zones = None
        if "dates" in columns:
            dates = array("q", [int(m.internal_date.timestamp()) for m in msgs])
        if "zones" in columns:
            zones = array("i", [_offset_seconds(m.internal_date) for m in msgs])
        uids = array("I", [m.uid for m in msgs])
        return MessageIndex(uids, flags, keywords, days, sizes, modseqs, dates, zones)

    async def list_keywords(self, mailbox_id: MailboxID) -> list[str]:
        mb = self._get(mailbox_id)
        found = {f for m in mb.messages.values() for f in m.flags if not f.startswith("\\")}
        return sorted(found)

    async def read_content(
        self, content_id: ContentID, offset: int = 0, length: int | None = None
    ) -> bytes:
        content = self._contents.get(content_id)
        if content is None:
            raise NotFound("no such content")
        end = None if length is None else offset + length
        return content.data[offset:end]

    async def read_contents(self, content_ids: Iterable[ContentID]) -> dict[ContentID, bytes]:
        found = {}
        for cid in content_ids:
            content = self._contents.get(cid)
            if content is not None:
                found[cid] = content.data
        return found

    async def store_flags(
        self,
        mailbox_id: MailboxID,
        uids: Iterable[UID],
        op: FlagOp,
        flags: Iterable[str],
        unchanged_since: ModSeq | None = None,
    ) -> list[FlagUpdate]:
        mb = self._get(mailbox_id)
        given = frozenset(normalize_flag(f) for f in flags)
        changed: list[Message] = []
        for uid in sorted(set(uids)):
            msg = mb.messages.get(uid)
            if msg is None:
                continue
            if unchanged_since is not None and msg.modseq > unchanged_since:
                continue
            if op is FlagOp.REPLACE:
                new = given
            elif op is FlagOp.ADD:
                new = msg.flags | given
            else:
                new = msg.flags - given
            if new != msg.flags:
                changed.append(replace(msg, flags=new))
        if not changed:
            return []
        modseq = self._bump(mb)
        updates = []
        for msg in changed:
            mb.messages[msg.uid] = replace(msg, modseq=modseq)
            updates.append(FlagUpdate(msg.uid, modseq, msg.flags))
        self.changes.publish(
            FlagsChanged(
                mb.box.account_id, mb.box.id, tuple((u.uid, u.modseq, u.flags) for u in updates)
            )
        )
        return updates

    def _expunge(self, mb: _Mailbox, uids: list[UID]) -> None:
        if not uids:
            return
        modseq = self._bump(mb)
        for uid in uids:
            msg = mb.messages.pop(uid)
            mb.expunged[uid] = modseq
            self._unref(msg.content_id)
        self.changes.publish(MessagesExpunged(mb.box.account_id, mb.box.id, tuple(uids), modseq))

    async def expunge(
        self,
        mailbox_id: MailboxID,
        uids: Iterable[UID] | None = None,
        require_deleted: bool = True,
    ) -> list[UID]:
        mb = self._get(mailbox_id)
        wanted = mb.messages.keys() if uids is None else set(uids)
        gone = sorted(
            u
            for u in wanted
            if u in mb.messages and (not require_deleted or DELETED in mb.messages[u].flags)
        )
        self._expunge(mb, gone)
        return gone

    def _copy_into(self, src: _Mailbox, uids: Iterable[UID], dest: _Mailbox) -> CopyResult:
        msgs = [src.messages[u] for u in sorted(set(uids)) if u in src.messages]
        if not msgs:
            return CopyResult(dest.box.uidvalidity, (), ())
        for m in msgs:
            self._contents[m.content_id].refs += 1
        added = self._add(dest, ((m.content_id, m.flags, m.internal_date, m.size) for m in msgs))
        self.changes.publish(added)
        return CopyResult(dest.box.uidvalidity, tuple(m.uid for m in msgs), added.uids)

    async def copy(self, source: MailboxID, uids: Iterable[UID], dest: MailboxID) -> CopyResult:
        return self._copy_into(self._get(source), uids, self._get(dest))

    async def move(self, source: MailboxID, uids: Iterable[UID], dest: MailboxID) -> CopyResult:
        src, dst = self._get(source), self._get(dest)
        result = self._copy_into(src, uids, dst)
        self._expunge(src, list(result.source_uids))
        return result

    # ---- POP3 maildrop lock ------------------------------------------------
    def try_lock_maildrop(self, account_id: AccountID) -> bool:
        if account_id in self._locks:
            return False
        self._locks.add(account_id)
        return True

    def unlock_maildrop(self, account_id: AccountID) -> None:
        self._locks.discard(account_id)


def _offset_seconds(when: dt.datetime) -> int:
    offset = when.utcoffset()
    return int(offset.total_seconds()) if offset else 0
