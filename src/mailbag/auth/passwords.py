"""Password hashing with argon2id (DEPENDENCIES.md: ~40 ms per verify here).

Library defaults cost ~300 ms per login on 2 cores; these parameters follow the
OWASP minimum (m=19 MiB, t=2, p=1). Verification runs in two dedicated threads
so a burst of logins can neither starve the event loop nor use more than the
two cores.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when the user does not exist, so timing does not tell.
_DUMMY_HASH = _hasher.hash("mailbag-dummy-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# Two dedicated threads: at most two logins hash at once (2 cores), and each
# argon2 run allocates 19 MiB; in a shared pool every thread would get its own
# malloc arena and keep that much around (measured: ~114 MB after 1,000 logins).
_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mailbag-argon2")


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor, verify_password, password_hash, password)
