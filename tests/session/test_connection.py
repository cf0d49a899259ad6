"""The Connection buffers what arrives for its one reader (the driver) and
stops reading from the socket above READ_HIGH_WATER. Real sockets and the
real event loop: a socketpair accepted by asyncio."""

from __future__ import annotations

import asyncio
import socket

from mailbag.net.connection import _PIECE_OVERHEAD, READ_HIGH_WATER, Connection


async def _accepted() -> tuple[Connection, asyncio.BaseTransport, socket.socket]:
    """A Connection on one end of a socketpair, as the server accepts it; the
    other end (non-blocking) plays the client."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    conn = Connection()
    transport, _ = await asyncio.get_running_loop().connect_accepted_socket(lambda: conn, ours)
    return conn, transport, theirs


def test_trickled_bytes_stay_bounded_and_arrive_whole() -> None:
    """A client trickling single bytes while its session is busy (nobody
    calls read()) piles up one piece per receive: each counts its overhead
    against the high-water mark, so reading pauses after a bounded number of
    pieces; read() then returns every byte in order and reading resumes."""

    async def run() -> None:
        conn, transport, theirs = await _accepted()
        assert isinstance(transport, asyncio.ReadTransport)
        try:
            sent = bytearray()
            limit = READ_HIGH_WATER // _PIECE_OVERHEAD + 1
            for i in range(limit + 200):
                byte = bytes([65 + i % 26])
                theirs.send(byte)
                sent += byte
                for _ in range(3):  # let the loop receive it as a piece of its own
                    await asyncio.sleep(0)
                if not transport.is_reading():
                    break
            assert not transport.is_reading(), "reading never paused"
            assert len(conn._pieces) <= limit
            theirs.send(b"tail")  # stays in the socket while reading is paused
            sent += b"tail"
            data = await conn.read()
            assert transport.is_reading()
            while len(data) < len(sent):
                data += await conn.read()
            assert data == bytes(sent)
        finally:
            transport.close()
            theirs.close()

    asyncio.run(run())


def test_read_hands_over_what_arrived() -> None:
    """Several receives come out of one read() joined, in order; EOF gives b""."""

    async def run() -> None:
        conn, transport, theirs = await _accepted()
        try:
            for piece in (b"a LOGIN", b" x y\r\n", b"b NOOP\r\n"):
                theirs.send(piece)
                for _ in range(3):
                    await asyncio.sleep(0)
            assert await conn.read() == b"a LOGIN x y\r\nb NOOP\r\n"
            theirs.send(b"c LOGOUT\r\n")
            assert await conn.read() == b"c LOGOUT\r\n"
            theirs.close()
            assert await conn.read() == b""
        finally:
            transport.close()

    asyncio.run(run())
