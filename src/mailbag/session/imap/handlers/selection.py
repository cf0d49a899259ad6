"""SELECT, EXAMINE, CLOSE, UNSELECT, CHECK and IDLE (RFC 9051 §6.3.2, §6.3.3,
§6.4.1, §6.4.2, §6.3.13; RFC 3501 §6.3.1, §6.4.1; RFC 2177)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from ....proto.imap import commands as c
from ....proto.imap.responses import (
    ContinuationResponse,
    ExistsResponse,
    RecentResponse,
    ResponseCode,
    TaggedResponse,
    UntaggedStatus,
)
from ....store.models import canonical_mailbox_name
from ..errors import IMAPError
from ..selected import SelectedMailbox

if TYPE_CHECKING:
    from ....store.changes import MessagesAdded
    from ..session import IMAPSession

log = logging.getLogger("mailbag.imap")


async def handle_select(s: IMAPSession, cmd: c.SelectCommand | c.ExamineCommand) -> TaggedResponse:
    read_only = isinstance(cmd, c.ExamineCommand)
    name = canonical_mailbox_name(cmd.mailbox)
    assert s.account is not None
    if s.selected is not None:
        # RFC 9051 §6.3.2: closing the old mailbox is announced with [CLOSED].
        s.unselect()
        s.send(UntaggedStatus("OK", "Previous mailbox closed.", ResponseCode("CLOSED")))
    box = await s.store.get_mailbox(s.account.id, name)
    if box is None:
        raise IMAPError("NO", "Mailbox doesn't exist: " + name, ResponseCode("NONEXISTENT"))
    # Subscribe before reading the message list, so nothing committed in
    # between is missed; the view ignores what the list already holds.
    sub = s.store.changes.subscribe(s.account.id)
    try:
        uids = await s.store.list_uids(box.id)
        keywords = await s.store.list_keywords(box.id)
        recent_from = None
        if not s.rev2 and not read_only:
            recent_from = await s.store.claim_recent(box.id)
        status = await s.store.mailbox_status(box.id)
    except BaseException:
        sub.close()
        raise
    view = SelectedMailbox(box, uids, read_only, sub, recent_from, keywords)
    del uids
    s.select(view)
    s.send_flag_lists(keywords, read_only)
    s.send(ExistsResponse(view.exists))
    if not s.rev2:
        s.send(RecentResponse(view.recent_count()))
        if status.first_unseen_uid is not None:
            seq = view.seq_of(status.first_unseen_uid)
            if seq is not None:
                # RFC 3501 §6.3.1: the first unseen message (removed in IMAP4rev2).
                s.send(UntaggedStatus("OK", "First unseen.", ResponseCode.unseen(seq)))
    s.send(UntaggedStatus("OK", "UIDs valid", ResponseCode.uidvalidity(box.uidvalidity)))
    s.send(UntaggedStatus("OK", "Predicted next UID", ResponseCode.uidnext(status.uidnext)))
    mode = "READ-ONLY" if read_only else "READ-WRITE"
    verb = "Examine" if read_only else "Select"
    return TaggedResponse(cmd.tag, "OK", f"{verb} completed.", ResponseCode(mode))


async def handle_close(s: IMAPSession, cmd: c.CloseCommand) -> TaggedResponse:
    view = s.require_selected()
    if not view.read_only:
        # RFC 9051 §6.4.1: remove \Deleted messages silently, no EXPUNGE responses.
        await s.store.expunge(view.id, None, require_deleted=True)
    s.unselect()
    return TaggedResponse(cmd.tag, "OK", "Close completed.")


async def handle_unselect(s: IMAPSession, cmd: c.UnselectCommand) -> TaggedResponse:
    s.require_selected()
    s.unselect()
    return TaggedResponse(cmd.tag, "OK", "Unselect completed.")


async def handle_check(s: IMAPSession, cmd: c.CheckCommand) -> TaggedResponse:
    # Every change is durable when it is acknowledged; CHECK has nothing to do.
    return TaggedResponse(cmd.tag, "OK", "Check completed.")


class _Idle:
    """IDLE as a PendingCommand: pushes updates until the client sends DONE.

    No task waits while nothing happens (issue 4: an idle session must cost
    little, and waking thousands of tasks per delivery is slow). `run` sends
    what is due, leaves two callbacks on the change feed and ends:
    `_on_added` writes the EXISTS (and RECENT) of new mail straight to the
    connection from the change feed's push pass (soon after the commit, never
    holding up the publisher); any other change, or new mail behind it or while
    the client is slow to read, stays queued and `_wake` starts `run` again.
    """

    __slots__ = ("s", "tag", "task")
    waits_for_client = True

    def __init__(self, s: IMAPSession, tag: str) -> None:
        self.s = s
        self.tag = tag
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        s = self.s
        try:
            while not s.finished and (view := s.selected) is not None:
                # RFC 2177 §3: while idling, any update (EXPUNGE too) may be sent at once.
                updates = view.poll(allow_expunge=True)
                if not updates:
                    # Everything due is written: wait without a task.
                    view.watch(self._on_added, self._wake)
                    return
                s.send_updates(updates)
                await s.flush()  # records queued meanwhile: the next poll() takes them
                if s.finished:
                    # A BYE went out (the mailbox was deleted). The driver is waiting
                    # for client bytes and would keep the connection open: close it.
                    s.channel.close()
                    return
        except (ConnectionError, OSError):
            return  # the client is gone; the driver sees it and cleans up
        except Exception:
            # DESIGN.md §2.6: a bug ends this connection only, with a traceback.
            log.exception("imap user=%s peer=%s IDLE update failed", s.user, s.peer)
            s.channel.close()
        finally:
            if self.task is asyncio.current_task():
                self.task = None

    def _on_added(self, change: MessagesAdded) -> bool:
        s = self.s
        view = s.selected
        # After a BYE (autologout, shutdown) nothing more may be written.
        if view is None or s.finished:
            return False
        return view.push_added(change, not s.encoding.rev2, s.channel.write_nowait)

    def _wake(self) -> None:
        # Records stay queued (called from the ChangeHub's push pass).
        if self.s.selected is not None:
            self.s.selected.unwatch()
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.run())

    async def _stop(self) -> None:
        # Synchronously first: once DONE is read, nothing may be written before
        # the tagged OK but what poll() returns then (RFC 2177 §3).
        if self.s.selected is not None:
            self.s.selected.unwatch()
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def line(self, data: bytes) -> None:
        await self._stop()
        s = self.s
        s.pending = None
        if data.strip().upper() != b"DONE":
            s.send(TaggedResponse(self.tag, "BAD", "Expected DONE."))
            return
        if s.selected is not None:
            s.send_updates(s.selected.poll(allow_expunge=True))
        s.send(TaggedResponse(self.tag, "OK", "Idle completed."))

    async def fail(self, text: str) -> None:
        await self._stop()
        self.s.pending = None
        self.s.send(TaggedResponse(self.tag, "BAD", text))

    async def cancel(self) -> None:
        await self._stop()
        self.s.pending = None


async def handle_idle(s: IMAPSession, cmd: c.IdleCommand) -> None:
    idle = _Idle(s, cmd.tag)
    s.pending = idle
    if s.selected is not None:
        s.send_updates(s.selected.poll(allow_expunge=True))
    s.send(ContinuationResponse("idling"))
    s.receiver.expect_raw_line()
    await s.flush()
    if s.selected is not None:  # without a mailbox there is nothing to watch
        idle.task = asyncio.get_running_loop().create_task(idle.run())
    return None
