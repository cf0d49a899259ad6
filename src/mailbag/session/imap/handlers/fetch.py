"""FETCH and UID FETCH (RFC 9051 §6.4.5, §6.4.9, §7.5.2; RFC 3501 §6.4.5,
§7.4.2; RFC 3516 BINARY).

Everything comes from the store's metadata (flags, dates, sizes), the facts
computed at delivery (ENVELOPE, BODYSTRUCTURE, section offsets) and byte
ranges of the stored content (see `..bodydata`); nothing is re-parsed at FETCH
time unless a message's facts are missing or unusable, in which case they are
computed again from its bytes (a message can never make FETCH fail).

Choices where the RFCs leave room (Dovecot 2.3 where it has one):

* Item order is the request order, except that UID comes first (always
  present in UID FETCH, RFC 9051 §6.4.9) and, when a non-PEEK body fetch sets
  \\Seen, FLAGS follows it (RFC 9051 §6.4.5: "the \\Seen flag is implicitly
  set"; Dovecot adds FLAGS to the same response). Duplicate items (BODY[] and
  BODY.PEEK[] answer under the same name) are sent once.
* FLAGS are ordered \\Answered \\Flagged \\Deleted \\Seen \\Draft, then
  keywords, then \\Recent (as Dovecot writes them).
* A message expunged by another session but not yet announced to this one
  (RFC 9051 §7.5.1 forbids announcing it during FETCH) has no data left in
  the store: it gets no FETCH response and the command completes with
  `OK [EXPUNGEISSUED]` (RFC 9051 §7.1). Dovecot answers with the same code
  after sending what its index still holds (flags, NIL bodies); we hold
  nothing. The EXPUNGE follows at the next command that may carry it (UID
  FETCH carries it at once).
* Body data is always a literal (Dovecot), also when empty (`{0}`).
* The parts of a multipart BODYSTRUCTURE and the addresses of an ENVELOPE
  list are written without a space between them, as the grammar has it
  (RFC 9051 §9 `1*body`, `1*address`) and as Dovecot writes them.
* MODSEQ and CHANGEDSINCE work only once CONDSTORE is enabled (RFC 7162);
  the capability is not advertised yet, so they are BAD for now.
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ....errors import NotFound, StoreUnavailable
from ....message import UnknownCTE, body_from_bodystructure, compute_facts_off_loop, rev1
from ....proto.imap import commands as c
from ....proto.imap.fetch import (
    Attr,
    BinarySection,
    BinarySize,
    BodySection,
    FetchAttribute,
    Section,
    response_name,
    sets_seen,
)
from ....proto.imap.responses import (
    FetchResponse,
    ResponseCode,
    TaggedResponse,
    Value,
    flag_atoms,
    internal_date,
)
from ....proto.imap.structures import envelope_value, structure_value
from ....proto.imap.wire import datetime_bytes, datetime_bytes_at
from ....store.models import (
    FLAG_BIT,
    SEEN,
    UID,
    ContentID,
    FlagOp,
    Message,
    MessageFacts,
    ResponseForms,
)
from .. import bodydata
from ..errors import IMAPError

if TYPE_CHECKING:
    from ..selected import SelectedMailbox
    from ..session import IMAPSession

log = logging.getLogger("mailbag.imap")

BATCH = 1024  # messages whose metadata is read (and \Seen set) in one store call
PREFETCH_BYTES = 4 * 1024 * 1024  # whole small messages read per store call

# Items served from the message list alone.
_METADATA_ONLY = frozenset(
    {Attr.UID, Attr.FLAGS, Attr.INTERNALDATE, Attr.RFC822_SIZE, Attr.MODSEQ, Attr.RFC822}
)
_RFC822_HEADER = Section(text="HEADER")
_RFC822_TEXT = Section(text="TEXT")


class _Gone(Exception):
    """The message disappeared from the store while we served it."""


def _attributes(cmd: c.FetchCommand) -> list[FetchAttribute]:
    atts: list[FetchAttribute] = []
    if cmd.uid or Attr.UID in cmd.attributes:
        atts.append(Attr.UID)  # RFC 9051 §6.4.9: UID FETCH always answers UID
    names = {response_name(a) for a in atts}
    for att in cmd.attributes:
        name = response_name(att)
        if name not in names:
            names.add(name)
            atts.append(att)
    if cmd.changed_since is not None and Attr.MODSEQ not in atts:
        atts.append(Attr.MODSEQ)  # RFC 7162 §3.1.4.1: CHANGEDSINCE implies MODSEQ
    return atts


async def _recompute(s: IMAPSession, msg: Message) -> MessageFacts:
    try:
        data = await s.store.read_content(msg.content_id)
    except NotFound:
        raise _Gone from None
    return await compute_facts_off_loop(data)


async def _facts(s: IMAPSession, msg: Message) -> MessageFacts:
    try:
        facts: Any = await s.store.get_facts(msg.content_id)
    except NotFound:
        raise _Gone from None
    except StoreUnavailable:
        raise
    except Exception:
        log.exception("imap fetch: unreadable facts uid=%s; recomputing", msg.uid)
        facts = None
    if not bodydata.plausible_facts(facts, msg.size):
        log.warning("imap fetch: unusable facts uid=%s; recomputing from the bytes", msg.uid)
        return await _recompute(s, msg)
    return facts  # type: ignore[no-any-return]


async def _build(
    s: IMAPSession,
    msg: Message,
    facts: MessageFacts | None,
    atts: list[FetchAttribute],
    seen_changed: bool,
) -> list[tuple[str, Value]]:
    store = s.store
    items: list[tuple[str, Value]] = []
    for att in atts:
        value: Value
        if isinstance(att, Attr):
            if att is Attr.UID:
                value = msg.uid
            elif att is Attr.FLAGS:
                value = flag_atoms(s.flags_for(msg.uid, msg.flags))
            elif att is Attr.INTERNALDATE:
                value = internal_date(msg.internal_date)
            elif att is Attr.RFC822_SIZE:
                value = msg.size
            elif att is Attr.MODSEQ:
                value = [msg.modseq]  # RFC 7162 §3.1.4.1
            elif att is Attr.RFC822:
                # RFC 3501 §6.4.5: RFC822 is BODY[] (and sets \Seen)
                value = (await bodydata.byte_range(store, msg, 0, msg.size, None)).literal()
            else:
                assert facts is not None
                if att is Attr.ENVELOPE:
                    value = envelope_value(facts.envelope)
                elif att is Attr.BODYSTRUCTURE or att is Attr.BODY:
                    bs = facts.bodystructure
                    if att is Attr.BODY:
                        bs = body_from_bodystructure(bs)
                    if not s.rev2:
                        bs = rev1(bs)  # RFC 3501 has no message/global structure
                    value = structure_value(bs)
                else:  # RFC822.HEADER is BODY.PEEK[HEADER], RFC822.TEXT is BODY[TEXT]
                    section = _RFC822_HEADER if att is Attr.RFC822_HEADER else _RFC822_TEXT
                    sd = await bodydata.body_section(store, msg, facts, section, None)
                    value = sd.literal()
        elif isinstance(att, BodySection):
            assert facts is not None
            sd = await bodydata.body_section(store, msg, facts, att.section, att.partial)
            value = sd.literal()
        elif isinstance(att, BinarySection):
            assert facts is not None
            sd = await bodydata.binary_section(store, msg, facts, att.part, att.partial)
            value = sd.literal()
        else:
            assert facts is not None and isinstance(att, BinarySize)
            value = await bodydata.binary_size(store, msg, facts, att.part)
        items.append((response_name(att), value))
    if seen_changed and Attr.FLAGS not in atts:
        flags = ("FLAGS", flag_atoms(s.flags_for(msg.uid, msg.flags)))
        at = 1 if atts and atts[0] is Attr.UID else 0
        items.insert(at, flags)
    return items


async def _items(
    s: IMAPSession, msg: Message, atts: list[FetchAttribute], seen_changed: bool
) -> list[tuple[str, Value]]:
    needs_facts = any(a not in _METADATA_ONLY for a in atts)
    facts = await _facts(s, msg) if needs_facts else None
    try:
        return await _build(s, msg, facts, atts, seen_changed)
    except (UnknownCTE, _Gone, IMAPError, StoreUnavailable):
        raise
    except NotFound:
        raise _Gone from None
    except Exception:
        if facts is None:
            raise
        # Stored facts that do not fit the bytes: compute them again and retry.
        log.exception("imap fetch: facts do not fit uid=%s; recomputing", msg.uid)
        facts = await _recompute(s, msg)
        try:
            return await _build(s, msg, facts, atts, seen_changed)
        except NotFound:
            raise _Gone from None


# ---- the fast path ---------------------------------------------------------------
# The items most clients fetch in bulk (metadata, ENVELOPE/BODYSTRUCTURE from
# the forms serialised at delivery, whole small messages) are written as bytes
# directly; a message that needs anything else goes the general way above.
# Both give the same octets (tests/session/imap/test_fetch_fast.py).

_FORM_ATTS = frozenset({Attr.ENVELOPE, Attr.BODY, Attr.BODYSTRUCTURE})
_FAST_ATTS = frozenset(
    {Attr.UID, Attr.FLAGS, Attr.INTERNALDATE, Attr.RFC822_SIZE, Attr.MODSEQ, Attr.RFC822}
    | _FORM_ATTS
)


def _fast_plan(atts: list[FetchAttribute]) -> list[tuple[FetchAttribute, bytes]] | None:
    """(attribute, response name) when every attribute has a fast form."""
    plan: list[tuple[FetchAttribute, bytes]] = []
    for att in atts:
        whole = isinstance(att, BodySection) and not att.section.part and not att.section.text
        if att not in _FAST_ATTS and not whole:
            return None
        plan.append((att, response_name(att).encode("ascii")))
    return plan


async def _fast_line(
    s: IMAPSession,
    seq: int,
    msg: Message,
    plan: list[tuple[FetchAttribute, bytes]],
    forms: ResponseForms | None,
    seen_changed: bool,
    body: bytes | None = None,
) -> list[bytes] | None:
    """The pieces of the whole `* n FETCH (…)` line, or None when this
    message must take the general path (no forms, a big body, a read that
    failed). `body` is the whole content when it was read already."""
    parts: list[bytes] = []
    literals: dict[int, bytes] = {}  # len(parts) after a literal's header: its octets
    for att, name in plan:
        if att is Attr.UID:
            parts.append(b"UID %d" % msg.uid)
        elif att is Attr.FLAGS:
            parts.append(b"FLAGS " + s.flag_list(msg.uid, msg.flags))
        elif att is Attr.INTERNALDATE:
            parts.append(b'INTERNALDATE "' + datetime_bytes(msg.internal_date) + b'"')
        elif att is Attr.RFC822_SIZE:
            parts.append(b"RFC822.SIZE %d" % msg.size)
        elif att is Attr.MODSEQ:
            parts.append(b"MODSEQ (%d)" % msg.modseq)
        elif att in _FORM_ATTS:
            if forms is None:
                return None
            if att is Attr.ENVELOPE:
                parts.append(b"ENVELOPE " + forms.envelope)
            elif att is Attr.BODYSTRUCTURE:
                parts.append(b"BODYSTRUCTURE " + forms.bodystructure)
            else:
                parts.append(b"BODY " + forms.body)
        else:  # the whole message: RFC822, BODY[], BODY.PEEK[], with a partial
            partial = att.partial if isinstance(att, BodySection) else None
            _start, n = bodydata.window(msg.size, partial)
            if n > bodydata.INLINE_MAX:
                return None  # streamed by the general path
            try:
                if partial is None:
                    # The whole content: the store finds it by id alone (no range).
                    data = body if body is not None else await s.store.read_content(msg.content_id)
                    if len(data) != msg.size:
                        return None  # the general path reports it
                    sd = bodydata.SectionData(msg.size, bodydata.no_nul(data))
                else:
                    sd = await bodydata.byte_range(s.store, msg, 0, msg.size, partial)
            except NotFound:
                raise _Gone from None
            except StoreUnavailable:
                raise
            except Exception:
                return None  # the general path reports or recovers
            if sd.data is None:
                return None
            parts.append(name + b" {%d}\r\n" % sd.size)
            # The literal's octets stay a piece of their own (no copy here);
            # the item after them needs its space all the same.
            literals[len(parts)] = sd.data
    if seen_changed and all(a is not Attr.FLAGS for a, _ in plan):
        at = 1 if plan and plan[0][0] is Attr.UID else 0
        parts.insert(at, b"FLAGS " + s.flag_list(msg.uid, msg.flags))
        literals = {i + (i > at): data for i, data in literals.items()}
    pieces = [b"* %d FETCH (" % seq]
    for i, part in enumerate(parts):
        if i:
            pieces.append(b" ")
        pieces.append(part)
        octets = literals.get(i + 1)
        if octets is not None:
            pieces.append(octets)
    pieces.append(b")\r\n")
    return pieces


def _whole_bodies(plan: list[tuple[FetchAttribute, bytes]] | None) -> bool:
    """Whether the fast plan writes whole messages (worth reading in bulk)."""
    return plan is not None and any(
        att is Attr.RFC822 or (isinstance(att, BodySection) and att.partial is None)
        for att, _ in plan
    )


async def _prefetch(
    s: IMAPSession, uids: list[UID], msgs: dict[UID, Message]
) -> dict[ContentID, bytes]:
    """The contents of the small messages at the head of `uids`, up to
    PREFETCH_BYTES in all, read in one store call."""
    cids: list[ContentID] = []
    total = 0
    for uid in uids:
        msg = msgs.get(uid)
        if msg is None or msg.size > bodydata.INLINE_MAX:
            continue
        if cids and total + msg.size > PREFETCH_BYTES:
            break
        cids.append(msg.content_id)
        total += msg.size
    return await s.store.read_contents(cids) if cids else {}


# ---- from the column index ----------------------------------------------------
# FETCH of metadata only over much of a big mailbox (`UID FETCH 1:* (UID FLAGS
# RFC822.SIZE INTERNALDATE)`, what a client syncing a folder sends): one
# column read of the mailbox (store.message_index) and lines formatted from
# the columns, without a Message or a datetime per message. Same octets as the
# paths above (tests/session/imap/test_fetch_fast.py).

_INDEX_ITEMS: dict[Attr, frozenset[str]] = {
    Attr.UID: frozenset(),
    Attr.FLAGS: frozenset({"flags", "keywords"}),
    Attr.INTERNALDATE: frozenset({"dates", "zones"}),
    Attr.RFC822_SIZE: frozenset({"sizes"}),
    Attr.MODSEQ: frozenset({"modseqs"}),
}
INDEX_MIN = 1024  # fewer messages: reading those rows costs less than the whole mailbox's


def _index_columns(atts: list[FetchAttribute]) -> frozenset[str] | None:
    columns: frozenset[str] = frozenset()
    for att in atts:
        needs = _INDEX_ITEMS.get(att) if isinstance(att, Attr) else None
        if needs is None:
            return None
        columns |= needs
    return columns


async def _fetch_from_index(
    s: IMAPSession,
    view: SelectedMailbox,
    uids: list[UID],
    atts: list[FetchAttribute],
    columns: frozenset[str],
) -> bool:
    """Write the FETCH responses of `uids`; True when some were expunged."""
    index = await s.store.message_index(view.id, columns)
    stored = index.uids
    bit_names = [(bit, name) for name, bit in FLAG_BIT.items()]
    # (flag bits, keywords, shown \Recent) -> the FLAGS list's bytes: a
    # mailbox has few distinct flag sets.
    flag_lists: dict[tuple[int, frozenset[str], bool], bytes] = {}
    no_keywords: frozenset[str] = frozenset()
    rev1 = not s.rev2
    # FETCH 1:* of a view that matches the store (the common case): the
    # i-th UID asked for is the i-th of the index and has sequence number
    # i + 1, with no lookups.
    whole = len(uids) == len(stored) and view.uids().same_as(stored)
    gone = False
    out: list[bytes] = []
    for n, uid in enumerate(uids):
        if whole:
            i, seq = n, n + 1
        else:
            found = view.seq_of(uid)
            i = bisect_left(stored, uid)
            if found is None or i == len(stored) or stored[i] != uid:
                gone = gone or found is not None
                continue
            seq = found
        parts = []
        for att in atts:
            if att is Attr.UID:
                parts.append(b"UID %d" % uid)
            elif att is Attr.FLAGS:
                assert index.flags is not None and index.keywords is not None
                key = (
                    index.flags[i],
                    index.keywords.get(uid, no_keywords),
                    rev1 and view.is_recent(uid),
                )
                flag_list = flag_lists.get(key)
                if flag_list is None:
                    bits, kws, _ = key
                    flags = kws.union(n for b, n in bit_names if bits & b)
                    flag_list = flag_lists[key] = s.flag_list(uid, flags)
                parts.append(b"FLAGS " + flag_list)
            elif att is Attr.INTERNALDATE:
                assert index.dates is not None and index.zones is not None
                date = datetime_bytes_at(index.dates[i], index.zones[i])
                parts.append(b'INTERNALDATE "' + date + b'"')
            elif att is Attr.RFC822_SIZE:
                assert index.sizes is not None
                parts.append(b"RFC822.SIZE %d" % index.sizes[i])
            else:
                assert index.modseqs is not None
                parts.append(b"MODSEQ (%d)" % index.modseqs[i])
        out.append(b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n")
        if len(out) >= BATCH:
            await s.write_bytes(*out)
            out = []
            await asyncio.sleep(0)  # a long FETCH must not starve other sessions
    if out:
        await s.write_bytes(*out)
    return gone


def _report_seen(s: IMAPSession, msgs: dict[UID, Message], changed: set[UID]) -> None:
    """FLAGS for messages that got \\Seen in this batch but whose FETCH
    response will not be sent (the command fails): the feed does not echo a
    session's own changes, so this is the client's only way to learn them."""
    view = s.selected
    if view is None:
        return
    for uid in sorted(changed):
        seq = view.seq_of(uid)
        if seq is not None and uid in msgs:
            flags = flag_atoms(s.flags_for(uid, msgs[uid].flags))
            s.send(FetchResponse(seq, (("FLAGS", flags),)))
    changed.clear()


def _check_condstore(s: IMAPSession, cmd: c.FetchCommand) -> None:
    wants = cmd.changed_since is not None or Attr.MODSEQ in cmd.attributes
    if wants and "CONDSTORE" not in s.enabled:
        raise IMAPError("BAD", "Error in IMAP command FETCH: CONDSTORE is not supported")
    if cmd.vanished:
        raise IMAPError("BAD", "Error in IMAP command FETCH: QRESYNC is not supported")


async def handle_fetch(s: IMAPSession, cmd: c.FetchCommand) -> TaggedResponse:
    view = s.require_selected()
    _check_condstore(s, cmd)
    atts = _attributes(cmd)
    uids = s.resolve(cmd.sequence_set, cmd.uid)
    # RFC 9051 §6.4.5: BODY[...] (not PEEK), BINARY[...], RFC822 and RFC822.TEXT
    # set \Seen; never in a mailbox selected with EXAMINE (§6.3.3).
    mark_seen = not view.read_only and any(sets_seen(a) for a in cmd.attributes)
    columns = _index_columns(atts)
    if (
        columns is not None
        and cmd.changed_since is None
        and len(uids) >= INDEX_MIN
        and len(uids) * 4 >= view.exists
    ):
        return _completed(cmd.tag, await _fetch_from_index(s, view, uids, atts, columns))
    fast = _fast_plan(atts)
    prefetch = _whole_bodies(fast)
    gone = False
    for i in range(0, len(uids), BATCH):
        batch = uids[i : i + BATCH]
        listed = {m.uid: m for m in await s.store.list_messages(view.id, batch)}
        msgs = listed
        if cmd.changed_since is not None:
            msgs = {u: m for u, m in listed.items() if m.modseq > cmd.changed_since}
        changed: set[UID] = set()
        if mark_seen:
            unseen = [u for u in batch if u in msgs and SEEN not in msgs[u].flags]
            if unseen:
                for update in await s.store.store_flags(view.id, unseen, FlagOp.ADD, [SEEN]):
                    # Our own change: the feed must not echo it as an update.
                    view.note_own_modseq(update.modseq)
                    old = msgs.get(update.uid)
                    if old is not None:
                        msgs[update.uid] = replace(old, flags=update.flags, modseq=update.modseq)
                        changed.add(update.uid)
        forms: dict[ContentID, ResponseForms] = {}
        if fast is not None and any(a in _FORM_ATTS for a, _ in fast) and msgs:
            forms = await s.store.get_forms({m.content_id for m in msgs.values()})
        bodies: dict[ContentID, bytes] = {}
        for k, uid in enumerate(batch):
            seq = view.seq_of(uid)
            msg = msgs.get(uid)
            if seq is None:
                continue
            if msg is None:
                gone = gone or uid not in listed
                continue
            try:
                if fast is not None:
                    body = None
                    if prefetch and msg.size <= bodydata.INLINE_MAX:
                        body = bodies.get(msg.content_id)
                        if body is None:
                            bodies = await _prefetch(s, batch[k:], msgs)
                            body = bodies.get(msg.content_id)
                    line = await _fast_line(
                        s, seq, msg, fast, forms.get(msg.content_id), uid in changed, body
                    )
                    if line is not None:
                        changed.discard(uid)
                        await s.write_bytes(*line)
                        continue
                items = await _items(s, msg, atts, uid in changed)
            except _Gone:
                gone = True
                continue
            except Exception as e:
                _report_seen(s, msgs, changed)
                if isinstance(e, UnknownCTE):
                    # RFC 3516 §4.3: the whole request fails.
                    raise IMAPError(
                        "NO", "Unknown Content-Transfer-Encoding", ResponseCode("UNKNOWN-CTE")
                    ) from None
                if isinstance(e, IMAPError | StoreUnavailable):
                    raise
                # A bug must not take the connection down (DESIGN.md §2.6).
                log.exception("imap fetch failed uid=%s user=%s", uid, s.user)
                raise IMAPError("NO", "Internal error", ResponseCode("SERVERBUG")) from None
            changed.discard(uid)
            await s.write(FetchResponse(seq, tuple(items)))
        await asyncio.sleep(0)  # a long FETCH must not starve other sessions
    return _completed(cmd.tag, gone)


def _completed(tag: str, gone: bool) -> TaggedResponse:
    if gone:
        return TaggedResponse(
            tag, "OK", "Some messages were already expunged.", ResponseCode("EXPUNGEISSUED")
        )
    return TaggedResponse(tag, "OK", "Fetch completed.")
