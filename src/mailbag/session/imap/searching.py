"""SEARCH criteria evaluated over the selected mailbox (RFC 9051 §6.4.4,
RFC 3501 §6.4.4, RFC 5182 `$`).

The typed key tree from `proto.imap.search` is evaluated in up to three
passes, cheapest first, with three-valued logic (True, False, or None =
"cannot tell without more data"):

1. metadata from one `list_messages` call: flags, internal date, size, UID,
   sequence number, mod-sequence;
   then, when the store has a full-text index (the optional
   `FullTextSearch` capability) and enough messages are still undecided,
   the index answers the text keys BODY/TEXT and the header keys
   FROM/TO/CC/BCC/SUBJECT it can answer exactly, one query per key; what it
   does not answer (a needle it declines, messages it holds no text for)
   goes on to the next passes as before;
2. for the messages still undecided, the stored facts and the header block
   (one short read per message): header keys and the SENT* dates;
3. for the messages still undecided, the text keys (BODY, TEXT) through
   :func:`scan_text`, reading and decoding every such message.

Matching rules, following Dovecot 2.3 where the RFC leaves room:

* string keys match a case-insensitive substring (Unicode case folding) of the
  decoded text: RFC 2047 encoded-words in headers, transfer encodings and
  charsets in bodies (see `mailbag.message.search`);
* FROM/TO/CC/BCC/SUBJECT/HEADER match only messages that have that header
  field, also for an empty string (RFC 9051 §6.4.4 says so for HEADER; Dovecot
  does the same for the others); every occurrence of the field is searched;
* BEFORE/ON/SINCE compare the calendar date of the internal date as the
  client sees it in INTERNALDATE (its own time zone), SENT* the date of the
  Date: field in the zone written there (RFC 9051: "disregarding time and
  timezone"); a message without a usable Date: field has the sent date
  1 January 1970, as in Dovecot;
* a sequence number or UID that does not exist simply matches nothing;
* RECENT/NEW use this session's \\Recent set (empty for IMAP4rev2 sessions).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from array import array
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from ...errors import NotFound, StoreError
from ...message import body_text, compute_facts_off_loop, message_text
from ...message.facts import parse_date
from ...message.search import decoded_headers
from ...proto.imap.search import (
    AllKey,
    AndKey,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    NewKey,
    NotKey,
    OrKey,
    SearchKey,
    SeqKey,
    SizeKey,
    StringKey,
    UIDKey,
    leaves,
)
from ...store.interface import FullTextSearch, Store, TextMatches
from ...store.models import (
    FLAG_BIT,
    SEEN,
    UID,
    Message,
    MessageFacts,
    MessageIndex,
    normalize_flag,
)
from .bodydata import plausible_facts
from .selected import SelectedMailbox
from .uidruns import UIDRuns

log = logging.getLogger("mailbag.imap")

YIELD_EVERY = 500  # messages between two yields to the event loop
_THREAD_AT = 256 * 1024  # decode bigger messages in a worker thread
_EPOCH = dt.date(1970, 1, 1)
_HEADER_FIELDS = frozenset({"FROM", "TO", "CC", "BCC", "SUBJECT"})
_TEXT_FIELDS = frozenset({"BODY", "TEXT"})
_UNSEEN = FlagKey(SEEN, present=False)
# Undecided messages from which one index query per key beats reading them.
INDEX_MIN = 16

# (store, candidates, text keys) -> for each key, the UIDs whose text matches.
TextSearch = Callable[
    [Store, Sequence[Message], Sequence[StringKey]], Awaitable[dict[StringKey, set[UID]]]
]


def _text_hits(
    data: bytes, facts: MessageFacts | None, keys: Sequence[StringKey]
) -> list[StringKey]:
    try:
        return _text_hits_with(data, facts, keys)
    except Exception:
        if facts is None:
            raise
        # Stored facts that do not fit the bytes: let the parser start afresh.
        log.exception("imap search: facts do not fit the message; recomputing")
        return _text_hits_with(data, None, keys)


def _text_hits_with(
    data: bytes, facts: MessageFacts | None, keys: Sequence[StringKey]
) -> list[StringKey]:
    body: str | None = None
    full: str | None = None
    hits = []
    for key in keys:
        if key.field == "BODY":
            if body is None:
                body = body_text(data, facts).casefold()
            hay = body
        else:
            if full is None:
                full = message_text(data, facts).casefold()
            hay = full
        if key.value.casefold() in hay:
            hits.append(key)
    return hits


async def scan_text(
    store: Store, candidates: Sequence[Message], keys: Sequence[StringKey]
) -> dict[StringKey, set[UID]]:
    """BODY/TEXT by reading and decoding every candidate (no index yet).

    Big messages are decoded in a worker thread; the loop is yielded to
    between messages so one search cannot stall other sessions.
    """
    out: dict[StringKey, set[UID]] = {k: set() for k in keys}
    for i, msg in enumerate(candidates):
        try:
            data = await store.read_content(msg.content_id)
            facts: MessageFacts | None = await store.get_facts(msg.content_id)
        except NotFound:
            continue  # expunged meanwhile: it matches nothing
        if not plausible_facts(facts, len(data)):
            facts = None  # mailbag.message computes what it needs from the bytes
        if len(data) > _THREAD_AT:
            hits = await asyncio.to_thread(_text_hits, data, facts, keys)
        else:
            hits = _text_hits(data, facts, keys)
            if i % 50 == 49:
                await asyncio.sleep(0)
        for key in hits:
            out[key].add(msg.uid)
    return out


@dataclass(slots=True)
class _Candidate:
    seq: int
    msg: Message
    headers: dict[str, list[str]] | None = None  # lower-case name -> decoded values
    sent: dt.date | None = None
    text: set[StringKey] | None = None  # the text keys that match
    gone: bool = False


@dataclass(slots=True)
class _Needs:
    header: bool = False
    text: list[StringKey] = field(default_factory=list)


def _needs(key: SearchKey, out: _Needs, answered: frozenset[StringKey] = frozenset()) -> _Needs:
    """What the passes after the first must load; `answered`: string keys the
    index decided for every message still undecided."""
    for leaf in leaves(key):
        match leaf:
            case StringKey() if leaf in answered:
                pass
            case StringKey(field=f) if f in _TEXT_FIELDS:
                if leaf not in out.text:
                    out.text.append(leaf)
            case StringKey() | HeaderKey() | DateKey(field="SENT"):
                out.header = True
    return out


def _string_keys(key: SearchKey) -> list[StringKey]:
    """The keys an index may answer, each once, in the order written."""
    out: list[StringKey] = []
    for leaf in leaves(key):
        match leaf:
            case StringKey(field=f) if f in _TEXT_FIELDS or f in _HEADER_FIELDS:
                if leaf not in out:
                    out.append(leaf)
    return out


class _NeedsPasses(Exception):
    """A key the set evaluation cannot answer exactly after all."""


def _set_evaluable(key: SearchKey) -> bool:
    """Whether every key of the tree has a set form (header keys other than
    the indexed fields, and the SENT* dates, need the passes)."""
    for leaf in leaves(key):
        match leaf:
            case AllKey() | FlagKey() | NewKey() | SizeKey() | ModSeqKey() | UIDKey() | SeqKey():
                pass
            case DateKey(field="INTERNAL"):
                pass
            case StringKey(field=f) if f in _TEXT_FIELDS or f in _HEADER_FIELDS:
                pass
            case _:
                return False
    return True


def _store_bound(key: SearchKey) -> bool:
    """Whether every message `key` matches is in some text key's answer from
    the store (a text key, an AND with one, an OR of such): then messages
    the store no longer has cannot match."""
    match key:
        case StringKey():
            return True
        case AndKey(keys=keys):
            return any(_store_bound(k) for k in keys)
        case OrKey(left=left, right=right):
            return _store_bound(left) and _store_bound(right)
    return False


def _columns(key: SearchKey) -> set[str]:
    """The message_index columns the set evaluation of `key` reads."""
    out: set[str] = set()
    for leaf in leaves(key):
        match leaf:
            case FlagKey(flag=flag) if flag != "\\Recent":
                out.add("flags" if normalize_flag(flag) in FLAG_BIT else "keywords")
            case NewKey():
                out.add("flags")
            case SizeKey():
                out.add("sizes")
            case ModSeqKey():
                out.add("modseqs")
            case DateKey():
                out.add("days")
    return out


def _date_matches(relation: str, value: dt.date, wanted: dt.date) -> bool:
    if relation == "BEFORE":
        return value < wanted
    if relation == "ON":
        return value == wanted
    return value >= wanted  # SINCE


class SearchEvaluator:
    """Evaluates one search over one selected mailbox view."""

    def __init__(
        self,
        store: Store,
        view: SelectedMailbox,
        saved: Sequence[UID],
        rev2: bool,
        text_search: TextSearch = scan_text,
        use_index: bool = True,
        index_min: int = INDEX_MIN,
        use_sets: bool = True,
    ) -> None:
        self.store = store
        self.view = view
        self.saved = frozenset(saved)
        self.rev2 = rev2
        self.text_search = text_search
        # use_index=False reads every message (tests compare both ways).
        self.use_index = use_index
        self.index_min = index_min
        # use_sets=False runs the passes only (tests compare both ways).
        self.use_sets = use_sets
        self._index = MessageIndex(array("I"))
        self._universe: set[int] = set()
        self.indexed: dict[StringKey, TextMatches] = {}  # the index's answers
        self.exists = view.exists
        self.max_uid = int(view.max_uid())
        self.missing = False  # messages of the view the store no longer has

    # ---- sets: the whole key over columns and the index -----------------------
    async def run(self, key: SearchKey) -> list[tuple[int, UID]]:
        """(sequence number, UID) of the matching messages, ascending."""
        if self.use_sets and key == _UNSEEN:
            return await self._run_unseen()
        if self.use_sets and _set_evaluable(key):
            found = await self._run_sets(key)
            if found is not None:
                return found
        return await self._run_passes(key)

    async def _run_unseen(self) -> list[tuple[int, UID]]:
        """UNSEEN alone, which clients ask at every sync: from the store's
        unseen UIDs (a partial index in SQLite), not every message's flags.
        Of those, the view's; one the view has and the store no longer has
        is not among them, and whether there is any the change feed tells,
        as for a text key."""
        hits = await self.store.unseen_uids(self.view.id)
        self.missing = self.view.expunges_unannounced()
        return self._numbered(set(hits), self.view.uids())

    async def _run_sets(self, key: SearchKey) -> list[tuple[int, UID]] | None:
        """Every key evaluated as a set of UIDs over the mailbox's metadata
        columns (`message_index`) and the full-text index; None when the
        index cannot answer a text key for some message (the passes read it)."""
        columns = frozenset(_columns(key))
        view_uids = self.view.uids()
        if not columns and _store_bound(key):
            # Only the UIDs would be read, to drop from the universe what the
            # store no longer has; but every message this key can match is in
            # a store answer (a text key's), which has no such message. Whether
            # the view lost any (EXPUNGEISSUED) the change feed tells.
            index = MessageIndex(array("I"))
            same = False  # no index to walk: the hits are looked up
            self._universe = view_uids.as_set()
            self.missing = self.view.expunges_unannounced()
        else:
            index = await self.store.message_index(self.view.id, columns)
            same = view_uids.same_as(index.uids)
            if same:  # the common case, O(runs)
                self._universe = view_uids.as_set()
            else:
                existing = set(index.uids)
                self._universe = {u for u in view_uids if u in existing}
                if len(self._universe) != len(view_uids):
                    self.missing = True  # RFC 9051 §7.5.1: expunged, not yet announced
        self._index = index
        try:
            found = await self._set(key)
        except _NeedsPasses:
            return None
        # The index's UIDs, when they are the view's, walk faster (an array).
        return self._numbered(found, index.uids if same else view_uids)

    def _numbered(
        self, found: set[int], view_uids: Sequence[int] | UIDRuns
    ) -> list[tuple[int, UID]]:
        """(sequence number, UID) of the view's messages among `found`,
        ascending; `view_uids` lists the view's UIDs in order. A UID the view
        does not have is left out."""
        # (UID is a NewType of int: no conversion needed, only the type.)
        if len(found) * 8 > len(view_uids):
            # Many hits (UNSEEN, SINCE): one walk of the view costs less than
            # sorting and a lookup per hit.
            return cast(
                list[tuple[int, UID]],
                [(seq, u) for seq, u in enumerate(view_uids, 1) if u in found],
            )
        position = self.view.uids().index
        out: list[tuple[int, int]] = []
        for u in sorted(found):
            at = position(u)
            if at is not None:
                out.append((at + 1, u))
        return cast(list[tuple[int, UID]], out)

    async def _set(self, key: SearchKey) -> set[int]:
        index = self._index
        universe = self._universe
        match key:
            case AllKey():
                return set(universe)
            case FlagKey(flag="\\Recent", present=present):
                recent = {u for u in universe if self.view.is_recent(UID(u))}
                return recent if present else universe - recent
            case FlagKey(flag=flag, present=present):
                hits = self._with_flag(flag)
                return hits & universe if present else universe - hits
            case NewKey():
                seen = self._with_flag(SEEN)
                return {u for u in universe if self.view.is_recent(UID(u)) and u not in seen}
            case SizeKey(larger=larger, size=size):
                assert index.sizes is not None
                sized = zip(index.uids, index.sizes, strict=True)
                if larger:
                    return {u for u, n in sized if n > size} & universe
                return {u for u, n in sized if n < size} & universe
            case ModSeqKey(modseq=modseq):
                assert index.modseqs is not None
                stamped = zip(index.uids, index.modseqs, strict=True)
                return {u for u, m in stamped if m >= modseq} & universe
            case DateKey(field="INTERNAL", relation=relation, date=date):
                assert index.days is not None
                day = date.toordinal()
                pairs = zip(index.uids, index.days, strict=True)
                if relation == "BEFORE":
                    return {u for u, d in pairs if d < day} & universe
                if relation == "ON":
                    return {u for u, d in pairs if d == day} & universe
                return {u for u, d in pairs if d >= day} & universe
            case UIDKey(uids=uids):
                if uids.saved:
                    return {u for u in universe if u in self.saved}
                return {u for u in universe if uids.contains(u, self.max_uid)}
            case SeqKey(seqs=seqs):
                if seqs.saved:  # RFC 5182 §2.1: `$` names the saved messages
                    return {u for u in universe if u in self.saved}
                universe = self._universe
                return {
                    u
                    for seq, u in enumerate(self.view.uids(), 1)
                    if u in universe and seqs.contains(seq, self.exists)
                }
            case StringKey(field=f, value=value):
                store = self.store
                if not self.use_index or not isinstance(store, FullTextSearch):
                    raise _NeedsPasses
                try:
                    found = await store.search_text(self.view.id, f, value, None)
                except StoreError:
                    log.exception("imap search: full-text index failed; reading messages")
                    raise _NeedsPasses from None
                if found is None or found.unindexed & universe:
                    raise _NeedsPasses
                return {int(u) for u in found.uids} & universe
            case NotKey(key=inner):
                return universe - await self._set(inner)
            case OrKey(left=left, right=right):
                return await self._set(left) | await self._set(right)
            case AndKey(keys=keys):
                out: set[int] | None = None
                for k in keys:
                    hits = await self._set(k)
                    out = hits if out is None else out & hits
                    if not out:
                        return set()
                return out if out is not None else set(universe)
        raise _NeedsPasses  # pragma: no cover - _set_evaluable keeps other keys out

    def _with_flag(self, flag: str) -> set[int]:
        """UIDs (of the whole index) carrying `flag`; keywords match without
        regard to case, as the passes match them."""
        index = self._index
        bit = FLAG_BIT.get(normalize_flag(flag))
        if bit is not None:
            assert index.flags is not None
            return {u for u, f in zip(index.uids, index.flags, strict=True) if f & bit}
        assert index.keywords is not None
        lower = flag.lower()
        return {u for u, kws in index.keywords.items() if any(k.lower() == lower for k in kws)}

    # ---- the three passes ------------------------------------------------------
    async def _run_passes(self, key: SearchKey) -> list[tuple[int, UID]]:
        listed = {m.uid: m for m in await self.store.list_messages(self.view.id)}
        candidates: list[_Candidate] = []
        for seq, uid in enumerate(self.view, 1):
            msg = listed.get(uid)
            if msg is None:
                self.missing = True  # RFC 9051 §7.5.1: expunged, not yet announced
                continue
            candidates.append(_Candidate(seq, msg))
        del listed
        matched: list[_Candidate] = []
        undecided = await self._pass(key, candidates, matched)
        answered: frozenset[StringKey] = frozenset()
        if undecided and await self._ask_index(key, undecided, len(undecided) == len(candidates)):
            undecided = await self._pass(key, undecided, matched)
            left = {c.msg.uid for c in undecided}
            answered = frozenset(k for k, r in self.indexed.items() if not r.unindexed & left)
        needs = _needs(key, _Needs(), answered)
        if undecided and needs.header:
            for i, cand in enumerate(undecided):
                await self._load_headers(cand)
                if i % YIELD_EVERY == YIELD_EVERY - 1:
                    await asyncio.sleep(0)
            undecided = await self._pass(key, [c for c in undecided if not c.gone], matched)
        if undecided and needs.text:
            hits = await self.text_search(self.store, [c.msg for c in undecided], needs.text)
            for cand in undecided:
                cand.text = {k for k in needs.text if cand.msg.uid in hits.get(k, ())}
            undecided = await self._pass(key, undecided, matched)
        if undecided:  # pragma: no cover - every key is decidable after pass 3
            log.error("imap search: %d messages left undecided by %r", len(undecided), key)
        matched.sort(key=lambda c: c.seq)
        return [(c.seq, c.msg.uid) for c in matched]

    async def _ask_index(self, key: SearchKey, undecided: list[_Candidate], whole: bool) -> bool:
        """Fill `self.indexed` from the store's full-text index; False when
        there is no index or nothing to ask it."""
        store = self.store
        if (
            not self.use_index
            or len(undecided) < self.index_min
            or not isinstance(store, FullTextSearch)
        ):
            return False
        # All of the view: no UID list to send (messages added since it was
        # taken are not candidates and are never looked up).
        uids = None if whole else [c.msg.uid for c in undecided]
        for k in _string_keys(key):
            try:
                found = await store.search_text(self.view.id, k.field, k.value, uids)
            except StoreError:
                # Reading the messages still gives the answer.
                log.exception("imap search: full-text index failed; reading messages")
                return bool(self.indexed)
            if found is not None:
                self.indexed[k] = found
        return bool(self.indexed)

    async def _pass(
        self, key: SearchKey, candidates: list[_Candidate], matched: list[_Candidate]
    ) -> list[_Candidate]:
        undecided = []
        for i, cand in enumerate(candidates):
            result = self.match(key, cand)
            if result is None:
                undecided.append(cand)
            elif result:
                matched.append(cand)
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
        return undecided

    async def _load_headers(self, cand: _Candidate) -> None:
        msg = cand.msg
        try:
            facts: MessageFacts | None = await self.store.get_facts(msg.content_id)
            if not plausible_facts(facts, msg.size):
                facts = await compute_facts_off_loop(await self.store.read_content(msg.content_id))
            assert facts is not None
            header = await self.store.read_content(msg.content_id, 0, facts.header_size)
        except NotFound:
            cand.gone = True
            return
        headers: dict[str, list[str]] = {}
        for name, value in decoded_headers(header):
            headers.setdefault(name, []).append(value)
        cand.headers = headers
        # RFC 9051 §6.4.4: the date of the Date: field, disregarding time and zone
        # (read from the header just parsed, so odd stored facts cannot skew it).
        dates = headers.get("date")
        sent = parse_date(dates[0]) if dates else None
        cand.sent = sent.date() if sent is not None else _EPOCH

    # ---- one key, one message ----------------------------------------------------
    def match(self, key: SearchKey, c: _Candidate) -> bool | None:
        msg = c.msg
        match key:
            case AllKey():
                return True
            case FlagKey(flag=flag, present=present):
                return self._has_flag(msg, flag) == present
            case NewKey():
                # RFC 3501 §6.4.4: NEW is RECENT UNSEEN
                return self.view.is_recent(msg.uid) and SEEN not in msg.flags
            case SizeKey(larger=larger, size=size):
                return msg.size > size if larger else msg.size < size
            case UIDKey(uids=uids):
                if uids.saved:
                    return msg.uid in self.saved
                return uids.contains(msg.uid, self.max_uid)
            case SeqKey(seqs=seqs):
                if seqs.saved:  # RFC 5182 §2.1: `$` names the saved messages
                    return msg.uid in self.saved
                return seqs.contains(c.seq, self.exists)
            case ModSeqKey(modseq=modseq):
                return msg.modseq >= modseq  # RFC 7162 §3.1.5
            case DateKey(field="INTERNAL", relation=relation, date=date):
                return _date_matches(relation, msg.internal_date.date(), date)
            case DateKey(relation=relation, date=date):
                if c.sent is None:
                    return None
                return _date_matches(relation, c.sent, date)
            case StringKey(field=f, value=value):
                # (Hashing a key costs; the index's answers are looked up once.)
                found = self.indexed.get(key) if self.indexed else None
                if found is not None and msg.uid not in found.unindexed:
                    return msg.uid in found.uids
                if f in _TEXT_FIELDS:
                    if c.text is None:
                        return None
                    return key in c.text
                return self._header_matches(c, f.lower(), value)
            case HeaderKey(name=name, value=value):
                return self._header_matches(c, name.lower(), value)
            case NotKey(key=inner):
                r = self.match(inner, c)
                return None if r is None else not r
            case OrKey(left=left, right=right):
                a = self.match(left, c)
                if a:
                    return True
                b = self.match(right, c)
                if b:
                    return True
                return None if a is None or b is None else False
            case AndKey(keys=keys):
                unknown = False
                for k in keys:
                    r = self.match(k, c)
                    if r is False:
                        return False
                    unknown = unknown or r is None
                return None if unknown else True
        raise ValueError(f"unknown search key {key!r}")  # pragma: no cover

    def _has_flag(self, msg: Message, flag: str) -> bool:
        if flag == "\\Recent":
            return self.view.is_recent(msg.uid)
        if flag in msg.flags:
            return True
        # Keywords are matched without regard to case, as flags are stored.
        lower = flag.lower()
        return any(f.lower() == lower for f in msg.flags)

    @staticmethod
    def _header_matches(c: _Candidate, name: str, value: str) -> bool | None:
        if c.headers is None:
            return None
        values = c.headers.get(name)
        if not values:
            return False
        needle = value.casefold()
        return any(needle in v.casefold() for v in values)
