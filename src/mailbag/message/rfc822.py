"""RFC 5322 / RFC 2045 lexical parsing of header values, the way Dovecot does it.

A small cursor over bytes with the primitives header parsing needs (CFWS,
tokens, atoms, quoted strings, phrases, domains), plus the three structured
values built on them: MIME parameters with RFC 2231 continuations, address
lists, and Content-Language lists.

The return convention of the primitives follows Dovecot's lib-mail
rfc822-parser, whose answers we match where the RFCs leave broken input open:
``1`` = parsed and more input follows, ``0`` = parsed and the input ended,
``-1`` = syntax error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 5322 §3.2.3 atext, plus 8-bit bytes (RFC 6532 allows UTF-8 there).
_ATEXT = rb"!#$%&'*+\-/0-9=?A-Z^_`a-z{|}~\x80-\xff"
# RFC 2045 §5.1 token: atext without the tspecials "/", "=", "?", plus ".".
_TOKEN = rb"!#$%&'*+\-.0-9A-Z^_`a-z{|}~\x80-\xff"

_ATEXT_RUN = re.compile(b"[" + _ATEXT + b"]*")
_ATEXT_DOT_RUN = re.compile(b"[" + _ATEXT + b".]*")
_TOKEN_RUN = re.compile(b"[" + _TOKEN + b"]*")
_WSP_RUN = re.compile(rb"[ \t\r\n]*")
_QUOTED_RUN = re.compile(rb'[^"\\\n]*')
_ATEXT_SET = (
    frozenset(b"!#$%&'*+-/0123456789=?^_`{|}~")
    | frozenset(range(0x41, 0x5B))
    | (frozenset(range(0x61, 0x7B)) | frozenset(range(0x80, 0x100)))
)


_CFWS_START = frozenset(b" \t\r\n(")


class Cursor:
    """A position in a header value, with Dovecot's rfc822-parser primitives."""

    __slots__ = ("data", "end", "last_comment", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.last_comment: bytes | None = None

    def peek(self) -> int:
        """The byte at the cursor, or -1 at the end."""
        return self.data[self.pos] if self.pos < self.end else -1

    def skip_comment(self) -> int:
        """Skip a (possibly nested) comment; the cursor is on "("."""
        data = self.data
        level = 1
        start = self.pos = self.pos + 1
        buf = bytearray()
        while self.pos < self.end:
            c = data[self.pos]
            if c == 0x28:  # (
                level += 1
            elif c == 0x29:  # )
                level -= 1
                if level == 0:
                    buf += data[start : self.pos]
                    self.last_comment = bytes(buf)
                    self.pos += 1
                    return 1 if self.pos < self.end else 0
            elif c == 0x0A:  # folding: drop the (CR)LF
                seg = data[start : self.pos]
                buf += seg[:-1] if seg.endswith(b"\r") else seg
                start = self.pos + 1
            elif c == 0x5C:  # backslash: quoted-pair
                self.pos += 1
                if self.pos >= self.end:
                    return -1
                if data[self.pos] not in b"\r\n\x00":
                    buf += data[start : self.pos - 1]
                    start = self.pos
                else:
                    continue
            self.pos += 1
        return -1  # missing ")"

    def skip_lwsp(self) -> int:
        """Skip folding white space and comments (RFC 5322 §3.2.2 CFWS)."""
        data = self.data
        if self.pos >= self.end:
            return 0
        if data[self.pos] not in _CFWS_START:
            return 1
        while True:
            self.pos = _WSP_RUN.match(data, self.pos).end()  # type: ignore[union-attr]
            if self.pos < self.end and data[self.pos] == 0x28:
                if self.skip_comment() < 0:
                    return -1
                continue
            return 1 if self.pos < self.end else 0

    def mime_token(self, out: bytearray) -> int:
        end = _TOKEN_RUN.match(self.data, self.pos).end()  # type: ignore[union-attr]
        out += self.data[self.pos : end]
        self.pos = end
        if end >= self.end:
            return 0
        return self.skip_lwsp()

    def atom(self, out: bytearray) -> int:
        if self.pos >= self.end or self.data[self.pos] not in _ATEXT_SET:
            return -1
        end = _ATEXT_RUN.match(self.data, self.pos).end()  # type: ignore[union-attr]
        out += self.data[self.pos : end]
        self.pos = end
        if end >= self.end:
            return 0
        return self.skip_lwsp()

    def dot_atom(self, out: bytearray) -> int:
        """dot-atom, allowing CFWS around "." for RFC 822 compatibility."""
        if self.pos >= self.end or self.data[self.pos] not in _ATEXT_SET:
            return -1
        while True:
            end = _ATEXT_RUN.match(self.data, self.pos).end()  # type: ignore[union-attr]
            if end == self.pos:
                return -1  # "a..b" or "a. "
            out += self.data[self.pos : end]
            self.pos = end
            if end >= self.end:
                return 0
            ret = self.skip_lwsp()
            if ret <= 0:
                return ret
            if self.data[self.pos] != 0x2E:  # .
                return 1
            self.pos += 1
            out.append(0x2E)
            if self.skip_lwsp() <= 0:
                return -1

    def quoted_string(self, out: bytearray) -> int:
        """Unquote a quoted-string; the cursor is on the opening quote."""
        data = self.data
        self.pos += 1
        while self.pos < self.end:
            end = _QUOTED_RUN.match(data, self.pos).end()  # type: ignore[union-attr]
            out += data[self.pos : end]
            self.pos = end
            if end >= self.end:
                break
            c = data[end]
            if c == 0x22:  # closing quote
                self.pos += 1
                if self.pos >= self.end:
                    return 0
                return self.skip_lwsp()
            if c == 0x0A:  # folding inside the quotes: drop the (CR)LF
                if out.endswith(b"\r"):
                    del out[-1]
                self.pos += 1
            else:  # quoted-pair
                self.pos += 1
                if self.pos >= self.end:
                    return -1
                if data[self.pos] in b"\r\n\x00":
                    out.append(0x5C)  # not a quoted-pair: keep the backslash
                    continue
                out.append(data[self.pos])
                self.pos += 1
        return -1  # missing closing quote

    def _atom_or_dot(self, out: bytearray) -> int:
        end = _ATEXT_DOT_RUN.match(self.data, self.pos).end()  # type: ignore[union-attr]
        out += self.data[self.pos : end]
        self.pos = end
        if end >= self.end:
            return 0
        return self.skip_lwsp()

    def phrase(self, out: bytearray) -> int:
        """phrase = 1*word / obs-phrase; words are joined with one space."""
        if self.pos >= self.end:
            return 0
        if self.data[self.pos] == 0x2E:
            return -1
        while True:
            ret = self.quoted_string(out) if self.data[self.pos] == 34 else self._atom_or_dot(out)
            if ret <= 0:
                return ret
            c = self.data[self.pos]
            if c not in _ATEXT_SET and c != 0x22 and c != 0x2E:
                break
            out.append(0x20)
        return self.skip_lwsp()

    def domain_literal(self, out: bytearray) -> int:
        data = self.data
        start = self.pos
        self.pos += 1
        while self.pos < self.end:
            c = data[self.pos]
            if c == 0x5B:  # [
                return -1
            if c == 0x5D:  # ]
                self.pos += 1
                out += data[start : self.pos]
                if self.pos >= self.end:
                    return 0
                return self.skip_lwsp()
            if c == 0x0A:
                seg = data[start : self.pos]
                out += seg[:-1] if seg.endswith(b"\r") else seg
                start = self.pos + 1
            elif c == 0x5C:
                self.pos += 1
                if self.pos >= self.end:
                    return -1
                if data[self.pos] in b"\r\n\x00":
                    out += data[start : self.pos]
                    start = self.pos
                    continue
            self.pos += 1
        return -1

    def domain(self, out: bytearray) -> int:
        """The cursor is on "@"."""
        self.pos += 1
        if self.skip_lwsp() <= 0:
            return -1
        if self.data[self.pos] == 0x5B:  # [
            return self.domain_literal(out)
        return self.dot_atom(out)


# --- MIME parameters (RFC 2045 §5.1, RFC 2231) -----------------------------


def content_type(cur: Cursor) -> tuple[bytes, int]:
    """Parse "type/subtype"; returns the text read and the status.

    As in Dovecot 2.3: a lone type ("text") is kept with status -1; anything
    after the subtype but ";" makes the whole value invalid (b"", -1).
    """
    out = bytearray()
    if cur.skip_lwsp() <= 0:
        return b"", -1
    if cur.mime_token(out) <= 0 or not out:
        return bytes(out), -1
    if cur.data[cur.pos] != 0x2F:  # /
        return b"", -1
    cur.pos += 1
    if cur.skip_lwsp() <= 0:
        return b"", -1
    out.append(0x2F)
    mark = len(out)
    ret = cur.mime_token(out)
    if ret < 0 or len(out) == mark or (cur.pos < cur.end and cur.data[cur.pos] != 0x3B):
        return b"", -1
    return bytes(out), ret


def _content_param(cur: Cursor) -> tuple[int, bytes, bytes]:
    data = cur.data
    if cur.pos >= cur.end:
        return 0, b"", b""
    if data[cur.pos] != 0x3B:  # ;
        return -1, b"", b""
    cur.pos += 1
    if cur.skip_lwsp() <= 0:
        return -1, b"", b""
    key = bytearray()
    if cur.mime_token(key) <= 0:
        return -1, b"", b""
    if data[cur.pos] != 0x3D:  # =
        return -1, b"", b""
    cur.pos += 1
    value = bytearray()
    ret = cur.skip_lwsp()
    if ret <= 0:
        pass  # no value
    elif data[cur.pos] == 0x22:
        ret = cur.quoted_string(value)
    elif data[cur.pos] == 0x3D:
        # Dovecot's workaround for broken `name==?utf-8?b?...?=`
        while cur.pos < cur.end and data[cur.pos] not in b"; \t\r\n":
            value.append(data[cur.pos])
            cur.pos += 1
    else:
        ret = cur.mime_token(value)
    return (-1 if ret < 0 else 1), bytes(key), bytes(value)


@dataclass(slots=True)
class _Extended:
    key: bytes
    idx: int
    extended: bool
    value: bytes


_KEY_2231 = re.compile(rb"([^*]*)\*(?:([0-9]*)(\*?))?$")


def mime_params(cur: Cursor) -> list[tuple[bytes, bytes]]:
    """Parameters after "type/subtype" or a disposition, RFC 2231 parts merged.

    Like Dovecot, continuations `name*0*=...; name*1=...` are joined but the
    charset/language prefix and %-escapes are kept as they are (the result is
    returned as `name*`); plain parameters come first in their order, merged
    ones after them sorted by name. A parameter that does not parse is skipped
    and parsing resumes one byte later.
    """
    plain: list[tuple[bytes, bytes]] = []
    parts: list[_Extended] = []
    while True:
        ret, key, value = _content_param(cur)
        if ret == 0:
            break
        if ret < 0:
            if cur.pos >= cur.end:
                break
            cur.pos += 1
            continue
        star = key.find(b"*")
        if star < 0:
            plain.append((key, value))
            continue
        m = _KEY_2231.match(key)
        if m is None:
            plain.append((key, value))
            continue
        digits, ext = m.group(2), m.group(3)
        if digits is None or (not digits and not ext):
            # "name*": a single extended value (RFC 2231 §4)
            parts.append(_Extended(m.group(1), 0, True, value))
        elif not digits:
            plain.append((key, value))  # "name**" and such
        else:
            parts.append(_Extended(m.group(1), int(digits), bool(ext), value))
    if not parts:
        return plain
    parts.sort(key=lambda p: (p.key, p.idx))
    out = plain
    i = 0
    while i < len(parts):
        first = parts[i]
        j = i
        ok = True
        have_extended = False
        next_idx = 0
        while j < len(parts) and parts[j].key.lower() == first.key.lower():
            if parts[j].idx != next_idx:
                ok = False
            have_extended = have_extended or parts[j].extended
            next_idx += 1
            j += 1
        group = parts[i:j]
        if not ok:
            for p in group:
                suffix = b"*%d*" % p.idx if p.extended else b"*%d" % p.idx
                out.append((p.key + suffix, p.value))
        else:
            buf = bytearray()
            if not first.extended and have_extended:
                buf += b"''"
            for p in group:
                if not p.extended and have_extended:
                    buf += p.value.replace(b"%", b"%25")
                else:
                    buf += p.value
            out.append((first.key + b"*" if have_extended else first.key, bytes(buf)))
        i = j
    return out


# Structured MIME header values (Content-Type, -Disposition, -Language) are
# parsed up to this length, a bound against hostile input.
MAX_STRUCTURED = 64 * 1024


def content_language(value: bytes) -> list[bytes]:
    """Content-Language: 1#Language-tag (RFC 3282)."""
    cur = Cursor(value[:MAX_STRUCTURED])
    langs: list[bytes] = []
    cur.skip_lwsp()
    while True:
        out = bytearray()
        if cur.atom(out) < 0:
            break
        langs.append(bytes(out))
        if cur.pos >= cur.end or cur.data[cur.pos] != 0x2C:
            break
        cur.pos += 1
        cur.skip_lwsp()
    return langs


# --- Addresses (RFC 5322 §3.4) ---------------------------------------------


class Address:
    """One entry of an address list; a group start has only `mailbox` (the
    group name), a group end has nothing (RFC 9051 §7.5.2)."""

    __slots__ = ("domain", "invalid", "mailbox", "name", "route")

    def __init__(self) -> None:
        self.name: bytes | None = None
        self.route: bytes | None = None
        self.mailbox: bytes | None = None
        self.domain: bytes | None = None
        self.invalid = False


class _AddressParser:
    def __init__(self, data: bytes) -> None:
        self.cur = Cursor(data)
        self.cur.last_comment = b""
        self.out: list[Address] = []
        self.addr = Address()
        # the text of the last local-part read, even a partial one
        self.text = bytearray()

    def add(self) -> None:
        self.out.append(self.addr)
        self.addr = Address()

    def local_part(self) -> int:
        out = self.text = bytearray()
        if self.cur.data[self.cur.pos] == 0x22:
            ret = self.cur.quoted_string(out)
        else:
            ret = self.cur.dot_atom(out)
        if ret < 0:
            return -1
        self.addr.mailbox = bytes(out)
        return ret

    def domain(self) -> int:
        out = bytearray()
        ret = self.cur.domain(out)
        if ret < 0:
            return -1
        self.addr.domain = bytes(out)
        return ret

    def domain_list(self) -> int:
        cur = self.cur
        out = bytearray()
        while True:
            if cur.pos >= cur.end:
                return 0
            if cur.data[cur.pos] != 0x40:  # @
                break
            if out:
                out.append(0x2C)
            out.append(0x40)
            ret = cur.domain(out)
            if ret <= 0:
                return ret
            while cur.skip_lwsp() > 0 and cur.data[cur.pos] == 0x2C:
                cur.pos += 1
        self.addr.route = bytes(out)
        return 1

    def angle_addr(self) -> int:
        cur = self.cur
        cur.pos += 1  # <
        if cur.skip_lwsp() <= 0:
            return -1
        if cur.data[cur.pos] == 0x40:
            if self.domain_list() > 0 and cur.peek() == 0x3A:
                cur.pos += 1
            else:
                self.addr.route = b"INVALID_ROUTE"
                if cur.pos >= cur.end:
                    return -1
            if cur.skip_lwsp() <= 0:
                return -1
        if cur.data[cur.pos] != 0x3E:  # not "<>"
            if self.local_part() <= 0:
                return -1
            if cur.data[cur.pos] == 0x40 and self.domain() <= 0:
                return -1
        if cur.data[cur.pos] != 0x3E:
            return -1
        cur.pos += 1
        if cur.pos >= cur.end:
            return 0
        return cur.skip_lwsp()

    def name_addr(self) -> int:
        cur = self.cur
        out = bytearray()
        if cur.phrase(out) <= 0 or cur.data[cur.pos] != 0x3C:
            return -1
        self.addr.name = bytes(out) or None
        if self.angle_addr() < 0:
            self.addr.domain = b"SYNTAX_ERROR"
            self.addr.invalid = True
        return 1 if cur.pos < cur.end else 0

    def addr_spec(self) -> int:
        cur = self.cur
        cur.last_comment = b""
        quoted = cur.data[cur.pos] == 0x22
        ret2 = -2
        ret = self.local_part()
        if ret <= 0:
            self.addr.invalid = True
        if ret != 0 and cur.pos < cur.end and cur.data[cur.pos] == 0x40:
            ret2 = self.domain()
            if ret2 <= 0:
                ret = ret2
        if cur.last_comment:
            self.addr.name = cur.last_comment
        elif ret2 == -2:
            # "user" alone is a mailbox; "user more words" is a display name
            text = self.text
            text.append(0x20)
            before = len(text)
            cur.phrase(text)
            if len(text) != before:
                self.addr.mailbox = None
                self.addr.name = bytes(text)
            elif not quoted:
                self.addr.domain = b""
            self.addr.invalid = True
            ret = -1
        return ret

    def fixed_add(self) -> None:
        if self.addr.mailbox is None:
            self.addr.mailbox = b"MISSING_MAILBOX"
            self.addr.invalid = True
        if not self.addr.domain:
            self.addr.domain = b"MISSING_DOMAIN"
            self.addr.invalid = True
        self.add()

    def mailbox(self) -> int:
        cur = self.cur
        start = cur.pos
        ret = self.name_addr()
        if ret < 0:
            cur.pos = start
            self.addr = Address()
            ret = self.addr_spec()
            a = self.addr
            if a.invalid and a.name is None and a.mailbox is not None and a.domain is None:
                a.name, a.mailbox = a.mailbox, None
        if ret < 0:
            self.addr.invalid = True
        self.fixed_add()
        return ret

    def group(self) -> int:
        cur = self.cur
        out = bytearray()
        if cur.phrase(out) <= 0 or cur.data[cur.pos] != 0x3A:
            return -1
        cur.pos += 1
        ret = cur.skip_lwsp()
        self.addr.mailbox = bytes(out)
        self.add()
        if ret > 0 and cur.data[cur.pos] != 0x3B:
            while True:
                self.mailbox()
                if cur.pos >= cur.end or cur.data[cur.pos] != 0x2C:
                    break
                cur.pos += 1
                if cur.skip_lwsp() <= 0:
                    ret = -1
                    break
        if ret >= 0:
            if cur.pos >= cur.end or cur.data[cur.pos] != 0x3B:
                ret = -1
            else:
                cur.pos += 1
                ret = cur.skip_lwsp()
        self.add()
        return 0 if ret == 0 else 1

    def address(self) -> int:
        start = self.cur.pos
        ret = self.group()
        if ret < 0:
            self.cur.pos = start
            self.addr = Address()
            ret = self.mailbox()
        return ret

    def address_list(self, limit: int) -> None:
        cur = self.cur
        while limit > 0:
            limit -= 1
            if self.address() == 0:
                break
            if cur.pos >= cur.end or cur.data[cur.pos] != 0x2C:
                break
            cur.pos += 1
            ret = cur.skip_lwsp()
            if ret <= 0:
                if ret < 0:
                    self.fixed_add()
                break


# Bounds the work one header can cause; real lists are far shorter.
MAX_ADDRESSES = 10_000


# A fast path for the address lists most mail has: `local@domain`,
# `Name <local@domain>`, `"Quoted Name" <local@domain>`, comma-separated, no
# comments, groups, routes, quoted local parts or domain literals. For those
# it gives exactly what the full parser gives (tests check this).
_DOT_ATOM = b"[" + _ATEXT + b"]+(?:\\.[" + _ATEXT + b"]+)*"
_WORD = b"(?:[" + _ATEXT + b"][" + _ATEXT + b'.]*|"[^"\\\\\r\n]*")'
_FWS = b"[ \t\r\n]*"
_SIMPLE_ADDRESS = (
    _FWS
    + b"(?:((?:"
    + _WORD
    + b"(?:[ \t\r\n]+"
    + _WORD
    + b")*)?)"
    + _FWS
    + b"<("
    + _DOT_ATOM
    + b")@("
    + _DOT_ATOM
    + b")>|("
    + _DOT_ATOM
    + b")@("
    + _DOT_ATOM
    + b"))"
    + _FWS
)
_SIMPLE_LIST = re.compile(_SIMPLE_ADDRESS + b"(?:," + _SIMPLE_ADDRESS + b")*")
_SIMPLE_ONE = re.compile(_SIMPLE_ADDRESS + b",?")
_PHRASE_WORD = re.compile(_WORD)


def _simple_addresses(value: bytes) -> list[Address] | None:
    if _SIMPLE_LIST.fullmatch(value) is None:
        return None
    out: list[Address] = []
    for m in _SIMPLE_ONE.finditer(value):
        if m.end() == m.start():
            break
        a = Address()
        if m.group(2) is not None:
            phrase = m.group(1)
            if phrase:
                words = [w[1:-1] if w[:1] == b'"' else w for w in _PHRASE_WORD.findall(phrase)]
                a.name = b" ".join(words) or None
            a.mailbox, a.domain = m.group(2), m.group(3)
        else:
            a.mailbox, a.domain = m.group(4), m.group(5)
        out.append(a)
    return out


def parse_addresses(value: bytes) -> list[Address]:
    """Parse an address-list leniently, filling gaps like Dovecot's
    MESSAGE_ADDRESS_PARSE_FLAG_FILL_MISSING (MISSING_MAILBOX, MISSING_DOMAIN)."""
    simple = _simple_addresses(value)
    if simple is not None:
        return simple
    return parse_addresses_full(value)


def parse_addresses_full(value: bytes) -> list[Address]:
    """The full parser, for any input."""
    p = _AddressParser(value)
    if p.cur.skip_lwsp() > 0:
        p.address_list(MAX_ADDRESSES)
    return p.out
