"""The store contract (mailbag.store.contract) against every backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailbag.store import contract
from mailbag.store.interface import Store
from mailbag.store.memory.backend import MemoryStore
from mailbag.store.models import ContentID
from mailbag.store.sqlite.backend import SQLiteStore

# "sqlite" as configured by default: message bytes in the database up to
# blobs.indb.IN_DB_MAX, bigger ones in files. "sqlite-files": every content
# a file, as in a store written before schema version 4. "sqlite-deferred":
# as a server opens it, messages parsed by the background worker.
FEATURES: dict[str, frozenset[str]] = {
    "memory": frozenset(),
    "sqlite": frozenset({contract.PERSISTENT}),
    "sqlite-files": frozenset({contract.PERSISTENT, contract.BLOB_FILES}),
    "sqlite-deferred": frozenset({contract.PERSISTENT}),
}


def files_only(data: Path) -> SQLiteStore:
    store = SQLiteStore(data)
    store.blobs.in_db_max = 0
    return store


async def drain(store: Store) -> None:
    assert isinstance(store, SQLiteStore)
    assert await asyncio.to_thread(store.drain_text_index)


def make_harness(backend: str, tmp_path: Path) -> contract.Harness:
    if backend == "memory":
        return contract.Harness("memory", MemoryStore, FEATURES[backend])
    data = tmp_path / "data"
    if backend == "sqlite":
        return contract.Harness("sqlite", lambda: SQLiteStore(data), FEATURES[backend])
    if backend == "sqlite-deferred":
        return contract.Harness(
            "sqlite", lambda: SQLiteStore(data, defer_parse=True), FEATURES[backend], settle=drain
        )

    def blob_path(cid: ContentID) -> Path:
        return SQLiteStore(data).blobs.path(cid)

    return contract.Harness("sqlite", lambda: files_only(data), FEATURES[backend], blob_path)


# Only the checks a backend can run: a persistence check has nothing to say
# about the memory store.
CASES = [
    pytest.param(backend, check, id=f"{backend}-{contract.check_id(check)}")
    for backend, features in FEATURES.items()
    for check in contract.CHECKS
    if contract.requires(check) <= features
]


@pytest.mark.parametrize(("backend", "check"), CASES)
def test_contract(backend: str, check: contract.Check, tmp_path: Path) -> None:
    contract.run(check, make_harness(backend, tmp_path))
