"""Password hashing with argon2id (DEPENDENCIES.md: ~40 ms per verify here).

Library defaults cost ~300 ms per login on 2 cores; these parameters follow the
OWASP minimum (m=19 MiB, t=2, p=1). Verification runs in a thread behind a
semaphore so a burst of logins cannot starve the event loop or the cores.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when the user does not exist, so timing does not tell.
_DUMMY_HASH = _hasher.hash("mailbag-dummy-password")
_semaphore: asyncio.Semaphore | None = None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    global _semaphore
    if _semaphore is None:
        _semaphore = asyncio.Semaphore(2)
    async with _semaphore:
        return await asyncio.to_thread(verify_password, password_hash, password)
