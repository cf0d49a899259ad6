"""One client connection: the only code that touches a socket (DESIGN.md §1).

A small `asyncio.Protocol` instead of StreamReader/StreamWriter because we must
own the receive buffer: at STARTTLS/STLS every plaintext byte received after
the command must be thrown away, never read after the upgrade (the STARTTLS
command-injection class, CVE-2011-0411 and relatives; DEPENDENCIES.md). With
our own buffer that is one `clear()`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import threading
from typing import Any, cast

log = logging.getLogger("mailbag.net")

# Above this many unread bytes we stop reading from the socket; the sessions'
# own codecs cap line and literal sizes, this only bounds what sits in between.
READ_HIGH_WATER = 256 * 1024
# What one buffered receive costs beyond its bytes (a bytes object and a list
# slot), counted against READ_HIGH_WATER: a client trickling single bytes while
# its session is busy must not pile up 256 K tiny objects.
_PIECE_OVERHEAD = 64
TLS_HANDSHAKE_TIMEOUT = 30.0


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


# One receive buffer per event-loop thread, shared by all its connections.
# asyncio's plain Protocol path allocates a fresh 256 KB bytes object for every
# recv(); glibc then raises its mmap threshold and serves those from the heap,
# where the shrunken leftovers fragment it: measured ~120 KB of RSS per idle
# IMAP connection. With BufferedProtocol the kernel copies into this buffer
# and we keep only the bytes that arrived (measured ~9 KB per idle connection).
_RECV_SIZE = 256 * 1024
_local = threading.local()


def _recv_buffer() -> memoryview:
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(bytearray(_RECV_SIZE))
    return view


class Connection(asyncio.BufferedProtocol):
    """Buffers received bytes for one reader; writes with back-pressure."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        # What arrived since the last read(), as the bytes of each receive:
        # read() hands a lone piece over as it is (one copy out of the shared
        # receive buffer in all, not a copy into a bytearray and another out).
        self._pieces: list[bytes] = []
        self._buffered = 0
        self._eof = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._read_paused = False
        self._connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.peer_host = ""
        self.peer_port = 0
        self.local_host = ""
        self.local_port = 0
        self.is_tls = False
        self.bytes_in = 0
        self.bytes_out = 0

    # ---- asyncio.Protocol callbacks -------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have the Transport methods without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername") or ("", 0)
        sock = transport.get_extra_info("sockname") or ("", 0)
        self.peer_host, self.peer_port = str(peer[0]), int(peer[1])
        self.local_host, self.local_port = str(sock[0]), int(sock[1])
        self.is_tls = transport.get_extra_info("sslcontext") is not None
        if not self._connected.done():
            self._connected.set_result(None)

    def get_buffer(self, sizehint: int) -> memoryview:
        return _recv_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        # Called right after the kernel filled the shared buffer, before any
        # other connection of this loop can use it.
        self.data_received(_recv_buffer()[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        self._pieces.append(bytes(data))  # bytes of a bytes object: no copy
        self._buffered += len(data) + _PIECE_OVERHEAD
        self.bytes_in += len(data)
        if self._buffered > READ_HIGH_WATER and not self._read_paused and self.transport:
            self._read_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool | None:
        self._eof = True
        self._wake_reader()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    # ---- used by the driver and (through Channel) by sessions -----------
    def _wake_reader(self) -> None:
        w = self._read_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _wake_writer(self) -> None:
        w = self._drain_waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def read(self) -> bytes:
        """Everything received so far, waiting for at least one byte; b"" at EOF."""
        while not self._pieces:
            if self._eof:
                return b""
            self._read_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._read_waiter
            finally:
                self._read_waiter = None
        pieces = self._take()
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        return data

    def discard_pending(self) -> int:
        return sum(len(piece) for piece in self._take())

    def _take(self) -> list[bytes]:
        """The buffered receives, no longer buffered."""
        pieces, self._pieces = self._pieces, []
        self._buffered = 0
        return pieces

    @property
    def closed(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def write_nowait(self, data: bytes) -> bool:
        """Hand `data` to the transport without waiting; False (nothing written)
        when the connection is closing or the client is behind (the transport's
        buffer is above its high-water mark), so the caller takes its awaiting path."""
        transport = self.transport
        if transport is None or self._write_paused or transport.is_closing():
            return False
        transport.write(data)
        self.bytes_out += len(data)
        return True

    async def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        self.transport.write(data)
        self.bytes_out += len(data)
        while self._write_paused and not self.transport.is_closing():
            self._drain_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Upgrade in place. The caller must already have discarded pending input."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._take()
        new = await loop.start_tls(
            self.transport,
            self,
            context,
            server_side=True,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
        )
        if new is None:
            raise ConnectionResetError("connection closed during TLS handshake")
        self.transport = new
        self.is_tls = True

    def tls_info(self) -> dict[str, Any]:
        if self.transport is None:
            return {}
        obj = self.transport.get_extra_info("ssl_object")
        if obj is None:
            return {}
        return {"version": obj.version(), "cipher": (obj.cipher() or ("",))[0]}

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
