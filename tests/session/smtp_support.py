"""Shared helpers for the SMTP and LMTP session tests (imported explicitly).

A raw-socket client, a runner for RFC-style `C:`/`S:` transcripts, and a
server with SMTP and LMTP only (the other listeners belong to other tests).
"""

from __future__ import annotations

import re
import socket
import ssl
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mailbag.store.memory.backend import MemoryStore
from mailbag.store.models import INBOX
from mailbag.testing.server import ServerThread

HOST = "mailbag.test"
USERS = ("alice", "bob", "carol")
_OTHER_LISTENERS: dict[str, int | None] = {"pop3": None, "pop3s": None, "imap": None, "imaps": None}


def start_server(tmp_path: Path, **overrides: Any) -> ServerThread:
    """A started server on a MemoryStore with alice, bob and carol @localhost."""
    server = ServerThread(tmp_path, store=MemoryStore(), ports=_OTHER_LISTENERS, **overrides)
    server.start()
    for user in USERS:
        # SMTP never checks passwords, so skip the (slow on purpose) argon2 hash.
        server.run(server.store.create_account(f"{user}@localhost", "not-a-hash"))
    return server


@contextmanager
def running(tmp_path: Path, **overrides: Any) -> Iterator[ServerThread]:
    server = start_server(tmp_path, **overrides)
    try:
        yield server
    finally:
        server.stop()


def inbox(server: ServerThread, address: str) -> list[bytes]:
    """The stored bytes of every message in the INBOX of `address`, by UID."""

    async def read() -> list[bytes]:
        store = server.store
        account = await store.get_account(address)
        assert account is not None, address
        box = await store.get_mailbox(account.id, INBOX)
        assert box is not None
        return [await store.read_content(m.content_id) for m in await store.list_messages(box.id)]

    return server.run(read())


def delete_account(server: ServerThread, address: str) -> None:
    async def delete() -> None:
        account = await server.store.get_account(address)
        assert account is not None
        await server.store.delete_account(account.id)

    server.run(delete())


# What Delivery.trace_headers prepends (RFC 5321 §4.4).
TRACE = re.compile(
    rb"Return-Path: <(?P<sender>[^>\r\n]*)>\r\n"
    rb"Received: from (?P<helo>\S+) \(\[(?P<peer>[^\]\r\n]*)\]\)\r\n"
    rb"\tby mailbag\.test \(mailbag\) with (?P<protocol>[A-Z]+)"
    rb"(?:\r\n\t\(using (?P<tls>[^)\r\n]*)\))?"
    rb"(?:\r\n\tfor <(?P<rcpt>[^>\r\n]*)>)?;\r\n"
    rb"\t[^\r\n]+\r\n"
)


def split_trace(stored: bytes) -> tuple[dict[str, str | None], bytes]:
    """(trace fields, the original message) of a delivered message."""
    m = TRACE.match(stored)
    assert m is not None, stored[:300]
    fields = {k: (v.decode() if v is not None else None) for k, v in m.groupdict().items()}
    return fields, stored[m.end() :]


class Client:
    """A line-oriented raw-socket client; nothing is hidden from the test."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def line(self) -> str:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise AssertionError(f"connection closed; unread: {self.buf!r}")
        raw, self.buf = self.buf.split(b"\r\n", 1)
        return raw.decode()

    def reply(self) -> list[str]:
        """One whole (possibly multi-line) reply."""
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return lines

    def closed(self) -> bool:
        """True when the server has closed the connection (EOF after the buffer)."""
        try:
            while self._fill():
                pass
        except (ConnectionResetError, TimeoutError):
            return False
        return True

    def starttls(self, cafile: Path) -> None:
        assert self.buf == b"", f"plaintext after the 220: {self.buf!r}"
        context = ssl.create_default_context(cafile=str(cafile))
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")

    def close(self) -> None:
        self.sock.close()


def transcript(client: Client, script: str) -> None:
    """Run an RFC-style transcript.

    `C: text` is sent with CRLF; consecutive C: lines go out in one packet
    (so they are pipelined). `S: text` must equal the next reply line;
    `S~ regex` must match it fully; `S: <closed>` expects the server to close.
    """
    pending: list[str] = []

    def flush() -> None:
        if pending:
            client.send("".join(f"{line}\r\n" for line in pending))
            pending.clear()

    for number, raw in enumerate(textwrap.dedent(script).strip().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        kind, text = line[:2], line[3:] if len(line) > 3 else ""
        if kind == "C:":
            pending.append(text)
            continue
        flush()
        if kind == "S:" and text == "<closed>":
            assert client.closed(), f"line {number}: connection still open"
            continue
        got = client.line()
        if kind == "S:":
            assert got == text, f"line {number}: expected {text!r}, got {got!r}"
        elif kind == "S~":
            assert re.fullmatch(text, got), f"line {number}: {got!r} does not match {text!r}"
        else:
            raise ValueError(f"line {number}: bad transcript line {raw!r}")
    flush()


EHLO_REPLY = """
S: 250-mailbag.test
S: 250-PIPELINING
S: 250-SIZE {size}
S: 250-8BITMIME
S: 250-CHUNKING
S: 250-ENHANCEDSTATUSCODES
S: 250-STARTTLS
S: 250 SMTPUTF8
"""


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


LMTP_ONLY: dict[str, int | None] = {"pop3": None, "pop3s": None, "imap": None, "imaps": None}


@contextmanager
def lmtp_server(tmp_path: Path) -> Iterator[ServerThread]:
    """SMTP and LMTP on the default SQLite store, with alice and bob."""
    srv = ServerThread(tmp_path, ports=LMTP_ONLY).start()
    try:
        for user in ("alice", "bob"):
            srv.run(srv.store.create_account(f"{user}@localhost", "not-a-hash"))
        yield srv
    finally:
        srv.stop()


class Wire:
    """Raw bytes out, reply lines in; the test decides when to wait."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> str:
        raw = self.file.readline()
        assert raw.endswith(b"\r\n"), f"connection closed or bad line: {raw!r}"
        return raw[:-2].decode()

    def reply(self) -> list[str]:
        lines = [self.line()]
        while lines[-1][3:4] == "-":
            lines.append(self.line())
        return lines

    def closed(self) -> bool:
        return self.file.read() == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()
