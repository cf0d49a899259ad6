"""Helpers for the FETCH and SEARCH session tests (import explicitly, no conftest).

``raw(client, "a FETCH 1 BODY[]") -> bytes``
    Sends one command and returns every octet the server sends up to and
    including the tagged line, literals (``{n}`` and ``~{n}``) read exactly.

``fetches(data) -> dict[int, dict[str, object]]``
    The ``* n FETCH (...)`` responses in ``data``: sequence number to a dict of
    item name to value. Values: ``None`` for NIL, ``int``, ``bytes`` for
    strings and literals, ``str`` for atoms (flags), lists for parenthesised
    lists.

``text(value)``
    Strings (bytes) in a parsed value as ``str`` with ``surrogateescape``, the
    convention of mailbag.message and of the recorded Dovecot answers.

``corpus(name) -> bytes``
    A message of tests/corpus/ as the store keeps it (CRLF line ends).

``odd_facts_messages() -> list[AppendRequest]``
    tests/corpus/simple_plain.eml three times (one header differs): with its
    own facts, with empty facts, and with facts whose part tree is garbage.

``expunge_elsewhere(srv, uids, user="alice", mailbox="INBOX")``
    Expunge messages through the store, as another session's EXPUNGE does:
    the change reaches every session through the store's change feed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mailbag.store.models import UID, AppendRequest, MessageFacts
from mailbag.testing.server import ServerThread

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
_LITERAL = re.compile(rb"~?\{(\d+)\}\r\n\Z")


def corpus(name: str) -> bytes:
    data = (CORPUS / f"{name}.eml").read_bytes()
    if b"\n" in data and b"\r\n" not in data:
        data = data.replace(b"\n", b"\r\n")
    return data


def read_response(client: Any, tag: str) -> bytes:
    """Everything up to and including the tagged line (see module docstring)."""
    out = bytearray()
    prefix = tag.encode() + b" "
    while True:
        while b"\r\n" not in client.buf:
            if not client._fill():
                raise AssertionError(f"connection closed; got {bytes(out)[-300:]!r}")
        line, client.buf = client.buf.split(b"\r\n", 1)
        line += b"\r\n"
        out += line
        m = _LITERAL.search(line)
        if m:
            n = int(m.group(1))
            while len(client.buf) < n:
                if not client._fill():
                    raise AssertionError("connection closed inside a literal")
            out += client.buf[:n]
            client.buf = client.buf[n:]
            continue
        if line.startswith(prefix):
            return bytes(out)


def raw(client: Any, command: str | bytes) -> bytes:
    data = command.encode() if isinstance(command, str) else command
    tag = data.split(b" ", 1)[0].decode()
    client.send(data + b"\r\n")
    return read_response(client, tag)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def peek(self) -> bytes:
        return self.data[self.pos : self.pos + 1]

    def skip(self, token: bytes) -> None:
        assert self.data.startswith(token, self.pos), (token, self.data[self.pos : self.pos + 60])
        self.pos += len(token)

    def spaces(self) -> None:
        while self.peek() == b" ":
            self.pos += 1

    def value(self) -> Any:
        c = self.peek()
        if c == b"(":
            self.pos += 1
            items = []
            while True:
                self.spaces()
                if self.peek() == b")":
                    self.pos += 1
                    return items
                items.append(self.value())
        if c == b'"':
            self.pos += 1
            out = bytearray()
            while True:
                ch = self.data[self.pos]
                self.pos += 1
                if ch == 0x5C:
                    out.append(self.data[self.pos])
                    self.pos += 1
                elif ch == 0x22:
                    return bytes(out)
                else:
                    out.append(ch)
        m = re.compile(rb"~?\{(\d+)\}\r\n").match(self.data, self.pos)
        if m:
            n = int(m.group(1))
            self.pos = m.end() + n
            return self.data[m.end() : self.pos]
        m = re.compile(rb"[^ ()\r\n]+").match(self.data, self.pos)
        assert m, self.data[self.pos : self.pos + 60]
        self.pos = m.end()
        word = m.group().decode("utf-8", "replace")
        if word == "NIL":
            return None
        if word.isdigit():
            return int(word)
        return word

    def name(self) -> str:
        start = self.pos
        while self.peek() not in (b" ", b")", b""):
            if self.peek() == b"[":
                self.pos = self.data.index(b"]", self.pos)
            self.pos += 1
        return self.data[start : self.pos].decode()


_FETCH = re.compile(rb"\* (\d+) FETCH \(")


def fetches(data: bytes) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    pos = 0
    while True:
        m = _FETCH.search(data, pos)
        if m is None:
            return out
        r = _Reader(data)
        r.pos = m.end()
        items: dict[str, Any] = {}
        while True:
            r.spaces()
            if r.peek() == b")":
                r.pos += 1
                break
            name = r.name()
            r.skip(b" ")
            items[name] = r.value()
        r.skip(b"\r\n")
        out.setdefault(int(m.group(1)), {}).update(items)
        pos = r.pos


def text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, list):
        return [text(v) for v in value]
    return value


def tagged(data: bytes) -> str:
    """The tagged status line of a response (without CRLF)."""
    return data.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1].decode("utf-8", "replace")


def expunge_elsewhere(
    srv: ServerThread, uids: list[int], user: str = "alice", mailbox: str = "INBOX"
) -> None:
    async def run() -> None:
        account = await srv.store.get_account(user if "@" in user else f"{user}@localhost")
        assert account is not None
        box = await srv.store.get_mailbox(account.id, mailbox)
        assert box is not None
        removed = await srv.store.expunge(box.id, [UID(u) for u in uids], require_deleted=False)
        assert removed == [UID(u) for u in sorted(uids)]

    srv.run(run())


def odd_facts_messages() -> list[AppendRequest]:
    simple = corpus("simple_plain")
    datas = [simple.replace(b"Subject:", b"X-N: %d\r\nSubject:" % i) for i in range(3)]
    size = len(datas[2])
    header = datas[2].index(b"\r\n\r\n") + 4
    broken = MessageFacts(
        envelope=[None] * 10,
        bodystructure=["text", "plain"],
        header_size=header,
        parts=[0, header, size, 1, "multipart/mixed", "", "", size, [["garbage"]]],
    )
    return [
        AppendRequest(data=datas[0]),
        AppendRequest(data=datas[1], facts=MessageFacts()),
        AppendRequest(data=datas[2], facts=broken),
    ]
