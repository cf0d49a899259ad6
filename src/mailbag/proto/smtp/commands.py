"""SMTP/LMTP commands as frozen values, and the parser for one command line.

`parse_command` takes a line without its line break and returns a command or
raises :class:`CommandError` carrying the reply to send. It knows the grammar
of RFC 5321 §4.1 (with the SIZE, BODY and SMTPUTF8 parameters of RFC 1870,
RFC 6152 and RFC 6531), not the session state: whether EHLO is allowed in LMTP
or MAIL before HELO is the session's business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .replies import Reply

# RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the brackets.
MAX_PATH = 256


class CommandError(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


@dataclass(slots=True, frozen=True)
class Hello:
    verb: str  # "EHLO", "HELO" or "LHLO"
    domain: str


@dataclass(slots=True, frozen=True)
class Mail:
    reverse_path: str  # "" for the null reverse-path <>
    size: int | None = None  # RFC 1870 SIZE=
    body: str | None = None  # RFC 6152 BODY=7BIT|8BITMIME
    smtputf8: bool = False  # RFC 6531 §3.4


@dataclass(slots=True, frozen=True)
class Rcpt:
    forward_path: str  # may be a bare local part ("bob", "Postmaster")


@dataclass(slots=True, frozen=True)
class Data:
    pass


@dataclass(slots=True, frozen=True)
class Bdat:
    """RFC 3030 §2: `size` octets of message data follow the command line at
    once, without waiting for a reply; `last` ends the message."""

    size: int
    last: bool


@dataclass(slots=True, frozen=True)
class Rset:
    pass


@dataclass(slots=True, frozen=True)
class Noop:
    argument: str = ""


@dataclass(slots=True, frozen=True)
class Quit:
    pass


@dataclass(slots=True, frozen=True)
class Vrfy:
    argument: str


@dataclass(slots=True, frozen=True)
class Help:
    argument: str = ""


@dataclass(slots=True, frozen=True)
class StartTLS:
    pass


Command = Hello | Mail | Rcpt | Data | Bdat | Rset | Noop | Quit | Vrfy | Help | StartTLS

# Known SMTP verbs we deliberately do not implement: 502 rather than 500, so a
# client learns the command exists but is off here (RFC 5321 §4.2.4).
NOT_IMPLEMENTED = frozenset({"EXPN", "TURN", "ETRN", "ATRN", "AUTH", "SEND", "SOML", "SAML"})

_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
# RFC 5321 §4.1.2 esmtp-value, widened to UTF-8 by RFC 6531 §3.3.
_VALUE = re.compile(r"[^\x00-\x20=\x7f]+")
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\x80-\U0010ffff]+")
_LET_DIG = r"[A-Za-z0-9\x80-\U0010ffff]"
_LABEL = re.compile(rf"{_LET_DIG}(?:[A-Za-z0-9\-\x80-\U0010ffff]*{_LET_DIG})?")
_LITERAL = re.compile(r"\[[\x21-\x5a\x5e-\x7e]+\]")
_QTEXT = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\x80-\U0010ffff]|\\[\x20-\x7e])*"')


# RFC 3030 §2: bdat-cmd ::= "BDAT" SP chunk-size [ SP end-marker ]. More than
# 20 digits would be a size no client means (RFC 1870 allows 20 for SIZE).
_BDAT = re.compile(r"([0-9]{1,20})(?: (LAST))?", re.IGNORECASE)

# Control characters but TAB: a C-speed search instead of a loop over the line.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def _error(code: int, enhanced: str, text: str) -> CommandError:
    return CommandError(Reply(code, enhanced, text))


# The envelope commands of nearly every delivery, `MAIL FROM:<a@b.c>` and
# `RCPT TO:<a@b.c>` with a plain ASCII address and no parameters, in one
# C-speed match; anything else takes the full parser, which gives the same
# command for these lines (a test holds the two together).
_ASCII_ATOM = rb"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
_ASCII_LABEL = rb"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PLAIN_ENVELOPE = re.compile(
    rb"(MAIL FROM|RCPT TO):<(%s(?:\.%s)*@%s(?:\.%s)*)>[ \t]*"
    % (_ASCII_ATOM, _ASCII_ATOM, _ASCII_LABEL, _ASCII_LABEL),
    re.IGNORECASE,
)


def parse_command(line: bytes) -> Command:
    """Parse one command line (without CRLF)."""
    m = _PLAIN_ENVELOPE.fullmatch(line)
    if m is not None and len(m.group(2)) + 2 <= MAX_PATH:
        path = m.group(2).decode("ascii")
        return Mail(path) if m.group(1)[0] in b"Mm" else Rcpt(path)
    return parse_command_fully(line)


def parse_command_fully(line: bytes) -> Command:
    """`parse_command` without its shortcut for plain MAIL and RCPT."""
    if b"\0" in line:
        raise _error(500, "5.5.2", "Error: NUL character in command")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise _error(500, "5.5.2", "Error: command is not valid UTF-8") from None
    if _CONTROL.search(text):
        raise _error(500, "5.5.2", "Error: control character in command")
    verb, _, rest = text.partition(" ")
    verb = verb.upper()
    # Some clients end lines with a stray blank; RFC 5321 §4.1.1 has none, but
    # being lenient here costs nothing.
    rest = rest.rstrip(" \t")
    match verb:
        case "EHLO" | "HELO" | "LHLO":
            domain = rest.strip()
            if not domain:
                raise _error(501, "5.5.4", f"Syntax: {verb} hostname")
            return Hello(verb, domain.split()[0])
        case "MAIL":
            return _parse_mail(rest)
        case "RCPT":
            return _parse_rcpt(rest)
        case "DATA" | "RSET" | "QUIT" | "STARTTLS":
            if rest:
                # RFC 3207 §4: STARTTLS has no parameters (501); likewise the others.
                raise _error(501, "5.5.4", f"Syntax: {verb}")
            bare: dict[str, Command] = {
                "DATA": Data(),
                "RSET": Rset(),
                "QUIT": Quit(),
                "STARTTLS": StartTLS(),
            }
            return bare[verb]
        case "BDAT":
            m = _BDAT.fullmatch(rest)
            if m is None:
                # The data after a BDAT we cannot read is then parsed as
                # commands, which RFC 3030 §2 tells the receiver to expect.
                raise _error(501, "5.5.4", "Syntax: BDAT chunk-size [LAST]")
            return Bdat(int(m.group(1)), m.group(2) is not None)
        case "NOOP":
            # RFC 5321 §4.1.1.9: a parameter string may be given and is ignored.
            return Noop(rest)
        case "VRFY":
            if not rest.strip():
                raise _error(501, "5.5.4", "Syntax: VRFY address")
            return Vrfy(rest.strip())
        case "HELP":
            return Help(rest.strip())
        case _ if verb in NOT_IMPLEMENTED:
            raise _error(502, "5.5.1", "Error: command not implemented")
        case _:
            raise _error(500, "5.5.2", "Error: command not recognized")


def _strip_prefix(rest: str, prefix: str, syntax: str) -> str:
    if rest[: len(prefix)].upper() != prefix:
        raise _error(501, "5.5.4", f"Syntax: {syntax}")
    # RFC 5321 §4.1.2 has no space after the colon; many clients send one anyway.
    return rest[len(prefix) :].lstrip(" ")


def _split_path(arg: str, syntax: str) -> tuple[str, str]:
    """Return (text between the angle brackets, parameter text after them)."""
    if not arg.startswith("<"):
        raise _error(501, "5.5.4", f"Syntax: {syntax}")
    i, quoted = 1, False
    while i < len(arg):
        c = arg[i]
        if quoted and c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == ">" and not quoted:
            break
        i += 1
    else:
        raise _error(501, "5.5.4", f"Syntax: {syntax}")
    inner, params = arg[1:i], arg[i + 1 :]
    if params and not params.startswith(" "):
        raise _error(501, "5.5.4", f"Syntax: {syntax}")
    return inner, params.strip(" ")


def _mailbox(inner: str, bad: Reply) -> str:
    """Validate a path's inside; drop a source route; return the mailbox."""
    if len(inner) + 2 > MAX_PATH:
        raise CommandError(Reply(bad.code, bad.enhanced, "Error: path too long"))
    if inner.startswith("@"):
        # RFC 5321 §4.1.1.2 / Appendix C: source routes must be accepted and
        # SHOULD be ignored. The route ends at the first ":" outside a literal.
        depth, cut = 0, -1
        for i, c in enumerate(inner):
            if c == "[":
                depth += 1
            elif c == "]":
                depth -= 1
            elif c == ":" and depth == 0:
                cut = i
                break
        if cut < 0:
            raise CommandError(bad)
        for hop in inner[:cut].split(","):
            if not hop.startswith("@") or not _valid_domain(hop[1:]):
                raise CommandError(bad)
        inner = inner[cut + 1 :]
    if inner.startswith('"'):
        m = _QTEXT.match(inner)
        if m is None:
            raise CommandError(bad)
        local, rest = m.group(), inner[m.end() :]
    else:
        local, at, domain = inner.rpartition("@")
        if not at:
            local, rest = inner, ""
        else:
            rest = "@" + domain
        if not all(_ATEXT.fullmatch(atom) for atom in local.split(".")):
            raise CommandError(bad)
    if rest and not (rest.startswith("@") and _valid_domain(rest[1:])):
        raise CommandError(bad)
    return local + rest


def _valid_domain(domain: str) -> bool:
    if _LITERAL.fullmatch(domain):
        return True
    return bool(domain) and all(_LABEL.fullmatch(label) for label in domain.split("."))


def _params(text: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for item in text.split():
        keyword, eq, value = item.partition("=")
        if not _KEYWORD.fullmatch(keyword) or (eq and not _VALUE.fullmatch(value)):
            raise _error(501, "5.5.4", f"Error: bad parameter syntax {item!r}")
        keyword = keyword.upper()
        if keyword in seen:
            raise _error(501, "5.5.4", f"Error: duplicate parameter {keyword}")
        seen.add(keyword)
        out.append((keyword, value if eq else None))
    return out


def _parse_mail(rest: str) -> Mail:
    syntax = "MAIL FROM:<address>"
    inner, params = _split_path(_strip_prefix(rest, "FROM:", syntax), syntax)
    bad = Reply(501, "5.1.7", "Error: bad sender address syntax")
    # RFC 5321 §4.5.5: <> is the null reverse-path of bounces.
    path = _mailbox(inner, bad) if inner else ""
    size: int | None = None
    body: str | None = None
    smtputf8 = False
    for keyword, value in _params(params):
        match keyword:
            case "SIZE":
                # RFC 1870 §6: size-value ::= 1*20DIGIT
                if value is None or not value.isascii() or not value.isdigit() or len(value) > 20:
                    raise _error(501, "5.5.4", "Error: bad SIZE parameter")
                size = int(value)
            case "BODY":
                kind = (value or "").upper()
                if kind not in ("7BIT", "8BITMIME"):
                    # BINARYMIME (RFC 3030 §3) is not offered: stored messages are
                    # line-oriented text, and IMAP could not serve binary parts to
                    # clients without the BINARY extension.
                    raise _error(501, "5.5.4", f"Error: unsupported BODY type {value!r}")
                body = kind
            case "SMTPUTF8":
                if value is not None:
                    raise _error(501, "5.5.4", "Error: SMTPUTF8 takes no value")
                smtputf8 = True
            case _:
                # RFC 5321 §4.1.1.11: 555 for parameters not recognised.
                raise _error(555, "5.5.4", f"Error: unsupported parameter {keyword}")
    return Mail(path, size, body, smtputf8)


def _parse_rcpt(rest: str) -> Rcpt:
    syntax = "RCPT TO:<address>"
    inner, params = _split_path(_strip_prefix(rest, "TO:", syntax), syntax)
    bad = Reply(501, "5.1.3", "Error: bad recipient address syntax")
    if not inner:
        raise CommandError(bad)
    path = _mailbox(inner, bad)
    for keyword, _value in _params(params):
        # We advertise no RCPT parameters (no DSN), so every one is unknown.
        raise _error(555, "5.5.4", f"Error: unsupported parameter {keyword}")
    return Rcpt(path)
