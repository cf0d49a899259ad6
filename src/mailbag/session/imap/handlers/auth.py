"""Any-state and not-authenticated commands: CAPABILITY, NOOP, LOGOUT, STARTTLS,
LOGIN, AUTHENTICATE, ENABLE (RFC 9051 §6.1, §6.2, §6.3.1)."""

from __future__ import annotations

import base64
import binascii
import logging
from typing import TYPE_CHECKING

from ....auth.policy import plaintext_auth_allowed
from ....auth.sasl import Challenge, Credentials, Mechanism, SASLError, new_mechanism
from ....proto.imap import commands as c
from ....proto.imap.responses import (
    ByeResponse,
    CapabilityResponse,
    ContinuationResponse,
    EnabledResponse,
    ResponseCode,
    TaggedResponse,
)
from ....store.models import Account
from ..errors import IMAPError
from ..state import State

if TYPE_CHECKING:
    from ..session import IMAPSession

log = logging.getLogger("mailbag.imap")

# What every authenticated session may use. CONDSTORE/QRESYNC, SORT/THREAD and
# friends are added here as they are built (the store decides, DESIGN.md §1).
BASE_CAPABILITIES: tuple[str, ...] = (
    "IMAP4rev1",
    "IMAP4rev2",
    "LITERAL+",
    "SASL-IR",
    "ENABLE",
    "IDLE",
    "NAMESPACE",
    "UNSELECT",
    "UIDPLUS",
    "MOVE",
    "ESEARCH",
    "SEARCHRES",
    "SPECIAL-USE",
    "CREATE-SPECIAL-USE",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "CHILDREN",
    "MULTIAPPEND",
    "BINARY",
    "UTF8=ACCEPT",
    "STATUS=SIZE",
)
ENABLEABLE = ("IMAP4REV2", "UTF8=ACCEPT")


def capabilities(s: IMAPSession) -> list[str]:
    caps = list(BASE_CAPABILITIES)
    if s.state is State.NOT_AUTHENTICATED:
        if not s.channel.is_tls and s.channel.tls_available:
            caps.append("STARTTLS")
        if plaintext_auth_allowed(s.ctx.config, s.channel):
            caps += ["AUTH=PLAIN", "AUTH=LOGIN"]
        else:
            # RFC 9051 §6.2.3: LOGIN is refused until the connection is encrypted.
            caps.append("LOGINDISABLED")
    return caps


async def handle_capability(s: IMAPSession, cmd: c.CapabilityCommand) -> TaggedResponse:
    s.send(CapabilityResponse(tuple(capabilities(s))))
    return TaggedResponse(cmd.tag, "OK", "Capability completed.")


async def handle_noop(s: IMAPSession, cmd: c.NoopCommand) -> TaggedResponse:
    # Pending updates go out with every command's completion (RFC 9051 §6.1.2).
    return TaggedResponse(cmd.tag, "OK", "NOOP completed.")


async def handle_logout(s: IMAPSession, cmd: c.LogoutCommand) -> TaggedResponse:
    s.send(ByeResponse("Logging out"))
    s.unselect()
    s.state = State.LOGOUT
    s.finished = True
    log.info("imap logout user=%s peer=%s", s.user, s.peer)
    return TaggedResponse(cmd.tag, "OK", "Logout completed.")


async def handle_starttls(s: IMAPSession, cmd: c.StartTLSCommand) -> None:
    if s.channel.is_tls:
        raise IMAPError("BAD", "TLS is already active")
    if not s.channel.tls_available:
        raise IMAPError("NO", "TLS is not configured")
    s.send(TaggedResponse(cmd.tag, "OK", "Begin TLS negotiation now."))
    await s.flush()
    # RFC 9051 §6.2.1 / RFC 2595 §3.1: nothing the client pipelined after
    # STARTTLS may be executed once TLS is up (the STARTTLS injection class).
    dropped = s.receiver.discard_buffered()
    if dropped:
        log.warning("imap peer=%s discarded %d bytes pipelined after STARTTLS", s.peer, dropped)
    await s.channel.start_tls()
    return None


async def _logged_in(s: IMAPSession, tag: str, account: Account, method: str) -> TaggedResponse:
    s.account = account
    s.state = State.AUTHENTICATED
    log.info("imap login ok user=%s peer=%s method=%s", account.address, s.peer, method)
    # RFC 9051 §6.2.3: the OK may carry the new capability list.
    return TaggedResponse(tag, "OK", "Logged in", ResponseCode.capability(capabilities(s)))


def _failed(tag: str) -> TaggedResponse:
    return TaggedResponse(tag, "NO", "Authentication failed.", ResponseCode("AUTHENTICATIONFAILED"))


async def handle_login(s: IMAPSession, cmd: c.LoginCommand) -> TaggedResponse:
    if not plaintext_auth_allowed(s.ctx.config, s.channel):
        raise IMAPError(
            "NO",
            "Plaintext authentication disallowed on non-secure connections.",
            ResponseCode("PRIVACYREQUIRED"),
        )
    account = await s.ctx.auth.authenticate(cmd.username, cmd.password, s.peer)
    if account is None:
        log.info("imap login failed user=%s peer=%s method=LOGIN", cmd.username[:64], s.peer)
        return _failed(cmd.tag)
    return await _logged_in(s, cmd.tag, account, "LOGIN")


class _SASLExchange:
    """AUTHENTICATE as a PendingCommand: reads one raw line per challenge."""

    waits_for_client = False

    def __init__(self, s: IMAPSession, tag: str, mech: Mechanism) -> None:
        self.s = s
        self.tag = tag
        self.mech = mech

    async def advance(self, step: Challenge | Credentials) -> None:
        s = self.s
        if isinstance(step, Challenge):
            s.pending = self
            s.send(ContinuationResponse(data=step.data))
            s.receiver.expect_raw_line()
            return
        s.pending = None
        account = await s.ctx.auth.authenticate(step.authcid, step.password, s.peer, step.authzid)
        if account is None:
            log.info(
                "imap login failed user=%s peer=%s method=%s",
                step.authcid[:64],
                s.peer,
                self.mech.name,
            )
            s.send(_failed(self.tag))
        else:
            s.send(await _logged_in(s, self.tag, account, self.mech.name))

    async def line(self, data: bytes) -> None:
        s = self.s
        s.pending = None
        if data.strip() == b"*":
            # RFC 9051 §6.2.2: a "*" line cancels; the server answers BAD.
            s.send(TaggedResponse(self.tag, "BAD", "Authentication aborted by client."))
            return
        try:
            response = b"" if data.strip() == b"=" else base64.b64decode(data, validate=True)
            await self.advance(self.mech.step(response))
        except (binascii.Error, ValueError, SASLError):
            s.send(TaggedResponse(self.tag, "BAD", "Invalid base64 data in continued response"))

    async def fail(self, text: str) -> None:
        self.s.pending = None
        self.s.send(TaggedResponse(self.tag, "BAD", text))

    async def cancel(self) -> None:
        self.s.pending = None


async def handle_authenticate(s: IMAPSession, cmd: c.AuthenticateCommand) -> None:
    mech = new_mechanism(cmd.mechanism)
    if mech is None:
        raise IMAPError("NO", "Unsupported authentication mechanism.")
    if not plaintext_auth_allowed(s.ctx.config, s.channel):
        raise IMAPError(
            "NO",
            "Plaintext authentication disallowed on non-secure connections.",
            ResponseCode("PRIVACYREQUIRED"),
        )
    exchange = _SASLExchange(s, cmd.tag, mech)
    try:
        await exchange.advance(mech.start(cmd.initial_response))
    except SASLError as e:
        s.pending = None
        raise IMAPError("BAD", f"Invalid authentication data: {e}") from None
    return None


async def handle_enable(s: IMAPSession, cmd: c.EnableCommand) -> TaggedResponse:
    newly: list[str] = []
    for cap in cmd.capabilities:
        if cap not in ENABLEABLE or cap in s.enabled:
            continue  # RFC 5161 §3.1: unknown capabilities are ignored
        s.enabled.add(cap)
        newly.append("IMAP4rev2" if cap == "IMAP4REV2" else cap)
    if newly:
        from ....proto.imap.responses import EncodingContext

        s.encoding = EncodingContext(rev2="IMAP4REV2" in s.enabled, utf8="UTF8=ACCEPT" in s.enabled)
        s.receiver.utf8_names = True
    s.send(EnabledResponse(tuple(newly)))
    return TaggedResponse(cmd.tag, "OK", "Enabled.")
