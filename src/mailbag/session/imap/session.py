"""The IMAP session: one connection's state machine (RFC 9051, RFC 3501).

The receiver (proto.imap) turns bytes into typed commands; this class checks
each against the dispatch table (which state allows it, whether untagged
EXPUNGEs may accompany it), runs the handler, sends the updates other sessions
caused, and writes the tagged status. Handlers live in `handlers/`, one module
per command group; they get the session and the command and return the tagged
OK (or raise IMAPError for NO/BAD).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Iterable
from typing import TYPE_CHECKING, Literal, Protocol, TypeGuard, cast

from ...errors import AlreadyExists, Cannot, NotFound, StoreError, StoreUnavailable
from ...proto.imap.commands import AppendCommand
from ...proto.imap.receiver import (
    CommandError,
    ContinuationRequest,
    IMAPReceiver,
    Limits,
    RawLine,
)
from ...proto.imap.responses import (
    Atom,
    ByeResponse,
    ContinuationResponse,
    EncodingContext,
    ExistsResponse,
    ExpungeResponse,
    FetchResponse,
    FlagsResponse,
    RecentResponse,
    Response,
    ResponseCode,
    StreamingLiteral,
    TaggedResponse,
    UntaggedStatus,
    flag_atoms,
)
from ...proto.imap.seqset import SeqSet
from ...store.models import SYSTEM_FLAGS, UID, Account
from ..base import Channel
from ..context import ServerContext
from .errors import IMAPError
from .selected import (
    Exists,
    Expunge,
    FlagsFetch,
    Keywords,
    MailboxGone,
    Recent,
    SelectedMailbox,
    Update,
)
from .state import State

if TYPE_CHECKING:
    from .dispatch import CommandSpec

log = logging.getLogger("mailbag.imap")

# Flush buffered output once it grows past this (a big FETCH streams out).
_FLUSH_AT = 64 * 1024
_MAX_OVERLAPPED = 32  # pipelined APPENDs in flight at once (each holds its message)
_MAX_BAD = 50  # protocol errors before we hang up (Dovecot: 10 bad commands)


class IMAPSession:
    def __init__(self, ctx: ServerContext, channel: Channel) -> None:
        self.ctx = ctx
        self.channel = channel
        self.store = ctx.store
        self.state = State.NOT_AUTHENTICATED
        self.account: Account | None = None
        self.selected: SelectedMailbox | None = None
        self.enabled: set[str] = set()
        self.encoding = EncodingContext()
        self.receiver = IMAPReceiver(Limits.from_config(ctx.config))
        # RFC 5182 / RFC 9051 §6.4.4.1: the result of SEARCH RETURN (SAVE), as UIDs.
        self.saved_search: list[UID] = []
        self.finished = False
        self._out: list[bytes] = []
        self._out_size = 0
        self._bad_count = 0
        # A command that waits for more client lines (AUTHENTICATE, IDLE).
        self.pending: PendingCommand | None = None
        self._overlapped: list[AppendCommand] = []

    # ---- Session protocol ------------------------------------------------------
    @property
    def idle_timeout(self) -> float:
        if self.pending is not None and self.pending.waits_for_client:
            # IDLE: the client is allowed to stay silent until the autologout
            # (RFC 2177 §3, RFC 9051 §5.4), not just for one command's time.
            return self.ctx.config.imap_idle_timeout
        if not self.receiver.at_command_boundary:
            return self.ctx.config.command_timeout
        return self.ctx.config.imap_idle_timeout

    @property
    def peer(self) -> str:
        return self.channel.peer_host

    @property
    def rev2(self) -> bool:
        return self.encoding.rev2

    @property
    def user(self) -> str:
        return self.account.address if self.account else "-"

    async def start(self) -> None:
        from .handlers.auth import capabilities

        code = ResponseCode.capability(capabilities(self))
        self.send(UntaggedStatus("OK", "mailbag IMAP ready", code))
        await self.flush()

    async def data_received(self, data: bytes) -> None:
        self.receiver.receive_data(data)
        while not self.finished and (event := self.receiver.next_event()) is not None:
            if self._overlappable(event):
                self._start_overlapped(event)
                continue
            await self._finish_overlapped()
            await self._handle_event(event)
            if self._out_size >= _FLUSH_AT:
                await self.flush()
        await self._finish_overlapped()
        await self.flush()

    # ---- pipelined APPENDs ---------------------------------------------------------
    # A client that pipelines APPENDs (LITERAL+) would otherwise wait for one
    # commit per message. APPENDs already in the input are collected and stored
    # with one call per target mailbox (one commit, UIDs in the order sent);
    # their responses go out in command order, each after the updates due
    # before it. Nothing is acknowledged before its commit.

    def _overlappable(self, event: object) -> TypeGuard[AppendCommand]:
        return (
            isinstance(event, AppendCommand)
            and self.state in (State.AUTHENTICATED, State.SELECTED)
            and self.pending is None
            and len(self._overlapped) < _MAX_OVERLAPPED
        )

    def _start_overlapped(self, command: AppendCommand) -> None:
        self._overlapped.append(command)

    async def _finish_overlapped(self) -> None:
        if not self._overlapped:
            return
        from .dispatch import TABLE
        from .handlers.messages import append_batch

        commands, self._overlapped = self._overlapped, []
        results = await append_batch(self, commands)
        for command, result in zip(commands, results, strict=True):
            if result.status != "OK":
                self._log_error(command.tag, "APPEND", result.status, result.text)
            self._send_updates(TABLE[AppendCommand], command)
            self.send(result)

    async def timed_out(self) -> None:
        # RFC 9051 §5.4: autologout after at least 30 minutes of inactivity.
        await self._bye("Autologout; idle for too long")

    async def shutdown(self) -> None:
        await self._bye("Server shutting down", ResponseCode("UNAVAILABLE"))

    async def connection_lost(self) -> None:
        # Queued APPENDs were never acknowledged: dropping them loses nothing.
        self._overlapped.clear()
        if self.pending is not None:
            await self.pending.cancel()
            self.pending = None
        self._unselect()

    async def _bye(self, text: str, code: ResponseCode | None = None) -> None:
        self.finished = True
        self.send(ByeResponse(text, code))
        try:
            await self.flush()
        except (ConnectionError, OSError):
            pass

    # ---- output ----------------------------------------------------------------
    def send(self, response: Response) -> None:
        """Queue a response that has no streamed parts."""
        for piece in response.pieces(self.encoding):
            if not isinstance(piece, bytes):
                raise TypeError("use write() for responses with streamed literals")
            self._out.append(piece)
            self._out_size += len(piece)

    async def write(self, response: Response) -> None:
        """Queue a response, streaming any StreamingLiteral parts as they come."""
        for piece in response.pieces(self.encoding):
            if isinstance(piece, bytes):
                self._out.append(piece)
                self._out_size += len(piece)
                continue
            await self._stream(piece)
        if self._out_size >= _FLUSH_AT:
            await self.flush()

    async def write_bytes(self, *pieces: bytes) -> None:
        """Queue bytes already serialised (the FETCH fast path). Several
        pieces are queued as they are: a message body is copied once, by
        flush(), not also into a line of its own."""
        for data in pieces:
            self._out.append(data)
            self._out_size += len(data)
        if self._out_size >= _FLUSH_AT:
            await self.flush()

    async def _stream(self, literal: StreamingLiteral) -> None:
        sent = 0
        chunks = literal.chunks
        if isinstance(chunks, AsyncIterable):
            async for chunk in chunks:
                sent += len(chunk)
                self._queue_chunk(chunk)
                if self._out_size >= _FLUSH_AT:
                    await self.flush()
        else:
            for chunk in chunks:
                sent += len(chunk)
                self._queue_chunk(chunk)
                if self._out_size >= _FLUSH_AT:
                    await self.flush()
        if sent != literal.size:
            # The literal length is already on the wire: the stream cannot be
            # repaired, so this connection must end (DESIGN.md §2.6).
            raise ConnectionAbortedError(
                f"streamed literal has {sent} octets, announced {literal.size}"
            )

    def _queue_chunk(self, chunk: bytes) -> None:
        self._out.append(chunk)
        self._out_size += len(chunk)

    async def flush(self) -> None:
        if not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        await self.channel.write(data)

    # ---- dispatch ------------------------------------------------------------------
    async def _handle_event(self, event: object) -> None:
        if isinstance(event, RawLine):
            if self.pending is not None:
                await self.pending.line(event.data)
            return
        if isinstance(event, ContinuationRequest):
            await self._continuation(event)
            return
        if isinstance(event, CommandError):
            self._bad_input()
            if self.pending is not None and event.tag is None:
                # An overlong raw line (SASL response / DONE): the pending command fails.
                await self.pending.fail(event.text)
                return
            if event.tag is None:
                self.send(UntaggedStatus("BAD", event.text, event.code))
            else:
                status = cast(Literal["OK", "NO", "BAD"], event.status)
                self.send(TaggedResponse(event.tag, status, event.text, event.code))
            self._log_error(event.tag or "*", event.command or "?", event.status, event.text)
            return
        await self._dispatch(event)

    async def _continuation(self, event: ContinuationRequest) -> None:
        # RFC 9051 §7.1: APPEND data before login would be an easy memory sink.
        if self.state is State.NOT_AUTHENTICATED and event.size > 8192:
            self.receiver.reject_literal()
            self.send(TaggedResponse(event.tag, "NO", "Log in first"))
            return
        self.send(ContinuationResponse("Ready for literal data"))
        await self.flush()

    def _bad_input(self) -> None:
        self._bad_count += 1
        if self._bad_count >= _MAX_BAD:
            self.finished = True
            self.send(ByeResponse("Too many invalid commands"))

    async def _dispatch(self, command: object) -> None:
        from .dispatch import TABLE

        tag: str = command.tag  # type: ignore[attr-defined]
        spec = TABLE.get(type(command))
        if log.isEnabledFor(logging.DEBUG):
            # Only tag and command name: arguments may hold passwords or mail.
            log.debug(
                "imap user=%s peer=%s C: %s %s",
                self.user,
                self.peer,
                tag,
                spec.name if spec else type(command).__name__,
            )
        if spec is None:  # pragma: no cover - the table covers every command class
            self.send(TaggedResponse(tag, "BAD", "Command not supported"))
            return
        if self.state not in spec.states:
            self._bad_input()
            self.send(TaggedResponse(tag, "BAD", _state_text(self.state, spec)))
            return
        try:
            result = await spec.handler(self, command)
        except IMAPError as e:
            if e.status == "BAD":
                self._bad_input()
            self._send_updates(spec, command)
            self.send(TaggedResponse(tag, e.status, e.text, e.code))
            self._log_error(tag, spec.name, e.status, e.text)
            return
        except StoreError as e:
            status, code, text = store_error_status(e)
            self._send_updates(spec, command)
            self.send(TaggedResponse(tag, status, text, code))
            self._log_error(tag, spec.name, status, str(e))
            return
        if result is None:
            return  # the command continues (IDLE, AUTHENTICATE) and answers later
        self._send_updates(spec, command)
        self.send(result)

    def _send_updates(self, spec: CommandSpec, command: object) -> None:
        if self.selected is None or self.pending is not None:
            return
        uid_form = bool(getattr(command, "uid", False))
        self.send_updates(self.selected.poll(allow_expunge=spec.allows_expunge or uid_form))

    def send_updates(self, updates: Iterable[Update]) -> None:
        for u in updates:
            match u:
                case Expunge(seq=seq):
                    self.send(ExpungeResponse(seq))
                case Exists(count=count):
                    self.send(ExistsResponse(count))
                case Recent(count=count):
                    if not self.rev2:  # RFC 9051 removed \Recent and RECENT
                        self.send(RecentResponse(count))
                case Keywords(keywords=keywords):
                    assert self.selected is not None
                    self.send_flag_lists(keywords, self.selected.read_only)
                case FlagsFetch(seq=seq, uid=uid, flags=flags):
                    self.send(
                        FetchResponse(
                            seq, (("FLAGS", flag_atoms(self.flags_for(uid, flags))), ("UID", uid))
                        )
                    )
                case MailboxGone():
                    # RFC 9051 §7.1: BYE is the only way to tell a client that the
                    # selected mailbox disappeared under it; Dovecot does the same.
                    self.finished = True
                    self._unselect()
                    self.send(ByeResponse("Selected mailbox was deleted, have to disconnect"))

    def send_flag_lists(self, keywords: Iterable[str], read_only: bool) -> None:
        """FLAGS and the PERMANENTFLAGS code for a mailbox with `keywords`
        (RFC 9051 §7.3.5, §7.1): at SELECT, and again when keywords are added."""
        flags = (*SYSTEM_FLAGS, *keywords)
        self.send(FlagsResponse(flags))
        permanent = () if read_only else (*flags, "\\*")
        self.send(UntaggedStatus("OK", "Flags permitted.", ResponseCode.permanent_flags(permanent)))

    def shows_recent(self, uid: UID) -> bool:
        """Whether this session shows \\Recent on `uid`: IMAP4rev1 only, for
        the messages its SELECT claimed (RFC 3501 §2.3.2; RFC 9051 removed it)."""
        return self.selected is not None and not self.rev2 and self.selected.is_recent(uid)

    def flags_for(self, uid: UID, flags: Iterable[str]) -> list[str]:
        """Flags as this session shows them, in a stable order, with \\Recent
        added where `shows_recent`."""
        out = ordered_flags(flags)
        if self.shows_recent(uid):
            out.append("\\Recent")
        return out

    def flag_list(self, uid: UID, flags: frozenset[str]) -> bytes:
        """`flags_for` as the bytes of a FLAGS list, e.g. `(\\Seen $Label)`."""
        recent = self.shows_recent(uid)
        key = (flags, recent)
        out = _FLAG_LISTS.get(key)
        if out is None:
            if len(_FLAG_LISTS) >= _FLAG_LISTS_MAX:
                _FLAG_LISTS.clear()
            names = self.flags_for(uid, flags)
            for name in names:
                Atom(name)  # raises on a stored flag that is not an atom, as flag_atoms does
            out = _FLAG_LISTS[key] = b"(" + " ".join(names).encode("ascii") + b")"
        return out

    def _log_error(self, tag: str, name: str, status: str, text: str) -> None:
        log.info(
            "imap command error user=%s peer=%s tag=%s command=%s status=%s text=%r",
            self.user,
            self.peer,
            tag,
            name,
            status,
            text,
        )

    # ---- helpers for handlers ------------------------------------------------------
    def require_selected(self) -> SelectedMailbox:
        if self.selected is None:
            raise IMAPError("BAD", "No mailbox selected")
        return self.selected

    def resolve(self, seqset: SeqSet, uid: bool) -> list[UID]:
        """The UIDs a sequence set names in the selected mailbox (ascending)."""
        sel = self.require_selected()
        if seqset.saved:
            # RFC 5182 §2.1: `$` is the saved UIDs that still exist.
            saved = set(self.saved_search)
            return [u for u in sel if u in saved]
        if uid:
            return sel.uids_in_ranges(seqset.resolved(int(sel.max_uid())))
        # RFC 9051 §6.4.5 / §9: a message number above EXISTS is an error for the
        # sequence-number forms (Dovecot: "Invalid messageset").
        if seqset.max_explicit() > sel.exists:
            raise IMAPError("BAD", "Error in IMAP command: Invalid messageset")
        return sel.uids_for_seqs(seqset.numbers(sel.exists))

    def _unselect(self) -> None:
        if self.selected is not None:
            self.selected.close()
            self.selected = None
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

    def select(self, view: SelectedMailbox) -> None:
        self._unselect()
        self.selected = view
        self.state = State.SELECTED
        # RFC 5182 §2.1: SELECT/EXAMINE reset the saved search result.
        self.saved_search = []

    def unselect(self) -> None:
        self._unselect()


# Dovecot's order for system flags; keywords follow, sorted. Any fixed order
# would do: it only keeps responses stable between runs.
# Serialised FLAGS lists by (flags, \\Recent): a mailbox has few distinct
# flag sets, and FETCH FLAGS of 10,000 messages should not sort 10,000 times.
_FLAG_LISTS: dict[tuple[frozenset[str], bool], bytes] = {}
_FLAG_LISTS_MAX = 4096

_FLAG_ORDER = {"\\Answered": 0, "\\Flagged": 1, "\\Deleted": 2, "\\Seen": 3, "\\Draft": 4}


def ordered_flags(flags: Iterable[str]) -> list[str]:
    system = sorted((f for f in flags if f in _FLAG_ORDER), key=_FLAG_ORDER.__getitem__)
    keywords = sorted((f for f in flags if f not in _FLAG_ORDER), key=lambda f: (f.lower(), f))
    return system + keywords


class PendingCommand(Protocol):
    """A command that reads more client lines before it finishes."""

    # True when the client may legitimately stay silent for long (IDLE).
    waits_for_client: bool

    async def line(self, data: bytes) -> None: ...

    async def fail(self, text: str) -> None: ...

    async def cancel(self) -> None: ...


def store_error_status(e: StoreError) -> tuple[Literal["NO"], ResponseCode | None, str]:
    """One place that turns store failures into IMAP statuses (RFC 5530 codes)."""
    if isinstance(e, NotFound):
        return "NO", ResponseCode("NONEXISTENT"), "Mailbox doesn't exist"
    if isinstance(e, AlreadyExists):
        return "NO", ResponseCode("ALREADYEXISTS"), "Mailbox already exists"
    if isinstance(e, Cannot):
        return "NO", ResponseCode("CANNOT"), str(e) or "Operation not permitted"
    if isinstance(e, StoreUnavailable):
        return "NO", ResponseCode("UNAVAILABLE"), "Temporary failure, try again later"
    return "NO", ResponseCode("SERVERBUG"), "Internal error occurred"


def _state_text(state: State, spec: CommandSpec) -> str:
    if state is State.NOT_AUTHENTICATED:
        return f"{spec.name} not allowed before login"
    if State.SELECTED in spec.states and State.AUTHENTICATED not in spec.states:
        return "No mailbox selected"
    if State.NOT_AUTHENTICATED in spec.states and len(spec.states) == 1:
        return f"{spec.name} only allowed before login"
    return f"{spec.name} not allowed now"
