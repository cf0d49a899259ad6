"""The generic connection driver: read bytes, feed the session, enforce timeouts.

One coroutine per connection. It knows nothing of any protocol: sessions own
their codecs and write through the Channel (DESIGN.md §1).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

from ..session.base import Channel, Session
from .connection import Connection, is_loopback

log = logging.getLogger("mailbag.net")


class ConnectionChannel:
    """The Channel a session sees, backed by a Connection."""

    def __init__(self, conn: Connection, tls: ssl.SSLContext | None, protocol: str) -> None:
        self._conn = conn
        self._tls = tls
        self.protocol = protocol
        self.peer_host = conn.peer_host
        self.peer_port = conn.peer_port
        self.local_port = conn.local_port
        # The Connection's own method, not a wrapper: IMAP IDLE pushes call it
        # once per idling session per delivery (issue 4).
        self.write_nowait: Callable[[bytes], bool] = conn.write_nowait

    @property
    def is_tls(self) -> bool:
        return self._conn.is_tls

    @property
    def is_loopback(self) -> bool:
        return is_loopback(self.peer_host)

    @property
    def tls_available(self) -> bool:
        return self._tls is not None

    def tls_description(self) -> str:
        info = self._conn.tls_info()
        return f"{info['version']} {info['cipher']}" if info else ""

    async def write(self, data: bytes) -> None:
        await self._conn.write(data)

    async def start_tls(self) -> None:
        if self._tls is None:
            raise RuntimeError("TLS not configured")
        dropped = self._conn.discard_pending()
        if dropped:
            log.warning(
                "proto=%s peer=%s discarded %d plaintext bytes pipelined after STARTTLS",
                self.protocol,
                self.peer_host,
                dropped,
            )
        await self._conn.start_tls(self._tls)

    def close(self) -> None:
        self._conn.close()


class Driver:
    """Runs one session over one connection until either side ends it."""

    def __init__(self, conn: Connection, session: Session, protocol: str) -> None:
        self.conn = conn
        self.session = session
        self.protocol = protocol
        self.stopping = False
        self._reading = False
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        self._task = asyncio.current_task()
        conn, session = self.conn, self.session
        log.info(
            "connect proto=%s peer=%s:%d tls=%s",
            self.protocol,
            conn.peer_host,
            conn.peer_port,
            conn.is_tls,
        )
        try:
            await session.start()
            while not session.finished and not conn.closed:
                if self.stopping:
                    await session.shutdown()
                    break
                self._reading = True
                try:
                    async with asyncio.timeout(session.idle_timeout):
                        data = await conn.read()
                except TimeoutError:
                    await session.timed_out()
                    break
                finally:
                    self._reading = False
                if not data:
                    break
                await session.data_received(data)
        except asyncio.CancelledError:
            if self.stopping and not conn.closed:
                try:
                    async with asyncio.timeout(2):
                        await session.shutdown()
                except (Exception, asyncio.CancelledError):
                    pass
            else:
                raise
        except (ConnectionError, ssl.SSLError, OSError) as e:
            log.info("proto=%s peer=%s connection error: %s", self.protocol, conn.peer_host, e)
        except Exception:
            # DESIGN.md §2.6: a bug in one connection closes only that connection.
            log.exception("proto=%s peer=%s session failed", self.protocol, conn.peer_host)
        finally:
            try:
                await session.connection_lost()
            except Exception:
                log.exception("proto=%s cleanup failed", self.protocol)
            conn.close()
            log.info(
                "disconnect proto=%s peer=%s:%d in=%d out=%d",
                self.protocol,
                conn.peer_host,
                conn.peer_port,
                conn.bytes_in,
                conn.bytes_out,
            )

    def stop(self) -> None:
        """Ask the session to say goodbye at its next pause between requests."""
        self.stopping = True
        if self._reading and self._task is not None:
            self._task.cancel()


SessionFactory = Callable[[Channel], Session]
