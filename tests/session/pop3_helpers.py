"""Shared pieces of the POP3 session tests: a server with one user, a raw client,
and a C:/S: transcript runner.

Transcript syntax (one step per line, leading spaces ignored):

    C: <line>       sent with CRLF; consecutive C: lines go out in ONE packet
    S: <line>       the next line received must equal this exactly
    S~ <regex>      the next line received must fullmatch this; named groups
                    are collected and returned
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailbag.store.memory.backend import MemoryStore
from mailbag.store.models import UID, AppendRequest, MailboxID, Message
from mailbag.testing.server import ServerThread

USER = "alice"
PASSWORD = "secret pw"  # with a space: RFC 1939 §7 PASS takes the rest of the line
ADDRESS = "alice@localhost"
# Only the POP3 listeners: the other protocols are other helpers' business.
POP3_ONLY: dict[str, int | None] = {"smtp": None, "lmtp": None, "imap": None, "imaps": None}
TIMEOUT = 5.0


@dataclass
class POP3Env:
    server: ServerThread
    tmp_path: Path
    inbox_id: MailboxID

    @property
    def port(self) -> int:
        return self.server.port("pop3")

    @property
    def pop3s_port(self) -> int:
        return self.server.port("pop3s")

    def add(self, *messages: bytes, flags: frozenset[str] = frozenset()) -> list[UID]:
        result = self.server.run(
            self.server.store.append(
                self.inbox_id, [AppendRequest(data=m, flags=flags) for m in messages]
            )
        )
        return list(result.uids)

    def messages(self) -> list[Message]:
        return self.server.run(self.server.store.list_messages(self.inbox_id))

    def uidvalidity(self) -> int:
        box = self.server.run(self.server.store.get_mailbox_by_id(self.inbox_id))
        assert box is not None
        return int(box.uidvalidity)

    def tls_context(self) -> ssl.SSLContext:
        """A client context trusting only this server's self-signed certificate."""
        return ssl.create_default_context(cafile=str(self.tmp_path / "tls" / "cert.pem"))

    def connect(self, tls: bool = False) -> POP3Conn:
        return POP3Conn(self, implicit_tls=tls)


@contextmanager
def pop3_server(tmp_path: Path, **overrides: Any) -> Iterator[POP3Env]:
    server = ServerThread(tmp_path, store=MemoryStore(), ports=dict(POP3_ONLY), **overrides)
    server.start()
    try:
        account = server.add_user(USER, PASSWORD)
        inbox = server.run(server.store.get_mailbox(account.id, "INBOX"))
        assert inbox is not None
        yield POP3Env(server, tmp_path, inbox.id)
    finally:
        server.stop()


class POP3Conn:
    """A raw POP3 client over a real socket: exact bytes in, exact bytes out."""

    def __init__(self, env: POP3Env, implicit_tls: bool = False) -> None:
        self.env = env
        port = env.pop3s_port if implicit_tls else env.port
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        if implicit_tls:
            sock = env.tls_context().wrap_socket(sock, server_hostname="localhost")
        self.sock: socket.socket = sock
        self._buf = bytearray()
        self._pos = 0  # start of the unread part of _buf
        self.greeting = self.line()

    # ---- bytes -------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by server")
        return data

    def line(self) -> str:
        """One response line without CRLF (decoded as UTF-8)."""
        return self.raw_line()[:-2].decode("utf-8")

    def raw_line(self) -> bytes:
        while (end := self._buf.find(b"\r\n", self._pos)) < 0:
            del self._buf[: self._pos]
            self._pos = 0
            self._buf += self._fill()
        line = bytes(self._buf[self._pos : end + 2])
        self._pos = end + 2
        return line

    @property
    def pending(self) -> bytes:
        """Received but not yet consumed."""
        return bytes(self._buf[self._pos :])

    def raw_until_terminator(self) -> bytes:
        """The raw octets of a multi-line body, up to and including ".CRLF"."""
        out: list[bytes] = []
        while True:
            line = self.raw_line()
            out.append(line)
            if line == b".\r\n":
                return b"".join(out)

    def multiline(self) -> list[str]:
        """The lines of a multi-line body, dot-stuffing removed, terminator dropped."""
        lines = []
        while (line := self.line()) != ".":
            lines.append(line[1:] if line.startswith(".") else line)
        return lines

    def cmd(self, command: str) -> str:
        self.send(command.encode("utf-8") + b"\r\n")
        return self.line()

    def assert_closed(self) -> None:
        """The server closes the connection: EOF (or a reset) with no more data."""
        assert not self.pending, self.pending
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                return
            if not data:
                return
            raise AssertionError(f"unexpected data after close: {data!r}")
        raise AssertionError("connection still open")

    def starttls(self) -> None:
        """Wrap the socket after a `+OK` to STLS. Fails if buffered plaintext remains."""
        assert not self.pending, f"plaintext after STLS reply: {self.pending!r}"
        self.sock = self.env.tls_context().wrap_socket(self.sock, server_hostname="localhost")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> POP3Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- conveniences ------------------------------------------------------------
    def login(self, user: str = USER, password: str = PASSWORD) -> str:
        assert self.cmd(f"USER {user}") == "+OK"
        reply = self.cmd(f"PASS {password}")
        assert reply.startswith("+OK"), reply
        return reply

    def transcript(self, script: str) -> dict[str, str]:
        """Run a C:/S: script (see the module docstring); returns named captures."""
        captures: dict[str, str] = {}
        pending: list[bytes] = []
        for number, raw in enumerate(script.strip("\n").splitlines(), start=1):
            step = raw.lstrip()
            if not step:
                continue
            tag, _, text = step.partition(" ")
            if tag == "C:":
                pending.append(text.encode("utf-8") + b"\r\n")
                continue
            if pending:
                self.send(b"".join(pending))
                pending = []
            got = self.line()
            if tag == "S:":
                assert got == text, f"line {number}: expected {text!r}, got {got!r}"
            elif tag == "S~":
                m = re.fullmatch(text, got)
                assert m, f"line {number}: {got!r} does not match /{text}/"
                captures.update({k: v for k, v in m.groupdict().items() if v is not None})
            else:
                raise ValueError(f"line {number}: bad transcript step {raw!r}")
        if pending:
            self.send(b"".join(pending))
        return captures


def wait_until(predicate: Any, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)
