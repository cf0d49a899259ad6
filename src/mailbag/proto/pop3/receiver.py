"""POP3 command framing: bytes in arbitrary chunks → one event at a time.

Pull-based (`feed` then `next_event` until it returns None) so the session can
switch the receiver into SASL-continuation mode between two lines that arrived
in the same packet: after `AUTH PLAIN` the *next* line is a base64 response,
not a command, even if the client pipelined it.
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 2449 §4: commands up to 255 octets including CRLF MUST be accepted. We take
# twice the response limit (512) before calling a line too long, as Dovecot and
# others are lenient here too.
MAX_COMMAND_LINE = 512
# RFC 5034 §4: a SASL response line has no fixed limit; PLAIN with a 1 KiB
# payload (auth/sasl.py's cap) is about 1.4 KiB of base64.
MAX_SASL_LINE = 4096
# RFC 1939 §3 / RFC 2449 §3: a message number is a decimal; anything longer than
# this is not a message we have, and parsing it must stay cheap.
MAX_NUMBER_DIGITS = 10


@dataclass(slots=True, frozen=True)
class Command:
    """One command line. `keyword` is upper-cased (RFC 1939 §3: case-insensitive).

    `args` are the SP-separated arguments; `rest` is everything after the first
    SP unsplit, for PASS whose single argument may contain spaces (RFC 1939 §7).
    """

    keyword: str
    args: tuple[str, ...]
    rest: str


@dataclass(slots=True, frozen=True)
class SASLResponse:
    """One client line during an AUTH exchange (RFC 5034 §4), CRLF removed."""

    line: bytes


@dataclass(slots=True, frozen=True)
class BadLine:
    """A line that cannot be a command; the session answers `-ERR <reason>`."""

    reason: str


Event = Command | SASLResponse | BadLine

LINE_TOO_LONG = "line too long"


class POP3Receiver:
    """Splits the byte stream into lines and parses command lines.

    Memory is bounded: at most one line's limit plus one unprocessed chunk is
    held. An overlong line is dropped as it arrives and reported once its end
    is seen, so the connection stays in sync.
    """

    def __init__(
        self, max_line: int = MAX_COMMAND_LINE, max_sasl_line: int = MAX_SASL_LINE
    ) -> None:
        self.max_line = max_line
        self.max_sasl_line = max_sasl_line
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf known to hold no LF
        self._skipping = False  # inside an overlong line, dropping bytes until LF
        self._sasl = False

    def feed(self, data: bytes) -> None:
        self._buf += data

    def expect_sasl_response(self) -> None:
        """Read the next line as a SASL response instead of a command."""
        self._sasl = True

    @property
    def in_sasl(self) -> bool:
        return self._sasl

    def discard(self) -> int:
        """Drop everything buffered (RFC 2595 §4: nothing sent before STLS
        completes may be executed after it). Returns the number of bytes dropped."""
        n = len(self._buf)
        self._buf.clear()
        self._scanned = 0
        self._skipping = False
        self._sasl = False
        return n

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next_event(self) -> Event | None:
        """The next complete event, or None when more bytes are needed."""
        limit = self.max_sasl_line if self._sasl else self.max_line
        nl = self._buf.find(b"\n", self._scanned)
        if nl < 0:
            if self._skipping:
                self._buf.clear()
                self._scanned = 0
            elif len(self._buf) > limit:
                self._skipping = True
                self._buf.clear()
                self._scanned = 0
            else:
                self._scanned = len(self._buf)
            return None
        line = bytes(self._buf[: nl + 1])
        del self._buf[: nl + 1]  # O(1) amortised at the front of a bytearray
        self._scanned = 0
        sasl, self._sasl = self._sasl, False
        if self._skipping or len(line) > limit:
            self._skipping = False
            return BadLine(LINE_TOO_LONG)
        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if sasl:
            return SASLResponse(line)
        return parse_command(line)


def parse_command(line: bytes) -> Command | BadLine:
    """Parse one command line without its line end."""
    if b"\0" in line:
        return BadLine("NUL character in command")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        # RFC 6856 §2.2: UTF-8 that is not well-formed MUST be rejected.
        return BadLine("command is not valid UTF-8")
    # RFC 1939 §3: keyword and arguments are separated by a single SP. We also
    # accept runs of SP (and a trailing SP) like most servers, since no argument
    # except PASS's can contain a space.
    keyword, _, rest = text.partition(" ")
    if not keyword:
        return BadLine("empty command" if not text.strip() else "command must start with a keyword")
    if not keyword.isascii() or not keyword.isprintable():
        return BadLine("invalid command keyword")
    args = tuple(filter(None, rest.split(" ")))
    return Command(keyword.upper(), args, rest)


def parse_number(arg: str) -> int | None:
    """A message number or line count: ASCII digits only (no sign, no spaces)."""
    if not arg or len(arg) > MAX_NUMBER_DIGITS or not arg.isascii() or not arg.isdigit():
        return None
    return int(arg)
