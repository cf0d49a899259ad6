"""Listeners for every protocol, and an orderly stop.

`MailServer` owns the store, the TLS context and the listeners. Each accepted
connection gets a session from the protocol's factory and a Driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..auth.service import Authenticator
from ..config import Config
from ..session.base import Channel, Session
from ..session.context import ServerContext
from ..session.delivery import Delivery
from ..store.interface import Store
from .connection import Connection
from .driver import ConnectionChannel, Driver
from .tls import ensure_self_signed, fingerprint, server_context
from .workers import LISTEN_BACKLOG, listen_error

log = logging.getLogger("mailbag.server")

IMPLICIT_TLS = {"pop3s", "imaps"}


@dataclass(slots=True, frozen=True)
class Listening:
    protocol: str
    host: str
    port: int


def session_factory(protocol: str, ctx: ServerContext) -> Callable[[Channel], Session]:
    """The session class for a listener."""
    if protocol in ("pop3", "pop3s"):
        from ..session.pop3.session import POP3Session

        return lambda ch: POP3Session(ctx, ch)
    if protocol in ("smtp", "lmtp"):
        from ..session.smtp.session import SMTPSession

        lmtp = protocol == "lmtp"
        return lambda ch: SMTPSession(ctx, ch, lmtp=lmtp)
    if protocol in ("imap", "imaps"):
        # The command table (and with it every handler module) now, not at a
        # client's first command: the session imports it lazily (cycle).
        from ..session.imap import dispatch  # noqa: F401
        from ..session.imap.session import IMAPSession

        return lambda ch: IMAPSession(ctx, ch)
    raise ValueError(protocol)


def open_default_store(config: Config, worker: tuple[int, int] | None = None) -> Store:
    """The store of a server, or of worker `worker` = (index, count) of
    several server processes (`serve --workers`)."""
    from ..store.sqlite.backend import SQLiteStore

    if worker is None:
        # A server runs the background worker, so delivery can leave parsing to it.
        return SQLiteStore(config.data_dir, defer_parse=True)
    # One process runs the background worker (two would race for the same
    # work); the others leave parsing to it, as it learns of their
    # deliveries through the change log.
    return SQLiteStore(
        config.data_dir, defer_parse=True, fts_worker=worker[0] == 0, multi_process=True
    )


def tls_files(cfg: Config) -> tuple[Path, Path, bool]:
    """(certificate, key, whether a self-signed pair was created now)."""
    if cfg.tls_cert is not None and cfg.tls_key is not None:
        return cfg.tls_cert, cfg.tls_key, False
    return ensure_self_signed(cfg.data_dir, cfg.hostname)


class MailServer:
    def __init__(
        self,
        config: Config,
        store: Store | None = None,
        sockets: dict[str, list[socket.socket]] | None = None,
        worker: tuple[int, int] | None = None,
    ) -> None:
        """`sockets`: listening sockets bound by a parent process, used
        instead of binding the configured ports (`serve --workers`)."""
        self.config = config
        self.store: Store = store if store is not None else open_default_store(config, worker)
        self.sockets = sockets
        self.tls: ssl.SSLContext | None = None
        self.tls_fingerprint = ""
        self.tls_created = False
        self.listening: list[Listening] = []
        self._servers: list[asyncio.Server] = []
        self._drivers: set[Driver] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.ctx: ServerContext | None = None

    def _load_tls(self) -> None:
        cert, key, self.tls_created = tls_files(self.config)
        self.tls = server_context(cert, key)
        self.tls_fingerprint = fingerprint(cert)

    async def start(self) -> list[Listening]:
        self._load_tls()
        await self.store.open()
        auth = Authenticator(
            self.store,
            self.config.default_domain,
            self.config.auth_penalty_base,
            self.config.auth_penalty_max,
        )
        self.ctx = ServerContext(self.config, self.store, auth, Delivery(self.store, self.config))
        try:
            if self.sockets is not None:
                for protocol, socks in self.sockets.items():
                    factory = session_factory(protocol, self.ctx)
                    for sock in socks:
                        await self._listen(protocol, 0, factory, sock)
            else:
                for protocol, port in self.config.ports.items():
                    if port is None:
                        continue
                    factory = session_factory(protocol, self.ctx)
                    await self._listen(protocol, port, factory)
        except BaseException:
            await self.stop()
            raise
        return self.listening

    async def _listen(
        self,
        protocol: str,
        port: int,
        factory: Callable[[Channel], Session],
        sock: socket.socket | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        implicit = protocol in IMPLICIT_TLS

        def on_connect() -> Connection:
            conn = Connection()
            task = loop.create_task(self._handle(conn, protocol, factory))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return conn

        # A socket bound by the parent of `serve --workers`, or our own port.
        where: dict[str, Any] = (
            {"sock": sock}
            if sock is not None
            else {"host": self.config.host, "port": port, "reuse_address": True}
        )
        try:
            server = await loop.create_server(
                on_connect,
                ssl=self.tls if implicit else None,
                ssl_handshake_timeout=30.0 if implicit else None,
                backlog=LISTEN_BACKLOG,
                **where,
            )
        except OSError as e:
            raise listen_error(protocol, self.config.host, port, e) from None
        self._servers.append(server)
        for sock in server.sockets:
            host, bound = sock.getsockname()[:2]
            self.listening.append(Listening(protocol, str(host), int(bound)))

    async def _handle(
        self, conn: Connection, protocol: str, factory: Callable[[Channel], Session]
    ) -> None:
        await conn._connected
        channel = ConnectionChannel(conn, self.tls, protocol)
        try:
            session = factory(channel)
        except Exception:
            log.exception("%s: cannot create session", protocol)
            conn.abort()
            return
        driver = Driver(conn, session, protocol)
        self._drivers.add(driver)
        try:
            await driver.run()
        finally:
            self._drivers.discard(driver)

    def port(self, protocol: str) -> int:
        for item in self.listening:
            if item.protocol == protocol:
                return item.port
        raise KeyError(protocol)

    async def stop(self, grace: float = 10.0) -> None:
        """Close listeners, let sessions say goodbye, finish deliveries in flight."""
        for server in self._servers:
            server.close()
        for driver in list(self._drivers):
            driver.stop()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)
        if self.ctx is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self.ctx.delivery.wait_idle()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        await self.store.close()
