"""The sans-I/O IMAP command receiver: bytes in, typed events out.

It frames the input into lines and literals (RFC 9051 §4.3, RFC 7888, RFC 3516
literal8), lexes every line once as it completes, parses a command once its
last line arrives, and enforces every size limit on the way (DESIGN.md §2.5).

Use from a session (the h11 style: pull one event, act on it, pull the next,
so a mode change made after one command applies to the bytes behind it)::

    receiver.receive_data(data)
    while (event := receiver.next_event()) is not None:
        match event:
            case ContinuationRequest():  # a synchronising literal {n} was announced
                # either write b"+ Ready for literal data\\r\\n" (and just go on),
                # or refuse: receiver.reject_literal() and write a tagged NO/BAD.
            case CommandError(tag=tag):  # write "<tag or *> BAD …"; parsing goes on
            case RawLine(data=data):     # after expect_raw_line(): SASL or IDLE "DONE"
            case _:                      # a command dataclass from commands.py

Sessions switch modes between events: `expect_raw_line()` after AUTHENTICATE
(each client response line) and IDLE (the DONE line), `discard_buffered()`
after STARTTLS (RFC 9051 §6.2.1: no plaintext pipelined past STARTTLS may be
executed), `utf8_names = True` after ENABLE IMAP4rev2 / UTF8=ACCEPT, and
`limits = …` after login (e.g. allow large APPEND literals only then).

`feed(data)` is receive_data plus draining every event, for tests and for
callers that never switch modes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from .commands import Command
from .grammar import (
    LITERAL,
    LITERAL8,
    PENDING,
    PENDING8,
    AppendResume,
    Incomplete,
    ParseError,
    Token,
    command_name_of,
    lex_line,
    parse_command,
)
from .wire import TAG_RE

if TYPE_CHECKING:
    from ...config import Config


@dataclass(slots=True, frozen=True)
class Limits:
    max_line: int = 64 * 1024  # one line, not counting literal data
    max_literal: int = 64 * 1024  # any literal except APPEND message data
    max_append_literal: int = 50 * 1024 * 1024  # one APPEND message
    max_command: int = 100 * 1024 * 1024  # all lines and literals of one command
    max_depth: int = 100  # parentheses and NOT/OR/group nesting
    max_ranges: int = 100_000  # ranges in one sequence set
    # RFC 7888 §5 / RFC 9051 §4.3: with LITERAL- (and in plain IMAP4rev2)
    # non-synchronising literals may carry at most 4096 octets. None = LITERAL+.
    max_nonsync_literal: int | None = None
    # Commands up to this many tokens are grammar-checked before a literal is
    # requested, so a bad command is refused without reading the literal.
    precheck_tokens: int = 512

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> Limits:
        base = cls(max_append_literal=config.max_message_size)
        base = replace(base, max_command=max(base.max_command, 2 * config.max_message_size))
        return replace(base, **overrides)


@dataclass(slots=True, frozen=True)
class ContinuationRequest:
    """A synchronising literal was announced and is within the limits.

    The session writes a continuation request (`+ …`), or refuses with
    :meth:`IMAPReceiver.reject_literal` plus a tagged response of its own.
    """

    tag: str
    command: str  # e.g. "APPEND", "UID SEARCH"
    size: int
    binary: bool = False  # literal8


@dataclass(slots=True, frozen=True)
class CommandError:
    """A command that was refused; the receiver already skipped all of it.

    `tag` is None when the line had no usable tag (answer with `* BAD`), or
    for an overlong raw line (the session knows which command it belongs to).
    """

    tag: str | None
    text: str
    status: str = "BAD"
    code: str | None = None  # e.g. "TOOBIG", "BADCHARSET (US-ASCII UTF-8)"
    command: str | None = None


@dataclass(slots=True, frozen=True)
class RawLine:
    """One line read in raw mode (without CRLF): a SASL response or IDLE's DONE."""

    data: bytes


Event = Command | ContinuationRequest | CommandError | RawLine

# `{n}`, `{n+}`, `~{n}`, `~{n+}` immediately before CRLF (RFC 7888 §3: the
# receiver MUST check the end of every line for a literal announcement).
_MARKER_RE: Final = re.compile(rb"(~?)\{([0-9]+)(\+?)\}\Z")
_TAIL_KEEP: Final = 32  # bytes of an overlong line kept to spot a marker at its end
_HUGE: Final = 2**64  # stands for an announced size with absurdly many digits

_LINE: Final = 0  # reading a command line
_LITERAL: Final = 1  # reading literal data into the command
_SKIP: Final = 2  # discarding literal data of a refused command
_DISCARD: Final = 3  # discarding the rest of an overlong line
_RAW: Final = 4  # the next line is a RawLine


@dataclass(slots=True, frozen=True)
class _Marker:
    size: int
    nonsync: bool
    binary: bool


def _marker(line: bytes) -> tuple[bytes, _Marker | None]:
    if not line.endswith(b"}"):
        return line, None
    m = _MARKER_RE.search(line)
    if m is None:
        return line, None
    digits = m.group(2)
    size = int(digits) if len(digits) <= 20 else _HUGE
    return line[: m.start()], _Marker(size, bool(m.group(3)), bool(m.group(1)))


def _line_tag(line: bytes) -> str | None:
    head = line.split(b" ", 1)[0]
    return head.decode("ascii") if TAG_RE.match(head) else None


class IMAPReceiver:
    """Frames and parses client input for one IMAP connection (server side)."""

    def __init__(self, limits: Limits | None = None, *, utf8_names: bool = False) -> None:
        self.limits = limits or Limits()
        # Mailbox names are UTF-8 (IMAP4rev2, UTF8=ACCEPT) rather than modified UTF-7.
        self.utf8_names = utf8_names
        self._buf = bytearray()
        self._pos = 0  # _buf[:_pos] is consumed
        self._scan = 0  # _buf[_pos:_scan] holds no LF: resume the search there
        self._mode = _LINE
        self._discard_raw = False  # the overlong line being discarded was a raw line
        self._tail = b""
        self._remaining = 0
        self._chunks: list[bytes] = []
        self._binary = False
        self._awaiting = False  # a ContinuationRequest was returned, no decision yet
        self._tokens: list[Token] = []
        self._depth = 0
        self._size = 0
        self._tag: str | None = None
        self._rejected = False  # the current command was refused: discard the rest
        # Where the prefix check of the command's last literal stopped: the
        # next parse of its tokens starts there (grammar.AppendResume).
        self._resume: AppendResume | None = None

    # -- public API -------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def feed(self, data: bytes | bytearray | memoryview = b"") -> list[Event]:
        """Add bytes and return every event they complete."""
        if data:
            self.receive_data(data)
        events: list[Event] = []
        while (event := self.next_event()) is not None:
            events.append(event)
        return events

    @property
    def buffered(self) -> int:
        """Bytes received but not consumed yet."""
        return len(self._buf) - self._pos

    @property
    def at_command_boundary(self) -> bool:
        return self._mode == _LINE and not self._tokens and not self._rejected

    def expect_raw_line(self) -> None:
        """Make the next line a RawLine (AUTHENTICATE responses, IDLE's DONE)."""
        if not self.at_command_boundary:
            raise RuntimeError("expect_raw_line() is only allowed between commands")
        self._mode = _RAW

    def cancel_raw_line(self) -> None:
        """Undo expect_raw_line() if the line has not arrived yet."""
        if self._mode == _RAW:
            self._mode = _LINE

    def reject_literal(self) -> None:
        """Refuse the literal of the last ContinuationRequest.

        The client will not send it (it gets the tagged response instead), so
        the whole command is dropped and the next bytes start a new command.
        """
        if not self._awaiting:
            raise RuntimeError("no synchronising literal is waiting for a decision")
        self._awaiting = False
        self._chunks = []
        self._remaining = 0
        self._mode = _LINE
        self._reset_command()

    def discard_buffered(self) -> int:
        """Drop unread input (after STARTTLS, before the TLS handshake)."""
        n = len(self._buf) - self._pos
        self._buf.clear()
        self._pos = self._scan = 0
        return n

    def next_event(self) -> Event | None:
        """The next complete event, or None when more bytes are needed."""
        # Asking for the next event after a ContinuationRequest accepts the literal.
        self._awaiting = False
        buf = self._buf
        max_line = self.limits.max_line
        while True:
            mode = self._mode
            pos = self._pos
            if mode in (_LITERAL, _SKIP):
                if self._remaining:
                    avail = len(buf) - pos
                    if not avail:
                        self._compact()
                        return None
                    take = min(self._remaining, avail)
                    if mode == _LITERAL:
                        self._chunks.append(bytes(buf[pos : pos + take]))
                    self._pos = self._scan = pos + take
                    self._remaining -= take
                    if self._remaining:
                        self._compact()
                        return None
                if mode == _LITERAL:
                    data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
                    self._chunks = []
                    self._tokens.append((LITERAL8 if self._binary else LITERAL, data))
                self._mode = _LINE
                continue

            idx = buf.find(b"\n", self._scan)
            end = len(buf) if idx < 0 else idx
            if end - pos > max_line + 1 and mode != _DISCARD:  # +1: the CR before LF
                # Overlong: report once, then discard without holding the line.
                event: Event | None = None
                self._discard_raw = mode == _RAW
                if mode == _RAW:
                    event = CommandError(None, "Line too long")
                elif not self._rejected:
                    event = self._too_long(bytes(buf[pos : pos + 200]))
                    self._rejected = True
                self._mode = mode = _DISCARD
                self._tail = b""
                if event is not None:
                    self._discard_upto(end)
                    if idx < 0:
                        self._compact()
                    return event
            if mode == _DISCARD:
                self._discard_upto(end)
                if idx < 0:
                    self._compact()
                    return None
                line = self._tail
                self._tail = b""
                self._pos = self._scan = idx + 1
                self._mode = _LINE
                if line.endswith(b"\r"):
                    line = line[:-1]
                if not self._discard_raw:
                    self._after_refused_line(line)
                continue
            if idx < 0:
                self._scan = len(buf)
                self._compact()
                return None

            line = bytes(buf[pos:idx])
            self._pos = self._scan = idx + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if mode == _RAW:
                self._mode = _LINE
                return RawLine(line)
            if self._rejected:
                self._after_refused_line(line)
                continue
            event = self._command_line(line)
            if event is not None:
                return event

    # -- internals ----------------------------------------------------------------

    def _discard_upto(self, end: int) -> None:
        """Drop buf[pos:end], keeping its last bytes to spot a literal marker
        (and a CR) at the end of the discarded line (RFC 7888 §3)."""
        buf = self._buf
        pos = self._pos
        if end > pos:
            self._tail = (self._tail + bytes(buf[max(pos, end - _TAIL_KEEP) : end]))[-_TAIL_KEEP:]
        self._pos = self._scan = end

    def _compact(self) -> None:
        """Forget consumed input; called when waiting for more, so at most once
        per receive_data and never per line."""
        if self._pos:
            del self._buf[: self._pos]
            self._scan -= self._pos
            self._pos = 0

    def _reset_command(self) -> None:
        self._tokens = []
        self._depth = 0
        self._size = 0
        self._tag = None
        self._rejected = False
        self._resume = None

    def _too_long(self, head: bytes) -> CommandError:
        tag = self._tag if (self._tokens or self._tag is not None) else _line_tag(head)
        return CommandError(
            tag,
            f"Line longer than {self.limits.max_line} octets",
            command=command_name_of(self._tokens),
        )

    def _after_refused_line(self, line: bytes) -> None:
        """The last line of a refused command ended: skip a LITERAL+ literal that
        follows it (the client sends it regardless), else the command is over."""
        _, marker = _marker(line)
        if marker is not None and marker.nonsync:
            self._rejected = True
            self._mode = _SKIP
            self._remaining = marker.size
        else:
            # No literal, or a synchronising one the client will not send
            # after our tagged response (RFC 9051 §7.5).
            self._reset_command()

    def _refuse(
        self,
        text: str,
        marker: _Marker | None,
        status: str = "BAD",
        code: str | None = None,
    ) -> CommandError:
        event = CommandError(self._tag, text, status, code, command_name_of(self._tokens))
        if marker is not None and marker.nonsync:
            # RFC 7888 §4: read and discard the non-synchronising literal (the
            # tagged response may go out before it has arrived).
            self._rejected = True
            self._mode = _SKIP
            self._remaining = marker.size
        else:
            self._reset_command()
        return event

    def _command_line(self, line: bytes) -> Event | None:
        limits = self.limits
        first = not self._tokens and self._size == 0
        if first:
            if not line:
                return None  # blank lines between commands are ignored
            self._tag = _line_tag(line)
        self._size += len(line) + 2
        prefix, marker = _marker(line)
        try:
            self._depth = lex_line(prefix, self._tokens, self._depth, limits.max_depth)
        except ParseError as e:
            return self._refuse(e.message, marker)
        if self._size > limits.max_command:
            return self._refuse("Command too long", marker, code="TOOBIG")
        if marker is None:
            tokens, tag, resume = self._tokens, self._tag, self._resume
            self._reset_command()
            try:
                return parse_command(
                    tokens,
                    utf8=self.utf8_names,
                    max_depth=limits.max_depth,
                    max_ranges=limits.max_ranges,
                    resume=resume,
                )
            except ParseError as e:
                return CommandError(tag, e.message, e.status, e.code, command_name_of(tokens))
            except Incomplete:  # pragma: no cover - no PENDING token in a complete command
                return CommandError(tag, "Incomplete command", command=command_name_of(tokens))
        return self._announce(marker)

    def _announce(self, marker: _Marker) -> Event | None:
        limits = self.limits
        if self._tag is None:
            return self._refuse("Missing or invalid command tag", marker)
        name = command_name_of(self._tokens) or ""
        role: str | None = None
        if len(self._tokens) <= limits.precheck_tokens:
            probe = [*self._tokens, (PENDING8 if marker.binary else PENDING, b"")]
            try:
                parse_command(
                    probe,
                    utf8=self.utf8_names,
                    max_depth=limits.max_depth,
                    max_ranges=limits.max_ranges,
                    resume=self._resume,
                )
            except Incomplete as inc:
                role = inc.role
                self._resume = inc.resume
            except ParseError as e:
                return self._refuse(e.message, marker, e.status, e.code)
            else:  # pragma: no cover - the probe cannot parse as complete
                return self._refuse("Unexpected literal", marker)
        if role is None:
            # Past the precheck budget (e.g. a long MULTIAPPEND): in APPEND every
            # literal after the mailbox name is message data.
            role = "message" if name == "APPEND" and len(self._tokens) > 4 else "string"
        size = marker.size
        limit = limits.max_append_literal if role == "message" else limits.max_literal
        if size > limit or self._size + size > limits.max_command:
            if size > limit:
                what = "Message" if role == "message" else "Literal"
                text = f"{what} larger than {limit} octets"
            else:
                text = f"Command larger than {limits.max_command} octets"
            if role == "message" and not marker.nonsync:
                return self._refuse(text, marker, "NO", code="TOOBIG")
            # RFC 7888 §5: a refused non-synchronising APPEND literal gets BAD [TOOBIG].
            return self._refuse(text, marker, code="TOOBIG")
        if (
            marker.nonsync
            and limits.max_nonsync_literal is not None
            and size > limits.max_nonsync_literal
        ):
            # RFC 7888 §5 (LITERAL-) / RFC 9051 §4.3
            return self._refuse(
                f"Non-synchronizing literals are limited to {limits.max_nonsync_literal}"
                " octets; use {n} for larger ones",
                marker,
                code="TOOBIG",
            )
        self._size += size
        self._mode = _LITERAL
        self._remaining = size
        self._chunks = []
        self._binary = marker.binary
        if marker.nonsync:
            return None
        self._awaiting = True
        return ContinuationRequest(self._tag, name, size, marker.binary)
