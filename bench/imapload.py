"""Load-generating clients for bench/imap.py: raw sockets, pipelining, no regex
on bulk data, so that the client costs little next to the server it measures.

- `ResponseReader`: sans-I/O IMAP response splitter. A response comes back as
  a list of pieces: line, literal, line, literal, ..., line. Literals are taken
  by their `{n}` length, never scanned.
- `IMAPClient` (blocking) and `AsyncIMAP` (asyncio) on top of it.
- `IdleSwarm`: thousands of IMAP connections driven by one epoll loop
  (LOGIN, SELECT, IDLE), then timestamps of the `* n EXISTS` each one reads.
- `LMTPClient`, `POP3Client` (pipelined multi-line answers).
- `server_memory`: RSS and PSS summed over a process tree (smaps_rollup).
"""

from __future__ import annotations

import asyncio
import errno
import math
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Response = list[bytes]  # [line, literal, line, literal, ..., line]; lines without CRLF


class BenchFailure(AssertionError):
    """A server gave a wrong answer: the run fails."""


def quote(s: str) -> bytes:
    return b'"' + s.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'


class ResponseReader:
    """Splits a byte stream into IMAP responses (RFC 9051 §4.3: a literal is
    `{n}` CRLF then exactly n octets; the line continues after it)."""

    __slots__ = ("buf", "need", "parts", "pos")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.pos = 0
        self.parts: list[bytes] = []
        self.need = -1  # >= 0 while a literal of that many bytes is pending

    def feed(self, data: bytes) -> None:
        if self.pos and self.pos == len(self.buf):
            self.buf.clear()
            self.pos = 0
        elif self.pos > (1 << 20):
            del self.buf[: self.pos]
            self.pos = 0
        self.buf += data

    def next(self) -> Response | None:
        buf = self.buf
        while True:
            if self.need >= 0:
                end = self.pos + self.need
                if len(buf) < end:
                    return None
                self.parts.append(bytes(buf[self.pos : end]))
                self.pos = end
                self.need = -1
                continue
            i = buf.find(b"\r\n", self.pos)
            if i < 0:
                return None
            line = bytes(buf[self.pos : i])
            self.pos = i + 2
            self.parts.append(line)
            if line.endswith(b"}"):
                j = line.rfind(b"{")
                digits = line[j + 1 : -1].rstrip(b"+")
                if j >= 0 and digits.isdigit():
                    self.need = int(digits)
                    continue
            parts = self.parts
            self.parts = []
            return parts


def ok(tagged: bytes, what: str) -> bytes:
    words = tagged.split(b" ", 2)
    if len(words) < 2 or words[1] != b"OK":
        raise BenchFailure(f"{what}: {tagged[:300]!r}")
    return tagged


class IMAPClient:
    """Blocking IMAP client. `command()` for one command, `pipeline()` to send
    many at once (a writer thread sends while this thread reads, so neither
    side can block the other with full socket buffers)."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 600) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = ResponseReader()
        self.tagn = 0
        self.greeting = self.read()[0]
        if not self.greeting.startswith(b"* OK"):
            raise BenchFailure(f"greeting: {self.greeting!r}")
        self.capabilities: set[bytes] = set()

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        self.reader.feed(data)

    def read(self) -> Response:
        while (r := self.reader.next()) is None:
            self._fill()
        return r

    def tag(self) -> bytes:
        self.tagn += 1
        return b"A%d" % self.tagn

    def until(self, tag: bytes) -> tuple[list[Response], bytes]:
        """Untagged responses, then the tagged line of `tag`."""
        out: list[Response] = []
        prefix = tag + b" "
        while True:
            r = self.read()
            if r[0].startswith(prefix):
                return out, r[0]
            out.append(r)

    def command(self, text: bytes, what: str = "") -> list[Response]:
        tag = self.tag()
        self.sock.sendall(tag + b" " + text + b"\r\n")
        untagged, tagged = self.until(tag)
        ok(tagged, what or text[:60].decode(errors="replace"))
        return untagged

    def login(self, user: str, password: str) -> None:
        self.command(b"LOGIN " + quote(user) + b" " + quote(password), "LOGIN")
        for r in self.command(b"CAPABILITY"):
            if r[0].startswith(b"* CAPABILITY "):
                self.capabilities = set(r[0].upper().split()[2:])

    def pipeline(self, commands: Sequence[bytes]) -> list[tuple[list[Response], bytes]]:
        """Send `tag SP command` for each (the command bytes may hold literals
        with LITERAL+ markers and end without CRLF); return each command's
        untagged responses and tagged line, in order."""
        tags = [self.tag() for _ in commands]
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                chunk: list[bytes] = []
                size = 0
                for tag, cmd in zip(tags, commands, strict=True):
                    chunk += (tag, b" ", cmd, b"\r\n")
                    size += len(cmd)
                    if size >= 1 << 20:
                        self.sock.sendall(b"".join(chunk))
                        chunk, size = [], 0
                if chunk:
                    self.sock.sendall(b"".join(chunk))
            except BaseException as e:
                errors.append(e)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        out: list[tuple[list[Response], bytes]] = []
        try:
            for tag in tags:
                out.append(self.until(tag))
        finally:
            t.join()
        if errors:
            raise errors[0]
        return out

    def append_sync(self, mailbox: str, flags: bytes, date: bytes, message: bytes) -> bytes:
        """APPEND with a synchronising literal (servers without LITERAL+)."""
        tag = self.tag()
        self.sock.sendall(
            tag
            + b" APPEND "
            + quote(mailbox)
            + b" ("
            + flags
            + b") "
            + date
            + b" {%d}\r\n" % len(message)
        )
        r = self.read()
        if not r[0].startswith(b"+"):
            raise BenchFailure(f"APPEND: no continuation: {r[0]!r}")
        self.sock.sendall(message + b"\r\n")
        return ok(self.until(tag)[1], "APPEND")

    def logout(self) -> None:
        try:
            self.sock.sendall(b"Z LOGOUT\r\n")
            self.until(b"Z")
        except OSError:
            pass
        self.sock.close()


class AsyncIMAP:
    """The asyncio twin of IMAPClient, for many concurrent sessions."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r = reader
        self.w = writer
        self.rr = ResponseReader()
        self.tagn = 0

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> AsyncIMAP:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        self = cls(reader, writer)
        greeting = await self.read()
        if not greeting[0].startswith(b"* OK"):
            raise BenchFailure(f"greeting: {greeting[0]!r}")
        return self

    async def read(self) -> Response:
        while (resp := self.rr.next()) is None:
            data = await self.r.read(1 << 20)
            if not data:
                raise ConnectionError("server closed the connection")
            self.rr.feed(data)
        return resp

    async def command(self, text: bytes, what: str = "") -> list[Response]:
        self.tagn += 1
        tag = b"T%d" % self.tagn
        self.w.write(tag + b" " + text + b"\r\n")
        await self.w.drain()
        out: list[Response] = []
        prefix = tag + b" "
        while True:
            resp = await self.read()
            if resp[0].startswith(prefix):
                ok(resp[0], what or text[:60].decode(errors="replace"))
                return out
            out.append(resp)

    def close(self) -> None:
        self.w.close()


# ---- many idle connections ------------------------------------------------------


@dataclass(slots=True)
class _IdleConn:
    sock: socket.socket
    state: int = 0  # 0 greeting, 1 LOGIN sent, 2 SELECT sent, 3 IDLE sent, 4 idling
    buf: bytes = b""
    exists: int = -1
    seen_at: float = 0.0


@dataclass
class IdleSwarm:
    """K sessions, each LOGIN + SELECT + IDLE, driven by one epoll loop.

    Connection set-up is windowed (`window` sessions in flight) so neither
    server's accept queue nor its login processes are flooded."""

    port: int
    user: str
    password: str
    mailbox: str
    count: int
    window: int = 64
    conns: dict[int, _IdleConn] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ep = select.epoll()
        self.login = b"a LOGIN " + quote(self.user) + b" " + quote(self.password) + b"\r\n"
        self.select = b"b SELECT " + quote(self.mailbox) + b"\r\n"
        # Set by wait_exists: this client's CPU, and the time from the first
        # EXISTS read to the last.
        self.read_cpu = 0.0
        self.read_span = 0.0

    def _open(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", self.port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            raise OSError(err, os.strerror(err))
        self.conns[s.fileno()] = _IdleConn(s)
        self.ep.register(s.fileno(), select.EPOLLIN)

    def _lines(self, c: _IdleConn) -> list[bytes]:
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return []
        if not data:
            raise ConnectionError(f"server closed an idle session (state {c.state})")
        c.buf += data
        *lines, c.buf = c.buf.split(b"\r\n")
        return lines

    def setup(self, timeout: float = 1800, progress: Callable[[str], None] | None = None) -> float:
        """Open every session and bring it to IDLE; return seconds taken."""
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout
        opened = idling = 0
        next_report = time.monotonic() + 30
        while idling < self.count:
            if progress is not None and time.monotonic() > next_report:
                secs = time.perf_counter() - t0
                progress(f"  {idling}/{self.count} sessions idling after {secs:.0f} s")
                next_report += 30
            while opened < self.count and opened - idling < self.window:
                self._open()
                opened += 1
            if time.monotonic() > deadline:
                raise BenchFailure(f"IDLE setup: only {idling}/{self.count} sessions idling")
            for fd, _ev in self.ep.poll(1.0):
                c = self.conns[fd]
                for line in self._lines(c):
                    if c.state == 0 and line.startswith(b"* OK"):
                        c.sock.sendall(self.login)
                        c.state = 1
                    elif c.state == 1 and line.startswith(b"a "):
                        ok(line, "IDLE swarm LOGIN")
                        c.sock.sendall(self.select)
                        c.state = 2
                    elif c.state == 2 and line.endswith(b" EXISTS"):
                        c.exists = int(line.split()[1])
                    elif c.state == 2 and line.startswith(b"b "):
                        ok(line, "IDLE swarm SELECT")
                        c.sock.sendall(b"c IDLE\r\n")
                        c.state = 3
                    elif c.state == 3 and line.startswith(b"+"):
                        c.state = 4
                        idling += 1
                    elif line.startswith((b"* BYE", b"c ")):
                        raise BenchFailure(
                            f"IDLE swarm: {line!r} to a session in state {c.state} "
                            f"after {time.perf_counter() - t0:.0f} s ({idling} idling)"
                        )
        return time.perf_counter() - t0

    def wait_exists(self, expected: int, timeout: float) -> list[float]:
        """perf_counter() at which each session read `* expected EXISTS` (or
        more); raises if some session has not within `timeout` seconds.

        Lean on purpose: every microsecond spent here per session delays the
        sessions read after it, which the latencies would blame on the server.
        One read per ready socket (the server's EXISTS, with RECENT for these
        IMAP4rev1 sessions, is one small write); lines are split only when a
        read does not end at a line end or holds no EXISTS (other untagged
        data)."""
        conns = self.conns
        for c in conns.values():
            c.seen_at = 0.0
        pending = len(conns)
        deadline = time.monotonic() + timeout
        # This client's own CPU while it reads the EXISTS lines (epoll, recv,
        # line split per socket): when the sessions' EXISTS arrive faster
        # than it can read them, the latencies measure the client.
        cpu0 = time.thread_time()
        first = 0.0
        poll, read, clock = self.ep.poll, os.read, time.perf_counter
        maxevents = max(1, len(conns))
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchFailure(
                    f"IDLE: {pending}/{len(conns)} sessions never saw * {expected} EXISTS "
                    f"within {timeout:.0f} s"
                )
            events = poll(min(left, 1.0), maxevents)
            now = clock()
            if events and not first:
                first, cpu0 = now, time.thread_time()
            for fd, _ev in events:
                c = conns[fd]
                try:
                    data = read(fd, 4096)
                except BlockingIOError:
                    continue
                if not data:
                    raise ConnectionError(f"server closed an idle session (state {c.state})")
                if c.buf:
                    data = c.buf + data
                    c.buf = b""
                if not data.endswith(b"\r\n"):
                    cut = data.rfind(b"\r\n") + 2
                    data, c.buf = data[:cut], data[cut:]
                at = data.rfind(b" EXISTS\r\n")
                if at < 0:
                    continue
                # The line starts after the line end before it ("* n EXISTS").
                c.exists = int(data[data.rfind(b"\n", 0, at) + 3 : at])
                if c.exists >= expected and not c.seen_at:
                    c.seen_at = now
                    pending -= 1
        self.read_cpu = time.thread_time() - cpu0
        self.read_span = clock() - first if first else 0.0
        return [c.seen_at for c in conns.values()]

    def close(self) -> None:
        for c in self.conns.values():
            try:
                self.ep.unregister(c.sock.fileno())
                c.sock.close()
            except OSError:
                pass
        self.conns.clear()
        self.ep.close()


# ---- LMTP and POP3 --------------------------------------------------------------


def dot_stuff(message: bytes) -> bytes:
    """RFC 5321 §4.5.2 transparency, plus the terminating dot line."""
    body = message.replace(b"\r\n.", b"\r\n..")
    if body.startswith(b"."):
        body = b"." + body
    return body + b".\r\n"


class LMTPClient:
    """`send`: one transaction = two writes, MAIL+RCPT+DATA pipelined, then
    the data after the 354. `send_pipelined`: whole BDAT transactions back to
    back (RFC 3030 with RFC 2920), a window of them in flight."""

    def __init__(self, port: int, recipient: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=300)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.mail_rcpt = (
            b"MAIL FROM:<bench@example.net>\r\nRCPT TO:<" + recipient.encode() + b">\r\n"
        )
        self.envelope = self.mail_rcpt + b"DATA\r\n"
        self.reply()
        self.sock.sendall(b"LHLO bench\r\n")
        # The LHLO reply's keywords (RFC 2033 §4.1 / RFC 5321 §4.1.1.1).
        self.extensions: set[bytes] = set()
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("LMTP server closed the connection")
            words = line[4:].split()
            if words:
                self.extensions.add(words[0].upper())
            if line[3:4] != b"-":
                break

    def reply(self) -> bytes:
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("LMTP server closed the connection")
            if line[3:4] != b"-":
                return line

    def send(self, stuffed: bytes) -> float:
        """Deliver one message; return perf_counter() when its last byte was sent."""
        self.sock.sendall(self.envelope)
        for _ in range(3):
            line = self.reply()
            if line[:1] not in (b"2", b"3"):
                raise BenchFailure(f"LMTP refused: {line!r}")
        self.sock.sendall(stuffed)
        sent = time.perf_counter()
        line = self.reply()
        if not line.startswith(b"250"):
            raise BenchFailure(f"LMTP not delivered: {line!r}")
        return sent

    def send_pipelined(self, messages: Sequence[bytes], window: int) -> None:
        """Deliver `messages` (not dot-stuffed) as `MAIL, RCPT, BDAT n LAST`
        transactions without waiting between them, at most `window` in flight;
        every reply must be 250."""
        sent = done = 0
        total = len(messages)
        while done < total:
            batch: list[bytes] = []
            while sent < total and sent - done < window:
                message = messages[sent]
                batch += (self.mail_rcpt, b"BDAT %d LAST\r\n" % len(message), message)
                sent += 1
            if batch:
                self.sock.sendall(b"".join(batch))
            for _ in range(3):  # MAIL, RCPT, and the one recipient's delivery
                line = self.reply()
                if not line.startswith(b"250"):
                    raise BenchFailure(f"LMTP BDAT transaction {done + 1}: {line!r}")
            done += 1

    def close(self) -> None:
        try:
            self.sock.sendall(b"QUIT\r\n")
            self.reply()
        except OSError:
            pass
        self.sock.close()


def lmtp_deliver(
    port: int, recipient: str, messages: list[bytes], connections: int, window: int = 0
) -> float:
    """Deliver every message over `connections` parallel sessions; return the
    seconds from first byte to last 250. `window` 0: DATA, one message at a
    time (`messages` dot-stuffed); else BDAT transactions, `window` in flight
    per connection (`messages` as they are; the server must offer CHUNKING)."""
    chunks = [messages[i::connections] for i in range(connections)]
    clients = [LMTPClient(port, recipient) for _ in range(connections)]
    if window and not all(b"CHUNKING" in c.extensions for c in clients):
        for c in clients:
            c.close()
        raise BenchFailure("the LMTP server does not offer CHUNKING")
    errors: list[BaseException] = []

    def worker(client: LMTPClient, chunk: list[bytes]) -> None:
        try:
            if window:
                client.send_pipelined(chunk, window)
            else:
                for msg in chunk:
                    client.send(msg)
        except BaseException as e:
            errors.append(e)

    threads = [
        threading.Thread(target=worker, args=(c, ch)) for c, ch in zip(clients, chunks, strict=True)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for c in clients:
        c.close()
    if errors:
        raise errors[0]
    return elapsed


class POP3Client:
    def __init__(self, port: int, user: str, password: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0
        self._status()
        self.command(b"USER " + user.encode())
        self.command(b"PASS " + password.encode())

    def _more(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("POP3 server closed the connection")
        self.buf += data

    def _status(self) -> bytes:
        # Compact only between answers: _body() holds offsets into the buffer.
        if self.pos > (1 << 20):
            del self.buf[: self.pos]
            self.pos = 0
        while (i := self.buf.find(b"\r\n", self.pos)) < 0:
            self._more()
        line = bytes(self.buf[self.pos : i])
        self.pos = i + 2
        if not line.startswith(b"+OK"):
            raise BenchFailure(f"POP3: {line!r}")
        return line

    def _body(self) -> bytes:
        # RFC 1939 §3: the body ends at CRLF "." CRLF; searching from the status
        # line's own CRLF finds an empty body ("." CRLF right after it) too.
        start = self.pos - 2
        while (i := self.buf.find(b"\r\n.\r\n", start)) < 0:
            start = max(self.pos - 2, len(self.buf) - 4)
            self._more()
        body = bytes(self.buf[self.pos : i + 2]) if i >= self.pos else b""
        self.pos = i + 5
        body = body.replace(b"\r\n..", b"\r\n.")
        return body[1:] if body.startswith(b"..") else body

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self._status()

    def multiline(self, line: bytes) -> bytes:
        self.command(line)
        return self._body()

    def pipelined(self, lines: Sequence[bytes]) -> list[bytes]:
        """RFC 2449 §6.6 PIPELINING: send every command, read every answer."""
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                for i in range(0, len(lines), 256):
                    self.sock.sendall(b"".join(x + b"\r\n" for x in lines[i : i + 256]))
            except BaseException as e:
                errors.append(e)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        out = []
        try:
            for _ in lines:
                self._status()
                out.append(self._body())
        finally:
            t.join()
        if errors:
            raise errors[0]
        return out

    def quit(self) -> None:
        self.command(b"QUIT")
        self.sock.close()


# ---- measurement helpers --------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """pid and every process under it (children of every thread)."""
    out = [pid]
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                kids = Path(f"/proc/{parent}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            for k in map(int, kids):
                if k not in out:
                    out.append(k)
                    frontier.append(k)
    return out


def server_memory(pids: Iterable[int]) -> dict[str, float]:
    """RSS and PSS in MB, summed over the processes (smaps_rollup, kB)."""
    rss = pss = 0
    n = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue  # exited meanwhile
        n += 1
        for line in text.splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return {"rss_MB": rss / 1024, "pss_MB": pss / 1024, "processes": n}


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time of the processes (/proc/PID/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / ticks


def wait_quiet(
    pids: Callable[[], list[int]],
    window: float = 0.5,
    busy: float = 0.1,
    timeout: float = 600,
    windows: int = 4,
) -> float:
    """Wait until the processes use under `busy` of a core for `windows`
    windows in a row (background work such as indexing has caught up); return
    seconds. Two seconds: mailbag's background worker rests three times as
    long as each unit took while mail was arriving (up to ~1.5 s), and a
    shorter quiet spell took such a rest for the end of the work."""
    t0 = time.perf_counter()
    quiet = 0
    last = cpu_seconds(pids())
    while quiet < windows and time.perf_counter() - t0 < timeout:
        time.sleep(window)
        now = cpu_seconds(pids())
        quiet = quiet + 1 if now - last < busy * window else 0
        last = now
    return time.perf_counter() - t0


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return math.nan
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return s[k]


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out
