"""The one delivery function every way in ends at (DESIGN.md §1).

SMTP, LMTP, `mailbag deliver` (and later the HTTP API) call `Delivery.deliver`
and get one result per recipient: LMTP answers each after DATA (RFC 2033
§4.2), SMTP folds them into one reply, the CLI into an exit code.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..auth.addresses import BadAddress, domain_of, normalize_address
from ..config import Config
from ..errors import NotFound, StoreError, StoreUnavailable
from ..store.interface import Store
from ..store.models import INBOX, UID, AccountID, AppendRequest, MailboxID

log = logging.getLogger("mailbag.delivery")


@dataclass(slots=True, frozen=True)
class RecipientCheck:
    """The answer to RCPT TO: whether we take mail for this address."""

    ok: bool
    address: str  # normalised when ok, as given otherwise
    code: int
    enhanced: str
    text: str
    account_id: AccountID | None = None


@dataclass(slots=True, frozen=True)
class RecipientResult:
    recipient: str
    code: int  # 250, 4xx, 5xx
    enhanced: str
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500


@dataclass(slots=True, frozen=True)
class TraceInfo:
    """What goes into the Received header (RFC 5321 §4.4)."""

    protocol: str  # SMTP, ESMTP, ESMTPS, LMTP, LMTPS, local
    helo: str = ""
    peer_host: str = ""
    tls: str = ""  # e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"


_HELO_SAFE = re.compile(r"[^A-Za-z0-9.\-\[\]:_]")
# Entries of Delivery._inboxes and ._accepted; past this a cache starts over.
_MAX_INBOXES = 100_000
# How long RCPT TO may answer from an earlier lookup of the same address.
# Only acceptances are kept: a new account gets mail at once. An account
# deleted meanwhile is caught at DATA, where its INBOX is gone (550).
ACCEPT_TTL = 10.0


class Delivery:
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # (unix second, its Received: date text): formatting a date costs more
        # than the rest of the header, and a busy server delivers many a second.
        self._date: tuple[int, str] = (-1, "")
        # Account -> its INBOX's id, so a delivery does not look the mailbox
        # up each time (a read on the event loop, ~a fifth of its work per
        # LMTP message). The append checks the mailbox under the write lock;
        # when it is gone (account deleted, INBOX recreated) the entry is
        # dropped and the INBOX looked up again.
        self._inboxes: dict[AccountID, MailboxID] = {}
        # address as given -> (monotonic expiry, its acceptance); saves the
        # normalising and the account read on the event loop at each RCPT.
        self._accepted: dict[str, tuple[float, RecipientCheck]] = {}
        # Mailbox -> deliveries waiting while an append to it is in flight
        # (present, maybe empty, exactly while one is): see _append.
        self._waiting: dict[MailboxID, list[tuple[AppendRequest, asyncio.Future[UID]]]] = {}
        self._batches: set[asyncio.Task[None]] = set()  # referenced while they run

    async def check_recipient(self, address: str) -> RecipientCheck:
        known = self._accepted.get(address)
        now = time.monotonic()
        if known is not None and known[0] > now:
            return known[1]
        check = await self._check_recipient(address)
        if check.ok:
            if len(self._accepted) >= _MAX_INBOXES:
                self._accepted.clear()
            self._accepted[address] = (now + ACCEPT_TTL, check)
        return check

    async def _check_recipient(self, address: str) -> RecipientCheck:
        try:
            normal = normalize_address(address, self.config.default_domain)
        except BadAddress:
            return RecipientCheck(False, address, 501, "5.1.3", "Bad recipient address syntax")
        if not self.config.is_local_domain(domain_of(normal)):
            # No open relay: we only take mail for our own domains.
            return RecipientCheck(False, address, 550, "5.7.1", "Relaying denied")
        try:
            account = await self.store.get_account(normal)
        except StoreError:
            return RecipientCheck(False, address, 451, "4.3.0", "Temporary lookup failure")
        if account is None:
            return RecipientCheck(False, address, 550, "5.1.1", "No such user here")
        return RecipientCheck(True, normal, 250, "2.1.5", "OK", account.id)

    def trace_headers(self, sender: str, recipients: list[str], trace: TraceInfo) -> bytes:
        second = int(time.time())
        if self._date[0] != second:
            when = dt.datetime.fromtimestamp(second, dt.UTC).astimezone()
            self._date = (second, email.utils.format_datetime(when))
        now = self._date[1]
        helo = _HELO_SAFE.sub("", trace.helo)[:100] or "unknown"
        frm = f"from {helo} ([{trace.peer_host}])" if trace.peer_host else f"from {helo}"
        tls = f"\r\n\t(using {trace.tls})" if trace.tls else ""
        # Name the recipient only when there is exactly one (as Postfix does), so a
        # multi-recipient copy does not disclose the other recipients.
        rcpt = f"\r\n\tfor <{recipients[0]}>" if len(recipients) == 1 else ""
        received = (
            f"Received: {frm}\r\n\tby {self.config.hostname} (mailbag) with {trace.protocol}"
            f"{tls}{rcpt};\r\n\t{now}\r\n"
        )
        return f"Return-Path: <{sender}>\r\n{received}".encode("utf-8", "replace")

    async def deliver(
        self,
        sender: str,
        recipients: list[str],
        data: bytes,
        trace: TraceInfo,
        checked: Mapping[str, AccountID] | None = None,
    ) -> list[RecipientResult]:
        """Store `data` in the INBOX of each recipient; one result per recipient.

        `data` has CRLF line ends and no dot-stuffing. Only a 250 result means
        the message is durable for that recipient. `checked` maps recipients
        the caller already passed through `check_recipient` (SMTP/LMTP at
        RCPT) to their account; the others are checked here.
        """
        self.in_flight += 1
        self._idle.clear()
        try:
            return await self._deliver(sender, recipients, data, trace, checked or {})
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def _deliver(
        self,
        sender: str,
        recipients: list[str],
        data: bytes,
        trace: TraceInfo,
        checked: Mapping[str, AccountID],
    ) -> list[RecipientResult]:
        if len(data) > self.config.max_message_size:
            return [
                RecipientResult(r, 552, "5.3.4", "Message too big for system") for r in recipients
            ]
        message = self.trace_headers(sender, recipients, trace) + data
        if len(recipients) == 1:
            return [await self._deliver_one(recipients[0], message, checked.get(recipients[0]))]
        # Concurrent appends let the store batch them into one commit.
        results = await asyncio.gather(
            *(self._deliver_one(r, message, checked.get(r)) for r in recipients)
        )
        return list(results)

    async def _deliver_one(
        self, recipient: str, message: bytes, account_id: AccountID | None
    ) -> RecipientResult:
        address = recipient
        if account_id is None:
            check = await self.check_recipient(recipient)
            if not check.ok:
                return RecipientResult(recipient, check.code, check.enhanced, check.text)
            assert check.account_id is not None
            address, account_id = check.address, check.account_id
        try:
            uid = None
            box_id = self._inboxes.get(account_id)
            if box_id is not None:
                try:
                    uid = await self._append(box_id, AppendRequest(data=message))
                except NotFound:
                    self._inboxes.pop(account_id, None)
            if uid is None:
                # An account deleted since RCPT has no INBOX any more.
                box = await self.store.get_mailbox(account_id, INBOX)
                if box is None:
                    return RecipientResult(recipient, 550, "5.1.1", "No such user here")
                uid = await self._append(box.id, AppendRequest(data=message))
                if len(self._inboxes) >= _MAX_INBOXES:
                    self._inboxes.clear()
                self._inboxes[account_id] = box.id
        except StoreUnavailable as e:
            log.warning("delivery to %s failed temporarily: %s", address, e)
            return RecipientResult(recipient, 451, "4.3.0", "Temporary failure, try again later")
        except StoreError as e:
            log.warning("delivery to %s failed: %s", address, e)
            return RecipientResult(recipient, 451, "4.3.0", "Temporary failure, try again later")
        except OSError as e:
            log.error("delivery to %s failed: %s", address, e)
            return RecipientResult(recipient, 452, "4.3.1", "Insufficient system storage")
        log.info("delivered to=%s uid=%s size=%d", address, uid, len(message))
        return RecipientResult(recipient, 250, "2.0.0", f"Delivered UID {uid}")

    async def _append(self, box_id: MailboxID, request: AppendRequest) -> UID:
        """Store one message in `box_id`; its UID once durable.

        Deliveries to a mailbox that arrive while an append to it is in flight
        wait, and go together as one append when it is done: one store call
        and one unit in the writer's transaction for all of them, as pipelined
        APPENDs get (a pipelining LMTP client, several connections to one
        mailbox), instead of one each. A lone delivery goes at once. All of a
        batch fail together (a mailbox deleted meanwhile: NotFound for each).
        """
        waiting = self._waiting.get(box_id)
        if waiting is not None:
            future: asyncio.Future[UID] = asyncio.get_running_loop().create_future()
            waiting.append((request, future))
            return await future
        self._waiting[box_id] = []
        try:
            result = await self.store.append(box_id, [request])
        finally:
            self._next_batch(box_id)
        return result.uids[0]

    def _next_batch(self, box_id: MailboxID) -> None:
        waiting = self._waiting.pop(box_id)
        if waiting:
            self._waiting[box_id] = []
            task = asyncio.get_running_loop().create_task(self._append_batch(box_id, waiting))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _append_batch(
        self, box_id: MailboxID, batch: list[tuple[AppendRequest, asyncio.Future[UID]]]
    ) -> None:
        try:
            result = await self.store.append(box_id, [request for request, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as e:
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
        else:
            for (_, future), uid in zip(batch, result.uids, strict=True):
                if not future.done():
                    future.set_result(uid)
        finally:
            self._next_batch(box_id)
