"""A real mailbag server in a background thread, for tests and embedding.

It listens on 127.0.0.1 with OS-chosen ports and real sockets; tests talk to it
with real clients. `run(coro)` executes a coroutine on the server's loop, e.g.
to add a user or inspect the store.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from ..auth.passwords import hash_password
from ..config import PROTOCOLS, Config
from ..net.server import MailServer
from ..store.interface import Store
from ..store.models import Account

T = TypeVar("T")


class ServerThread:
    def __init__(
        self,
        data_dir: Path,
        store: Store | None = None,
        config: Config | None = None,
        **overrides: Any,
    ) -> None:
        base = config or Config(data_dir=data_dir)
        ports: dict[str, int | None] = dict.fromkeys(PROTOCOLS, 0)
        ports.update(overrides.pop("ports", {}))
        defaults: dict[str, Any] = {
            "data_dir": data_dir,
            "host": "127.0.0.1",
            "hostname": "mailbag.test",
            "ports": ports,
            "auth_penalty_base": 0.05,
            "auth_penalty_max": 0.2,
        }
        defaults.update(overrides)
        self.config = replace(base, **defaults)
        self._store = store
        self.server: MailServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready: Future[None] = Future()
        self._stopped = threading.Event()

    # ---- lifecycle ----------------------------------------------------------
    def start(self) -> ServerThread:
        self._thread = threading.Thread(target=self._main, name="mailbag-test-server", daemon=True)
        self._thread.start()
        self._ready.result(timeout=30)
        return self

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self.server = MailServer(self.config, self._store)
            loop.run_until_complete(self.server.start())
        except BaseException as e:
            self._ready.set_exception(e)
            loop.close()
            return
        self._ready.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._stopped.set()

    def stop(self) -> None:
        if self._loop is None or self.server is None or self._loop.is_closed():
            return
        fut = asyncio.run_coroutine_threadsafe(self.server.stop(grace=5), self._loop)
        try:
            fut.result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=30)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- helpers --------------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def store(self) -> Store:
        assert self.server is not None
        return self.server.store

    def port(self, protocol: str) -> int:
        assert self.server is not None
        return self.server.port(protocol)

    def add_user(self, address: str, password: str) -> Account:
        from ..auth.addresses import normalize_address

        normal = normalize_address(address, self.config.default_domain)
        return self.run(self.store.create_account(normal, hash_password(password)))
