"""Doorbells between processes that share a store (store/sqlite/follow.py).

A follower binds a datagram socket named after itself in a directory; a
writer that committed sends one byte to each other socket there, and the
follower then reads the new rows at once. Sockets live here because `net` is
the only package that touches them (DESIGN.md); the store says when to ring
and what to do when rung.

A name whose path is too long for a socket address (108 bytes on Linux; test
directories get there) binds in Linux's abstract namespace instead, and a
plain file of that name in the directory says it exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

# How long a ringer trusts its listing of the doorbells.
BELLS_RELIST = 1.0
_MAX_SOCKET_PATH = 100


def bell_address(directory: Path, name: str) -> str | bytes:
    path = str(directory / name)
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(directory)).hexdigest()[:32]
    return f"\0mailbag-bell-{digest}-{name}".encode()


class Bells:
    """The doorbells of a store's followers, as a writer rings them."""

    def __init__(self, directory: Path, own: str) -> None:
        self.directory = directory
        self.own = own
        self._sock: socket.socket | None = None  # made at the first ring
        self._listed_at = -BELLS_RELIST
        self._names: list[str] = []

    def ring(self) -> None:
        """Wake every other follower (any thread; never blocks)."""
        now = time.monotonic()
        if now - self._listed_at >= BELLS_RELIST:
            self._listed_at = now
            try:
                self._names = [n for n in os.listdir(self.directory) if n != self.own]
            except FileNotFoundError:
                self._names = []
        if self._names and self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
        for name in self._names:
            assert self._sock is not None
            try:
                self._sock.sendto(b"!", bell_address(self.directory, name))
            except (ConnectionRefusedError, FileNotFoundError):
                # Nobody reads it: a follower that died without closing (a
                # follower binds before its name appears here).
                with contextlib.suppress(OSError):
                    (self.directory / name).unlink()
                self._listed_at = -BELLS_RELIST
            except OSError:
                # Full (it has rings to read already) or going away.
                pass

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Doorbell:
    """One follower's bell: `on_ring` runs on `loop` once rings arrived."""

    def __init__(self, directory: Path, name: str, on_ring: Callable[[], None]) -> None:
        self.path = directory / name
        self.on_ring = on_ring
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind and listen (OSError when the directory or socket cannot be made)."""
        self.path.parent.mkdir(mode=0o700, exist_ok=True)
        address = bell_address(self.path.parent, self.path.name)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(address)
            if isinstance(address, bytes):
                # Abstract: the file only names it, made once it can be rung.
                self.path.touch(0o600)
            loop.add_reader(sock.fileno(), self._rung)
        except BaseException:
            sock.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise
        self._sock, self._loop = sock, loop

    def _rung(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            while sock.recv(64):
                pass
        except OSError:
            pass  # drained
        self.on_ring()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(sock.fileno())
        sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()
