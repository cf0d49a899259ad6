"""Shared helpers for the IMAP session tests (import explicitly, no conftest).

API (kept small and stable; other test modules import it):

``server(tmp_path, users=None, messages=None, **overrides)``
    Context manager yielding a started :class:`ServerThread` on a MemoryStore
    with only the IMAP listener (other listeners off). ``users`` maps a login
    name to its password (default ``{"alice": "pw"}``; ``"alice"`` becomes
    ``alice@localhost``). ``messages`` maps a login name to
    ``{mailbox: [message, ...]}``; a message is ``bytes`` or an
    ``AppendRequest`` (for flags / internal date). Missing mailboxes are
    created. ``overrides`` go to ``ServerThread`` (Config fields, e.g.
    ``max_message_size=1000``).

``add_user(srv, user, password="pw")``; ``fresh_user(srv) -> str`` creates an
    account with a new unique login name (password ``pw``), handy with one
    server shared by a module's tests. ``add_messages(srv, user, mailbox,
    [message, ...]) -> [uid, ...]`` appends straight into the store.

``connect(srv, user="alice", password="pw", login=True, rev2=False) -> Client``
    A raw-socket client that has read the greeting, logged in (tag ``L``, the
    answer is consumed) and, with ``rev2=True``, sent ``E ENABLE IMAP4rev2``.
    ``login=False`` leaves it right after the greeting.

``Client``
    ``send(str|bytes)`` (no CRLF added), ``line() -> str`` (one line without
    CRLF), ``command(text) -> list[str]`` (sends ``text`` + CRLF and returns every
    line up to and including the tagged one; the tag is the first word),
    ``nothing(wait=0.3)`` (asserts the server sends nothing for ``wait`` s),
    ``closed()``, ``close()``.

``transcript(clients, script) -> dict[str, str]``
    Runs an RFC-style transcript. ``clients`` is one Client (lines ``C:``/``S:``)
    or a dict such as ``{"C1": c1, "C2": c2}`` (lines ``C1:``/``S1:``...).
    Line kinds (leading whitespace and ``#`` comment lines are ignored):

    - ``C: text``   send ``text`` + CRLF. Consecutive C lines to the same client
      are sent in one packet (pipelined). A literal's data is just the next C
      line(s): ``C: a APPEND INBOX {5}`` / ``S: + Ready for literal data`` /
      ``C: hello`` sends "hello" and the CRLF that ends the command; for
      multi-line literals count the CRLFs of each C line in the size
      (``C: {7}`` / ... / ``C: hello`` / ``C:`` = "hello\\r\\n" then CRLF).
    - ``S: text``   the next line from that client must equal ``text``.
    - ``S~ regex``  the next line must fully match ``regex``; named groups
      (``(?P<uv>\\d+)``) are captured and returned.
    - ``S: <closed>``   the server must close the connection.
    - ``S: <nothing>``  no data may arrive within 0.3 s.
    - ``${name}`` in any C/S line is replaced by an earlier capture.

    Server literals are read as lines too: a FETCH ``BODY[] {12}`` is
    followed by the literal's lines as ``S:`` lines.

``store_messages(srv, user, mailbox) -> list[Message]`` and
``stored_bytes(srv, user, mailbox) -> list[bytes]``: what the store holds.
``mailbox_names(srv, user) -> list[str]``.

``make_message(subject="Test", body="Hello", sender=..., to=..., date=...)``
    A small RFC 5322 message with CRLF line ends, as bytes (deterministic:
    the same arguments give the same bytes and size).
"""

from __future__ import annotations

import functools
import itertools
import re
import socket
import textwrap
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mailbag.auth.passwords import hash_password
from mailbag.store.memory.backend import MemoryStore
from mailbag.store.models import AppendRequest, Message, canonical_mailbox_name
from mailbag.testing.server import ServerThread

_OTHER_LISTENERS: dict[str, int | None] = {
    "smtp": None,
    "lmtp": None,
    "pop3": None,
    "pop3s": None,
    "imaps": None,
}


def _address(user: str) -> str:
    return user if "@" in user else f"{user}@localhost"


@contextmanager
def server(
    tmp_path: Path,
    users: Mapping[str, str] | None = None,
    messages: Mapping[str, Mapping[str, Sequence[bytes | AppendRequest]]] | None = None,
    **overrides: Any,
) -> Iterator[ServerThread]:
    """A started IMAP-only server with users and messages (see module docstring)."""
    srv = ServerThread(tmp_path, store=MemoryStore(), ports=_OTHER_LISTENERS, **overrides)
    srv.start()
    try:
        for user, password in (users if users is not None else {"alice": "pw"}).items():
            add_user(srv, user, password)
        for user, boxes in (messages or {}).items():
            for mailbox, items in boxes.items():
                add_messages(srv, user, mailbox, items)
        yield srv
    finally:
        srv.stop()


@functools.cache
def _password_hash(password: str) -> str:
    # argon2 is slow on purpose; one hash per password and test process.
    return hash_password(password)


def add_user(srv: ServerThread, user: str, password: str = "pw") -> None:
    """Create an account (``user`` without a domain gets ``@localhost``)."""
    srv.run(srv.store.create_account(_address(user), _password_hash(password)))


_user_numbers = itertools.count(1)


def fresh_user(srv: ServerThread, password: str = "pw") -> str:
    """Create an account with a name no other test used; its login name."""
    user = f"user{next(_user_numbers)}"
    add_user(srv, user, password)
    return user


def add_messages(
    srv: ServerThread, user: str, mailbox: str, items: Sequence[bytes | AppendRequest]
) -> list[int]:
    """Append messages straight into the store (creating the mailbox); the UIDs."""

    async def run() -> list[int]:
        store = srv.store
        account = await store.get_account(_address(user))
        assert account is not None, user
        name = canonical_mailbox_name(mailbox)
        box = await store.get_mailbox(account.id, name)
        if box is None:
            box = await store.create_mailbox(account.id, name)
        requests = [i if isinstance(i, AppendRequest) else AppendRequest(data=i) for i in items]
        if not requests:
            return []
        result = await store.append(box.id, requests)
        return [int(u) for u in result.uids]

    return srv.run(run())


def store_messages(srv: ServerThread, user: str, mailbox: str) -> list[Message]:
    async def run() -> list[Message]:
        account = await srv.store.get_account(_address(user))
        assert account is not None, user
        box = await srv.store.get_mailbox(account.id, canonical_mailbox_name(mailbox))
        assert box is not None, mailbox
        return await srv.store.list_messages(box.id)

    return srv.run(run())


def stored_bytes(srv: ServerThread, user: str, mailbox: str) -> list[bytes]:
    """The stored bytes of every message in the mailbox, in UID order."""
    messages = store_messages(srv, user, mailbox)

    async def run() -> list[bytes]:
        return [await srv.store.read_content(m.content_id) for m in messages]

    return srv.run(run())


def mailbox_names(srv: ServerThread, user: str) -> list[str]:
    async def run() -> list[str]:
        account = await srv.store.get_account(_address(user))
        assert account is not None, user
        return [m.name for m in await srv.store.list_mailboxes(account.id)]

    return srv.run(run())


def make_message(
    subject: str = "Test",
    body: str = "Hello",
    sender: str = "bob@example.org",
    to: str = "alice@localhost",
    date: str = "Mon, 7 Feb 1994 21:52:25 -0800",
) -> bytes:
    text = (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
        f"Message-ID: <{zlib.crc32((subject + body).encode()):08x}@example.org>\r\n\r\n{body}\r\n"
    )
    return text.encode()


class Client:
    """A line-oriented raw-socket IMAP client; nothing is hidden from the test."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
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
        return raw.decode("utf-8", "replace")

    def command(self, text: str) -> list[str]:
        """Send one command line; every line up to and including the tagged one."""
        tag = text.split(" ", 1)[0]
        self.send(text + "\r\n")
        lines = [self.line()]
        while not lines[-1].startswith(tag + " "):
            lines.append(self.line())
        return lines

    def nothing(self, wait: float = 0.3) -> None:
        """Assert that the server sends nothing for `wait` seconds."""
        assert self.buf == b"", f"unexpected data: {self.buf!r}"
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return
        finally:
            self.sock.settimeout(self.timeout)
        raise AssertionError(f"unexpected data: {chunk!r}")

    def closed(self) -> bool:
        """True when the server closes the connection (EOF after the buffer)."""
        try:
            while self._fill():
                pass
        except (ConnectionResetError, TimeoutError):
            return False
        return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    srv: ServerThread,
    user: str = "alice",
    password: str = "pw",
    login: bool = True,
    rev2: bool = False,
) -> Client:
    client = Client(srv.port("imap"))
    greeting = client.line()
    assert greeting.startswith("* OK"), greeting
    if login:
        answer = client.command(f"L LOGIN {user} {password}")
        assert answer[-1].startswith("L OK"), answer
    if rev2:
        answer = client.command("E ENABLE IMAP4rev2")
        assert answer[-1].startswith("E OK"), answer
    return client


_LINE = re.compile(r"(?P<kind>[CS])(?P<num>\d*)(?P<op>[:~])(?: (?P<text>.*))?$")
_CAPTURE_REF = re.compile(r"\$\{(\w+)\}")


def transcript(clients: Client | Mapping[str, Client], script: str) -> dict[str, str]:
    """Run a C:/S: transcript (see the module docstring); the captures."""
    conns: Mapping[str, Client] = {"C": clients} if isinstance(clients, Client) else clients
    captures: dict[str, str] = {}
    pending: list[str] = []
    pending_to: list[str] = []  # the client name of the pending lines

    def flush() -> None:
        if pending:
            conns[pending_to[0]].send("".join(f"{p}\r\n" for p in pending))
            pending.clear()
            pending_to.clear()

    def substitute(text: str) -> str:
        return _CAPTURE_REF.sub(lambda m: captures[m.group(1)], text)

    def client_name(num: str, number: int) -> str:
        name = f"C{num}"
        if name not in conns:
            if not num and len(conns) == 1:
                return next(iter(conns))
            raise ValueError(f"line {number}: no client {name}")
        return name

    for number, raw in enumerate(textwrap.dedent(script).strip().splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _LINE.match(stripped)
        if m is None:
            raise ValueError(f"line {number}: bad transcript line {raw!r}")
        name = client_name(m["num"], number)
        text = substitute(m["text"] or "")
        if m["kind"] == "C":
            if m["op"] != ":":
                raise ValueError(f"line {number}: use 'C:' to send")
            if pending_to and pending_to[0] != name:
                flush()
            pending.append(text)
            pending_to.append(name)
            continue
        flush()
        client = conns[name]
        if m["op"] == ":" and text == "<closed>":
            assert client.closed(), f"line {number}: {name} connection still open"
            continue
        if m["op"] == ":" and text == "<nothing>":
            client.nothing()
            continue
        try:
            got = client.line()
        except TimeoutError:
            raise AssertionError(f"line {number}: {name} timed out waiting for {text!r}") from None
        if m["op"] == ":":
            assert got == text, f"line {number} ({name}): expected {text!r}, got {got!r}"
        else:
            found = re.fullmatch(text, got)
            assert found, f"line {number} ({name}): {got!r} does not match {text!r}"
            captures.update({k: v for k, v in found.groupdict().items() if v is not None})
    flush()
    return captures
