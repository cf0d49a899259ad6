"""The POP3 session: RFC 1939 with CAPA (RFC 2449), STLS (RFC 2595), SASL AUTH
(RFC 5034) and UTF8 (RFC 6856).

Shape (DESIGN.md §1): the sans-I/O codec in `mailbag.proto.pop3` frames lines;
this module keeps the per-connection state, and `COMMANDS` is the one table
saying which command is allowed in which state. Handlers raise `POP3Error`;
`_run_event` is the one place that turns errors into `-ERR` lines.

Choices, with their reasons:

- The maildrop is the account's INBOX, frozen at login (RFC 1939 §4: message
  numbers are fixed for the session). Messages that arrive later are seen by
  the next session. A message expunged over IMAP while we run keeps its number;
  RETR/TOP of it answer `-ERR [SYS/TEMP]`.
- UIDL is Dovecot's default `%08X%08X` of (UID, UIDVALIDITY): unique in the
  maildrop and stable across sessions and restarts, so clients that migrate
  between Dovecot and mailbag do not download everything again.
- \\Seen: like Dovecot's default (`pop3_no_flag_updates = no`), messages sent
  whole by RETR get \\Seen, so IMAP clients see them as read. We set it only in
  the UPDATE state after QUIT, never on a dropped connection (RFC 1939 §6: a
  session that ends without QUIT changes nothing), and TOP does not set it.
- `pop3_delete_mode = "keep-seen"` keeps DELE'd messages and flags them \\Seen
  and `$POP3Deleted` instead of removing them. Like Dovecot's
  `pop3_deleted_flag`, the keyword hides them from later POP3 sessions (the
  user deleted them there) while IMAP still shows them.
- APOP is never offered: it needs the plaintext password on the server and we
  keep only argon2id hashes. With `pop3_apop = true` the greeting still has no
  timestamp (RFC 1939 §7: the timestamp is what announces APOP) and APOP is
  answered `-ERR [AUTH]`; a warning says so once.
- Answers are queued and written when the commands received so far are all
  answered (or FLUSH_AT octets wait): a pipelined run of RETRs (RFC 2449
  §6.6) costs one socket write per FLUSH_AT octets, not one per message. A
  message up to READ_CHUNK is read in one call and byte-stuffed whole
  (`stuff_whole`, `top_part`); bigger ones are streamed in READ_CHUNK pieces.
- UTF8 (RFC 6856): credentials are UTF-8 at all times (the codec rejects
  ill-formed UTF-8), hence `UTF8 USER`; SASLprep is not applied, because the
  stored argon2 hashes were made from the password as given and IMAP/SMTP AUTH
  do not apply it either. Messages are sent as stored in both modes, as
  Dovecot does: refusing messages with 8-bit headers to non-UTF8 clients
  (RFC 6856 §2.1) would leave them stuck on the server for legacy clients.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum

from ...auth.policy import plaintext_auth_allowed
from ...auth.sasl import (
    MECHANISMS,
    Challenge,
    Credentials,
    Mechanism,
    SASLError,
    decode_response,
    encode_challenge,
    new_mechanism,
)
from ...errors import StoreError
from ...proto.pop3 import (
    LINE_TOO_LONG,
    BadLine,
    Command,
    DotStuffer,
    Event,
    POP3Receiver,
    SASLResponse,
    TopLimiter,
    continuation,
    err,
    listing,
    multiline,
    ok,
    parse_number,
    stuff_whole,
    top_part,
)
from ...store.changes import MessagesExpunged, Subscription
from ...store.interface import Store
from ...store.models import INBOX, SEEN, UID, Account, AccountID, ContentID, FlagOp, MailboxID
from ..base import Channel
from ..context import ServerContext

log = logging.getLogger("mailbag.pop3")

# Close the connection after this many failed commands (unknown, wrong state,
# bad syntax, failed logins): a client that far off is not going to recover.
MAX_BAD_COMMANDS = 20
# RETR/TOP read the stored bytes in pieces of this size, so a 50 MB message
# never sits whole in memory (DESIGN.md §3). A message up to this size (most
# mail) is read in one call and stuffed in one go (`stuff_whole`).
READ_CHUNK = 256 * 1024
# Replies are collected and written together once this many octets are
# waiting or the received commands are all answered: a pipelined batch
# (RFC 2449 §6.6 PIPELINING) costs one socket write per this many octets
# instead of one per response, and an interactive client still gets each
# answer as soon as it is made.
FLUSH_AT = 128 * 1024
# Octets of small messages read ahead in one store call during a pipelined
# run of RETR/TOP (`_read_ahead`); at most this much waits per session.
READ_AHEAD = 2 * 1024 * 1024
# Listed in this order in CAPA and `AUTH` (RFC 2449 §6.3 SASL capability).
SASL_MECHANISMS: tuple[str, ...] = tuple(m for m in ("PLAIN", "LOGIN") if m in MECHANISMS)
PLAINTEXT_REFUSED = "Plaintext authentication disallowed on non-secure connections"

_apop_warned = False


class State(Enum):
    """RFC 1939 §3."""

    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


class POP3Error(Exception):
    """A command failed: answered `-ERR [code] text`.

    `bad` marks client mistakes (unknown command, wrong state, bad syntax,
    failed login) that count towards MAX_BAD_COMMANDS.
    """

    def __init__(self, text: str, code: str | None = None, *, bad: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.bad = bad


# Dovecot's default pop3_uidl_format `%08Xu%08Xv`.
_UIDL = "%08X%08X"
# A line of the UIDL listing: (message number, UID, UIDVALIDITY).
_UIDL_LINE = b"%d " + _UIDL.encode() + b"\r\n"


def uidl_of(uid: int, uidvalidity: int) -> str:
    return _UIDL % (uid, uidvalidity)


def capabilities(
    state: State,
    *,
    tls_active: bool,
    tls_available: bool,
    plaintext_ok: bool,
    utf8_active: bool,
) -> list[str]:
    """The CAPA list (RFC 2449 §5).

    Everything announced in AUTHORIZATION is announced in TRANSACTION too
    (RFC 2449 §5), except STLS, which names a command "present and permitted
    in the current state" (RFC 2595 §4). USER and SASL are left out where
    plaintext passwords are refused, as Dovecot does: a client that sees them
    would send a password in the clear only to be told no.
    """
    caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
    if plaintext_ok:
        caps.append("USER")
        caps.append(" ".join(("SASL", *SASL_MECHANISMS)))
    if (
        state is State.AUTHORIZATION
        and tls_available
        and not tls_active
        # RFC 6856 §2.1: clients MUST NOT issue STLS after UTF8; we refuse it.
        and not utf8_active
    ):
        caps.append("STLS")
    # RFC 2449 §6.7: we never delete messages on our own.
    caps.append("EXPIRE NEVER")
    # RFC 2449 §6.5: no minimum interval between logins is enforced.
    caps.append("LOGIN-DELAY 0")
    # RFC 6856 §2.2: USER = UTF-8 user names and passwords are accepted.
    caps.append("UTF8 USER")
    caps.append("IMPLEMENTATION mailbag")
    return caps


# ---- the maildrop ------------------------------------------------------------


@dataclass(slots=True)
class Entry:
    """One message of the snapshot taken at login."""

    number: int
    uid: UID
    size: int
    content_id: ContentID
    deleted: bool = False
    retrieved: bool = False


# Keeps a message DELE'd in keep-seen mode out of later POP3 sessions.
POP3_DELETED = "$POP3Deleted"


@dataclass(slots=True)
class Maildrop:
    """The INBOX as this session sees it: numbers are fixed at login (RFC 1939 §4)."""

    account_id: AccountID
    mailbox_id: MailboxID
    uidvalidity: int
    # Expunges made elsewhere (IMAP) reach us through the change feed, so RETR
    # does not ask the store whether its message still exists.
    changes: Subscription
    entries: list[Entry] = field(default_factory=list)
    gone: set[UID] = field(default_factory=set)

    @classmethod
    async def open(cls, store: Store, account: Account) -> Maildrop:
        inbox = await store.get_mailbox(account.id, INBOX)
        if inbox is None:
            raise POP3Error("The maildrop (INBOX) does not exist", "SYS/PERM")
        changes = store.changes.subscribe(account.id)
        try:
            listed = await store.list_messages(inbox.id)
        except BaseException:
            changes.close()
            raise
        messages = [m for m in listed if POP3_DELETED not in m.flags]
        drop = cls(account.id, inbox.id, int(inbox.uidvalidity), changes)
        # Message.size counts the stored bytes, which the store keeps with CRLF
        # line ends: exactly the RFC 1939 §11 size (proto.pop3.message_size).
        drop.entries = [
            Entry(n, m.uid, m.size, m.content_id) for n, m in enumerate(messages, start=1)
        ]
        return drop

    def live(self) -> list[Entry]:
        return [e for e in self.entries if not e.deleted]

    def expunged_elsewhere(self, uid: UID) -> bool:
        for change in self.changes.drain():
            if isinstance(change, MessagesExpunged) and change.mailbox_id == self.mailbox_id:
                self.gone.update(change.uids)
        return uid in self.gone

    def close(self) -> None:
        self.changes.close()

    def totals(self) -> tuple[int, int]:
        live = self.live()
        return len(live), sum(e.size for e in live)

    def get(self, arg: str) -> Entry:
        number = parse_number(arg)
        if number is None:
            raise POP3Error(f"Invalid message number: {arg[:20]}", bad=True)
        if not 1 <= number <= len(self.entries):
            raise POP3Error(f"There's no message {number}")
        entry = self.entries[number - 1]
        if entry.deleted:
            # RFC 1939 §5: a message marked as deleted may not be referred to.
            raise POP3Error(f"Message {number} already deleted")
        return entry

    def uidl(self, entry: Entry) -> str:
        return uidl_of(entry.uid, self.uidvalidity)


# ---- the session -------------------------------------------------------------

Handler = Callable[["POP3Session", Command], Awaitable[None]]


@dataclass(slots=True, frozen=True)
class CommandSpec:
    """One row of the dispatch table: where a command is allowed and its arity."""

    states: frozenset[State]
    handler: Handler
    min_args: int = 0
    max_args: int | None = 0  # None: the handler reads `rest` itself (PASS)
    # Arguments are credentials: never written to the log.
    secret: bool = False


class POP3Session:
    def __init__(self, ctx: ServerContext, channel: Channel) -> None:
        self.ctx = ctx
        self.channel = channel
        self.receiver = POP3Receiver()
        self.state = State.AUTHORIZATION
        self._finished = False
        self._user: str | None = None
        self._account: Account | None = None
        self._locked: AccountID | None = None
        self.maildrop: Maildrop | None = None
        self._sasl: Mechanism | None = None
        self._utf8 = False
        self._bad = 0
        self._streaming = False
        self._peer = f"{channel.peer_host}:{channel.peer_port}"
        # Replies not yet written (see FLUSH_AT) and their total size.
        self._out: list[bytes] = []
        self._out_size = 0
        # Contents read ahead for a pipelined run of RETR/TOP (see _read_ahead).
        self._ahead: dict[ContentID, bytes] = {}

    # ---- Session protocol -----------------------------------------------------
    @property
    def idle_timeout(self) -> float:
        return self.ctx.config.pop3_idle_timeout

    @property
    def finished(self) -> bool:
        return self._finished

    async def start(self) -> None:
        global _apop_warned
        if self.ctx.config.pop3_apop and not _apop_warned:
            _apop_warned = True
            log.warning(
                "pop3.apop is on, but APOP needs plaintext passwords and mailbag stores "
                "only argon2id hashes: APOP is not offered"
            )
        # RFC 1939 §4: no <timestamp> in the greeting, since APOP cannot work.
        await self._reply(ok("mailbag POP3 ready."))
        await self._flush()

    async def data_received(self, data: bytes) -> None:
        self.receiver.feed(data)
        while not self._finished:
            event = self.receiver.next_event()
            if event is None:
                break
            await self._run_event(event)
        await self._flush()

    async def timed_out(self) -> None:
        # RFC 1939 §3: an autologout timer ends the session without UPDATE.
        log.info("pop3 peer=%s idle timeout", self._peer)
        await self._goodbye(err("Disconnected for inactivity"))

    async def shutdown(self) -> None:
        await self._goodbye(err("Server shutting down", "SYS/TEMP"))

    async def connection_lost(self) -> None:
        # Without QUIT nothing is expunged or flagged (RFC 1939 §6).
        self._unlock()
        self._finished = True

    # ---- plumbing -------------------------------------------------------------
    async def _reply(self, data: bytes) -> None:
        """Queue a response (status line first) for the next `_flush`."""
        if log.isEnabledFor(logging.DEBUG):
            first = data.split(b"\r\n", 1)[0]
            log.debug("pop3 peer=%s S: %s", self._peer, first.decode("utf-8", "replace"))
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size >= FLUSH_AT:
            await self._flush()

    async def _send_parts(self, *parts: bytes) -> None:
        """Queue message octets (never logged), kept as given until `_flush` joins them."""
        self._out += parts
        for part in parts:
            self._out_size += len(part)
        if self._out_size >= FLUSH_AT:
            await self._flush()

    async def _flush(self) -> None:
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        self._out = []
        self._out_size = 0
        await self.channel.write(data)

    async def _goodbye(self, line: bytes) -> None:
        self._finished = True
        try:
            await self._reply(line)
            await self._flush()
        except (ConnectionError, OSError):
            pass

    def _unlock(self) -> None:
        if self.maildrop is not None:
            self.maildrop.close()
        if self._locked is not None:
            self.ctx.store.unlock_maildrop(self._locked)
            self._locked = None

    def _trace(self, event: Event) -> None:
        if not log.isEnabledFor(logging.DEBUG):
            return
        if isinstance(event, SASLResponse):
            text = "<SASL response>"  # credentials: never logged
        elif isinstance(event, BadLine):
            text = f"<{event.reason}>"
        else:
            spec = COMMANDS.get(event.keyword)
            if spec is None or (spec.secret and event.args):
                # Unknown commands too: "PAS secret" is a typo with a password.
                text = f"{event.keyword[:20]} ***" if event.args else event.keyword[:20]
            elif event.keyword == "AUTH" and len(event.args) > 1:
                text = f"AUTH {event.args[0]} ***"
            else:
                text = f"{event.keyword} {event.rest!r}" if event.args else event.keyword
        log.debug("pop3 peer=%s C: %s", self._peer, text)

    async def _run_event(self, event: Event) -> None:
        """Handle one line; the one place where errors become `-ERR` (DESIGN.md §5)."""
        self._trace(event)
        keyword = event.keyword if isinstance(event, Command) else ""
        try:
            await self._dispatch(event)
        except POP3Error as e:
            if e.bad:
                self._bad += 1
            log.info(
                "pop3 peer=%s user=%r command %s failed: %s",
                self._peer,
                self._account.address if self._account else self._user or "-",
                keyword or "-",
                e.text,
            )
            if self._bad >= MAX_BAD_COMMANDS:
                log.info("pop3 peer=%s too many bad commands, disconnecting", self._peer)
                await self._goodbye(err(f"{e.text}; too many bad commands, disconnecting"))
                return
            await self._reply(err(e.text, e.code))
        except (ConnectionError, OSError):
            raise  # the connection is gone (or TLS failed): the driver ends it
        except Exception as e:
            streaming, self._streaming = self._streaming, False
            if isinstance(e, StoreError) and not streaming:
                log.warning("pop3 peer=%s store error in %s: %r", self._peer, keyword or "-", e)
                await self._reply(err("Temporary server error, try again later", "SYS/TEMP"))
                return
            if isinstance(e, StoreError):
                log.warning("pop3 peer=%s store failed mid-response: %r", self._peer, e)
            else:
                # DESIGN.md §2.6: a bug closes this connection only, with a traceback.
                log.exception("pop3 peer=%s internal error in %s", self._peer, keyword or "-")
            self._finished = True
            if not streaming:
                await self._goodbye(err("Internal server error", "SYS/TEMP"))

    async def _dispatch(self, event: Event) -> None:
        if isinstance(event, SASLResponse):
            await self._sasl_continue(event.line)
            return
        if isinstance(event, BadLine):
            if self._sasl is not None:
                self._sasl = None  # RFC 5034 §4: the exchange fails as a whole
            raise POP3Error(
                "Line too long" if event.reason == LINE_TOO_LONG else event.reason, bad=True
            )
        spec = COMMANDS.get(event.keyword)
        if spec is None:
            raise POP3Error(f"Unknown command: {event.keyword[:20]}", bad=True)
        if self.state not in spec.states:
            where = "before login" if self.state is State.AUTHORIZATION else "after login"
            raise POP3Error(f"{event.keyword} is not allowed {where}", bad=True)
        if len(event.args) < spec.min_args or (
            spec.max_args is not None and len(event.args) > spec.max_args
        ):
            raise POP3Error(f"Wrong number of arguments for {event.keyword}", bad=True)
        await spec.handler(self, event)

    @property
    def plaintext_ok(self) -> bool:
        return plaintext_auth_allowed(self.ctx.config, self.channel)

    def _require_plaintext_ok(self) -> None:
        # RFC 2595 §2.3 / RFC 5034 §4: no clear-text passwords over clear connections.
        if not self.plaintext_ok:
            raise POP3Error(PLAINTEXT_REFUSED, "AUTH", bad=True)

    def _drop(self) -> Maildrop:
        assert self.maildrop is not None  # the state table admits only TRANSACTION
        return self.maildrop

    # ---- AUTHORIZATION ----------------------------------------------------------
    async def _cmd_user(self, cmd: Command) -> None:
        self._require_plaintext_ok()
        # Always +OK. RFC 1939 §13: "Servers that answer -ERR to the USER command
        # are giving potential attackers clues about which names are valid."
        self._user = cmd.args[0]
        await self._reply(ok())

    async def _cmd_pass(self, cmd: Command) -> None:
        self._require_plaintext_ok()
        user, self._user = self._user, None
        if user is None:
            raise POP3Error("No user name given: send USER first", bad=True)
        # RFC 1939 §7: PASS has exactly one argument, so spaces belong to it.
        password = cmd.rest
        if not password:
            raise POP3Error("Empty password", bad=True)
        await self._authenticate(user, password, "", "USER")

    async def _cmd_apop(self, cmd: Command) -> None:
        # Answering APOP needs the shared secret in clear; see the module doc.
        raise POP3Error("APOP is not available on this server", "AUTH")

    async def _cmd_auth(self, cmd: Command) -> None:
        if not cmd.args:
            # The pre-RFC 5034 form many clients still probe with: list mechanisms.
            names = SASL_MECHANISMS if self.plaintext_ok else ()
            await self._reply(multiline(ok("Supported SASL mechanisms:"), names))
            return
        name = cmd.args[0].upper()
        mechanism = new_mechanism(name) if name in SASL_MECHANISMS else None
        if mechanism is None:
            raise POP3Error(f"Unsupported authentication mechanism {name[:20]}", bad=True)
        # PLAIN and LOGIN both carry the password in clear.
        self._require_plaintext_ok()
        initial: bytes | None = None
        if len(cmd.args) == 2:
            try:
                # RFC 5034 §4: "=" is an empty initial response.
                initial = decode_response(cmd.args[1].encode("utf-8"))
            except SASLError:
                raise POP3Error("Invalid base64 in initial response", "AUTH", bad=True) from None
        self._sasl = mechanism
        await self._sasl_step(initial, first=True)

    async def _sasl_continue(self, line: bytes) -> None:
        if self._sasl is None:  # cannot happen: the receiver is told per line
            raise POP3Error("No authentication in progress", bad=True)
        if line.strip() == b"*":
            self._sasl = None
            # RFC 5034 §4: a cancelled exchange MUST be answered -ERR.
            raise POP3Error("Authentication cancelled")
        try:
            response = decode_response(line)
        except SASLError:
            self._sasl = None
            raise POP3Error("Invalid base64 in authentication response", "AUTH", bad=True) from None
        await self._sasl_step(response, first=False)

    async def _sasl_step(self, response: bytes | None, *, first: bool) -> None:
        mechanism = self._sasl
        assert mechanism is not None
        try:
            if first:
                step = mechanism.start(response)
            else:
                assert response is not None
                step = mechanism.step(response)
        except SASLError as e:
            self._sasl = None
            raise POP3Error(f"Authentication failed: {e}", "AUTH", bad=True) from None
        if isinstance(step, Challenge):
            self.receiver.expect_sasl_response()
            await self._reply(continuation(encode_challenge(step.data)))
            return
        assert isinstance(step, Credentials)
        self._sasl = None
        await self._authenticate(
            step.authcid, step.password, step.authzid, f"AUTH {mechanism.name}"
        )

    async def _authenticate(self, user: str, password: str, authzid: str, method: str) -> None:
        account = await self.ctx.auth.authenticate(user, password, self.channel.peer_host, authzid)
        if account is None:
            log.info("pop3 login failed user=%r peer=%s method=%s", user[:100], self._peer, method)
            raise POP3Error("Authentication failed", "AUTH", bad=True)
        store = self.ctx.store
        if not store.try_lock_maildrop(account.id):
            log.info("pop3 login refused user=%s peer=%s: in use", account.address, self._peer)
            # RFC 2449 §8.1.2: [IN-USE] when another session holds the maildrop.
            raise POP3Error("Mailbox is locked by another POP3 session", "IN-USE")
        self._locked = account.id
        try:
            drop = await Maildrop.open(store, account)
        except BaseException:
            self._unlock()
            raise
        self._account, self.maildrop = account, drop
        self.state = State.TRANSACTION
        count, size = drop.totals()
        log.info(
            "pop3 login ok user=%s peer=%s method=%s tls=%s messages=%d",
            account.address,
            self._peer,
            method,
            self.channel.is_tls,
            count,
        )
        await self._reply(ok(f"Logged in, {count} messages ({size} octets)."))

    async def _cmd_stls(self, cmd: Command) -> None:
        if self.channel.is_tls:
            raise POP3Error("Command not permitted when TLS active")
        if not self.channel.tls_available:
            raise POP3Error("TLS is not available")
        if self._utf8:
            # RFC 6856 §2.1: servers MAY reject STLS after UTF8.
            raise POP3Error("STLS is not allowed after UTF8")
        await self._reply(ok("Begin TLS negotiation"))
        # Written in the clear before the handshake starts.
        await self._flush()
        # RFC 2595 §4: the client may not send anything until TLS is up, so
        # whatever is buffered was injected in plaintext: drop it, never run it.
        dropped = self.receiver.discard()
        if dropped:
            log.warning("pop3 peer=%s discarded %d bytes pipelined after STLS", self._peer, dropped)
        # A user name given in the clear is forgotten (RFC 2595 §4: the client
        # starts over and re-reads CAPA).
        self._user = None
        await self.channel.start_tls()

    async def _cmd_utf8(self, cmd: Command) -> None:
        self._utf8 = True
        await self._reply(ok("UTF8 enabled"))

    # ---- both states ------------------------------------------------------------
    async def _cmd_capa(self, cmd: Command) -> None:
        caps = capabilities(
            self.state,
            tls_active=self.channel.is_tls,
            tls_available=self.channel.tls_available,
            plaintext_ok=self.plaintext_ok,
            utf8_active=self._utf8,
        )
        await self._reply(multiline(ok("Capability list follows"), caps))

    async def _cmd_quit(self, cmd: Command) -> None:
        if self.state is State.AUTHORIZATION:
            # RFC 1939 §5: QUIT before login does not enter UPDATE.
            self._finished = True
            await self._reply(ok("Logging out."))
            return
        self.state = State.UPDATE
        self._finished = True
        try:
            reply = await self._update()
        finally:
            # Released before answering, so a client reconnecting right after
            # the +OK finds the maildrop free.
            self._unlock()
        await self._reply(reply)

    async def _update(self) -> bytes:
        """RFC 1939 §6: remove (or flag) what was DELE'd; set \\Seen on RETR'd mail."""
        drop = self._drop()
        store = self.ctx.store
        keep = self.ctx.config.pop3_delete_mode == "keep-seen"
        marked = [e.uid for e in drop.entries if e.deleted]
        seen = [e.uid for e in drop.entries if e.retrieved and (keep or not e.deleted)]
        removed: list[UID] = []
        try:
            if keep and marked:
                await store.store_flags(drop.mailbox_id, marked, FlagOp.ADD, {SEEN, POP3_DELETED})
            if seen:
                await store.store_flags(drop.mailbox_id, seen, FlagOp.ADD, {SEEN})
            if marked and not keep:
                removed = await store.expunge(drop.mailbox_id, uids=marked, require_deleted=False)
        except StoreError as e:
            log.warning("pop3 peer=%s UPDATE failed: %r", self._peer, e)
            return err("Some deleted messages were not removed, try again later", "SYS/TEMP")
        left = len(drop.entries) - (len(marked) if not keep else 0)
        log.info(
            "pop3 logout user=%s peer=%s deleted=%d removed=%d kept=%d",
            self._account.address if self._account else "-",
            self._peer,
            len(marked),
            len(removed),
            left,
        )
        return ok(f"Logging out, {left} messages left.")

    # ---- TRANSACTION --------------------------------------------------------------
    async def _cmd_stat(self, cmd: Command) -> None:
        count, size = self._drop().totals()
        # RFC 1939 §5: exactly "+OK nn mm" is what clients parse.
        await self._reply(ok(f"{count} {size}"))

    async def _cmd_list(self, cmd: Command) -> None:
        drop = self._drop()
        if cmd.args:
            entry = drop.get(cmd.args[0])
            await self._reply(ok(f"{entry.number} {entry.size}"))
            return
        count, size = drop.totals()
        lines = [b"%d %d\r\n" % (e.number, e.size) for e in drop.live()]
        await self._reply(listing(ok(f"{count} messages ({size} octets)"), lines))

    async def _cmd_uidl(self, cmd: Command) -> None:
        drop = self._drop()
        if cmd.args:
            entry = drop.get(cmd.args[0])
            await self._reply(ok(f"{entry.number} {drop.uidl(entry)}"))
            return
        uidvalidity = drop.uidvalidity
        lines = [_UIDL_LINE % (e.number, e.uid, uidvalidity) for e in drop.live()]
        await self._reply(listing(ok(), lines))

    async def _cmd_retr(self, cmd: Command) -> None:
        entry = self._drop().get(cmd.args[0])
        await self._send_message(entry, None)
        entry.retrieved = True

    async def _cmd_top(self, cmd: Command) -> None:
        entry = self._drop().get(cmd.args[0])
        lines = parse_number(cmd.args[1])
        if lines is None:
            raise POP3Error(f"Invalid number of lines: {cmd.args[1][:20]}", bad=True)
        await self._send_message(entry, lines)

    async def _send_message(self, entry: Entry, body_lines: int | None) -> None:
        """RETR (body_lines None) or TOP: the message whole when it fits in
        READ_CHUNK, else streamed in READ_CHUNK pieces."""
        drop = self._drop()
        store = self.ctx.store
        if drop.expunged_elsewhere(entry.uid):
            raise POP3Error(f"Message {entry.number} was expunged by another session", "SYS/TEMP")
        size = entry.size
        # Entry.size is the stored length: a message that fits in READ_CHUNK is
        # read whole, the call the store serves fastest (in the SQLite store a
        # range of a small content measured 3-4x slower than all of it).
        want = min(size, READ_CHUNK)
        try:
            if size <= READ_CHUNK:
                got = self._ahead.pop(entry.content_id, None)
                if got is None and self.receiver.buffered:
                    got = await self._read_ahead(entry)
                chunk = got if got is not None else await store.read_content(entry.content_id)
            else:
                chunk = await store.read_content(entry.content_id, 0, want)
        except StoreError:
            raise POP3Error(f"Message {entry.number} is no longer available", "SYS/TEMP") from None
        # The same octets as ok(f"{size} octets") and ok(), without the formatting.
        head = b"+OK %d octets\r\n" % size if body_lines is None else b"+OK\r\n"
        if size <= READ_CHUNK:
            body, tail = stuff_whole(chunk if body_lines is None else top_part(chunk, body_lines))
            if log.isEnabledFor(logging.DEBUG):
                log.debug("pop3 peer=%s S: %s", self._peer, head[:-2].decode("ascii"))
            # One queueing step for the whole answer (see _reply, _send_parts).
            await self._send_parts(head, body, tail)
            return
        stuffer = DotStuffer()
        limiter = TopLimiter(body_lines) if body_lines is not None else None
        offset = 0
        # From the +OK on, an error cannot be answered with -ERR (it would read
        # as message text): _run_event closes the connection instead.
        self._streaming = True
        await self._reply(head)
        while True:
            offset += len(chunk)
            last = len(chunk) < want or offset >= size
            part = chunk if limiter is None else limiter.feed(chunk)
            if limiter is not None and limiter.done:
                last = True
            out = stuffer.feed(part)
            if last:
                await self._send_parts(out, stuffer.finish())
                break
            await self._send_parts(out)
            want = min(READ_CHUNK, size - offset)
            chunk = await store.read_content(entry.content_id, offset, want)
        self._streaming = False

    async def _read_ahead(self, entry: Entry) -> bytes | None:
        """`entry`'s content, read in one store call with those of the small
        messages after it (READ_AHEAD octets in all). Only while more commands
        wait in the input, i.e. in a pipelined run (RFC 2449 §6.6): `RETR 1`
        … `RETR n` one per message costs a store read each, more than the
        octets. The next RETR/TOP takes its content from here."""
        entries = self._drop().entries
        cids: list[ContentID] = []
        total = 0
        for e in entries[entry.number - 1 :]:
            if e.deleted or e.size > READ_CHUNK:
                continue
            if cids and total + e.size > READ_AHEAD:
                break
            cids.append(e.content_id)
            total += e.size
        self._ahead = await self.ctx.store.read_contents(cids)
        return self._ahead.pop(entry.content_id, None)

    async def _cmd_dele(self, cmd: Command) -> None:
        entry = self._drop().get(cmd.args[0])
        entry.deleted = True  # RFC 1939 §5: only marked; removed in UPDATE
        await self._reply(ok(f"Message {entry.number} deleted."))

    async def _cmd_noop(self, cmd: Command) -> None:
        await self._reply(ok())

    async def _cmd_rset(self, cmd: Command) -> None:
        drop = self._drop()
        for entry in drop.entries:
            entry.deleted = False
        count, size = drop.totals()
        await self._reply(ok(f"maildrop has {count} messages ({size} octets)"))


_AUTH = frozenset({State.AUTHORIZATION})
_TRANS = frozenset({State.TRANSACTION})
_BOTH = _AUTH | _TRANS

# The one table of commands, their states and arities (DESIGN.md §1).
COMMANDS: dict[str, CommandSpec] = {
    # RFC 1939 §7 / RFC 2449 §6.2
    "USER": CommandSpec(_AUTH, POP3Session._cmd_user, 1, 1, secret=False),
    "PASS": CommandSpec(_AUTH, POP3Session._cmd_pass, 1, None, secret=True),
    "APOP": CommandSpec(_AUTH, POP3Session._cmd_apop, 2, 2, secret=True),
    # RFC 5034 §4 (and the no-argument listing form)
    "AUTH": CommandSpec(_AUTH, POP3Session._cmd_auth, 0, 2),
    # RFC 2595 §4
    "STLS": CommandSpec(_AUTH, POP3Session._cmd_stls),
    # RFC 6856 §2.1
    "UTF8": CommandSpec(_AUTH, POP3Session._cmd_utf8),
    # RFC 2449 §5
    "CAPA": CommandSpec(_BOTH, POP3Session._cmd_capa),
    # RFC 1939 §5, §6
    "QUIT": CommandSpec(_BOTH, POP3Session._cmd_quit),
    "STAT": CommandSpec(_TRANS, POP3Session._cmd_stat),
    "LIST": CommandSpec(_TRANS, POP3Session._cmd_list, 0, 1),
    "RETR": CommandSpec(_TRANS, POP3Session._cmd_retr, 1, 1),
    "DELE": CommandSpec(_TRANS, POP3Session._cmd_dele, 1, 1),
    "NOOP": CommandSpec(_TRANS, POP3Session._cmd_noop),
    "RSET": CommandSpec(_TRANS, POP3Session._cmd_rset),
    # RFC 1939 §7 optional commands
    "TOP": CommandSpec(_TRANS, POP3Session._cmd_top, 2, 2),
    "UIDL": CommandSpec(_TRANS, POP3Session._cmd_uidl, 0, 1),
}
