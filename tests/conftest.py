"""Shared fixtures (a real `mailbag serve` process for e2e and interop tests),
and the folders that hold shared test helpers on sys.path.

pytest runs with --import-mode=importlib (test files in different folders may
share a name), which does not add test folders to sys.path; helper modules
(smtp_support, pop3_helpers, imap_support, imap_wire, sqlite_support, the Dovecot
oracle) are
imported by their plain names from here on.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbag.testing.process import ServeProcess

_HERE = Path(__file__).resolve().parent
for _folder in ("session", "session/imap", "store", "interop", "unit/message"):
    _path = str(_HERE / _folder)
    if _path not in sys.path:
        sys.path.insert(0, _path)


PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One real `mailbag serve` process per test module, with alice and bob."""
    data = tmp_path_factory.mktemp("serve") / "data"
    server = ServeProcess(data).start()
    try:
        server.add_user("alice", PASSWORD)
        server.add_user("bob@localhost", PASSWORD)
        yield server
    finally:
        code = server.stop()
        assert code == 0, server.log()[-3000:]


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(tmp_path / "data").start()
    try:
        yield server
    finally:
        server.stop()
