from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbag.testing.process import ServeProcess

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
