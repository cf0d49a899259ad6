"""Message commands: APPEND, STORE, EXPUNGE, UID EXPUNGE, COPY, MOVE
(RFC 9051 §6.3.12, §6.4.3, §6.4.6-§6.4.9; RFC 3501 §6.3.11, §6.4; MULTIAPPEND
RFC 3502, UIDPLUS RFC 4315, MOVE RFC 6851, BINARY RFC 3516 §4.4).

Untagged EXISTS and EXPUNGE for the session's own APPEND/COPY/EXPUNGE/MOVE
come from the change feed through the selected view when the dispatcher
finishes the command, exactly like changes made by other sessions; only STORE
answers its own FETCH responses (and tells the view so they are not repeated).

Choices where the RFCs leave room, after Dovecot 2.3 unless said otherwise:
- `\\Recent` in APPEND or STORE flags, and any other unknown `\\` flag: BAD
  ("Invalid system flag"), as Dovecot (RFC 3501 §2.3.2: \\Recent cannot be set).
- An empty APPEND message: NO (Dovecot: "Can't save a zero byte message").
- STORE, EXPUNGE, UID EXPUNGE and MOVE in a mailbox opened with EXAMINE:
  NO [CANNOT] (RFC 9051 §6.3.3: no changes to the permanent state). Dovecot
  answers OK and ignores STORE/EXPUNGE; we would rather tell the client.
- A non-silent STORE answers FETCH (FLAGS) for every message in the set, changed
  or not (RFC 9051 §6.4.6: the new value is returned "as if a FETCH of those
  flags was done"). Dovecot only reports messages whose flags changed.
- COPY/MOVE of messages that all vanished meanwhile: NO [EXPUNGEISSUED]
  (RFC 5530 §3); an empty UID set: OK "No messages found" (Dovecot).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ....errors import StoreError
from ....proto.imap import commands as c
from ....proto.imap.responses import (
    ResponseCode,
    TaggedResponse,
    UntaggedStatus,
)
from ....proto.imap.seqset import SeqSet
from ....store.models import (
    SYSTEM_FLAGS,
    AppendRequest,
    CopyResult,
    FlagOp,
    Mailbox,
    canonical_mailbox_name,
    crlf_line_ends,
)
from ..errors import IMAPError
from ..session import store_error_status

if TYPE_CHECKING:
    from ..selected import SelectedMailbox
    from ..session import IMAPSession

_SYSTEM_ORDER = {f: i for i, f in enumerate(SYSTEM_FLAGS)}


def check_flags(flags: Iterable[str]) -> None:
    """BAD for `\\Recent` and unknown system flags (RFC 9051 §2.3.2, Dovecot's text)."""
    for flag in flags:
        if flag.startswith("\\") and flag not in _SYSTEM_ORDER:
            raise IMAPError("BAD", f"Invalid system flag {flag.upper()}")


def _read_write(sel: SelectedMailbox) -> None:
    if sel.read_only:
        raise IMAPError("NO", "Mailbox is read-only (opened with EXAMINE)", ResponseCode("CANNOT"))


async def _target(s: IMAPSession, name: str) -> Mailbox:
    """The destination of APPEND/COPY/MOVE; NO [TRYCREATE] when it is missing."""
    assert s.account is not None
    name = canonical_mailbox_name(name)
    box = await s.store.get_mailbox(s.account.id, name)
    if box is None:
        # RFC 9051 §6.3.12 / §6.4.7: TRYCREATE tells the client CREATE may help.
        raise IMAPError("NO", f"Mailbox doesn't exist: {name}", ResponseCode("TRYCREATE"))
    return box


def _uid_set(uids: Iterable[int]) -> SeqSet | int:
    values = list(uids)
    return values[0] if len(values) == 1 else SeqSet.from_numbers(values)


# ---- APPEND -------------------------------------------------------------------------------


def _request(s: IMAPSession, message: c.AppendMessage) -> AppendRequest:
    check_flags(message.flags)
    data = message.data
    if not data:
        raise IMAPError("NO", "Can't save a zero byte message")
    if not message.binary:
        if b"\x00" in data:
            # RFC 9051 §9: a literal is CHAR8 (no NUL); only literal8 may carry
            # NUL (RFC 3516 §4.4).
            raise IMAPError("BAD", "NUL in message data (send it as literal8 ~{n})")
        # Stored messages have CRLF line ends (DESIGN.md §3, models.AppendRequest);
        # like the SMTP receiver, turn bare LFs into CRLF and keep bare CRs.
        data = crlf_line_ends(data)
    # RFC 3516 §4.4: literal8 data is stored as given (it may hold NUL and
    # binary body parts that line-end conversion would corrupt).
    if len(data) > s.ctx.config.max_message_size:
        # RFC 9051 §7.1 TOOBIG (the receiver already refuses larger literals;
        # this catches growth from the CRLF conversion).
        raise IMAPError("NO", "Message too large", ResponseCode("TOOBIG"))
    return AppendRequest(
        data=data, flags=frozenset(message.flags), internal_date=message.internal_date
    )


async def handle_append(s: IMAPSession, cmd: c.AppendCommand) -> TaggedResponse:
    return (await append_batch(s, [cmd]))[0]


async def append_batch(s: IMAPSession, commands: list[c.AppendCommand]) -> list[TaggedResponse]:
    """Run pipelined APPENDs with one store call per run of commands that target
    the same mailbox: one commit for all of them (group commit), UIDs in the
    order the client sent the messages. Returns the tagged response of each.

    Each command is checked on its own first, so a bad one fails alone. A run is
    atomic in the store (a superset of RFC 3502 §6.3.11's all-or-nothing for one
    MULTIAPPEND): a store failure fails every command of the run, as it would
    have failed each of them alone.
    """
    out: list[TaggedResponse | None] = [None] * len(commands)
    ready: list[tuple[int, Mailbox, list[AppendRequest]]] = []
    boxes: dict[str, Mailbox] = {}
    for i, cmd in enumerate(commands):
        try:
            name = canonical_mailbox_name(cmd.mailbox)
            box = boxes.get(name) or await _target(s, name)
            boxes[name] = box
            ready.append((i, box, [_request(s, m) for m in cmd.messages]))
        except IMAPError as e:
            out[i] = TaggedResponse(cmd.tag, e.status, e.text, e.code)
    start = 0
    while start < len(ready):
        end = start + 1
        while end < len(ready) and ready[end][1].id == ready[start][1].id:
            end += 1
        run = ready[start:end]
        requests = [r for _, _, reqs in run for r in reqs]
        try:
            result = await s.store.append(run[0][1].id, requests)
        except StoreError as e:
            status, code, text = store_error_status(e)
            for i, _, _ in run:
                out[i] = TaggedResponse(commands[i].tag, status, text, code)
        else:
            uids = list(result.uids)
            for i, _, reqs in run:
                mine, uids = uids[: len(reqs)], uids[len(reqs) :]
                # RFC 4315 §3: APPENDUID <uidvalidity> <uid-set> (a set for MULTIAPPEND).
                code = ResponseCode.appenduid(result.uidvalidity, _uid_set(mine))
                out[i] = TaggedResponse(commands[i].tag, "OK", "Append completed.", code)
        start = end
    return [r for r in out if r is not None]


# ---- STORE ----------------------------------------------------------------------------------

_STORE_OPS = {
    c.StoreMode.REPLACE: FlagOp.REPLACE,
    c.StoreMode.ADD: FlagOp.ADD,
    c.StoreMode.REMOVE: FlagOp.REMOVE,
}


async def handle_store(s: IMAPSession, cmd: c.StoreCommand) -> TaggedResponse:
    sel = s.require_selected()
    check_flags(cmd.flags)
    if cmd.unchanged_since is not None:
        # RFC 7162 §3.1.3 needs CONDSTORE, which is not advertised.
        raise IMAPError("BAD", "UNCHANGEDSINCE needs CONDSTORE, which is not supported")
    uids = s.resolve(cmd.sequence_set, cmd.uid)
    _read_write(sel)
    if not uids:
        return TaggedResponse(cmd.tag, "OK", "Store completed.")
    updates = await s.store.store_flags(sel.id, uids, _STORE_OPS[cmd.mode], cmd.flags)
    for update in updates:
        # Announced below (or not at all for .SILENT): the change feed must not
        # report our own change back to us.
        sel.note_own_modseq(update.modseq)
    if updates and cmd.mode is not c.StoreMode.REMOVE:
        # New keywords: FLAGS again before the FETCHes that show them.
        sel.note_keywords(cmd.flags)
        s.send_updates(sel.keywords_update())
    if not cmd.silent:
        # RFC 9051 §6.4.6: the new flags "as if a FETCH of those flags was done",
        # for every message of the set; §6.4.9: with UID for UID STORE. The
        # changed ones come back from the store; only the others are read.
        flags = {u.uid: u.flags for u in updates}
        if len(flags) < len(uids):
            unchanged = [u for u in uids if u not in flags]
            flags.update((m.uid, m.flags) for m in await s.store.list_messages(sel.id, unchanged))
        for i, uid in enumerate(uids):
            current = flags.get(uid)
            seq = sel.seq_of(uid)
            if current is None or seq is None or seq > sel.announced_exists:
                continue  # expunged, or not yet announced to this client
            line = b"* %d FETCH (FLAGS %s" % (seq, s.flag_list(uid, current))
            await s.write_bytes(line + (b" UID %d)\r\n" % uid if cmd.uid else b")\r\n"))
            if i % 1000 == 999:
                await asyncio.sleep(0)  # a big STORE must not starve other sessions
    return TaggedResponse(cmd.tag, "OK", "Store completed.")


# ---- EXPUNGE ----------------------------------------------------------------------------------


async def handle_expunge(s: IMAPSession, cmd: c.ExpungeCommand) -> TaggedResponse:
    sel = s.require_selected()
    _read_write(sel)
    # RFC 9051 §6.4.3: the untagged EXPUNGEs come from the selected view when
    # the dispatcher sends this command's updates.
    await s.store.expunge(sel.id, None, require_deleted=True)
    return TaggedResponse(cmd.tag, "OK", "Expunge completed.")


async def handle_uid_expunge(s: IMAPSession, cmd: c.UIDExpungeCommand) -> TaggedResponse:
    sel = s.require_selected()
    _read_write(sel)
    uids = s.resolve(cmd.uids, True)
    if uids:
        # RFC 4315 §2.1: only messages in the set that carry \Deleted.
        await s.store.expunge(sel.id, uids, require_deleted=True)
    return TaggedResponse(cmd.tag, "OK", "Expunge completed.")


# ---- COPY / MOVE ------------------------------------------------------------------------------


def _copyuid(result: CopyResult) -> ResponseCode:
    # RFC 4315 §3: source and destination sets in corresponding order; the
    # store copies in ascending UID order and assigns ascending UIDs.
    return ResponseCode.copyuid(
        result.uidvalidity,
        SeqSet.from_numbers(result.source_uids),
        SeqSet.from_numbers(result.dest_uids),
    )


def _expunge_issued() -> IMAPError:
    return IMAPError(
        "NO", "Some of the requested messages no longer exist", ResponseCode("EXPUNGEISSUED")
    )


async def handle_copy(s: IMAPSession, cmd: c.CopyCommand) -> TaggedResponse:
    sel = s.require_selected()
    uids = s.resolve(cmd.sequence_set, cmd.uid)
    dest = await _target(s, cmd.mailbox)
    if not uids:
        return TaggedResponse(cmd.tag, "OK", "No messages found.")
    result = await s.store.copy(sel.id, uids, dest.id)
    if not result.source_uids:
        raise _expunge_issued()
    return TaggedResponse(cmd.tag, "OK", "Copy completed.", _copyuid(result))


async def handle_move(s: IMAPSession, cmd: c.MoveCommand) -> TaggedResponse:
    sel = s.require_selected()
    uids = s.resolve(cmd.sequence_set, cmd.uid)
    _read_write(sel)
    dest = await _target(s, cmd.mailbox)
    if not uids:
        return TaggedResponse(cmd.tag, "OK", "No messages found.")
    result = await s.store.move(sel.id, uids, dest.id)
    if not result.source_uids:
        raise _expunge_issued()
    # RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGEs, which
    # the dispatcher sends after this handler returns (the tagged OK is last).
    s.send(UntaggedStatus("OK", "Moved UIDs.", _copyuid(result)))
    return TaggedResponse(cmd.tag, "OK", "Move completed.")
