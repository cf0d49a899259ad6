"""A small raw-socket IMAP client for end-to-end, interop and differential tests.

It speaks to any server the same way (mailbag or a private Dovecot), keeps the
exact bytes of every response, and parses responses into plain values so two
servers' answers can be compared without caring how each chose to serialise a
string:

* a string (quoted, literal ``{n}`` or literal8 ``~{n}``) becomes :class:`bytes`;
  which form a server picked is a serialisation choice (RFC 9051 §4.3: "the
  two forms are equivalent"), so it is not part of the value;
* NIL becomes None, a number becomes :class:`int`;
* an atom becomes :class:`Atom` (a `str`), ``BODY[1.HEADER.FIELDS (From)]<0>``
  included, brackets and all;
* a parenthesised list becomes a `list`.

Import it explicitly (``import imap_wire`` after putting tests/interop on
sys.path, or load it by path); there is no conftest magic.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

STATUS_WORDS = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH"})
_LITERAL_AT_END = re.compile(rb"~?\{(\d+)\+?\}\r\n$")
_CODE = re.compile(r"^\[([^\]]*)\]\s?")
_NUMBER = re.compile(rb"\d+")
_ATOM_CHARS = re.compile(rb'[^ ()\[\]{"\r\n]+')
_MAX_RESPONSE = 64 * 1024 * 1024


class Atom(str):
    """An IMAP atom (FLAGS members, FETCH item names, keywords)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str(self)!r})"


@dataclass(slots=True, frozen=True)
class Lit:
    """Command argument sent as a synchronising literal (`~{n}` literal8 when
    `binary`, RFC 3516 §4.4: the only form that may carry NUL)."""

    data: bytes
    binary: bool = False


class ParseError(ValueError):
    pass


class Parser:
    """Parses the values of one response (literal bytes inline, CRLF at the end)."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def at_end(self) -> bool:
        return self.data[self.pos : self.pos + 2] in (b"\r\n", b"")

    def peek(self) -> bytes:
        return self.data[self.pos : self.pos + 1]

    def spaces(self) -> None:
        while self.peek() == b" ":
            self.pos += 1

    def values(self) -> list[Any]:
        out: list[Any] = []
        while True:
            self.spaces()
            if self.at_end():
                return out
            out.append(self.value())

    def value(self) -> Any:
        self.spaces()
        c = self.peek()
        if c == b"(":
            self.pos += 1
            items: list[Any] = []
            while True:
                self.spaces()
                if self.peek() == b")":
                    self.pos += 1
                    return items
                if self.at_end():
                    raise ParseError(f"unclosed list at {self.pos}: {self.data[:200]!r}")
                items.append(self.value())
        if c == b'"':
            return self._quoted()
        if c == b"~" and self.data[self.pos + 1 : self.pos + 2] == b"{":
            self.pos += 1
            return self._literal()
        if c == b"{":
            return self._literal()
        return self._atom()

    def _quoted(self) -> bytes:
        self.pos += 1
        buf = bytearray()
        data = self.data
        while True:
            if self.pos >= len(data):
                raise ParseError("unterminated quoted string")
            ch = data[self.pos]
            self.pos += 1
            if ch == 0x5C:  # backslash quotes the next char
                buf.append(data[self.pos])
                self.pos += 1
            elif ch == 0x22:
                return bytes(buf)
            elif ch in (0x0D, 0x0A):
                raise ParseError(f"CR/LF inside a quoted string: {data[:200]!r}")
            else:
                buf.append(ch)

    def _literal(self) -> bytes:
        end = self.data.index(b"}", self.pos)
        n = int(self.data[self.pos + 1 : end].rstrip(b"+"))
        if self.data[end + 1 : end + 3] != b"\r\n":
            raise ParseError("literal size not followed by CRLF")
        start = end + 3
        self.pos = start + n
        return self.data[start : start + n]

    def _atom(self) -> Any:
        start = self.pos
        m = _ATOM_CHARS.match(self.data, self.pos)
        if m is None and self.peek() != b"[":
            raise ParseError(f"unexpected {self.peek()!r} at {self.pos}: {self.data[:200]!r}")
        self.pos = m.end() if m else self.pos
        # A section spec rides inside the atom: BODY[1.HEADER.FIELDS (A B)]<0>
        while self.peek() == b"[":
            close = self.data.index(b"]", self.pos)
            self.pos = close + 1
            m = _ATOM_CHARS.match(self.data, self.pos)
            if m:
                self.pos = m.end()
        word = self.data[start : self.pos]
        if word == b"NIL":
            return None
        if _NUMBER.fullmatch(word):
            return int(word)
        return Atom(word.decode("utf-8", "surrogateescape"))


@dataclass(slots=True)
class Untagged:
    raw: bytes  # the whole response, literals inline, without the final CRLF
    values: list[Any]  # parsed tokens after "* " (status responses: only the word)
    text: str = ""  # free text of a status response (code included)

    @property
    def kind(self) -> str:
        """'FETCH', 'EXISTS', 'SEARCH', 'OK', ... (the word that names it)."""
        if len(self.values) >= 2 and isinstance(self.values[0], int):
            return str(self.values[1]).upper()
        return str(self.values[0]).upper() if self.values else ""

    @property
    def code(self) -> str | None:
        m = _CODE.match(self.text)
        return m.group(1) if m else None


@dataclass(slots=True)
class Result:
    tag: str
    status: str
    text: str
    untagged: list[Untagged] = field(default_factory=list)

    @property
    def code(self) -> str | None:
        m = _CODE.match(self.text)
        return m.group(1) if m else None

    def ok(self) -> Result:
        assert self.status == "OK", f"{self.tag} {self.status} {self.text}"
        return self

    def of(self, kind: str) -> list[Untagged]:
        return [u for u in self.untagged if u.kind == kind.upper()]

    def fetches(self) -> dict[int, dict[str, Any]]:
        """seq → {ITEM NAME (upper case): value}, merging several FETCH responses."""
        out: dict[int, dict[str, Any]] = {}
        for u in self.of("FETCH"):
            seq, items = u.values[0], u.values[2]
            d = out.setdefault(seq, {})
            for i in range(0, len(items) - 1, 2):
                d[str(items[i]).upper()] = items[i + 1]
        return out

    def search(self) -> list[int]:
        """Numbers of `* SEARCH` or `* ESEARCH ... ALL set` (IMAP4rev2)."""
        for u in self.untagged:
            if u.kind == "SEARCH":
                return sorted(v for v in u.values[1:] if isinstance(v, int))
            if u.kind == "ESEARCH":
                vals = u.values[1:]
                for i, v in enumerate(vals):
                    if isinstance(v, str) and v.upper() == "ALL":
                        return expand_set(str(vals[i + 1]))
                return []
        raise AssertionError(f"no SEARCH/ESEARCH response in {self.untagged}")

    def code_of(self, kind: str, name: str) -> str | None:
        """The argument of response code `name` in untagged `kind` responses."""
        for u in self.of(kind):
            c = u.code
            if c and c.split(" ", 1)[0].upper() == name.upper():
                return c.split(" ", 1)[1] if " " in c else ""
        return None


def expand_set(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            out.extend(range(min(a, b), max(a, b) + 1))
        else:
            out.append(int(part))
    return sorted(out)


def quote(value: str | bytes) -> bytes:
    """A quoted string, or a literal marker when it cannot be quoted."""
    b = value.encode() if isinstance(value, str) else value
    return b'"' + b.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class Connection:
    """One IMAP connection. `command()` sends a command and returns its Result."""

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float = 30,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.buf = b""
        self.n = 0
        self.log: list[bytes] = []
        self.greeting = self.read_response()

    # -- reading ---------------------------------------------------------

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"server closed the connection; last: {self.log[-3:]!r}")
        self.buf += chunk

    def _line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[: i + 2], self.buf[i + 2 :]
                return line
            if len(self.buf) > _MAX_RESPONSE:
                raise ParseError("response line too long")
            self._fill()

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self) -> bytes:
        """One whole response: a line plus any literals it announces."""
        out = self._line()
        while m := _LITERAL_AT_END.search(out):
            out += self._exact(int(m.group(1)))
            out += self._line()
        self.log.append(out)
        return out

    # -- commands --------------------------------------------------------

    def next_tag(self) -> str:
        self.n += 1
        return f"T{self.n:04d}"

    def send(self, data: bytes) -> None:
        self.log.append(b"C: " + data)
        self.sock.sendall(data)

    def command(self, *args: str | bytes | Lit, tag: str | None = None) -> Result:
        """Send `tag args...` (joined by spaces; Lit as synchronising literal)."""
        tag = tag or self.next_tag()
        pieces: list[bytes] = [tag.encode()]
        untagged: list[Untagged] = []
        for a in args:
            if isinstance(a, Lit):
                pieces.append(b"%s{%d}\r\n" % (b"~" if a.binary else b"", len(a.data)))
                self.send(b" ".join(pieces))
                while True:  # wait for "+", keeping untagged data meanwhile
                    resp = self.read_response()
                    if resp.startswith(b"+"):
                        break
                    if resp.startswith(tag.encode() + b" "):
                        return self._tagged(tag, resp, untagged)
                    untagged.append(parse_untagged(resp))
                pieces = [a.data]
            else:
                pieces.append(a.encode() if isinstance(a, str) else a)
        self.send(b" ".join(pieces) + b"\r\n")
        return self.collect(tag, untagged)

    def collect(self, tag: str, untagged: list[Untagged] | None = None) -> Result:
        untagged = untagged if untagged is not None else []
        while True:
            resp = self.read_response()
            if resp.startswith(tag.encode() + b" "):
                return self._tagged(tag, resp, untagged)
            if resp.startswith(b"* "):
                untagged.append(parse_untagged(resp))
            elif resp.startswith(b"+"):
                raise ParseError(f"unexpected continuation: {resp!r}")
            else:
                raise ParseError(f"unexpected response: {resp!r}")

    @staticmethod
    def _tagged(tag: str, resp: bytes, untagged: list[Untagged]) -> Result:
        rest = resp[len(tag) + 1 :].rstrip(b"\r\n").decode("utf-8", "replace")
        status, _, text = rest.partition(" ")
        return Result(tag, status.upper(), text, untagged)

    def read_untagged(self, timeout: float) -> list[Untagged]:
        """Whatever untagged responses arrive within `timeout` seconds (for IDLE)."""
        out: list[Untagged] = []
        deadline = time.monotonic() + timeout
        old = self.sock.gettimeout()
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 and b"\r\n" not in self.buf:
                    return out
                if b"\r\n" not in self.buf:
                    self.sock.settimeout(max(left, 0.001))
                    try:
                        self._fill()
                    except TimeoutError:
                        return out
                    continue
                self.sock.settimeout(old)
                resp = self.read_response()
                if resp.startswith(b"* "):
                    out.append(parse_untagged(resp))
                elif not resp.startswith(b"+"):
                    raise ParseError(f"unexpected response: {resp!r}")
        finally:
            self.sock.settimeout(old)

    def login(self, user: str, password: str) -> Result:
        return self.command("LOGIN", quote(user), quote(password)).ok()

    def logout(self) -> None:
        try:
            self.command("LOGOUT")
        except (OSError, ConnectionError):
            pass
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.logout()

    # -- conveniences ----------------------------------------------------

    def append(
        self,
        mailbox: str,
        message: bytes,
        flags: Iterable[str] = (),
        internaldate: str | None = None,
        binary: bool = False,
    ) -> Result:
        args: list[str | bytes | Lit] = ["APPEND", quote(mailbox)]
        flags = list(flags)
        if flags:
            args.append("(" + " ".join(flags) + ")")
        if internaldate is not None:
            args.append(quote(internaldate))
        args.append(Lit(message, binary))
        return self.command(*args)

    def append_many(
        self, mailbox: str, messages: Iterable[bytes], flags: Iterable[str] = (), batch: int = 100
    ) -> list[int]:
        """APPEND many messages fast: MULTIAPPEND (RFC 3502) in batches, with
        LITERAL+ (RFC 7888) literals, so each batch is one round trip.

        Returns the UIDs from APPENDUID (RFC 4315). Needs MULTIAPPEND, LITERAL+
        and UIDPLUS.
        """
        flag_list = ("(" + " ".join(flags) + ") ") if flags else ""
        uids: list[int] = []
        todo = list(messages)
        for start in range(0, len(todo), batch):
            tag = self.next_tag()
            parts = [f"{tag} APPEND {quote(mailbox).decode()}".encode()]
            for data in todo[start : start + batch]:
                parts.append(f"{flag_list}{{{len(data)}+}}\r\n".encode() + data)
            self.send(b" ".join(parts) + b"\r\n")
            r = self.collect(tag).ok()
            code = (r.code or "").split()
            assert code[:1] == ["APPENDUID"], r
            uids.extend(expand_set(code[2]))
        return uids

    def select(self, mailbox: str, examine: bool = False) -> Result:
        return self.command("EXAMINE" if examine else "SELECT", quote(mailbox)).ok()


def parse_untagged(resp: bytes) -> Untagged:
    body = resp.rstrip(b"\r\n")
    p = Parser(resp, 2)
    first = p.value()
    if isinstance(first, str) and first.upper() in STATUS_WORDS:
        p.spaces()
        text = resp[p.pos :].rstrip(b"\r\n").decode("utf-8", "replace")
        return Untagged(body, [first], text)
    values = [first, *p.values()]
    return Untagged(body, values)


def body_sections(bs: Sequence[Any], prefix: str = "") -> list[tuple[str, str]]:
    """(section number, kind) for every part of a parsed BODYSTRUCTURE.

    kind is 'multipart', 'message' (message/rfc822 or message/global with an
    encapsulated body) or 'leaf'. Numbering follows RFC 9051 §6.4.5: a
    non-multipart message has the single part 1.
    """
    if isinstance(bs[0], list):
        return _multipart_children(bs, prefix)
    return _part(bs, prefix + "1") if not prefix else []


def _multipart_children(bs: Sequence[Any], prefix: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for n, child in enumerate(bs, 1):
        if not isinstance(child, list):
            break
        out.extend(_part(child, f"{prefix}{n}"))
    return out


def _part(bs: Sequence[Any], sec: str) -> list[tuple[str, str]]:
    if isinstance(bs[0], list):
        return [(sec, "multipart"), *_multipart_children(bs, sec + ".")]
    if len(bs) > 9 and isinstance(bs[7], list) and isinstance(bs[8], list):
        inner = bs[8]
        out: list[tuple[str, str]] = [(sec, "message")]
        if isinstance(inner[0], list):
            out.extend(_multipart_children(inner, sec + "."))
        else:
            out.extend(_part(inner, sec + ".1"))
        return out
    return [(sec, "leaf")]


def render(value: Any) -> str:
    """A readable one-line form of a parsed value, for diffs."""
    if value is None:
        return "NIL"
    if isinstance(value, Atom):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        if len(value) > 300:
            return f"<{len(value)} bytes: {value[:120]!r}...{value[-60:]!r}>"
        return repr(value)
    if isinstance(value, list):
        return "(" + " ".join(render(v) for v in value) + ")"
    return repr(value)
