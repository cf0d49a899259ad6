"""The IMAP command grammar: a line lexer and a recursive-descent parser over tokens.

The receiver lexes each line exactly once, when it is complete, and appends
literals as tokens; the parser then runs over the finished token list (RFC 9051
§9 ABNF, plus the extensions listed in commands.py). Lexing never spans lines,
so a literal arriving never causes a line to be looked at again.

The parser can also check a *prefix* of a command that ends in a literal still
to come (a `PENDING` token): it stops with :class:`Incomplete` when it reaches
the literal in a place where a string is allowed, or fails with
:class:`ParseError` if the command is already wrong. The receiver uses this to
refuse a bad command before asking the client for literal data.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NoReturn

from ...errors import ProtocolError
from . import mutf7
from .commands import (
    LIST_RETURN_OPTIONS,
    LIST_SELECT_OPTIONS,
    SEARCH_RETURN_OPTIONS,
    STATUS_ITEMS,
    AppendCommand,
    AppendMessage,
    AuthenticateCommand,
    CapabilityCommand,
    CheckCommand,
    CloseCommand,
    Command,
    CopyCommand,
    CreateCommand,
    DeleteCommand,
    EnableCommand,
    ExamineCommand,
    ExpungeCommand,
    FetchCommand,
    IdleCommand,
    ListCommand,
    LoginCommand,
    LogoutCommand,
    LsubCommand,
    MoveCommand,
    NamespaceCommand,
    NoopCommand,
    QResyncParams,
    RenameCommand,
    SearchCommand,
    SelectCommand,
    StartTLSCommand,
    StatusCommand,
    StoreCommand,
    StoreMode,
    SubscribeCommand,
    UIDExpungeCommand,
    UnselectCommand,
    UnsubscribeCommand,
)
from .fetch import (
    MACROS,
    Attr,
    BinarySection,
    BinarySize,
    BodySection,
    FetchAttribute,
    Partial,
    Section,
    SectionText,
)
from .search import (
    FLAG_KEYS,
    STRING_FIELDS,
    AllKey,
    AndKey,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    NewKey,
    NotKey,
    OrKey,
    SearchKey,
    SeqKey,
    SizeKey,
    StringKey,
    UIDKey,
)
from .seqset import SeqSet, SeqSetError
from .wire import (
    ASTRING_RE,
    ATOM_RE,
    LIST_CHAR_RE,
    TAG_RE,
    canonical_flag,
    canonical_special_use,
    parse_date,
    parse_datetime,
)

# -- tokens ---------------------------------------------------------------------

SP: Final = 0
LPAREN: Final = 1
RPAREN: Final = 2
WORD: Final = 3  # a run of non-special characters: atom, number, seq-set, flag, …
QUOTED: Final = 4  # value with escapes removed
LITERAL: Final = 5
LITERAL8: Final = 6
PENDING: Final = 7  # a literal announced but not yet received (prefix checks)
PENDING8: Final = 8
_END: Final = -1

Token = tuple[int, bytes]
SP_TOKEN: Final[Token] = (SP, b" ")
LPAREN_TOKEN: Final[Token] = (LPAREN, b"(")
RPAREN_TOKEN: Final[Token] = (RPAREN, b")")

_STRING_KINDS: Final = frozenset({QUOTED, LITERAL, LITERAL8, PENDING, PENDING8})

_WORD_RE: Final = re.compile(rb'[^\x00-\x20\x7f(){"]+')
_QUOTED_RE: Final = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_UNESCAPE_RE: Final = re.compile(rb"\\(.)")
_DIGITS_RE: Final = re.compile(rb"[0-9]+\Z")


class ParseError(ProtocolError):
    """The command breaks the grammar: answered with a tagged BAD (or NO)."""

    def __init__(self, message: str, *, status: str = "BAD", code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class Incomplete(Exception):
    """A valid prefix that stops at a pending literal in a string position."""

    def __init__(self, role: str, resume: AppendResume | None = None) -> None:
        super().__init__(role)
        self.role = role  # "message" (APPEND data) or "string"
        # Where a parse of the same tokens, with the literal arrived, can
        # pick up instead of starting over (parse_command's `resume`).
        self.resume = resume


@dataclass(slots=True, frozen=True)
class AppendResume:
    """An APPEND parsed up to the data of a message: the literal at token
    `index` is that message's data. Parsing the prefix again, once per
    literal, cost as much as the first time (a third of the receiver's work
    for a pipelined APPEND with flags and a date)."""

    tag: str
    mailbox: str
    messages: tuple[AppendMessage, ...]
    flags: tuple[str, ...]
    when: dt.datetime | None
    index: int


def lex_line(line: bytes, tokens: list[Token], depth: int, max_depth: int) -> int:
    """Append the tokens of one line (without CRLF or literal marker); return the
    parenthesis depth afterwards. Raises ParseError on a lexical error."""
    i = 0
    n = len(line)
    append = tokens.append
    while i < n:
        c = line[i]
        if c == 0x20:
            append(SP_TOKEN)
            i += 1
        elif c == 0x28:
            depth += 1
            if depth > max_depth:
                # DESIGN.md §2.5: bounded nesting, refused before any recursion.
                raise ParseError(f"Parentheses nested deeper than {max_depth} levels")
            append(LPAREN_TOKEN)
            i += 1
        elif c == 0x29:
            depth -= 1
            if depth < 0:
                raise ParseError('Unbalanced ")"')
            append(RPAREN_TOKEN)
            i += 1
        elif c == 0x22:
            m = _QUOTED_RE.match(line, i)
            if m is None:
                raise ParseError(
                    'Invalid quoted string (unterminated, or "\\" not followed by " or \\)'
                )
            raw = m.group(1)
            if b"\\" in raw:
                raw = _UNESCAPE_RE.sub(rb"\1", raw)
            append((QUOTED, raw))
            i = m.end()
        elif c == 0x7B:
            raise ParseError('"{" is only allowed in a literal announcement at the end of a line')
        else:
            m = _WORD_RE.match(line, i)
            if m is None:
                raise ParseError(f"Control character 0x{c:02x} in command")
            append((WORD, m.group()))
            i = m.end()
    return depth


def command_name_of(tokens: list[Token]) -> str | None:
    """`APPEND`, `UID FETCH`, … from the first tokens (for limits and messages)."""
    if len(tokens) < 3 or tokens[1][0] != SP or tokens[2][0] != WORD:
        return None
    name = tokens[2][1].upper()
    if name == b"UID" and len(tokens) >= 5 and tokens[3][0] == SP and tokens[4][0] == WORD:
        return "UID " + tokens[4][1].upper().decode("ascii", "replace")
    return name.decode("ascii", "replace")


_KIND_NAMES: Final = {
    SP: "a space",
    LPAREN: '"("',
    RPAREN: '")"',
    QUOTED: "a quoted string",
    LITERAL: "a literal",
    LITERAL8: "a literal8",
    PENDING: "a literal",
    PENDING8: "a literal8",
    _END: "the end of the command",
}

_SECTION_RE: Final = re.compile(
    rb"(?:([1-9][0-9]*(?:\.[1-9][0-9]*)*)(?:\.(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME))?"
    rb"|(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT))?\Z"
)
_PART_RE: Final = re.compile(rb"(?:[1-9][0-9]*(?:\.[1-9][0-9]*)*)?\Z")
_PARTIAL_RE: Final = re.compile(rb"<([0-9]{1,19})\.([0-9]{1,19})>\Z")
_BASE64_RE: Final = re.compile(rb"[A-Za-z0-9+/]*={0,2}\Z")
_CHARSET_RE: Final = re.compile(
    r"(US-ASCII|UTF-8|ISO-8859-[0-9]{1,2}|WINDOWS-125[0-8]|KOI8-[RU]|ISO-2022-JP|"
    r"SHIFT_JIS|EUC-JP|EUC-KR|GB2312|GBK|GB18030|BIG5)\Z",
    re.IGNORECASE,
)
SUPPORTED_CHARSETS: Final = ("US-ASCII", "UTF-8")  # advertised in BADCHARSET

MAX32: Final = 2**32 - 1
MAX63: Final = 2**63 - 1


class _Parser:
    __slots__ = ("_charset", "_max_depth", "_max_ranges", "i", "n", "toks", "utf8")

    def __init__(self, tokens: list[Token], *, utf8: bool, max_depth: int, max_ranges: int) -> None:
        self.toks = tokens
        self.i = 0
        self.n = len(tokens)
        self.utf8 = utf8
        self._max_depth = max_depth
        self._max_ranges = max_ranges
        self._charset = "utf-8"

    # -- token access -----------------------------------------------------------

    def kind(self) -> int:
        return self.toks[self.i][0] if self.i < self.n else _END

    def peek_word(self) -> bytes | None:
        """The upper-cased word at the cursor, or None."""
        if self.i < self.n and self.toks[self.i][0] == WORD:
            return self.toks[self.i][1].upper()
        return None

    def fail(self, expected: str) -> NoReturn:
        k = self.kind()
        if k in (PENDING, PENDING8) and expected:
            # A literal cannot stand where something other than a string goes.
            raise ParseError(f"Expected {expected}, got a literal")
        got = _KIND_NAMES.get(k)
        if got is None:
            word = self.toks[self.i][1]
            shown = word[:40].decode("ascii", "replace")
            got = f'"{shown}"' + ("…" if len(word) > 40 else "")
        raise ParseError(f"Expected {expected}, got {got}")

    def sp(self, before: str) -> None:
        if self.kind() != SP:
            self.fail(f"a space before {before}")
        self.i += 1

    def lparen(self, what: str) -> None:
        if self.kind() != LPAREN:
            self.fail(f'"(" to start {what}')
        self.i += 1

    def rparen(self, what: str) -> None:
        if self.kind() != RPAREN:
            self.fail(f'")" to end {what}')
        self.i += 1

    def end(self, command: str) -> None:
        if self.i < self.n:
            self.fail(f"the end of the {command} command")

    def word(self, what: str) -> bytes:
        if self.kind() != WORD:
            self.fail(what)
        w = self.toks[self.i][1]
        self.i += 1
        return w

    def atom(self, what: str) -> bytes:
        w = self.word(what)
        if not ATOM_RE.match(w):
            self.i -= 1
            raise ParseError(f"Invalid characters in {what}")
        return w

    def keyword(self, what: str) -> str:
        return self.atom(what).upper().decode("ascii")

    def _pending(self, role: str = "string") -> NoReturn:
        raise Incomplete(role)

    def string(self, what: str) -> bytes:
        k = self.kind()
        if k in (QUOTED, LITERAL):
            v = self.toks[self.i][1]
            if k == LITERAL and b"\x00" in v:
                # RFC 9051 §9: literal = … *CHAR8 (no NUL); only literal8 may carry NUL.
                raise ParseError(f"NUL in {what[2:] if what.startswith('a ') else what}")
            self.i += 1
            return v
        if k == PENDING:
            self._pending()
        if k in (LITERAL8, PENDING8):
            raise ParseError("literal8 (~{n}) is only allowed for APPEND message data")
        self.fail(what)

    def astring(self, what: str) -> bytes:
        if self.kind() == WORD:
            w = self.toks[self.i][1]
            if not ASTRING_RE.match(w):
                if any(b >= 0x80 for b in w):
                    raise ParseError(f"8-bit characters in {what} must be quoted or a literal")
                raise ParseError(f"Invalid characters in {what} (quote it)")
            self.i += 1
            return w
        return self.string(what)

    def utf8_text(self, raw: bytes, what: str) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError(f"{what} is not valid UTF-8") from None

    def decode_name(self, raw: bytes, what: str) -> str:
        if self.utf8:
            return self.utf8_text(raw, what)
        try:
            return mutf7.decode(raw)
        except mutf7.MUTF7Error as e:
            raise ParseError(f"{what} is not valid modified UTF-7: {e}") from None

    def mailbox(self, what: str = "a mailbox name") -> str:
        name = self.decode_name(self.astring(what), "Mailbox name")
        # RFC 9051 §5.1 / §9 `mailbox`: INBOX is case-insensitive.
        return "INBOX" if name.upper() == "INBOX" else name

    def list_mailbox(self, what: str) -> str:
        if self.kind() == WORD:
            w = self.toks[self.i][1]
            if not LIST_CHAR_RE.match(w):
                raise ParseError(f"Invalid characters in {what} (quote it)")
            self.i += 1
            return self.decode_name(w, "Mailbox pattern")
        return self.decode_name(self.string(what), "Mailbox pattern")

    def number(self, what: str, *, maximum: int = MAX32, nonzero: bool = False) -> int:
        w = self.word(what)
        if not _DIGITS_RE.match(w) or len(w) > 20:
            self.i -= 1
            self.fail(what)
        v = int(w)
        if v > maximum or (nonzero and v == 0):
            raise ParseError(f"Number out of range for {what}: {w.decode('ascii')}")
        return v

    def seqset(self, what: str, *, allow_star: bool = True, allow_saved: bool = True) -> SeqSet:
        w = self.word(what)
        try:
            return SeqSet.parse(
                w, allow_star=allow_star, allow_saved=allow_saved, max_ranges=self._max_ranges
            )
        except SeqSetError as e:
            raise ParseError(f"Invalid {what}: {e}") from None

    def flag(self) -> str:
        w = self.word("a flag")
        body = w[1:] if w.startswith(b"\\") else w
        if not ATOM_RE.match(body):
            raise ParseError(f"Invalid flag {w[:40].decode('ascii', 'replace')!r}")
        text = w.decode("ascii")
        return canonical_flag(text) if text.startswith("\\") else text

    def flag_list(self) -> tuple[str, ...]:
        self.lparen("a flag list")
        flags: list[str] = []
        if self.kind() != RPAREN:
            flags.append(self.flag())
            while self.kind() == SP:
                self.i += 1
                flags.append(self.flag())
        self.rparen("the flag list")
        return tuple(flags)

    def modseq(self, what: str) -> int:
        # RFC 7162 §7 mod-sequence-valzer; 0 is accepted everywhere (harmless).
        return self.number(what, maximum=MAX63)

    # -- commands ---------------------------------------------------------------

    def command(self) -> Command:
        if self.kind() != WORD or not TAG_RE.match(self.toks[0][1]):
            raise ParseError("Missing or invalid command tag")
        tag = self.toks[0][1].decode("ascii")
        self.i = 1
        self.sp("the command name")
        name = self.word("a command name").upper()
        handler = _HANDLERS.get(name)
        if handler is None:
            shown = name[:40].decode("ascii", "replace")
            raise ParseError(f"Unknown command {shown}")
        return handler(self, tag)

    def cmd_authenticate(self, tag: str) -> Command:
        self.sp("the SASL mechanism")
        mech = self.keyword("a SASL mechanism name")
        initial: bytes | None = None
        if self.kind() == SP:
            self.i += 1
            raw = self.word("a base64 initial response")
            # RFC 4959 §7: initial-resp = base64 / "="; "=" is an empty response.
            if raw == b"=":
                initial = b""
            else:
                if not _BASE64_RE.match(raw):
                    raise ParseError("Invalid base64 in the initial response")
                try:
                    initial = base64.b64decode(raw, validate=True)
                except (binascii.Error, ValueError):
                    raise ParseError("Invalid base64 in the initial response") from None
        self.end("AUTHENTICATE")
        return AuthenticateCommand(tag, mech, initial)

    def cmd_login(self, tag: str) -> Command:
        self.sp("the user name")
        user = self.utf8_text(self.astring("a user name"), "User name")
        self.sp("the password")
        password = self.utf8_text(self.astring("a password"), "Password")
        self.end("LOGIN")
        return LoginCommand(tag, user, password)

    def cmd_enable(self, tag: str) -> Command:
        caps: list[str] = []
        self.sp("a capability name")
        caps.append(self.keyword("a capability name"))
        while self.kind() == SP:
            self.i += 1
            caps.append(self.keyword("a capability name"))
        self.end("ENABLE")
        return EnableCommand(tag, tuple(caps))

    def _select(self, tag: str, examine: bool) -> Command:
        name = "EXAMINE" if examine else "SELECT"
        self.sp("the mailbox name")
        mailbox = self.mailbox()
        condstore = False
        qresync: QResyncParams | None = None
        if self.kind() == SP:
            self.i += 1
            # RFC 4466 §2.1 select-params
            self.lparen("SELECT parameters")
            seen: set[str] = set()
            while True:
                param = self.keyword("a SELECT parameter")
                if param in seen:
                    raise ParseError(f"Duplicate {name} parameter {param}")
                seen.add(param)
                if param == "CONDSTORE":
                    condstore = True
                elif param == "QRESYNC":
                    self.sp("the QRESYNC parameters")
                    qresync = self._qresync()
                else:
                    raise ParseError(f"Unknown {name} parameter {param}")
                if self.kind() != SP:
                    break
                self.i += 1
            self.rparen(f"the {name} parameters")
        self.end(name)
        cls = ExamineCommand if examine else SelectCommand
        return cls(tag, mailbox, condstore, qresync)

    def _qresync(self) -> QResyncParams:
        # RFC 7162 §3.2.5 / §7: "*" is not allowed in any of these sets.
        self.lparen("the QRESYNC parameters")
        uidvalidity = self.number("a UIDVALIDITY", nonzero=True)
        self.sp("the mod-sequence")
        modseq = self.modseq("a mod-sequence")
        known_uids = seqs = seq_uids = None
        if self.kind() == SP:
            self.i += 1
            if self.kind() == WORD:
                known_uids = self.seqset("known UIDs", allow_star=False, allow_saved=False)
                if self.kind() == SP:
                    self.i += 1
                    seqs, seq_uids = self._seq_match()
            else:
                seqs, seq_uids = self._seq_match()
        self.rparen("the QRESYNC parameters")
        return QResyncParams(uidvalidity, modseq, known_uids, seqs, seq_uids)

    def _seq_match(self) -> tuple[SeqSet, SeqSet]:
        self.lparen("the sequence match data")
        seqs = self.seqset("known sequence numbers", allow_star=False, allow_saved=False)
        self.sp("the known UID set")
        uids = self.seqset("known UIDs", allow_star=False, allow_saved=False)
        self.rparen("the sequence match data")
        return seqs, uids

    def cmd_select(self, tag: str) -> Command:
        return self._select(tag, examine=False)

    def cmd_examine(self, tag: str) -> Command:
        return self._select(tag, examine=True)

    def cmd_create(self, tag: str) -> Command:
        self.sp("the mailbox name")
        mailbox = self.mailbox()
        uses: list[str] = []
        if self.kind() == SP:
            self.i += 1
            # RFC 4466 §2.2 create-params; RFC 6154 §3 USE
            self.lparen("CREATE parameters")
            seen: set[str] = set()
            while True:
                param = self.keyword("a CREATE parameter")
                if param != "USE":
                    raise ParseError(f"Unknown CREATE parameter {param}")
                if param in seen:
                    raise ParseError(f"Duplicate CREATE parameter {param}")
                seen.add(param)
                self.sp("the USE attributes")
                self.lparen("the USE attributes")
                if self.kind() != RPAREN:
                    uses.append(self._use_attr())
                    while self.kind() == SP:
                        self.i += 1
                        uses.append(self._use_attr())
                self.rparen("the USE attributes")
                if self.kind() != SP:
                    break
                self.i += 1
            self.rparen("the CREATE parameters")
        self.end("CREATE")
        return CreateCommand(tag, mailbox, tuple(uses))

    def _use_attr(self) -> str:
        w = self.word("a special-use attribute")
        if not w.startswith(b"\\") or not ATOM_RE.match(w[1:]):
            raise ParseError("A special-use attribute looks like \\Drafts")
        return canonical_special_use(w.decode("ascii"))

    def _one_mailbox(self, cls: Callable[[str, str], Command], name: str, tag: str) -> Command:
        self.sp("the mailbox name")
        mailbox = self.mailbox()
        self.end(name)
        return cls(tag, mailbox)

    def cmd_delete(self, tag: str) -> Command:
        return self._one_mailbox(DeleteCommand, "DELETE", tag)

    def cmd_subscribe(self, tag: str) -> Command:
        return self._one_mailbox(SubscribeCommand, "SUBSCRIBE", tag)

    def cmd_unsubscribe(self, tag: str) -> Command:
        return self._one_mailbox(UnsubscribeCommand, "UNSUBSCRIBE", tag)

    def cmd_rename(self, tag: str) -> Command:
        self.sp("the mailbox name")
        old = self.mailbox()
        self.sp("the new mailbox name")
        new = self.mailbox("the new mailbox name")
        if self.kind() == SP:
            raise ParseError("RENAME parameters are not supported")
        self.end("RENAME")
        return RenameCommand(tag, old, new)

    def cmd_list(self, tag: str) -> Command:
        self.sp("the LIST arguments")
        selection: set[str] = set()
        extended = False
        if self.kind() == LPAREN:
            # RFC 5258 §3 / RFC 9051 §6.3.9: selection options.
            extended = True
            self.i += 1
            if self.kind() != RPAREN:
                selection.add(self._list_option("a LIST selection option", LIST_SELECT_OPTIONS))
                while self.kind() == SP:
                    self.i += 1
                    selection.add(self._list_option("a LIST selection option", LIST_SELECT_OPTIONS))
            self.rparen("the selection options")
            # RFC 9051 §6.3.9.1: RECURSIVEMATCH needs a base option (SUBSCRIBED).
            if "RECURSIVEMATCH" in selection and "SUBSCRIBED" not in selection:
                raise ParseError("RECURSIVEMATCH needs another selection option (SUBSCRIBED)")
            self.sp("the reference name")
        reference = self.decode_name(self.astring("a reference name"), "Reference name")
        self.sp("the mailbox pattern")
        patterns: list[str] = []
        if self.kind() == LPAREN:
            extended = True
            self.i += 1
            patterns.append(self.list_mailbox("a mailbox pattern"))
            while self.kind() == SP:
                self.i += 1
                patterns.append(self.list_mailbox("a mailbox pattern"))
            self.rparen("the mailbox patterns")
        else:
            patterns.append(self.list_mailbox("a mailbox pattern"))
        returns: set[str] = set()
        status_items: tuple[str, ...] | None = None
        if self.kind() == SP:
            self.i += 1
            if self.peek_word() != b"RETURN":
                self.fail("RETURN")
            self.i += 1
            extended = True
            self.sp("the return options")
            self.lparen("the return options")
            if self.kind() != RPAREN:
                while True:
                    opt = self._list_option("a LIST return option", LIST_RETURN_OPTIONS)
                    returns.add(opt)
                    if opt == "STATUS":
                        self.sp("the STATUS items")
                        status_items = self._status_items()
                    if self.kind() != SP:
                        break
                    self.i += 1
            self.rparen("the return options")
        self.end("LIST")
        return ListCommand(
            tag,
            reference,
            tuple(patterns),
            frozenset(selection),
            frozenset(returns),
            status_items,
            extended,
        )

    def _list_option(self, what: str, known: frozenset[str]) -> str:
        opt = self.keyword(what)
        if opt not in known:
            # RFC 9051 §6.3.9: unrecognised options get BAD.
            raise ParseError(f"Unknown {what[2:]} {opt}")
        return opt

    def cmd_lsub(self, tag: str) -> Command:
        self.sp("the reference name")
        reference = self.decode_name(self.astring("a reference name"), "Reference name")
        self.sp("the mailbox pattern")
        pattern = self.list_mailbox("a mailbox pattern")
        self.end("LSUB")
        return LsubCommand(tag, reference, pattern)

    def _status_items(self) -> tuple[str, ...]:
        self.lparen("the status items")
        items: list[str] = []
        while True:
            item = self.keyword("a status item")
            if item not in STATUS_ITEMS:
                raise ParseError(f"Unknown status item {item}")
            if item not in items:
                items.append(item)
            if self.kind() != SP:
                break
            self.i += 1
        self.rparen("the status items")
        return tuple(items)

    def cmd_status(self, tag: str) -> Command:
        self.sp("the mailbox name")
        mailbox = self.mailbox()
        self.sp("the status items")
        items = self._status_items()
        self.end("STATUS")
        return StatusCommand(tag, mailbox, items)

    def cmd_append(self, tag: str) -> Command:
        self.sp("the mailbox name")
        mailbox = self.mailbox()
        if self.kind() != SP:
            self.fail("a space before the message")
        return self._append_messages(tag, mailbox, [])

    def resume_append(self, state: AppendResume) -> Command:
        self.i = state.index
        messages = list(state.messages)
        data, binary, utf8 = self._append_data()
        messages.append(AppendMessage(state.flags, state.when, data, binary, utf8))
        return self._append_messages(state.tag, state.mailbox, messages)

    def _append_messages(self, tag: str, mailbox: str, messages: list[AppendMessage]) -> Command:
        # RFC 3502 §6 / RFC 4466 §3: append = "APPEND" SP mailbox 1*append-message
        while self.kind() == SP:
            self.i += 1
            flags: tuple[str, ...] = ()
            when = None
            if self.kind() == LPAREN:
                flags = self.flag_list()
                self.sp("the message")
            if self.kind() == QUOTED:
                raw = self.toks[self.i][1]
                when = parse_datetime(raw)
                if when is None:
                    raise ParseError('Invalid date-time (expected "dd-Mon-yyyy hh:mm:ss +zzzz")')
                self.i += 1
                self.sp("the message")
            if self.kind() in (PENDING, PENDING8):
                state = AppendResume(tag, mailbox, tuple(messages), flags, when, self.i)
                raise Incomplete("message", state)
            data, binary, utf8 = self._append_data()
            messages.append(AppendMessage(flags, when, data, binary, utf8))
        self.end("APPEND")
        return AppendCommand(tag, mailbox, tuple(messages))

    def _append_data(self) -> tuple[bytes, bool, bool]:
        k = self.kind()
        if k in (LITERAL, LITERAL8):
            data = self.toks[self.i][1]
            self.i += 1
            return data, k == LITERAL8, False
        if self.peek_word() == b"UTF8":
            # RFC 6855 §4: utf8-literal = "UTF8" SP "(" literal8 ")"
            self.i += 1
            self.sp("the UTF8 message data")
            self.lparen("the UTF8 message data")
            k = self.kind()
            if k == PENDING8:
                self._pending("message")
            if k != LITERAL8:
                self.fail("a literal8 (~{n}) inside UTF8 (…)")
            data = self.toks[self.i][1]
            self.i += 1
            self.rparen("the UTF8 message data")
            return data, True, True
        self.fail("the message as a literal")

    def cmd_search(self, tag: str, uid: bool = False) -> Command:
        return_options: frozenset[str] | None = None
        self.sp("the search criteria")
        if self.peek_word() == b"RETURN":
            # RFC 4731 §3.1 / RFC 9051 §6.4.4
            self.i += 1
            self.sp("the return options")
            self.lparen("the return options")
            opts: set[str] = set()
            if self.kind() != RPAREN:
                while True:
                    opt = self.keyword("a SEARCH return option")
                    if opt not in SEARCH_RETURN_OPTIONS:
                        raise ParseError(f"Unknown SEARCH return option {opt}")
                    opts.add(opt)
                    if self.kind() != SP:
                        break
                    self.i += 1
            self.rparen("the return options")
            # RFC 4731 §3.1: an empty list means ALL.
            return_options = frozenset(opts) if opts else frozenset({"ALL"})
            self.sp("the search criteria")
        charset: str | None = None
        if self.peek_word() == b"CHARSET":
            self.i += 1
            self.sp("the charset name")
            k = self.kind()
            if k == QUOTED:
                raw = self.toks[self.i][1]
                self.i += 1
            else:
                raw = self.atom("a charset name")
            charset = raw.decode("ascii", "replace").upper()
            if not _CHARSET_RE.match(charset) or not _codec_exists(charset):
                # RFC 9051 §6.4.4: unknown charset → NO [BADCHARSET (…)], not BAD.
                raise ParseError(
                    f"Charset {charset} is not supported",
                    status="NO",
                    code="BADCHARSET (" + " ".join(SUPPORTED_CHARSETS) + ")",
                )
            self._charset = charset
            self.sp("the search criteria")
        keys = [self.search_key(1)]
        while self.kind() == SP:
            self.i += 1
            keys.append(self.search_key(1))
        self.end("SEARCH")
        criteria: SearchKey = keys[0] if len(keys) == 1 else AndKey(tuple(keys))
        return SearchCommand(tag, criteria, uid, charset, return_options)

    def _search_string(self, what: str) -> str:
        raw = self.astring(what)
        try:
            return raw.decode(self._charset)
        except UnicodeDecodeError:
            raise ParseError(f"Search string is not valid {self._charset}") from None

    def search_key(self, depth: int) -> SearchKey:
        if depth > self._max_depth:
            raise ParseError(f"Search keys nested deeper than {self._max_depth} levels")
        k = self.kind()
        if k == LPAREN:
            self.i += 1
            keys = [self.search_key(depth + 1)]
            while self.kind() == SP:
                self.i += 1
                keys.append(self.search_key(depth + 1))
            self.rparen("the search key group")
            return AndKey(tuple(keys))
        if k != WORD:
            self.fail("a search key")
        w = self.toks[self.i][1]
        if w[:1] in (b"$", b"*") or w[:1].isdigit():
            return SeqKey(self.seqset("sequence set"))
        name = w.upper().decode("ascii", "replace")
        self.i += 1
        flag = FLAG_KEYS.get(name)
        if flag is not None:
            return FlagKey(flag[0], flag[1])
        if name == "ALL":
            return AllKey()
        if name == "NEW":
            return NewKey()
        if name in STRING_FIELDS:
            self.sp(f"the {name} string")
            return StringKey(name, self._search_string("a search string"))
        if name == "HEADER":
            self.sp("the header field name")
            field = self._search_string("a header field name")
            self.sp("the header search string")
            return HeaderKey(field, self._search_string("a search string"))
        if name in ("KEYWORD", "UNKEYWORD"):
            self.sp("the keyword")
            kw = self.atom("a keyword").decode("ascii")
            return FlagKey(kw, name == "KEYWORD")
        if name in _DATE_KEYS:
            field, relation = _DATE_KEYS[name]
            self.sp("the date")
            k = self.kind()
            if k in (WORD, QUOTED):
                raw = self.toks[self.i][1]
                self.i += 1
                date = parse_date(raw)
                if date is None:
                    raise ParseError(f'Invalid date for {name} (expected "1-Feb-1994")')
                return DateKey(field, relation, date)  # type: ignore[arg-type]
            self.fail("a date")
        if name in ("LARGER", "SMALLER"):
            self.sp("the size")
            return SizeKey(name == "LARGER", self.number("a size", maximum=MAX63))
        if name == "UID":
            self.sp("the UID set")
            return UIDKey(self.seqset("UID set"))
        if name == "NOT":
            self.sp("the negated key")
            return NotKey(self.search_key(depth + 1))
        if name == "OR":
            self.sp("the first OR key")
            left = self.search_key(depth + 1)
            self.sp("the second OR key")
            return OrKey(left, self.search_key(depth + 1))
        if name == "MODSEQ":
            # RFC 7162 §3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer
            self.sp("the mod-sequence")
            entry: str | None = None
            entry_type = None
            if self.kind() == QUOTED:
                entry = self.toks[self.i][1].decode("utf-8", "replace")
                self.i += 1
                self.sp("the entry type")
                et = self.keyword("priv, shared or all").lower()
                if et not in ("priv", "shared", "all"):
                    raise ParseError("MODSEQ entry type must be priv, shared or all")
                entry_type = et
                self.sp("the mod-sequence")
            return ModSeqKey(self.modseq("a mod-sequence"), entry, entry_type)  # type: ignore[arg-type]
        self.i -= 1
        raise ParseError(f"Unknown search key {name[:40]}")

    def cmd_fetch(self, tag: str, uid: bool = False) -> Command:
        name = "UID FETCH" if uid else "FETCH"
        self.sp("the sequence set")
        seqs = self.seqset("UID set" if uid else "sequence set")
        self.sp("the fetch items")
        atts: tuple[FetchAttribute, ...]
        if self.kind() == LPAREN:
            self.i += 1
            items = [self.fetch_att()]
            while self.kind() == SP:
                self.i += 1
                items.append(self.fetch_att())
            self.rparen("the fetch items")
            atts = tuple(items)
        else:
            macro = self.peek_word()
            if macro is not None and macro.decode("ascii", "replace") in MACROS:
                self.i += 1
                atts = MACROS[macro.decode("ascii")]
            else:
                atts = (self.fetch_att(),)
        changed_since: int | None = None
        vanished = False
        if self.kind() == SP:
            # RFC 4466 §2.4 fetch-modifiers; RFC 7162 §3.1.4.1, §3.2.6
            self.i += 1
            self.lparen("the FETCH modifiers")
            seen: set[str] = set()
            while True:
                mod = self.keyword("a FETCH modifier")
                if mod in seen:
                    raise ParseError(f"Duplicate FETCH modifier {mod}")
                seen.add(mod)
                if mod == "CHANGEDSINCE":
                    self.sp("the mod-sequence")
                    changed_since = self.modseq("a mod-sequence")
                elif mod == "VANISHED":
                    vanished = True
                else:
                    raise ParseError(f"Unknown FETCH modifier {mod}")
                if self.kind() != SP:
                    break
                self.i += 1
            self.rparen("the FETCH modifiers")
            if vanished and (not uid or changed_since is None):
                # RFC 7162 §3.2.6: VANISHED only in UID FETCH, with CHANGEDSINCE.
                raise ParseError("VANISHED needs UID FETCH with CHANGEDSINCE")
        self.end(name)
        return FetchCommand(tag, seqs, atts, uid, changed_since, vanished)

    def fetch_att(self) -> FetchAttribute:
        w = self.word("a fetch item")
        upper = w.upper()
        bracket = upper.find(b"[")
        if bracket < 0:
            try:
                return Attr(upper.decode("ascii"))
            except (ValueError, UnicodeDecodeError):
                raise ParseError(
                    f"Unknown fetch item {w[:40].decode('ascii', 'replace')}"
                ) from None
        kind = upper[:bracket]
        if kind not in (b"BODY", b"BODY.PEEK", b"BINARY", b"BINARY.PEEK", b"BINARY.SIZE"):
            raise ParseError(f"Unknown fetch item {w[:40].decode('ascii', 'replace')}")
        rest = upper[bracket + 1 :]
        close = rest.find(b"]")
        fields: tuple[str, ...] = ()
        if close >= 0:
            spec, tail = rest[:close], rest[close + 1 :]
        else:
            spec = rest
            if not (spec.endswith(b"HEADER.FIELDS") or spec.endswith(b"HEADER.FIELDS.NOT")):
                raise ParseError('Missing "]" in the fetch section')
            if not kind.startswith(b"BODY"):
                raise ParseError("BINARY sections take part numbers only")
            self.sp("the header field list")
            fields = self._header_list()
            after = self.word('"]" after the header field list')
            if not after.startswith(b"]"):
                raise ParseError('Expected "]" after the header field list')
            tail = after[1:].upper()
        partial = None
        if tail:
            if kind == b"BINARY.SIZE":
                raise ParseError("BINARY.SIZE takes no partial range")
            m = _PARTIAL_RE.match(tail)
            if m is None:
                raise ParseError("Invalid partial range (expected <offset.length>)")
            offset, length = int(m.group(1)), int(m.group(2))
            if offset > MAX63 or not 0 < length <= MAX63:
                raise ParseError("Partial range out of bounds")
            partial = Partial(offset, length)
        if kind.startswith(b"BINARY"):
            if not _PART_RE.match(spec):
                raise ParseError("BINARY sections take part numbers only")
            part = _parse_part(spec)
            if kind == b"BINARY.SIZE":
                return BinarySize(part)
            return BinarySection(part, partial, kind == b"BINARY.PEEK")
        m2 = _SECTION_RE.match(spec)
        if m2 is None:
            raise ParseError(f"Invalid fetch section [{spec[:40].decode('ascii', 'replace')}]")
        part = _parse_part(m2.group(1) or b"")
        text_raw = m2.group(2) or m2.group(3)
        text: SectionText | None = text_raw.decode("ascii") if text_raw else None  # type: ignore[assignment]
        if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT") and not fields:
            raise ParseError("HEADER.FIELDS needs a list of header field names")
        section = Section(part, text, fields)
        return BodySection(section, partial, kind == b"BODY.PEEK")

    def _header_list(self) -> tuple[str, ...]:
        self.lparen("the header field list")
        names = [self._header_name()]
        while self.kind() == SP:
            self.i += 1
            names.append(self._header_name())
        self.rparen("the header field list")
        return tuple(names)

    def _header_name(self) -> str:
        raw = self.astring("a header field name")
        # RFC 5322 §3.6.8: field-name = 1*ftext (printable ASCII except ":")
        if not raw or any(b < 0x21 or b > 0x7E or b == 0x3A for b in raw):
            raise ParseError("Invalid header field name")
        return raw.decode("ascii")

    def cmd_store(self, tag: str, uid: bool = False) -> Command:
        name = "UID STORE" if uid else "STORE"
        self.sp("the sequence set")
        seqs = self.seqset("UID set" if uid else "sequence set")
        self.sp("the store item")
        unchanged_since: int | None = None
        if self.kind() == LPAREN:
            # RFC 4466 §2.5 store-modifiers; RFC 7162 §3.1.3 UNCHANGEDSINCE
            self.i += 1
            mod = self.keyword("a STORE modifier")
            if mod != "UNCHANGEDSINCE":
                raise ParseError(f"Unknown STORE modifier {mod}")
            self.sp("the mod-sequence")
            unchanged_since = self.modseq("a mod-sequence")
            if self.kind() == SP:
                raise ParseError("Only one STORE modifier (UNCHANGEDSINCE) is supported")
            self.rparen("the STORE modifiers")
            self.sp("the store item")
        item = self.word("FLAGS, +FLAGS or -FLAGS").upper()
        silent = item.endswith(b".SILENT")
        if silent:
            item = item[: -len(b".SILENT")]
        try:
            mode = StoreMode(item.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            raise ParseError("Expected FLAGS, +FLAGS or -FLAGS (optionally .SILENT)") from None
        self.sp("the flags")
        if self.kind() == LPAREN:
            flags = self.flag_list()
        else:
            flag_items = [self.flag()]
            while self.kind() == SP:
                self.i += 1
                flag_items.append(self.flag())
            flags = tuple(flag_items)
        self.end(name)
        return StoreCommand(tag, seqs, mode, flags, silent, uid, unchanged_since)

    def _copy_move(self, tag: str, uid: bool, move: bool) -> Command:
        name = ("UID " if uid else "") + ("MOVE" if move else "COPY")
        self.sp("the sequence set")
        seqs = self.seqset("UID set" if uid else "sequence set")
        self.sp("the mailbox name")
        mailbox = self.mailbox()
        self.end(name)
        return (MoveCommand if move else CopyCommand)(tag, seqs, mailbox, uid)

    def cmd_copy(self, tag: str, uid: bool = False) -> Command:
        return self._copy_move(tag, uid, move=False)

    def cmd_move(self, tag: str, uid: bool = False) -> Command:
        return self._copy_move(tag, uid, move=True)

    def cmd_uid(self, tag: str) -> Command:
        self.sp("the UID subcommand")
        sub = self.word("COPY, MOVE, FETCH, SEARCH, STORE or EXPUNGE").upper()
        if sub == b"COPY":
            return self.cmd_copy(tag, uid=True)
        if sub == b"MOVE":
            return self.cmd_move(tag, uid=True)
        if sub == b"FETCH":
            return self.cmd_fetch(tag, uid=True)
        if sub == b"SEARCH":
            return self.cmd_search(tag, uid=True)
        if sub == b"STORE":
            return self.cmd_store(tag, uid=True)
        if sub == b"EXPUNGE":
            self.sp("the UID set")
            uids = self.seqset("UID set")
            self.end("UID EXPUNGE")
            return UIDExpungeCommand(tag, uids)
        raise ParseError(f"Unknown UID command {sub[:40].decode('ascii', 'replace')}")


_DATE_KEYS: Final[dict[str, tuple[str, str]]] = {
    "BEFORE": ("INTERNAL", "BEFORE"),
    "ON": ("INTERNAL", "ON"),
    "SINCE": ("INTERNAL", "SINCE"),
    "SENTBEFORE": ("SENT", "BEFORE"),
    "SENTON": ("SENT", "ON"),
    "SENTSINCE": ("SENT", "SINCE"),
}


def _parse_part(spec: bytes) -> tuple[int, ...]:
    if not spec:
        return ()
    nums = []
    for p in spec.split(b"."):
        if len(p) > 10 or int(p) > MAX32:
            raise ParseError("Section part number out of range")
        nums.append(int(p))
    return tuple(nums)


def _codec_exists(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def _no_args(cls: Callable[[str], Command], name: str) -> Callable[[_Parser, str], Command]:
    def parse(p: _Parser, tag: str) -> Command:
        p.end(name)
        return cls(tag)

    return parse


_HANDLERS: Final[dict[bytes, Callable[[_Parser, str], Command]]] = {
    b"CAPABILITY": _no_args(CapabilityCommand, "CAPABILITY"),
    b"NOOP": _no_args(NoopCommand, "NOOP"),
    b"LOGOUT": _no_args(LogoutCommand, "LOGOUT"),
    b"STARTTLS": _no_args(StartTLSCommand, "STARTTLS"),
    b"NAMESPACE": _no_args(NamespaceCommand, "NAMESPACE"),
    b"IDLE": _no_args(IdleCommand, "IDLE"),
    b"CHECK": _no_args(CheckCommand, "CHECK"),
    b"CLOSE": _no_args(CloseCommand, "CLOSE"),
    b"UNSELECT": _no_args(UnselectCommand, "UNSELECT"),
    b"EXPUNGE": _no_args(ExpungeCommand, "EXPUNGE"),
    b"AUTHENTICATE": _Parser.cmd_authenticate,
    b"LOGIN": _Parser.cmd_login,
    b"ENABLE": _Parser.cmd_enable,
    b"SELECT": _Parser.cmd_select,
    b"EXAMINE": _Parser.cmd_examine,
    b"CREATE": _Parser.cmd_create,
    b"DELETE": _Parser.cmd_delete,
    b"RENAME": _Parser.cmd_rename,
    b"SUBSCRIBE": _Parser.cmd_subscribe,
    b"UNSUBSCRIBE": _Parser.cmd_unsubscribe,
    b"LIST": _Parser.cmd_list,
    b"LSUB": _Parser.cmd_lsub,
    b"STATUS": _Parser.cmd_status,
    b"APPEND": _Parser.cmd_append,
    b"SEARCH": _Parser.cmd_search,
    b"FETCH": _Parser.cmd_fetch,
    b"STORE": _Parser.cmd_store,
    b"COPY": _Parser.cmd_copy,
    b"MOVE": _Parser.cmd_move,
    b"UID": _Parser.cmd_uid,
}


def parse_command(
    tokens: list[Token],
    *,
    utf8: bool = False,
    max_depth: int = 100,
    max_ranges: int = 100_000,
    resume: AppendResume | None = None,
) -> Command:
    """Parse one complete command. Raises ParseError, or Incomplete if `tokens`
    ends in a PENDING literal that the grammar accepts at that point.

    `resume`: from the Incomplete of an earlier parse of these same tokens,
    when only tokens were added since (the literal it stopped at, and what
    followed): the parse goes on from there."""
    parser = _Parser(tokens, utf8=utf8, max_depth=max_depth, max_ranges=max_ranges)
    if (
        resume is not None
        and resume.index < len(tokens)
        and tokens[resume.index][0] in (LITERAL, LITERAL8)
    ):
        return parser.resume_append(resume)
    return parser.command()


def parse_line(line: bytes, *, utf8: bool = False) -> Command:
    """Parse a command given as one line without literals (tests, tools)."""
    tokens: list[Token] = []
    if lex_line(line, tokens, 0, 100) != 0:
        raise ParseError('Unbalanced "("')
    return parse_command(tokens, utf8=utf8)
