"""Checking passwords, with Dovecot-style penalties for failed logins.

After a failure, the next attempt from the same IP or for the same user waits
`base * 2**(failures-1)` seconds, capped at `max` (Dovecot: 2 s → 15 s). The
wait is a plain `asyncio.sleep`: a throttled attempt holds a timer and nothing
else until its turn, and only then is a password hash computed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from ..store.interface import Store
from ..store.models import Account
from .addresses import BadAddress, normalize_address
from .passwords import verify_password_async

log = logging.getLogger("mailbag.auth")

_MAX_TRACKED = 100_000
_FORGET_AFTER = 15 * 60.0


@dataclass(slots=True)
class _Failures:
    count: int
    last: float


class Penalties:
    """Bounded LRU of failure counters, keyed by `ip:…` or `user:…`."""

    def __init__(self, base: float, maximum: float) -> None:
        self.base = base
        self.maximum = maximum
        self._fails: OrderedDict[str, _Failures] = OrderedDict()

    def delay(self, *keys: str) -> float:
        now = time.monotonic()
        worst = 0
        for key in keys:
            f = self._fails.get(key)
            if f is None:
                continue
            if now - f.last > _FORGET_AFTER:
                del self._fails[key]
                continue
            worst = max(worst, f.count)
        if worst == 0:
            return 0.0
        return float(min(self.maximum, self.base * 2.0 ** (worst - 1)))

    def fail(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            f = self._fails.pop(key, None)
            self._fails[key] = _Failures((f.count if f else 0) + 1, now)
        while len(self._fails) > _MAX_TRACKED:
            self._fails.popitem(last=False)

    def succeed(self, *keys: str) -> None:
        for key in keys:
            self._fails.pop(key, None)


class Authenticator:
    def __init__(
        self,
        store: Store,
        default_domain: str,
        penalty_base: float = 2.0,
        penalty_max: float = 15.0,
    ) -> None:
        self.store = store
        self.default_domain = default_domain
        self.penalties = Penalties(penalty_base, penalty_max)
        # Recently failed (address, password digest) pairs: a client retrying the
        # same wrong password is answered without another argon2 run.
        self._known_bad: OrderedDict[bytes, float] = OrderedDict()

    def normalize(self, username: str) -> str | None:
        try:
            return normalize_address(username, self.default_domain)
        except BadAddress:
            return None

    async def authenticate(
        self, username: str, password: str, peer_host: str, authzid: str = ""
    ) -> Account | None:
        address = self.normalize(username)
        keys = [f"ip:{peer_host}"]
        if address:
            keys.append(f"user:{address}")
        delay = self.penalties.delay(*keys)
        if delay:
            await asyncio.sleep(delay)
        account = await self._check(address, password, authzid)
        if account is None:
            self.penalties.fail(*keys)
            log.info("login failed user=%s ip=%s", address or "<invalid>", peer_host)
        else:
            self.penalties.succeed(*keys)
        return account

    async def _check(self, address: str | None, password: str, authzid: str) -> Account | None:
        if address is None:
            return None
        if authzid and self.normalize(authzid) != address:
            return None  # RFC 4616 §2: we do not support proxy authorization
        digest = hashlib.sha256(f"{address}\0{password}".encode()).digest()
        seen = self._known_bad.get(digest)
        if seen is not None and time.monotonic() - seen < 60:
            return None
        account = await self.store.get_account(address)
        password_hash = (
            await self.store.get_password_hash(account.id) if account is not None else None
        )
        ok = await verify_password_async(password_hash, password)
        if ok and account is not None:
            self._known_bad.pop(digest, None)
            return account
        self._known_bad[digest] = time.monotonic()
        while len(self._known_bad) > 10_000:
            self._known_bad.popitem(last=False)
        return None
