"""Inbound SMTP (RFC 5321) and LMTP (RFC 2033) sessions.

One class serves both; `lmtp=True` switches the greeting, LHLO instead of
EHLO/HELO (RFC 2033 §4.1) and one reply per recipient after DATA (§4.2).

Which command is allowed in which phase is the table `_REFUSED`; handlers do
not re-check the phase. Replies to every complete command of a chunk are
written together (RFC 2920 §3.2 (4): flush when the input is exhausted), except
that STARTTLS and QUIT flush and stop: nothing pipelined after them runs.

How SMTP folds per-recipient delivery results into its one reply after DATA
(SMTP cannot accept for some recipients and refuse for others there):

1. every recipient stored → 250 2.0.0;
2. else any permanent failure → that failure (the first, in RCPT order). The
   sender's MTA bounces; a recipient that did get the message keeps it, so the
   worst case is a bounce for a delivered copy, never a silent loss;
3. else (temporary failures only, some recipients maybe stored) → 451 4.3.0.
   The client retries the whole message: a recipient stored the first time
   may get a duplicate, which is better than losing mail.

LMTP has no such problem and answers each accepted RCPT in order.

Messages being stored do not stop the session: a received message is handed
to the store in a task of its own, and the session goes on reading and
answering what follows it; replies still go out in command order (RFC 2920
§3.2 (1)): those behind a message being stored wait in `_queue` until its
replies are written (`_flush_queue`). Nothing is acknowledged before its
delivery result exists, and the result exists only after the commit.

What this buys depends on the client. One that pipelines by the rules puts
the next MAIL, RCPT and DATA right after the end of data (RFC 2920 §3.1),
but must wait for the 354 before sending the next message, and that 354
comes after the previous message's reply: the commands are handled while
the message is committed, and one message is in flight per connection. A
client that does not wait for the 354 and sends whole transactions back to
back (outside RFC 2920, and accepted as before) gets several messages stored
at once, which the store commits together: group commit on one connection.
BDAT (CHUNKING, RFC 3030) gives that to clients that keep the rules: its data
follows the command without a 354, so a client may send MAIL, RCPT and
`BDAT n LAST` with the message, then the next transaction, without waiting
(RFC 2920 limits only DATA to the end of a group). At most
`MAX_PIPELINED` messages and `MAX_PIPELINED_BYTES` are in flight per
connection; past that the session stops reading until one is stored.
Messages stored at once may get UIDs in another order than they were sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ...proto.smtp import (
    Bdat,
    ChunkReceived,
    Command,
    Data,
    Hello,
    Help,
    InvalidCommand,
    LineTooLong,
    Mail,
    MessageReceived,
    Noop,
    Quit,
    Rcpt,
    Reply,
    Rset,
    SMTPReceiver,
    StartTLS,
    Vrfy,
)
from ...store.models import AccountID, crlf_line_ends
from ..base import Channel
from ..context import ServerContext
from ..delivery import RecipientResult, TraceInfo

log = logging.getLogger("mailbag.smtp")

# Like Postfix's smtpd_hard_error_limit: a client this confused is cut off.
MAX_ERRORS = 20
# Replies that mean the client broke the protocol (counted towards MAX_ERRORS).
_PROTOCOL_ERRORS = frozenset({500, 501, 502, 503, 504, 555})
# Messages of one connection being stored at once (module docstring), and
# their total size: bounds the memory one pipelining client can hold.
MAX_PIPELINED = 32
MAX_PIPELINED_BYTES = 32 * 1024 * 1024


class Phase(Enum):
    GREETED = "greeted"  # no HELO/EHLO/LHLO yet
    READY = "ready"  # greeted by the client, no transaction
    MAIL = "mail"  # MAIL accepted, no recipient yet
    RCPT = "rcpt"  # at least one recipient accepted


_NEED_HELO = Reply(503, "5.5.1", "Error: send HELO/EHLO first")
_NEED_LHLO = Reply(503, "5.5.1", "Error: send LHLO first")
_NEED_MAIL = Reply(503, "5.5.1", "Error: need MAIL command")
_NESTED = Reply(503, "5.5.1", "Error: nested MAIL command")
# RFC 2920 §3.1: DATA after recipients that were all refused gets 554.
_NO_RCPT = Reply(554, "5.5.1", "Error: no valid recipients")
_IN_TRANSACTION = Reply(503, "5.5.1", "Error: MAIL transaction in progress")
# RFC 3030 §2: after a failed chunk, or DATA mixed with BDAT, the state is
# indeterminate until RSET; until then every chunk and DATA gets this.
_CHUNK_FAILED = Reply(503, "5.5.1", "Error: previous data chunk failed, send RSET first")
_MIXED = Reply(503, "5.5.1", "Error: DATA and BDAT in one transaction")
_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")

# (command type, phase) → the refusal; anything not listed is allowed. The
# greeting refusal is filled in per protocol (HELO/EHLO vs LHLO).
_REFUSED: dict[type[Command], dict[Phase, Reply | None]] = {
    Mail: {Phase.GREETED: None, Phase.MAIL: _NESTED, Phase.RCPT: _NESTED},
    Rcpt: {Phase.GREETED: None, Phase.READY: _NEED_MAIL},
    Data: {Phase.GREETED: None, Phase.READY: _NEED_MAIL, Phase.MAIL: _NO_RCPT},
    # A chunk is refused where DATA is (RFC 3030 §2: BDAT replaces DATA).
    Bdat: {Phase.GREETED: None, Phase.READY: _NEED_MAIL, Phase.MAIL: _NO_RCPT},
    # RFC 3207 §4: STARTTLS resets the state; refusing it mid-transaction keeps
    # a client from losing its envelope unknowingly (Postfix does the same).
    StartTLS: {Phase.MAIL: _IN_TRANSACTION, Phase.RCPT: _IN_TRANSACTION},
}


@dataclass(slots=True)
class Transaction:
    sender: str
    smtputf8: bool
    recipients: list[str] = field(default_factory=list)  # normalised, RCPT order
    # The account each accepted recipient resolved to at RCPT, so delivery
    # does not look it up again.
    accounts: dict[str, AccountID] = field(default_factory=dict)
    # BDAT chunks received so far (None: no BDAT yet), and whether one
    # failed (then only RSET, or a new HELO/EHLO/LHLO, clears it: RFC 3030 §2).
    chunks: bytearray | None = None
    failed: bool = False


class SMTPSession:
    def __init__(self, ctx: ServerContext, channel: Channel, lmtp: bool = False) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.channel = channel
        self.lmtp = lmtp
        self.proto = "lmtp" if lmtp else "smtp"
        # A chunk over the message size limit is counted, never held.
        self._rx = SMTPReceiver(max_chunk=ctx.config.max_message_size)
        self._phase = Phase.GREETED
        self._helo = ""
        self._esmtp = False
        self._txn: Transaction | None = None
        self._errors = 0
        self._finished = False
        self._upgrade = False
        # When the partial command or message now being received began; one
        # command or DATA may take at most config.command_timeout.
        self._busy_since: float | None = None
        # Replies that wait for a message being stored ahead of them, in
        # command order: lists of replies ready to go, and the tasks storing
        # messages (each gives that message's replies). See the module docstring.
        self._queue: deque[list[Reply] | asyncio.Task[list[Reply]]] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self._storing: set[asyncio.Task[list[Reply]]] = set()
        self._storing_bytes = 0

    # ---- Session protocol ----------------------------------------------------
    @property
    def idle_timeout(self) -> float:
        idle = self.config.smtp_idle_timeout
        if self._busy_since is None:
            return idle
        left = self._busy_since + self.config.command_timeout - time.monotonic()
        return max(0.001, min(idle, left))

    @property
    def finished(self) -> bool:
        return self._finished

    async def start(self) -> None:
        kind = "LMTP" if self.lmtp else "ESMTP"
        # RFC 5321 §4.2 / RFC 2034 §3: the greeting has no enhanced status code.
        await self._send([Reply(220, "", f"{self.config.hostname} {kind} mailbag")])

    async def data_received(self, data: bytes) -> None:
        if self._finished:
            return
        if self._busy_since is not None and self._overdue():
            # A client trickling bytes never trips the idle timer; this does.
            await self.timed_out()
            return
        self._rx.feed(data)
        out: list[Reply] = []
        while not self._finished:
            event = self._rx.next_event()
            if event is None:
                break
            if isinstance(event, ChunkReceived):
                message = self._on_chunk(event, out)
                if message is None:
                    continue
                event = message  # the last chunk: stored as DATA's message is
            if isinstance(event, MessageReceived):
                replies = await self._on_message(event)
                if isinstance(replies, asyncio.Task):
                    # What came before goes out first; what comes after waits.
                    self._queue.append(out)
                    self._queue.append(replies)
                    out = []
                    continue
                out.extend(replies)
                continue
            out.extend(await self._handle(event))
            if self._upgrade:
                await self._drain()
                await self._start_tls(out)
                return
        if self._rx.idle:
            self._busy_since = None
        elif self._busy_since is None:
            self._busy_since = time.monotonic()
        if self._finished:
            # The driver closes the connection when this returns: every
            # message still being stored is answered first.
            await self._drain()
        await self._emit(out)

    async def timed_out(self) -> None:
        self._finished = True
        await self._drain()
        # RFC 5321 §4.5.3.2: the server may close after its timeout, with a 421.
        await self._send([Reply(421, "4.4.2", f"{self.config.hostname} Error: timeout exceeded")])

    async def shutdown(self) -> None:
        self._finished = True
        await self._drain()
        await self._send([Reply(421, "4.3.2", "Service shutting down")])

    async def connection_lost(self) -> None:
        # A message cut off mid-DATA is simply dropped: only MessageReceived
        # ever leads to a delivery. Messages being stored go on being stored
        # (a client that saw no 250 sends them again: a duplicate at worst);
        # their replies have nobody to go to.
        self._txn = None
        self._rx.discard()
        self._finished = True
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        self._queue.clear()

    # ---- replies behind messages being stored --------------------------------
    async def _emit(self, replies: list[Reply]) -> None:
        """Send `replies` now, or after the messages being stored ahead of them."""
        if not self._queue and self._flusher is None:
            await self._send(replies)
            return
        if replies:
            self._queue.append(replies)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_queue())

    async def _flush_queue(self) -> None:
        """Write queued replies in order as the messages ahead of them are stored."""
        try:
            while self._queue:
                head = self._queue[0]
                if isinstance(head, asyncio.Task):
                    await asyncio.wait((head,))
                # Everything ready up to the next message still being stored
                # goes out in one write (RFC 2920 §3.2 (2)).
                batch: list[Reply] = []
                while self._queue:
                    item = self._queue[0]
                    if isinstance(item, asyncio.Task):
                        if not item.done():
                            break
                        if item.cancelled():
                            # Only the loop's own shutdown cancels a delivery:
                            # its outcome is unknown, so nothing more is said.
                            raise RuntimeError("message delivery was cancelled")
                        batch.extend(item.result())
                    else:
                        batch.extend(item)
                    self._queue.popleft()
                await self._send(batch)
        except asyncio.CancelledError:
            raise
        except (ConnectionError, OSError) as e:
            log.info("proto=%s peer=%s connection error: %s", self.proto, self.channel.peer_host, e)
            self._abort()
        except Exception:
            # DESIGN.md §2.6: a bug closes this connection only.
            log.exception("proto=%s peer=%s session failed", self.proto, self.channel.peer_host)
            self._abort()
        finally:
            if self._flusher is asyncio.current_task():
                self._flusher = None

    def _abort(self) -> None:
        self._finished = True
        self._queue.clear()
        self.channel.close()

    async def _drain(self) -> None:
        """Return once every queued reply is written (or the connection failed).

        Only one coroutine writes at a time: this session's handler when no
        flusher exists, else the flusher."""
        while self._queue or self._flusher is not None:
            if self._flusher is None:
                self._flusher = asyncio.create_task(self._flush_queue())
            await asyncio.wait((self._flusher,))

    async def _make_room(self, size: int) -> None:
        """Wait until one more message of `size` octets may be stored."""
        while self._storing and (
            len(self._storing) >= MAX_PIPELINED or self._storing_bytes + size > MAX_PIPELINED_BYTES
        ):
            await asyncio.wait(self._storing, return_when=asyncio.FIRST_COMPLETED)

    # ---- plumbing ------------------------------------------------------------
    def _overdue(self) -> bool:
        assert self._busy_since is not None
        return time.monotonic() - self._busy_since > self.config.command_timeout

    async def _send(self, replies: list[Reply]) -> None:
        if not replies:
            return
        data = b"".join(r.to_bytes() for r in replies)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("proto=%s peer=%s S: %r", self.proto, self.channel.peer_host, data)
        await self.channel.write(data)

    async def _start_tls(self, out: list[Reply]) -> None:
        self._upgrade = False
        await self._send(out)
        dropped = self._rx.discard()
        if dropped:
            # The STARTTLS injection class (CVE-2011-0411): commands sent in
            # plaintext behind STARTTLS must never run as if they came over TLS.
            log.warning(
                "proto=%s peer=%s discarded %d bytes pipelined after STARTTLS",
                self.proto,
                self.channel.peer_host,
                dropped,
            )
        await self.channel.start_tls()
        # RFC 3207 §4.2: forget everything learned before TLS, EHLO included.
        self._phase = Phase.GREETED
        self._helo = ""
        self._esmtp = False
        self._txn = None
        self._busy_since = None

    async def _handle(self, event: Command | InvalidCommand | LineTooLong) -> list[Reply]:
        # A complete command ends the command timer; DATA restarts it.
        self._busy_since = None
        if log.isEnabledFor(logging.DEBUG):
            log.debug("proto=%s peer=%s C: %r", self.proto, self.channel.peer_host, event)
        match event:
            case LineTooLong():
                replies = [Reply(500, "5.5.6", "Line too long")]
                verb = "(line too long)"
            case InvalidCommand():
                replies = [event.reply]
                verb = event.line[:10].decode("ascii", "replace").split(" ")[0].upper()
            case _:
                replies = [await self._dispatch(event)]
                verb = type(event).__name__.upper()
        return self._counted(verb, replies)

    def _counted(self, verb: str, replies: list[Reply]) -> list[Reply]:
        """Log refusals and count protocol errors; past MAX_ERRORS, add the 421."""
        for reply in replies:
            if reply.is_error:
                log.info(
                    "proto=%s peer=%s command=%r reply=%r",
                    self.proto,
                    self.channel.peer_host,
                    verb,
                    str(reply),
                )
            if reply.code in _PROTOCOL_ERRORS:
                self._errors += 1
        if self._errors >= MAX_ERRORS and not self._finished:
            self._finished = True
            replies.append(Reply(421, "4.7.0", f"{self.config.hostname} Error: too many errors"))
        return replies

    def _refusal(self, kind: type[Command]) -> Reply | None:
        """The reply `_REFUSED` gives a command of `kind` in this phase, if any."""
        refused = _REFUSED.get(kind, {})
        if self._phase not in refused:
            return None
        reply = refused[self._phase]
        return reply if reply is not None else (_NEED_LHLO if self.lmtp else _NEED_HELO)

    async def _dispatch(self, cmd: Command) -> Reply:
        refusal = self._refusal(type(cmd))
        if refusal is not None:
            return refusal
        match cmd:
            case Hello():
                return self._on_hello(cmd)
            case Mail():
                return self._on_mail(cmd)
            case Rcpt():
                return await self._on_rcpt(cmd)
            case Data():
                assert self._txn is not None
                if self._txn.failed:
                    return _CHUNK_FAILED
                if self._txn.chunks is not None:
                    self._txn.failed = True
                    return _MIXED
                self._rx.start_data(self.config.max_message_size)
                self._busy_since = time.monotonic()
                return Reply(354, "", "End data with <CR><LF>.<CR><LF>")
            case Rset():
                self._reset()
                return Reply(250, "2.0.0", "Ok")
            case Noop():
                return Reply(250, "2.0.0", "Ok")
            case Vrfy():
                # RFC 5321 §3.5.3: 252 when we will not say whether a user exists.
                return Reply(
                    252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"
                )
            case Help():
                return Reply(214, "2.0.0", "See RFC 5321 (SMTP) and RFC 2033 (LMTP)")
            case Quit():
                self._finished = True
                return Reply(221, "2.0.0", "Bye")
            case StartTLS():
                return self._on_starttls()
        raise AssertionError(f"unhandled command {cmd!r}")

    def _reset(self) -> None:
        self._txn = None
        if self._phase in (Phase.MAIL, Phase.RCPT):
            self._phase = Phase.READY

    # ---- handlers ------------------------------------------------------------
    def _on_hello(self, cmd: Hello) -> Reply:
        if self.lmtp and cmd.verb != "LHLO":
            # RFC 2033 §4.1: an LMTP server must not accept HELO or EHLO.
            return Reply(500, "5.5.1", "Error: this is LMTP, use LHLO")
        if not self.lmtp and cmd.verb == "LHLO":
            return Reply(500, "5.5.2", "Error: command not recognized")
        # RFC 5321 §4.1.4: EHLO/HELO again resets the state like RSET.
        self._txn = None
        self._phase = Phase.READY
        self._helo = cmd.domain
        self._esmtp = cmd.verb != "HELO"
        if cmd.verb == "HELO":
            return Reply(250, "", self.config.hostname)
        lines = [
            self.config.hostname,
            "PIPELINING",
            f"SIZE {self.config.max_message_size}",
            "8BITMIME",
            "CHUNKING",
            "ENHANCEDSTATUSCODES",
        ]
        if self.channel.tls_available and not self.channel.is_tls:
            lines.append("STARTTLS")
        lines.append("SMTPUTF8")
        # RFC 2034 §3 (4): no enhanced status codes in the EHLO/LHLO reply.
        return Reply(250, "", "\n".join(lines))

    def _on_mail(self, cmd: Mail) -> Reply:
        if cmd.size is not None and cmd.size > self.config.max_message_size:
            # RFC 1870 §6.2: refuse up front when the declared size is too big.
            return Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
        if not cmd.smtputf8 and not cmd.reverse_path.isascii():
            # RFC 6531 §3.5: non-ASCII addresses need the SMTPUTF8 parameter.
            return Reply(553, "5.6.7", "Error: non-ASCII address requires SMTPUTF8")
        self._txn = Transaction(cmd.reverse_path, cmd.smtputf8)
        self._phase = Phase.MAIL
        return Reply(250, "2.1.0", "Ok")

    async def _on_rcpt(self, cmd: Rcpt) -> Reply:
        txn = self._txn
        assert txn is not None
        if len(txn.recipients) >= self.config.max_recipients:
            # RFC 5321 §4.5.3.1.10: 452 for too many recipients; the client
            # sends the rest in another transaction.
            return Reply(452, "4.5.3", "Error: too many recipients")
        if not txn.smtputf8 and not cmd.forward_path.isascii():
            return Reply(553, "5.6.7", "Error: non-ASCII address requires SMTPUTF8")
        check = await self.ctx.delivery.check_recipient(cmd.forward_path)
        if not check.ok:
            return Reply(check.code, check.enhanced, check.text)
        txn.recipients.append(check.address)
        if check.account_id is not None:
            txn.accounts[check.address] = check.account_id
        self._phase = Phase.RCPT
        return Reply(250, "2.1.5", "Ok")

    def _on_chunk(self, event: ChunkReceived, out: list[Reply]) -> MessageReceived | None:
        """Take one BDAT chunk (RFC 3030 §2). Its reply goes to `out`, except
        after the LAST chunk of a good transaction: then the whole message is
        returned, to be stored and answered like DATA's (one reply per
        recipient in LMTP)."""
        txn = self._txn
        refusal = self._refusal(Bdat)
        if txn is not None and (txn.failed or refusal is not None):
            # A chunk refused inside a transaction (no recipient) fails it too.
            refusal = refusal or _CHUNK_FAILED
            txn.failed = True
        if refusal is not None:
            out.extend(self._counted("BDAT", [refusal]))
            return None
        assert txn is not None
        held = len(txn.chunks) if txn.chunks is not None else 0
        if event.too_big or held + event.size > self.config.max_message_size:
            # RFC 1870 §6.3 as for DATA; the chunks held so far are let go.
            txn.chunks = bytearray()
            if event.last:
                return MessageReceived(b"", held + event.size, too_big=True)
            txn.failed = True
            out.extend(self._counted("BDAT", [_TOO_BIG]))
            return None
        if not event.last:
            if txn.chunks is None:
                txn.chunks = bytearray()
            txn.chunks += event.data
            out.append(Reply(250, "2.0.0", f"Ok: {event.size} octets received"))
            return None
        if txn.chunks:
            txn.chunks += event.data
            data = bytes(txn.chunks)
        else:
            data = event.data
        # Stored messages have CRLF line ends (as DATA's, the receiver makes them).
        data = crlf_line_ends(data)
        too_big = len(data) > self.config.max_message_size
        return MessageReceived(b"" if too_big else data, len(data), too_big=too_big)

    def _on_starttls(self) -> Reply:
        if self.channel.is_tls:
            return Reply(503, "5.5.1", "Error: TLS already active")
        if not self.channel.tls_available:
            return Reply(502, "5.5.1", "Error: command not implemented")
        self._upgrade = True
        return Reply(220, "2.0.0", "Ready to start TLS")

    async def _on_message(self, event: MessageReceived) -> list[Reply] | asyncio.Task[list[Reply]]:
        """The replies to a message, or the task storing it that gives them."""
        # A complete message ends the DATA timer.
        self._busy_since = None
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "proto=%s peer=%s C: <message of %d octets>",
                self.proto,
                self.channel.peer_host,
                event.size,
            )
        txn = self._txn
        assert txn is not None
        self._reset()
        # LMTP owes one reply per accepted RCPT even when it refuses the whole
        # message (RFC 2033 §4.2); SMTP owes one.
        count = len(txn.recipients) if self.lmtp else 1
        if event.smuggling is not None:
            log.warning(
                "proto=%s peer=%s refused message: %s around <CR><LF>.<CR><LF>"
                " (SMTP smuggling attempt)",
                self.proto,
                self.channel.peer_host,
                event.smuggling,
            )
            text = f"Error: {event.smuggling} received in end-of-data sequence"
            return [Reply(550, "5.5.2", text)] * count
        if event.too_big:
            return [_TOO_BIG] * count
        size = len(event.data)
        await self._make_room(size)
        task = asyncio.create_task(self._deliver(txn, event.data, self._trace()))
        self._storing.add(task)
        self._storing_bytes += size

        def stored(_: asyncio.Task[list[Reply]]) -> None:
            self._storing.discard(task)
            self._storing_bytes -= size

        task.add_done_callback(stored)
        return task

    async def _deliver(self, txn: Transaction, data: bytes, trace: TraceInfo) -> list[Reply]:
        unique = list(dict.fromkeys(txn.recipients))
        results = await self.ctx.delivery.deliver(txn.sender, unique, data, trace, txn.accounts)
        by_recipient = dict(zip(unique, results, strict=True))
        if self.lmtp:
            return [
                Reply(r.code, r.enhanced, f"<{rcpt}> {r.text}")
                for rcpt in txn.recipients
                for r in (by_recipient[rcpt],)
            ]
        return [fold_results(results)]

    def _trace(self) -> TraceInfo:
        tls = self.channel.is_tls
        if self.lmtp:
            protocol = "LMTPS" if tls else "LMTP"
        else:
            # RFC 3848: ESMTPS for ESMTP over TLS (STARTTLS is itself ESMTP).
            protocol = "ESMTPS" if tls else ("ESMTP" if self._esmtp else "SMTP")
        describe: Any = getattr(self.channel, "tls_description", None)
        tls_text = str(describe()) if tls and callable(describe) else ""
        return TraceInfo(protocol, self._helo, self.channel.peer_host, tls_text)


def fold_results(results: list[RecipientResult]) -> Reply:
    """SMTP's single reply after DATA (the rule is in the module docstring)."""
    if all(r.ok for r in results):
        return Reply(250, "2.0.0", "Ok: delivered")
    for r in results:
        if not r.ok and not r.temporary:
            return Reply(r.code, r.enhanced, r.text)
    first = next(r for r in results if r.temporary)
    return Reply(451, "4.3.0", first.text)
