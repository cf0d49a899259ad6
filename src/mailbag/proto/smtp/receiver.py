"""The sans-I/O SMTP/LMTP receiver: bytes in, commands and messages out.

Feed it whatever the socket gave (`feed`), then take events one by one with
`next_event` until it returns None ("need more bytes"). Events come one at a
time because a pipelined chunk may hold `DATA` followed by the message: after
the session has answered DATA with 354 it calls `start_data`, and the bytes
that follow are read as message content, not as commands (RFC 2920 §3.1).

Command lines: at most `max_line` octets including the line break (RFC 5321
§4.5.3.1.4 gives 512 for commands; we allow the 1000 of a text line, as the
SMTP extensions lengthen MAIL and RCPT). A longer line yields one
:class:`LineTooLong` and the rest of it is skipped; the connection goes on.
A bare LF ends a command line too (lenient, as Postfix is); it never ends
DATA, see below.

DATA content (RFC 5321 §4.5.2): the end is the line "." between two CRLFs; a
leading "." of any other line is removed. A "." line with a bare LF or bare CR
on either side (`<LF>.<LF>`, `<CR><LF>.<LF>`, `<LF>.<CR><LF>`, `<CR>.<CR>`, ...)
is an SMTP smuggling attempt: another server may take it as the end of data
and run what follows as a second message. Such a message is marked and must
be rejected; the marker is never taken as the end. Other bare LFs become CRLF
(stored messages have CRLF line ends); a bare CR is kept as content. Content
beyond `max_size` is counted but not stored.

BDAT chunks (RFC 3030 §2): the data follows the command line at once, so the
receiver reads the stated number of octets itself whatever the session will
answer (a refused chunk must still be read and discarded), and yields one
:class:`ChunkReceived`. The octets are taken as they are: no dot-stuffing,
no end marker. A chunk larger than `max_chunk` is counted, not stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from .commands import Bdat, Command, CommandError, parse_command
from .replies import Reply

MAX_LINE = 1000


@dataclass(slots=True, frozen=True)
class InvalidCommand:
    """A complete line that is not a valid command; `reply` says why."""

    line: bytes
    reply: Reply


@dataclass(slots=True, frozen=True)
class LineTooLong:
    """A command line went past the limit; the rest of it is being skipped."""

    limit: int


@dataclass(slots=True, frozen=True)
class MessageReceived:
    """The end of DATA was seen.

    `data` is the unstuffed message with CRLF line ends, or empty when it went
    past the size limit (`too_big`) or when `smuggling` names the bare line
    break that made it unacceptable (e.g. "bare <LF>"). `size` counts every
    content octet received, stored or not.
    """

    data: bytes
    size: int
    too_big: bool = False
    smuggling: str | None = None


@dataclass(slots=True, frozen=True)
class ChunkReceived:
    """A BDAT command and all of its `size` octets: `data`, or empty when the
    chunk was over the receiver's `max_chunk` (`too_big`)."""

    size: int
    last: bool
    data: bytes
    too_big: bool = False


Event = Command | InvalidCommand | LineTooLong | MessageReceived | ChunkReceived


class _Break(Enum):
    CRLF = "<CR><LF>"
    LF = "bare <LF>"
    CR = "bare <CR>"


class _DataState(Enum):
    START = 1  # at the first byte of a line
    MIDDLE = 2  # inside a line already known not to be the end marker
    BREAK = 3  # at a CR or LF


_EOL = re.compile(rb"[\r\n]")
_CR, _LF, _DOT = 0x0D, 0x0A, 0x2E


class SMTPReceiver:
    def __init__(self, max_line: int = MAX_LINE, max_chunk: int = 0) -> None:
        self.max_line = max_line
        self.max_chunk = max_chunk
        # The BDAT whose octets are being read, how many are still to come,
        # and those kept so far (None: too big, counted only).
        self._bdat: Bdat | None = None
        self._chunk_left = 0
        self._chunk: bytearray | None = None
        self._buf = bytearray()
        self._pos = 0
        self._skipping = False
        # DATA mode; None when reading commands.
        self._body: bytearray | None = None
        self._max_size = 0
        self._size = 0
        self._too_big = False
        self._smuggling: _Break | None = None
        self._state = _DataState.START
        self._prev = _Break.CRLF

    # ---- input --------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def discard(self) -> int:
        """Drop every buffered byte (at STARTTLS, RFC 3207 §4.2); returns how many."""
        n = len(self._buf) - self._pos
        self._buf.clear()
        self._pos = 0
        self._skipping = False
        self._bdat = self._chunk = None
        return n

    @property
    def in_data(self) -> bool:
        return self._body is not None

    @property
    def buffered(self) -> int:
        """Unread bytes held (bounded by the line limit plus one chunk)."""
        return len(self._buf) - self._pos

    @property
    def idle(self) -> bool:
        """No partial command or message is pending."""
        return (
            self._body is None
            and self._bdat is None
            and not self._skipping
            and self._pos == len(self._buf)
        )

    def start_data(self, max_size: int) -> None:
        """Read what follows as message content (after the 354 reply)."""
        if self._body is not None:
            raise RuntimeError("already reading DATA")
        self._body = bytearray()
        self._max_size = max_size
        self._size = 0
        self._too_big = False
        self._smuggling = None
        self._state = _DataState.START
        # The DATA command's own line break counts as the CRLF before the first
        # line, so an empty message is just ".<CR><LF>".
        self._prev = _Break.CRLF

    # ---- output -------------------------------------------------------------
    def next_event(self) -> Event | None:
        if self._body is not None:
            return self._scan_data()
        if self._bdat is not None:
            return self._read_chunk()
        event = self._next_command()
        if type(event) is Bdat:
            self._bdat, self._chunk_left = event, event.size
            self._chunk = bytearray() if event.size <= self.max_chunk else None
            return self._read_chunk()
        return event

    def _read_chunk(self) -> ChunkReceived | None:
        bdat = self._bdat
        assert bdat is not None
        buf, pos = self._buf, self._pos
        if self._chunk is not None and not self._chunk and len(buf) - pos >= bdat.size:
            # The whole chunk is here (the common case): one copy, no accumulation.
            data = bytes(buf[pos : pos + bdat.size])
            self._pos = pos + bdat.size
            self._bdat = self._chunk = None
            return ChunkReceived(bdat.size, bdat.last, data)
        take = min(self._chunk_left, len(buf) - pos)
        if self._chunk is not None:
            self._chunk += buf[pos : pos + take]
        self._pos = pos + take
        self._chunk_left -= take
        if self._chunk_left:
            return None
        chunk = self._chunk
        self._bdat = self._chunk = None
        if chunk is None:
            return ChunkReceived(bdat.size, bdat.last, b"", too_big=True)
        return ChunkReceived(bdat.size, bdat.last, bytes(chunk))

    def _next_command(self) -> Event | None:
        buf = self._buf
        if self._skipping:
            end = buf.find(b"\n", self._pos)
            if end < 0:
                self._pos = len(buf)
                return None
            self._pos = end + 1
            self._skipping = False
        start = self._pos
        end = buf.find(b"\n", start, start + self.max_line)
        if end < 0:
            if len(buf) - start >= self.max_line:
                # No line break within the limit: the line is too long whatever
                # follows. Report it once, now, and skip to its end.
                self._pos = start + self.max_line
                self._skipping = True
                return LineTooLong(self.max_line)
            return None
        line = bytes(buf[start:end])
        self._pos = end + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        try:
            return parse_command(line)
        except CommandError as e:
            return InvalidCommand(line, e.reply)

    def _store(self, data: bytes | bytearray) -> None:
        assert self._body is not None
        self._size += len(data)
        if self._too_big or self._smuggling is not None:
            return
        if self._size > self._max_size:
            # RFC 1870 §6.3: keep reading to the end, store nothing more, reject.
            self._too_big = True
            self._body = bytearray()
            return
        self._body += data

    def _scan_data(self) -> MessageReceived | None:
        buf, pos, n = self._buf, self._pos, len(self._buf)
        state, prev = self._state, self._prev
        event: MessageReceived | None = None
        while pos < n:
            if state is _DataState.START and prev is _Break.CRLF and buf[pos] != _DOT:
                # Fast path for well-formed mail (CRLF only): find the end marker
                # or the last complete line with C-speed searches and unstuff with
                # one replace, instead of walking line by line.
                end = buf.find(b"\r\n.\r\n", pos)
                if end >= 0:
                    stop = end + 2
                else:
                    last = buf.rfind(b"\r\n", pos)
                    stop = last + 2 if last >= 0 else pos
                if stop > pos:
                    seg = bytes(buf[pos:stop])
                    crlf = seg.count(b"\r\n")
                    if seg.count(b"\n") == crlf and seg.count(b"\r") == crlf:
                        self._store(seg.replace(b"\r\n.", b"\r\n"))
                        if end >= 0:
                            pos = end + 5
                            event = self._finish()
                            break
                        pos = stop  # at a line start after CRLF: state unchanged
                        continue
            if state is _DataState.START:
                if buf[pos] != _DOT:
                    state = _DataState.MIDDLE
                    continue
                if pos + 1 >= n:
                    break
                nxt = buf[pos + 1]
                if nxt not in (_CR, _LF):
                    # RFC 5321 §4.5.2: drop the leading dot of a stuffed line. A
                    # dot after a bare CR is not at a line start: it stays.
                    if prev is not _Break.CR:
                        pos += 1
                    state = _DataState.MIDDLE
                    continue
                if nxt == _LF:
                    brk, width = _Break.LF, 2
                elif pos + 2 >= n:
                    break  # "." CR: need the next byte to know if the CR is bare
                elif buf[pos + 2] == _LF:
                    brk, width = _Break.CRLF, 3
                else:
                    brk, width = _Break.CR, 2
                pos += width
                if prev is _Break.CRLF and brk is _Break.CRLF:
                    event = self._finish()
                    break
                # A "." line with a bare CR or LF on either side: SMTP smuggling.
                # Never the end of data; the message will be refused.
                if self._smuggling is None:
                    self._smuggling = prev if prev is not _Break.CRLF else brk
                    self._body = bytearray()
                self._size += width
                prev = brk
            elif state is _DataState.MIDDLE:
                m = _EOL.search(buf, pos)
                if m is None:
                    self._store(buf[pos:])
                    pos = n
                    break
                self._store(buf[pos : m.start()])
                pos = m.start()
                state = _DataState.BREAK
            else:
                if buf[pos] == _LF:
                    self._store(b"\r\n")  # bare LF becomes CRLF: stored mail is CRLF
                    prev, pos = _Break.LF, pos + 1
                elif pos + 1 >= n:
                    break
                elif buf[pos + 1] == _LF:
                    self._store(b"\r\n")
                    prev, pos = _Break.CRLF, pos + 2
                else:
                    self._store(b"\r")
                    prev, pos = _Break.CR, pos + 1
                state = _DataState.START
        self._pos = pos
        if event is None:
            self._state, self._prev = state, prev
        return event

    def _finish(self) -> MessageReceived:
        assert self._body is not None
        smuggling = self._smuggling.value if self._smuggling is not None else None
        data = b"" if (self._too_big or smuggling) else bytes(self._body)
        event = MessageReceived(data, self._size, self._too_big, smuggling)
        self._body = None
        self._smuggling = None
        return event
