"""Server responses as typed values that serialise themselves (RFC 9051 §7).

Every response has `to_bytes(ctx)`. The :class:`EncodingContext` says what the
client enabled: IMAP4rev2 or UTF8=ACCEPT mean mailbox names go out as UTF-8 and
quoted strings may carry UTF-8; otherwise names are modified UTF-7 and 8-bit
strings become literals.

Data inside responses (ENVELOPE, BODYSTRUCTURE, FETCH values) is given as
JSON-like values: `str`/`bytes` → quoted string or literal, `int` → number,
`None` → NIL, list/tuple → parenthesised list, plus the wrappers below for
atoms, mailbox names, binary data and streamed literals.

Large FETCH bodies need not be in memory: a :class:`StreamingLiteral` value
makes `pieces(ctx)` return the literal header `{n}\\r\\n` as bytes followed by
the StreamingLiteral itself, whose chunks the session writes (from a sync or
async source) before the rest of the pieces.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

from . import mutf7
from .seqset import SeqSet
from .wire import ASTRING_RE, can_quote, format_datetime, quoted


@dataclass(slots=True, frozen=True)
class EncodingContext:
    rev2: bool = False  # ENABLE IMAP4rev2 was accepted
    utf8: bool = False  # ENABLE UTF8=ACCEPT was accepted (RFC 6855)

    @property
    def utf8_names(self) -> bool:
        """Mailbox names and quoted strings in UTF-8 (RFC 9051 §5.1, RFC 6855 §3)."""
        return self.rev2 or self.utf8


REV1: Final = EncodingContext()
REV2: Final = EncodingContext(rev2=True)


@dataclass(slots=True, frozen=True)
class Atom:
    """Written as is: flags, keywords, capability names, `\\Noselect`, …"""

    text: str

    def __post_init__(self) -> None:
        bad = ' ()"{]\r\n\x00'
        if not self.text or not self.text.isascii() or any(c in self.text for c in bad):
            raise ValueError(f"not an atom: {self.text!r}")


@dataclass(slots=True, frozen=True)
class MailboxName:
    """A mailbox name: modified UTF-7 or UTF-8 by context, atom when possible."""

    name: str


@dataclass(slots=True, frozen=True)
class Binary:
    """BINARY[] data (RFC 3516 §4.2): a literal8 `~{n}` when it holds NUL."""

    data: bytes


@dataclass(slots=True, frozen=True)
class Adjacent:
    """Values written one after another without spaces: the `1*body` of a
    multipart BODYSTRUCTURE, `((…)(…) "mixed" …)` (RFC 9051 §9 body-type-mpart)."""

    items: tuple[Value, ...]


@dataclass(slots=True, eq=False)
class StreamingLiteral:
    """A literal whose `size` octets come from `chunks` (sync or async iterable).

    The session writes the chunks itself; it must write exactly `size` octets
    (:func:`iter_bytes` checks this for sync sources).
    """

    size: int
    chunks: Iterable[bytes] | AsyncIterable[bytes]
    binary: bool = False  # literal8


Value: TypeAlias = (
    "int | str | bytes | Atom | MailboxName | Binary | StreamingLiteral | SeqSet | Adjacent"
    " | Sequence[Value] | None"
)
Piece = bytes | StreamingLiteral


class _Writer:
    __slots__ = ("ctx", "parts")

    def __init__(self, ctx: EncodingContext) -> None:
        self.ctx = ctx
        self.parts: list[Piece] = []

    def raw(self, data: bytes) -> None:
        self.parts.append(data)

    def string(self, data: bytes) -> None:
        if can_quote(data, self.ctx.utf8_names):
            self.parts.append(quoted(data))
        else:
            self.parts.append(b"{%d}\r\n" % len(data))
            self.parts.append(data)

    def mailbox(self, name: str) -> None:
        raw = name.encode("utf-8") if self.ctx.utf8_names else mutf7.encode(name).encode("ascii")
        # `mailbox` is an astring: an atom unless it needs quoting; "NIL" is
        # quoted so no client can mistake it for nil (RFC 9051 §4.5).
        if raw and ASTRING_RE.match(raw) and raw.upper() != b"NIL":
            self.parts.append(raw)
        else:
            self.string(raw)

    def text(self, text: str) -> None:
        """resp-text: one line, no CR/LF; 8-bit only to UTF-8 clients (RFC 9051 §9 `text`)."""
        clean = text.replace("\r", " ").replace("\n", " ").replace("\x00", "")
        data = clean.encode("utf-8") if self.ctx.utf8_names else clean.encode("ascii", "replace")
        self.parts.append(data)

    def value(self, v: Value) -> None:
        if v is None:
            self.parts.append(b"NIL")
        elif isinstance(v, bool):
            raise TypeError("booleans have no IMAP form")
        elif isinstance(v, int):
            if v < 0:
                raise ValueError("IMAP numbers are unsigned")
            self.parts.append(b"%d" % v)
        elif isinstance(v, str):
            self.string(v.encode("utf-8"))
        elif isinstance(v, bytes):
            self.string(v)
        elif isinstance(v, Atom):
            self.parts.append(v.text.encode("ascii"))
        elif isinstance(v, MailboxName):
            self.mailbox(v.name)
        elif isinstance(v, SeqSet):
            self.parts.append(v.to_bytes())
        elif isinstance(v, Binary):
            if b"\x00" in v.data:
                self.parts.append(b"~{%d}\r\n" % len(v.data))
                self.parts.append(v.data)
            else:
                self.string(v.data)
        elif isinstance(v, StreamingLiteral):
            self.parts.append((b"~{%d}\r\n" if v.binary else b"{%d}\r\n") % v.size)
            self.parts.append(v)
        elif isinstance(v, Adjacent):
            for item in v.items:
                self.value(item)
        else:
            self.parts.append(b"(")
            for i, item in enumerate(v):
                if i:
                    self.parts.append(b" ")
                self.value(item)
            self.parts.append(b")")

    def finish(self) -> list[Piece]:
        """Merge adjacent byte pieces."""
        out: list[Piece] = []
        run: list[bytes] = []
        for p in self.parts:
            if isinstance(p, bytes):
                run.append(p)
            else:
                if run:
                    out.append(b"".join(run))
                    run = []
                out.append(p)
        if run:
            out.append(b"".join(run))
        return out


class Response:
    """Base of every response: subclasses implement `_write`."""

    __slots__ = ()

    def _write(self, w: _Writer) -> None:
        raise NotImplementedError

    def pieces(self, ctx: EncodingContext = REV1) -> list[Piece]:
        w = _Writer(ctx)
        self._write(w)
        w.raw(b"\r\n")
        return w.finish()

    def to_bytes(self, ctx: EncodingContext = REV1) -> bytes:
        return b"".join(iter_bytes(self, ctx))


def iter_bytes(response: Response, ctx: EncodingContext = REV1) -> Iterator[bytes]:
    """Bytes of a response, pulling chunks of sync StreamingLiterals as it goes."""
    for piece in response.pieces(ctx):
        if isinstance(piece, bytes):
            yield piece
            continue
        if not isinstance(piece.chunks, Iterable):
            raise TypeError("an async StreamingLiteral must be written by the session")
        sent = 0
        for chunk in piece.chunks:
            sent += len(chunk)
            if sent > piece.size:
                raise ValueError("StreamingLiteral produced more octets than announced")
            yield chunk
        if sent != piece.size:
            raise ValueError("StreamingLiteral produced fewer octets than announced")


# -- response codes ----------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class ResponseCode:
    """`[NAME args…]` (RFC 9051 §7.1); args are written space-separated."""

    name: str
    args: tuple[Value, ...] = ()

    def _write(self, w: _Writer) -> None:
        w.raw(b"[" + self.name.encode("ascii"))
        for a in self.args:
            w.raw(b" ")
            w.value(a)
        w.raw(b"]")

    @classmethod
    def permanent_flags(cls, flags: Iterable[str]) -> ResponseCode:
        return cls("PERMANENTFLAGS", ([Atom(f) for f in flags],))

    @classmethod
    def uidnext(cls, n: int) -> ResponseCode:
        return cls("UIDNEXT", (n,))

    @classmethod
    def uidvalidity(cls, n: int) -> ResponseCode:
        return cls("UIDVALIDITY", (n,))

    @classmethod
    def unseen(cls, n: int) -> ResponseCode:
        return cls("UNSEEN", (n,))

    @classmethod
    def capability(cls, caps: Iterable[str]) -> ResponseCode:
        return cls("CAPABILITY", tuple(Atom(c) for c in caps))

    @classmethod
    def badcharset(cls, charsets: Iterable[str]) -> ResponseCode:
        return cls("BADCHARSET", ([Atom(c) for c in charsets],))

    @classmethod
    def appenduid(cls, uidvalidity: int, uids: SeqSet | int) -> ResponseCode:
        """RFC 4315 §3 (a UID set with MULTIAPPEND, RFC 3502)."""
        return cls("APPENDUID", (uidvalidity, uids))

    @classmethod
    def copyuid(cls, uidvalidity: int, source: SeqSet, dest: SeqSet) -> ResponseCode:
        """RFC 4315 §3 / RFC 9051 §7.1."""
        return cls("COPYUID", (uidvalidity, source, dest))

    @classmethod
    def highestmodseq(cls, modseq: int) -> ResponseCode:
        return cls("HIGHESTMODSEQ", (modseq,))

    @classmethod
    def modified(cls, seqs: SeqSet) -> ResponseCode:
        """RFC 7162 §3.1.3: messages that failed an UNCHANGEDSINCE test."""
        return cls("MODIFIED", (seqs,))


Status = Literal["OK", "NO", "BAD"]


def _status_line(
    w: _Writer, prefix: bytes, status: str, code: ResponseCode | str | None, text: str
) -> None:
    w.raw(prefix + b" " + status.encode("ascii") + b" ")
    if isinstance(code, str):
        # A code given as text, e.g. CommandError.code "BADCHARSET (US-ASCII UTF-8)".
        if not code or any(c in code for c in "]\r\n\x00") or not code.isascii():
            raise ValueError(f"invalid response code {code!r}")
        w.raw(b"[" + code.encode("ascii") + b"] ")
    elif code is not None:
        code._write(w)
        w.raw(b" ")
    elif text.startswith("["):
        text = " " + text  # would otherwise read as a response code
    w.text(text or status)


@dataclass(slots=True, frozen=True)
class TaggedResponse(Response):
    tag: str
    status: Status
    text: str
    code: ResponseCode | str | None = None

    def _write(self, w: _Writer) -> None:
        _status_line(w, self.tag.encode("ascii"), self.status, self.code, self.text)


@dataclass(slots=True, frozen=True)
class UntaggedStatus(Response):
    """`* OK/NO/BAD/PREAUTH/BYE [code] text` (RFC 9051 §7.1)."""

    status: Literal["OK", "NO", "BAD", "PREAUTH", "BYE"]
    text: str
    code: ResponseCode | str | None = None

    def _write(self, w: _Writer) -> None:
        _status_line(w, b"*", self.status, self.code, self.text)


@dataclass(slots=True, frozen=True)
class ByeResponse(Response):
    text: str
    code: ResponseCode | str | None = None

    def _write(self, w: _Writer) -> None:
        _status_line(w, b"*", "BYE", self.code, self.text)


@dataclass(slots=True, frozen=True)
class ContinuationResponse(Response):
    """`+ text` or `+ base64` (RFC 9051 §7.6); `data` is a SASL challenge."""

    text: str = ""
    data: bytes | None = None

    def _write(self, w: _Writer) -> None:
        w.raw(b"+ ")
        if self.data is not None:
            w.raw(base64.b64encode(self.data))
        else:
            w.text(self.text)


CONTINUE_LITERAL: Final = ContinuationResponse("Ready for literal data")


@dataclass(slots=True, frozen=True)
class CapabilityResponse(Response):
    capabilities: tuple[str, ...]

    def _write(self, w: _Writer) -> None:
        w.raw(b"* CAPABILITY")
        for c in self.capabilities:
            w.raw(b" " + Atom(c).text.encode("ascii"))


@dataclass(slots=True, frozen=True)
class EnabledResponse(Response):
    """RFC 5161 §3.2 / RFC 9051 §7.2.1."""

    capabilities: tuple[str, ...]

    def _write(self, w: _Writer) -> None:
        w.raw(b"* ENABLED")
        for c in self.capabilities:
            w.raw(b" " + Atom(c).text.encode("ascii"))


def _delimiter(w: _Writer, delimiter: str | None) -> None:
    if delimiter is None:
        w.raw(b"NIL")
    else:
        w.raw(quoted(delimiter.encode("ascii")))


@dataclass(slots=True, frozen=True)
class ListResponse(Response):
    """`* LIST (attrs) "/" name [extended items]` (RFC 9051 §7.3.1, RFC 5258 §3.5)."""

    attributes: tuple[str, ...]
    delimiter: str | None
    mailbox: str
    child_info: tuple[str, ...] = ()  # CHILDINFO selection options, e.g. ("SUBSCRIBED",)
    old_name: str | None = None  # OLDNAME (RFC 9051 §6.3.9.7)
    kind: Literal["LIST", "LSUB"] = "LIST"

    def _write(self, w: _Writer) -> None:
        w.raw(b"* " + self.kind.encode("ascii") + b" (")
        w.raw(b" ".join(Atom(a).text.encode("ascii") for a in self.attributes))
        w.raw(b") ")
        _delimiter(w, self.delimiter)
        w.raw(b" ")
        w.mailbox(self.mailbox)
        items: list[Value] = []
        if self.child_info:
            items += ["CHILDINFO", list(self.child_info)]
        if self.old_name is not None:
            items += ["OLDNAME", [MailboxName(self.old_name)]]
        if items:
            w.raw(b" ")
            w.value(items)


def lsub_response(attributes: tuple[str, ...], delimiter: str | None, mailbox: str) -> ListResponse:
    """RFC 3501 §7.2.3 LSUB (same shape as LIST)."""
    return ListResponse(attributes, delimiter, mailbox, kind="LSUB")


@dataclass(slots=True, frozen=True)
class MailboxStatusResponse(Response):
    """`* STATUS name (MESSAGES 1 …)` (RFC 9051 §7.3.3)."""

    mailbox: str
    items: tuple[tuple[str, int], ...]

    def _write(self, w: _Writer) -> None:
        w.raw(b"* STATUS ")
        w.mailbox(self.mailbox)
        w.raw(b" (")
        w.raw(b" ".join(b"%s %d" % (name.encode("ascii"), v) for name, v in self.items))
        w.raw(b")")


@dataclass(slots=True, frozen=True)
class SearchResponse(Response):
    """IMAP4rev1 `* SEARCH 2 84 882` [(MODSEQ n)] (RFC 3501 §7.2.5, RFC 7162 §3.1.5)."""

    numbers: tuple[int, ...]
    modseq: int | None = None

    def _write(self, w: _Writer) -> None:
        w.raw(b"* SEARCH")
        if self.numbers:
            # One piece: UNSEEN in a big mailbox answers thousands of numbers.
            w.raw(b" " + " ".join(map(str, self.numbers)).encode("ascii"))
        if self.modseq is not None and self.numbers:
            w.raw(b" (MODSEQ %d)" % self.modseq)


@dataclass(slots=True, frozen=True)
class ESearchResponse(Response):
    """`* ESEARCH (TAG "t") [UID] MIN … MAX … COUNT … ALL … MODSEQ …`.

    RFC 4731 §3.1, RFC 9051 §7.3.4; MODSEQ from RFC 7162 §3.1.5.
    """

    tag: str | None = None
    uid: bool = False
    min: int | None = None
    max: int | None = None
    all: SeqSet | None = None
    count: int | None = None
    modseq: int | None = None

    def _write(self, w: _Writer) -> None:
        w.raw(b"* ESEARCH")
        if self.tag is not None:
            w.raw(b" (TAG ")
            w.string(self.tag.encode("ascii"))
            w.raw(b")")
        if self.uid:
            w.raw(b" UID")
        if self.min is not None:
            w.raw(b" MIN %d" % self.min)
        if self.max is not None:
            w.raw(b" MAX %d" % self.max)
        # This order matches every example in RFC 9051 §6.4.4 and §7.3.4.
        if self.count is not None:
            w.raw(b" COUNT %d" % self.count)
        if self.all is not None:
            w.raw(b" ALL " + self.all.to_bytes())
        if self.modseq is not None:
            w.raw(b" MODSEQ %d" % self.modseq)


@dataclass(slots=True, frozen=True)
class FlagsResponse(Response):
    flags: tuple[str, ...]

    def _write(self, w: _Writer) -> None:
        w.raw(b"* FLAGS ")
        w.value([Atom(f) for f in self.flags])


@dataclass(slots=True, frozen=True)
class ExistsResponse(Response):
    count: int

    def _write(self, w: _Writer) -> None:
        w.raw(b"* %d EXISTS" % self.count)


@dataclass(slots=True, frozen=True)
class RecentResponse(Response):
    """RFC 3501 §7.3.2 (IMAP4rev1 only)."""

    count: int

    def _write(self, w: _Writer) -> None:
        w.raw(b"* %d RECENT" % self.count)


@dataclass(slots=True, frozen=True)
class ExpungeResponse(Response):
    seq: int

    def _write(self, w: _Writer) -> None:
        w.raw(b"* %d EXPUNGE" % self.seq)


@dataclass(slots=True, frozen=True)
class VanishedResponse(Response):
    """RFC 7162 §3.2.10: `* VANISHED [(EARLIER)] uid-set`."""

    uids: SeqSet
    earlier: bool = False

    def _write(self, w: _Writer) -> None:
        w.raw(b"* VANISHED " + (b"(EARLIER) " if self.earlier else b"") + self.uids.to_bytes())


@dataclass(slots=True, frozen=True)
class FetchResponse(Response):
    """`* n FETCH (NAME value …)` (RFC 9051 §7.5.2).

    Item names come from :func:`fetch.response_name`; values are Value trees,
    e.g. `("FLAGS", flag_atoms(flags))`, `("UID", 7)`, `("BODY[]", data)`,
    `("BODY[]", StreamingLiteral(size, chunks))`, `("MODSEQ", [12])`.
    """

    seq: int
    items: tuple[tuple[str, Value], ...] = field(default=())

    def _write(self, w: _Writer) -> None:
        w.raw(b"* %d FETCH (" % self.seq)
        for i, (name, value) in enumerate(self.items):
            if i:
                w.raw(b" ")
            w.raw(name.encode("utf-8") + b" ")
            w.value(value)
        w.raw(b")")


@dataclass(slots=True, frozen=True)
class Namespace:
    prefix: str
    delimiter: str | None


@dataclass(slots=True, frozen=True)
class NamespaceResponse(Response):
    """RFC 2342 / RFC 9051 §7.3.2: personal, other users', shared (None = NIL)."""

    personal: tuple[Namespace, ...] | None
    other: tuple[Namespace, ...] | None = None
    shared: tuple[Namespace, ...] | None = None

    def _write(self, w: _Writer) -> None:
        w.raw(b"* NAMESPACE")
        for group in (self.personal, self.other, self.shared):
            w.raw(b" ")
            if not group:
                w.raw(b"NIL")
                continue
            w.raw(b"(")
            for ns in group:
                w.raw(b"(")
                prefix = ns.prefix
                raw = prefix.encode("utf-8") if w.ctx.utf8_names else mutf7.encode(prefix).encode()
                w.string(raw)
                w.raw(b" ")
                _delimiter(w, ns.delimiter)
                w.raw(b")")
            w.raw(b")")


# -- value helpers ---------------------------------------------------------------


def flag_atoms(flags: Iterable[str]) -> list[Value]:
    """A FLAGS value: `(\\Seen $Forwarded)`."""
    return [Atom(f) for f in flags]


def internal_date(t: dt.datetime) -> str:
    """An INTERNALDATE value (RFC 9051 §9 `date-time`)."""
    return format_datetime(t)
