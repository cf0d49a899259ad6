"""The selected-mailbox view of one IMAP session (DESIGN.md §1).

It maps sequence numbers to UIDs, queues what other sessions changed, and
hands those changes out only when the protocol allows:

- RFC 9051 §7.5.1 (RFC 3501 §7.4.1): no EXPUNGE while no command is in
  progress, nor while answering FETCH, STORE or SEARCH (the sequence-number
  forms); UID commands may receive them.
- EXISTS and FETCH (flag) updates may be sent at the end of any command
  (RFC 9051 §5.2, §7.4.1).

Memory matters (issue 4: an idle session should cost little), so the view keeps
only an `array` of UIDs (4 bytes per message) and the \\Recent boundary; flags
are read from the store when needed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from ...store.changes import (
    Change,
    FlagsChanged,
    MailboxDeleted,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
    Subscription,
)
from ...store.models import UID, Mailbox, MailboxID, ModSeq
from .uidruns import UIDRuns


@dataclass(slots=True, frozen=True)
class Exists:
    count: int


@dataclass(slots=True, frozen=True)
class Recent:
    count: int


@dataclass(slots=True, frozen=True)
class Expunge:
    seq: int
    uid: UID


@dataclass(slots=True, frozen=True)
class FlagsFetch:
    seq: int
    uid: UID
    modseq: ModSeq
    flags: frozenset[str]


@dataclass(slots=True, frozen=True)
class Keywords:
    """The mailbox's keywords grew: FLAGS (and PERMANENTFLAGS) are sent again."""

    keywords: tuple[str, ...]


@dataclass(slots=True, frozen=True)
class MailboxGone:
    """The selected mailbox was deleted or renamed away by another session."""

    name: str


Update = Exists | Recent | Expunge | Keywords | FlagsFetch | MailboxGone


class SelectedMailbox:
    __slots__ = (
        "_expunged_pending",
        "_keywords",
        "_keywords_grew",
        "_own_modseqs",
        "_pending_flags",
        "_recent",
        "_sub",
        "_uids",
        "announced_exists",
        "mailbox",
        "read_only",
    )

    def __init__(
        self,
        mailbox: Mailbox,
        uids: Iterable[int],
        read_only: bool,
        subscription: Subscription,
        recent_from: UID | None = None,
        keywords: Iterable[str] = (),
    ) -> None:
        self.mailbox = mailbox
        # The keywords the last FLAGS response named (as first seen; they
        # match without regard to case, RFC 9051 §2.3.2).
        self._keywords: tuple[str, ...] = tuple(keywords)
        self._keywords_grew = False
        self.read_only = read_only
        self._uids = UIDRuns(uids)  # a few runs, not 4 bytes a message (uidruns.py)
        self._sub = subscription
        # UIDs >= this are \Recent for this session (rev1 only; None = none).
        self._recent = recent_from
        self._expunged_pending: set[UID] = set()
        self._pending_flags: dict[UID, tuple[ModSeq, frozenset[str]]] = {}
        self._own_modseqs: set[ModSeq] = set()
        self.announced_exists = len(self._uids)

    # ---- sequence numbers <-> UIDs -----------------------------------------
    @property
    def id(self) -> MailboxID:
        return self.mailbox.id

    @property
    def exists(self) -> int:
        return len(self._uids)

    def uid_of(self, seq: int) -> UID:
        return UID(self._uids[seq - 1])

    def seq_of(self, uid: UID) -> int | None:
        i = self._uids.index(uid)
        return None if i is None else i + 1

    def uids(self) -> UIDRuns:
        return self._uids

    def max_uid(self) -> UID:
        return UID(self._uids.last())

    def uids_for_seqs(self, seqs: Iterable[int]) -> list[UID]:
        n = len(self._uids)
        return [UID(self._uids[s - 1]) for s in seqs if 1 <= s <= n]

    def uids_in_ranges(self, ranges: Iterable[tuple[int, int]]) -> list[UID]:
        """UIDs of this view inside inclusive UID ranges (sorted, unique)."""
        out: set[int] = set()
        for lo, hi in ranges:
            if lo > hi:
                lo, hi = hi, lo
            out.update(self._uids.between(lo, hi))
        return [UID(u) for u in sorted(out)]

    def is_recent(self, uid: UID) -> bool:
        return self._recent is not None and uid >= self._recent

    def recent_count(self) -> int:
        if self._recent is None:
            return 0
        return len(self._uids) - self._uids.bisect_left(self._recent)

    def is_expunge_pending(self, uid: UID) -> bool:
        return uid in self._expunged_pending

    def expunges_unannounced(self) -> bool:
        """Whether messages of this view were expunged (by another session)
        and not announced yet, queued records included."""
        return bool(self._expunged_pending) or any(
            isinstance(c, MessagesExpunged) and c.mailbox_id == self.id for c in self._sub.queued()
        )

    # ---- keywords -----------------------------------------------------------
    def note_keywords(self, flags: Iterable[str]) -> None:
        """Keywords among `flags` that the mailbox now has (a STORE, an
        APPEND, a change from another session): new ones are announced with
        the next updates, before the FETCH that shows them."""
        new = self._new_keywords(flags)
        if new:
            self._keywords = (*self._keywords, *new)
            self._keywords_grew = True

    def _new_keywords(self, flags: Iterable[str]) -> list[str]:
        """The keywords among `flags` this view does not know, each once."""
        known = {k.lower() for k in self._keywords}
        new = []
        for flag in flags:
            if not flag.startswith("\\") and flag.lower() not in known:
                known.add(flag.lower())
                new.append(flag)
        return new

    def keywords_update(self) -> list[Update]:
        """The Keywords update when keywords were added since the last one."""
        if not self._keywords_grew:
            return []
        self._keywords_grew = False
        return [Keywords(self._keywords)]

    # ---- own changes -------------------------------------------------------
    def note_own_modseq(self, modseq: ModSeq) -> None:
        """A flag change this session made and reported itself (STORE)."""
        self._own_modseqs.add(modseq)

    # ---- updates from the change feed ----------------------------------------
    def _absorb(self, change: Change) -> MailboxGone | None:
        if isinstance(change, MessagesAdded):
            if change.mailbox_id == self.id:
                if change.keywords:
                    self.note_keywords(change.keywords)
                self._uids.extend_above(change.uids)
        elif isinstance(change, MessagesExpunged):
            if change.mailbox_id == self.id:
                self._expunged_pending.update(change.uids)
        elif isinstance(change, FlagsChanged):
            if change.mailbox_id == self.id:
                flag_sets: set[frozenset[str]] = set()  # a few distinct ones
                for uid, modseq, flags in change.changes:
                    if modseq in self._own_modseqs:
                        continue
                    flag_sets.add(flags)
                    self._pending_flags[uid] = (modseq, flags)
                for flags in flag_sets:
                    self.note_keywords(flags)
        elif isinstance(change, MailboxRenamed) and change.mailbox_id == self.id:
            # The mailbox lives on under its new name (same UIDVALIDITY).
            self.mailbox = replace(self.mailbox, name=change.new_name)
        elif isinstance(change, MailboxDeleted) and change.mailbox_id == self.id:
            return MailboxGone(self.mailbox.name)
        return None

    def has_pending(self) -> bool:
        return (
            self._sub.has_pending()
            or bool(self._expunged_pending or self._pending_flags or self._keywords_grew)
            or (self.announced_exists != len(self._uids))
        )

    def poll(self, allow_expunge: bool) -> list[Update]:
        """Absorb queued changes and return what may be announced now, in order:
        new keywords, EXPUNGEs (when allowed), then EXISTS/RECENT, then flag
        FETCHes."""
        gone: MailboxGone | None = None
        for change in self._sub.drain():
            gone = self._absorb(change) or gone
        if gone is not None:
            return [gone]
        # RFC 9051 §7.3.5: a client keeps the FLAGS list; one that grew is
        # sent again first, before the FETCHes that show the new keywords
        # (Dovecot's order).
        out = self.keywords_update()
        if allow_expunge and self._expunged_pending:
            for removed, index in self._uids.remove(self._expunged_pending):
                self._pending_flags.pop(UID(removed), None)
                if self.announced_exists > index:
                    self.announced_exists -= 1
                    out.append(Expunge(index + 1, UID(removed)))
            self._expunged_pending.clear()
        # RFC 9051 §7.4.1: EXISTS never decreases except through EXPUNGE;
        # while expunges are deferred the count only grows here.
        if len(self._uids) > self.announced_exists:
            self.announced_exists = len(self._uids)
            out.append(Exists(self.announced_exists))
            if self._recent is not None:
                out.append(Recent(self.recent_count()))
        if self._pending_flags:
            for uid in sorted(self._pending_flags):
                seq = self.seq_of(uid)
                if seq is None or uid in self._expunged_pending or seq > self.announced_exists:
                    continue
                modseq, flags = self._pending_flags[uid]
                out.append(FlagsFetch(seq, uid, modseq, flags))
            self._pending_flags.clear()
        if len(self._own_modseqs) > 1000:
            self._own_modseqs.clear()
        return out

    async def wait_for_changes(self) -> None:
        await self._sub.wait()

    # ---- waiting without a task (IDLE, issue 4) ------------------------------------
    def watch(
        self, on_added: Callable[[MessagesAdded], bool], on_pending: Callable[[], None]
    ) -> None:
        """Until `unwatch`: the change feed's push pass hands queued new
        messages to `on_added`, in order, and calls `on_pending` once when
        records stay queued (see Subscription)."""
        self._sub.on_added = on_added
        self._sub.on_pending = on_pending

    def unwatch(self) -> None:
        self._sub.on_added = self._sub.on_pending = None

    def push_added(self, change: MessagesAdded, rev1: bool, write: Callable[[bytes], bool]) -> bool:
        """Absorb new messages and announce them with `write` at once, for a
        session in IDLE whose earlier updates were all sent.

        Returns False, announcing nothing, when anything else is due first or
        `write` refused the bytes; the caller then queues `change`, and poll()
        announces what this absorbed. The bytes are those poll() and the
        session would send: EXISTS, then RECENT when this view counts \\Recent
        (RFC 9051 §7.4.1, RFC 3501 §7.3.2; RFC 2177 §3: at once while idling).
        """
        if change.mailbox_id != self.mailbox.id:
            return True  # another mailbox of the account: nothing to announce
        uids = self._uids
        before = len(uids)
        if self.announced_exists != before or self._expunged_pending or self._pending_flags:
            return False
        if change.keywords and self._new_keywords(change.keywords):
            return False  # FLAGS goes first: poll() announces it all
        added = uids.extend_above(change.uids)
        if not added:
            return True
        count = before + added
        if rev1 and self._recent is not None:
            data = _exists_recent_lines(count, self.recent_count())
        else:
            data = _exists_line(count)
        if not write(data):
            return False
        self.announced_exists = count
        return True

    def close(self) -> None:
        self._sub.close()

    def __iter__(self) -> Iterator[UID]:
        return (UID(u) for u in self._uids)


# `* n EXISTS` lines by count: every session idling on a mailbox announces the
# same count after a delivery, so the line is formatted once (issue 4).
_EXISTS_LINES: dict[int, bytes] = {}


def _exists_line(count: int) -> bytes:
    line = _EXISTS_LINES.get(count)
    if line is None:
        if len(_EXISTS_LINES) >= 256:
            _EXISTS_LINES.clear()
        line = _EXISTS_LINES[count] = b"* %d EXISTS\r\n" % count
    return line


# The same for IMAP4rev1 sessions that count \Recent: after a delivery most
# of them announce the same (EXISTS, RECENT) pair.
_EXISTS_RECENT_LINES: dict[tuple[int, int], bytes] = {}


def _exists_recent_lines(count: int, recent: int) -> bytes:
    key = (count, recent)
    lines = _EXISTS_RECENT_LINES.get(key)
    if lines is None:
        if len(_EXISTS_RECENT_LINES) >= 256:
            _EXISTS_RECENT_LINES.clear()
        lines = _EXISTS_RECENT_LINES[key] = _exists_line(count) + b"* %d RECENT\r\n" % recent
    return lines
