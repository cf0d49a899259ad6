"""mailbag against a private Dovecot 2.3, answer by answer, over the wire.

Every message of the hard corpus (tests/corpus/*.eml) is APPENDed to both
servers with the same flags and INTERNALDATE. Then, message by message, both
are asked the same FETCH commands (FLAGS, INTERNALDATE, RFC822.SIZE, ENVELOPE,
BODY, BODYSTRUCTURE, BODY[], HEADER/TEXT, HEADER.FIELDS(.NOT), a partial, and
for every part that either server's BODYSTRUCTURE shows: BODY[n], BODY[n.MIME],
BODY[n.HEADER]/[n.TEXT] of message parts, BINARY[n] and BINARY.SIZE[n] of leaf
parts, plus a few sections that do not exist), and the same SEARCH keys.

What is compared are *parsed* values (tests/interop/imap_wire.py): a string is
its octets whether the server sent it quoted, as a literal or as a literal8,
because RFC 9051 §4.3 makes those forms equivalent; FETCH items are compared
by name, not by their order in the response (RFC 9051 §7.5.2 fixes no order).
Two more normalisations, both because the RFC leaves the form open:

* INTERNALDATE is compared as an instant: RFC 9051 §2.3.3 makes it a date and
  time, and which zone a server writes it in is its choice (Dovecot converts
  to the server's local zone);
* the UID item is left out, since the UIDs of one message may differ when one
  server refused an earlier APPEND (those refusals are compared themselves).

Every difference fails the test with a readable diff unless it is listed in
INTENDED below with the RFC section that decides it; each listed difference
is checked to still be one, so the list cannot go stale.

Dovecot 2.3 has no IMAP4rev2, so both speak IMAP4rev1.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import imap_wire as w
import pytest

from mailbag.testing.dovecot import PrivateDovecot, dovecot_binary
from mailbag.testing.process import ServeProcess

pytestmark = pytest.mark.slow

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
NAMES = sorted(p.stem for p in CORPUS.glob("*.eml"))
USER = "alice@localhost"
PASSWORD = "differential pw"

# Flags and INTERNALDATE per message: a few combinations, zones that are not
# the server's, so both flags and INTERNALDATE get compared non-trivially.
FLAG_SETS: tuple[tuple[str, ...], ...] = (
    (),
    ("\\Seen",),
    ("\\Seen", "\\Flagged"),
    ("\\Answered", "$Label1"),
    ("\\Draft",),
    ("\\Seen", "\\Answered", "$Forwarded", "$Label1"),
)
ZONES = ("+0000", "+0200", "-0700", "+0530")


def flags_for(i: int) -> tuple[str, ...]:
    return FLAG_SETS[i % len(FLAG_SETS)]


def internaldate_for(i: int) -> str:
    month = ("Jan", "Feb", "Mar")[i % 3]
    return f"{1 + i % 28:02d}-{month}-2024 {i % 24:02d}:{(7 * i) % 60:02d}:05 {ZONES[i % 4]}"


# (message, item) → why mailbag answers differently from Dovecot 2.3, with the
# RFC section that decides it. Items are named as in the diffs below.
_UNKNOWN_CTE_ELSEWHERE = (
    "RFC 3516 §4.2/§4.3: BINARY.SIZE[n] is the size of what BINARY[n] returns, and "
    "NO [UNKNOWN-CTE] is for a section whose encoding cannot be decoded; Dovecot "
    "2.3.19 fails BINARY.SIZE of every part once one part (4, x-uuencode) is unknown"
)
INTENDED: dict[tuple[str, str], str] = {
    ("nul_bytes", "APPEND"): (
        "RFC 9051 §4.3: a literal is CHAR8, which excludes NUL, so APPEND of a "
        "message with NUL in a plain {n} literal is BAD; Dovecot accepts it. Both "
        "store it from a literal8 (RFC 3516 §4.4), which is what is compared"
    ),
    ("content_fields", "BINARY.SIZE[1]"): (
        "RFC 3516 §4.2: BINARY.SIZE[1] is the size of BINARY[1] (5 octets, 'na\xefve', "
        "on both servers); Dovecot 2.3.19 answers 1"
    ),
    ("cte_without_mime", "BINARY[1]"): (
        "RFC 2045 §4: without MIME-Version (and Content-Type) the "
        "Content-Transfer-Encoding field has no MIME meaning; both servers' "
        "BODYSTRUCTURE says 7bit, but Dovecot's BINARY decodes base64 anyway; we "
        "keep BINARY consistent with BODYSTRUCTURE (RFC 9051 §7.5.2 body-fld-enc)"
    ),
    ("cte_without_mime", "BINARY.SIZE[1]"): "follows BINARY[1]",
    ("duplicate_headers", "BINARY[1]"): (
        "two Content-Transfer-Encoding fields (RFC 2045 §6.1 allows one): both "
        "servers' BODYSTRUCTURE uses the first, Dovecot's BINARY the last; we use "
        "the first for both (RFC 9051 §7.5.2 body-fld-enc names the encoding BINARY undoes)"
    ),
    ("duplicate_headers", "BINARY.SIZE[1]"): "follows BINARY[1]",
    **{("transfer_encodings", f"BINARY.SIZE[{n}]"): _UNKNOWN_CTE_ELSEWHERE for n in (1, 2, 3, 5)},
    ("transfer_encodings", "BINARY[6]"): (
        "'Content-Transfer-Encoding: base64; junk' is not one mechanism token "
        "(RFC 2045 §6.1), so the field is invalid and 7bit applies, as both "
        "servers' BODYSTRUCTURE says; Dovecot 2.3.19 closes the connection with "
        "'* BYE ... Internal error' on this FETCH"
    ),
    ("transfer_encodings", "BINARY.SIZE[6]"): "follows BINARY[6]; " + _UNKNOWN_CTE_ELSEWHERE,
}

# SEARCH key (as written in SEARCH_KEYS) → why the result differs on purpose.
_NUL_IN_FROM = (
    "RFC 9051 §6.4.4: FROM matches a substring of the From field; nul_bytes has "
    "'From: nul<NUL>@example.org', which contains 'example.org'; Dovecot's header "
    "search stops at the NUL (a C string), so it misses it"
)
INTENDED_SEARCH: dict[str, str] = {
    "TEXT innermost": (
        "DESIGN.md §2.5 caps every input: MIME nesting is parsed to 100 levels "
        "(deeper parts are opaque application/octet-stream, as Dovecot's own "
        "parser does for BODYSTRUCTURE); the word sits 105 levels deep, where "
        "mailbag's TEXT search no longer looks. RFC 9051 §6.4.4 does not define "
        "how deep TEXT must look into nested messages"
    ),
    "FROM example.org": _NUL_IN_FROM,
    "NOT FROM example.org": _NUL_IN_FROM,
    "SUBJECT GRÜẞE (UTF-8, case)": (
        "RFC 9051 §6.4.4 asks for case-insensitive matching only within ASCII and "
        "leaves the rest to the server (RFC 5255 suggests a comparator); mailbag "
        "uses full Unicode case folding, so ẞ and ß both fold to 'ss' and "
        "'GRÜẞE' matches 'Grüße'; Dovecot's i;unicode-casemap (RFC 5051) keeps ß"
    ),
}


# -- the two servers ---------------------------------------------------------


@dataclass
class Side:
    name: str
    port: int
    conn: w.Connection | None = None
    uids: dict[str, int] = field(default_factory=dict)  # message → UID
    appended: dict[str, str] = field(default_factory=dict)  # message → "OK"/"NO [CODE]"

    def by_uid(self) -> dict[int, str]:
        return {u: n for n, u in self.uids.items()}

    def connect(self) -> w.Connection:
        self.conn = w.Connection("127.0.0.1", self.port)
        self.conn.login(USER, PASSWORD)
        self.conn.select("INBOX")
        return self.conn

    def command(self, *args: str | bytes | w.Lit) -> w.Result:
        """A command on the comparing connection; if the server hangs up on it,
        that is the answer ("BYE", with the last untagged text) and the next
        command gets a new connection."""
        conn = self.conn or self.connect()
        try:
            return conn.command(*args)
        except (ConnectionError, OSError):
            bye = next((x for x in reversed(conn.log) if x.startswith(b"* BYE")), b"* BYE")
            conn.close()
            self.conn = None
            return w.Result("", "BYE", bye.decode(errors="replace").strip())


@dataclass
class Pair:
    dovecot: Side
    mailbag: Side


def _status(r: w.Result) -> str:
    return r.status + (f" [{r.code.split(' ', 1)[0]}]" if r.code and r.status != "OK" else "")


def _load(side: Side) -> None:
    loader = w.Connection("127.0.0.1", side.port)
    try:
        loader.login(USER, PASSWORD)
        loader.command("CREATE", "Scratch").ok()
        for i, name in enumerate(NAMES):
            data = (CORPUS / f"{name}.eml").read_bytes()
            binary = b"\x00" in data
            if binary:
                # RFC 9051 §4.3: a literal is CHAR8, no NUL; RFC 3516 §4.4 lets
                # APPEND carry NUL in a literal8. The plain literal's answer is
                # compared (into a scratch mailbox), INBOX gets the literal8.
                trial = loader.append("Scratch", data, flags_for(i), internaldate_for(i))
                side.appended[name] = _status(trial)
            r = loader.append("INBOX", data, flags_for(i), internaldate_for(i), binary)
            side.appended[name + (" (literal8)" if binary else "")] = _status(r)
            if r.status == "OK":
                code = r.code or ""
                assert code.upper().startswith("APPENDUID "), (side.name, name, r)
                side.uids[name] = int(code.split()[2])
    finally:
        loader.logout()
    side.connect()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    if dovecot_binary() is None:
        pytest.skip(
            "Dovecot is not installed (apt-get install dovecot-imapd dovecot-pop3d "
            "dovecot-lmtpd; scripts/test does): no reference to compare with"
        )
    dovecot = PrivateDovecot(None, {USER: PASSWORD}).start()
    served = ServeProcess(tmp_path_factory.mktemp("differential") / "data")
    try:
        served.start()
        served.add_user(USER, PASSWORD)
        d = Side("dovecot", dovecot.ports["imap"])
        m = Side("mailbag", served.port("imap"))
        _load(d)
        _load(m)
        yield Pair(d, m)
        for side in (d, m):
            if side.conn is not None:
                side.conn.logout()
    finally:
        dovecot.stop()
        code = served.stop()
        assert code == 0, served.log()[-3000:]


# -- comparing ---------------------------------------------------------------


def _instant(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return datetime.strptime(value.decode(), "%d-%b-%Y %H:%M:%S %z").timestamp()
        except ValueError:
            return value
    return value


def _normalise(items: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in items.items():
        if k == "UID":
            continue
        if k == "INTERNALDATE":
            v = _instant(v)
        elif k == "FLAGS" and isinstance(v, list):
            v = sorted(str(f) for f in v)  # flags are a set: order is no answer (RFC 9051 §2.3.2)
        out[k] = v
    return out


def _bytes_diff(a: bytes, b: bytes) -> str:
    al = [repr(x) for x in a.splitlines(keepends=True)]
    bl = [repr(x) for x in b.splitlines(keepends=True)]
    lines = list(difflib.unified_diff(al, bl, "dovecot", "mailbag", n=1, lineterm=""))
    return "\n      ".join(lines[:40])


def describe(item: str, want: Any, got: Any) -> str:
    text = f"  {item}:\n    dovecot: {w.render(want)}\n    mailbag: {w.render(got)}"
    if isinstance(want, bytes) and isinstance(got, bytes) and (len(want) + len(got)) > 160:
        text += "\n    diff:\n      " + _bytes_diff(want, got)
    return text


@dataclass
class Answer:
    status: str
    items: dict[str, Any]


def ask(side: Side, name: str, items: str) -> Answer:
    r = side.command("UID FETCH", str(side.uids[name]), items)
    fetched = r.fetches()
    values: dict[str, Any] = {}
    for d in fetched.values():
        values.update(d)
    return Answer(_status(r), _normalise(values))


def _item_names(items: str) -> list[str]:
    """Response item names for a list of requested items (PEEK dropped)."""
    p = w.Parser(items.encode() + b"\r\n")
    vals = p.value()
    vals = vals if isinstance(vals, list) else [vals]
    out = []
    for v in vals:
        s = str(v).upper().replace(".PEEK[", "[")
        if s.endswith(">") and "<" in s:  # BODY[]<10.50> answers as BODY[]<10>
            s = s[: s.rindex("<")] + "<" + s[s.rindex("<") + 1 :].split(".")[0] + ">"
        out.append(s)
    return out


def compare_fetch(pair: Pair, name: str, items: str, problems: list[tuple[str, Any, Any]]) -> None:
    a = ask(pair.dovecot, name, items)
    b = ask(pair.mailbag, name, items)
    for item in _item_names(items):
        # A failed command (NO [UNKNOWN-CTE], BYE) is that item's answer.
        want = a.items.get(item, a.status if a.status != "OK" else "<absent>")
        got = b.items.get(item, b.status if b.status != "OK" else "<absent>")
        if want != got:
            problems.append((item, want, got))
    extra = set(b.items) - set(_item_names(items))
    if extra and b.status == "OK":
        problems.append((f"unrequested items for {items}", sorted(a.items), sorted(b.items)))


TOP_ITEMS = (
    "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE)",
    "(BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT])",
    "(BODY.PEEK[HEADER.FIELDS (From Subject Content-Type)] BODY.PEEK[HEADER.FIELDS.NOT (Subject)])",
    "(BODY.PEEK[]<10.50> BODY.PEEK[TEXT]<0.20>)",
    "(RFC822.HEADER RFC822.SIZE)",
)
# Sections no message of the corpus has (RFC 9051 §6.4.5 does not say what to
# answer; both answer with an empty string, see the module docstring of
# mailbag.session.imap.bodydata).
MISSING_SECTIONS = ("99", "1.99", "99.MIME")


def sections(pair: Pair, name: str) -> list[tuple[str, str]]:
    """Every part either server's BODYSTRUCTURE shows (union, in order)."""
    seen: dict[str, str] = {}
    for side in (pair.dovecot, pair.mailbag):
        if name not in side.uids:
            continue
        bs = ask(side, name, "(BODYSTRUCTURE)").items.get("BODYSTRUCTURE")
        if isinstance(bs, list):
            for sec, kind in w.body_sections(bs):
                seen.setdefault(sec, kind)
    return list(seen.items())


def fetch_problems(pair: Pair, name: str) -> list[tuple[str, Any, Any]]:
    problems: list[tuple[str, Any, Any]] = []
    for items in TOP_ITEMS:
        compare_fetch(pair, name, items, problems)
    for sec, kind in sections(pair, name):
        compare_fetch(pair, name, f"(BODY.PEEK[{sec}] BODY.PEEK[{sec}.MIME])", problems)
        if kind == "message":
            compare_fetch(pair, name, f"(BODY.PEEK[{sec}.HEADER] BODY.PEEK[{sec}.TEXT])", problems)
            compare_fetch(pair, name, f"(BODY.PEEK[{sec}.HEADER.FIELDS (Subject From)])", problems)
        if kind == "leaf":
            # One command each: an unknown encoding fails the whole command
            # (RFC 3516 §4.3 NO [UNKNOWN-CTE]), and that status is compared too.
            compare_fetch(pair, name, f"(BINARY.PEEK[{sec}])", problems)
            compare_fetch(pair, name, f"(BINARY.SIZE[{sec}])", problems)
    for sec in MISSING_SECTIONS:
        compare_fetch(pair, name, f"(BODY.PEEK[{sec}])", problems)
    return problems


def _unexplained(name: str, problems: list[tuple[str, Any, Any]]) -> list[str]:
    return [describe(item, a, b) for item, a, b in problems if (name, item) not in INTENDED]


# -- SEARCH keys ---------------------------------------------------------------

U = w.Lit  # a non-ASCII string travels as a literal under CHARSET UTF-8


def _u(text: str) -> w.Lit:
    return U(text.encode())


SEARCH_KEYS: dict[str, tuple[str | bytes | w.Lit, ...]] = {
    "ALL": ("ALL",),
    "FROM example.org": ("FROM", '"example.org"'),
    "FROM alice": ("FROM", "alice"),
    "FROM Jörg (UTF-8)": ("CHARSET", "UTF-8", "FROM", _u("Jörg")),
    "FROM müller (UTF-8, case)": ("CHARSET", "UTF-8", "FROM", _u("müller")),
    "FROM Original Author": ("FROM", '"Original Author"'),
    "TO example.com": ("TO", "example.com"),
    "TO André (UTF-8, encoded-word)": ("CHARSET", "UTF-8", "TO", _u("André")),
    "TO bob": ("TO", "bob"),
    "CC dave": ("CC", "dave"),
    "CC after@": ("CC", '"after@"'),
    "SUBJECT boundary": ("SUBJECT", "boundary"),
    "SUBJECT Grüße (UTF-8)": ("CHARSET", "UTF-8", "SUBJECT", _u("Grüße")),
    "SUBJECT GRÜẞE (UTF-8, case)": ("CHARSET", "UTF-8", "SUBJECT", _u("GRÜẞE")),
    "SUBJECT GRÜ (UTF-8, case)": ("CHARSET", "UTF-8", "SUBJECT", _u("GRÜ")),
    "BODY NUL (after a NUL byte)": ("BODY", '"NUL"'),
    "SUBJECT Soldes d'été (UTF-8, encoded-word)": (
        "CHARSET",
        "UTF-8",
        "SUBJECT",
        _u("soldes d'été"),
    ),
    "SUBJECT und mehr": ("SUBJECT", '"und mehr"'),
    "SUBJECT empty string": ("SUBJECT", '""'),
    "BODY héllo (UTF-8, base64)": ("CHARSET", "UTF-8", "BODY", _u("héllo")),
    "BODY moitié (UTF-8, latin-1 qp)": ("CHARSET", "UTF-8", "BODY", _u("moitié")),
    "BODY été</h1> (UTF-8, cp1252 base64)": ("CHARSET", "UTF-8", "BODY", _u("été</h1>")),
    "BODY Grüße (UTF-8, 8bit)": ("CHARSET", "UTF-8", "BODY", _u("Grüße")),
    "BODY soft break (qp)": ("BODY", '"soft break"'),
    "BODY forwarded": ("BODY", "forwarded"),
    "BODY Lunch": ("BODY", "lunch"),
    "BODY boundary": ("BODY", "boundary"),
    "TEXT orig@example.net": ("TEXT", "orig@example.net"),
    "TEXT Grüße (UTF-8)": ("CHARSET", "UTF-8", "TEXT", _u("grüße")),
    "TEXT Content-Type": ("TEXT", "content-type"),
    "TEXT innermost": ("TEXT", "innermost"),
    "HEADER Content-Type multipart": ("HEADER", "Content-Type", "multipart"),
    "HEADER Message-ID empty": ("HEADER", "Message-ID", '""'),
    "HEADER Content-Transfer-Encoding base64": (
        "HEADER",
        "Content-Transfer-Encoding",
        "base64",
    ),
    "HEADER X-Nonexistent empty": ("HEADER", "X-Nonexistent", '""'),
    "LARGER 400": ("LARGER", "400"),
    "SMALLER 300": ("SMALLER", "300"),
    "LARGER 0": ("LARGER", "0"),
    "SENTSINCE 3-Sep-2024": ("SENTSINCE", "3-Sep-2024"),
    "SENTBEFORE 3-Sep-2024": ("SENTBEFORE", "3-Sep-2024"),
    "SENTON 2-Sep-2024": ("SENTON", "2-Sep-2024"),
    "SINCE 15-Feb-2024": ("SINCE", "15-Feb-2024"),
    "BEFORE 10-Jan-2024": ("BEFORE", "10-Jan-2024"),
    "SEEN": ("SEEN",),
    "UNSEEN": ("UNSEEN",),
    "FLAGGED": ("FLAGGED",),
    "ANSWERED": ("ANSWERED",),
    "DRAFT": ("DRAFT",),
    "UNDRAFT": ("UNDRAFT",),
    "KEYWORD $Label1": ("KEYWORD", "$Label1"),
    "UNKEYWORD $Label1": ("UNKEYWORD", "$Label1"),
    "KEYWORD $Forwarded": ("KEYWORD", "$Forwarded"),
    "NOT SEEN": ("NOT", "SEEN"),
    "OR FLAGGED DRAFT": ("OR", "FLAGGED", "DRAFT"),
    "NOT FROM example.org": ("NOT", "FROM", '"example.org"'),
    "OR SUBJECT rfc822 FROM deep": ("OR", "SUBJECT", "rfc822", "FROM", "deep"),
    "SEEN NOT FLAGGED LARGER 200": ("SEEN", "NOT", "FLAGGED", "LARGER", "200"),
    "(OR SEEN DRAFT) SUBJECT a": ("(OR", "SEEN", "DRAFT)", "SUBJECT", "a"),
}


def search_names(side: Side, args: Sequence[str | bytes | w.Lit]) -> tuple[str, list[str]]:
    r = side.command("UID SEARCH", *args)
    if r.status != "OK":
        return _status(r), []
    names = side.by_uid()
    return "OK", sorted(names.get(u, f"uid {u}") for u in r.search())


# -- tests ---------------------------------------------------------------------


def test_append_outcomes(pair: Pair) -> None:
    """RFC 9051 §6.3.12: both servers accept (or refuse) the same messages."""
    problems = [
        describe(f"APPEND {n}", pair.dovecot.appended[n], pair.mailbag.appended[n])
        for n in pair.dovecot.appended
        if pair.dovecot.appended[n] != pair.mailbag.appended.get(n)
        and (n, "APPEND") not in INTENDED
    ]
    assert not problems, "APPEND answers differ:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", NAMES)
def test_fetch_matches_dovecot(pair: Pair, name: str) -> None:
    """RFC 9051 §6.4.5, §7.5.2, RFC 3516: the same answers for the same message."""
    if name not in pair.dovecot.uids or name not in pair.mailbag.uids:
        pytest.skip(f"{name} was not stored by both servers (see test_append_outcomes)")
    problems = _unexplained(name, fetch_problems(pair, name))
    assert not problems, f"{name}: mailbag differs from Dovecot\n" + "\n".join(problems)


@pytest.mark.parametrize("key", list(SEARCH_KEYS))
def test_search_matches_dovecot(pair: Pair, key: str) -> None:
    """RFC 9051 §6.4.4 (RFC 3501 §6.4.4): the same messages match each key."""
    args = SEARCH_KEYS[key]
    a = search_names(pair.dovecot, args)
    b = search_names(pair.mailbag, args)
    if a != b and key not in INTENDED_SEARCH:
        only_d = sorted(set(a[1]) - set(b[1]))
        only_m = sorted(set(b[1]) - set(a[1]))
        raise AssertionError(
            f"SEARCH {key}: dovecot {a[0]}, mailbag {b[0]}\n"
            f"  only dovecot matches: {only_d}\n  only mailbag matches: {only_m}"
        )


def test_status_matches_dovecot(pair: Pair) -> None:
    """RFC 9051 §6.3.11 STATUS: the same counts for the loaded mailbox."""
    answers = []
    for side in (pair.dovecot, pair.mailbag):
        r = side.command("STATUS", "INBOX", "(MESSAGES UNSEEN UIDNEXT)").ok()
        (status,) = r.of("STATUS")
        items = status.values[2]
        answers.append(dict(zip(map(str, items[::2]), items[1::2], strict=True)))
    assert answers[0] == answers[1], f"dovecot {answers[0]}, mailbag {answers[1]}"
    assert answers[1]["MESSAGES"] == len(pair.mailbag.uids)


def test_intended_differences_are_real(pair: Pair) -> None:
    """Each listed difference still shows, so INTENDED does not go stale."""
    stale = []
    for name in sorted({n for n, _ in INTENDED}):
        items = {item for n, item in INTENDED if n == name}
        if "APPEND" in items:
            if pair.dovecot.appended[name] == pair.mailbag.appended[name]:
                stale.append((name, "APPEND"))
            continue
        found = {item for item, _, _ in fetch_problems(pair, name)}
        stale.extend((name, item) for item in sorted(items - found))
    for key in INTENDED_SEARCH:
        args = SEARCH_KEYS[key]
        if search_names(pair.dovecot, args) == search_names(pair.mailbag, args):
            stale.append(("SEARCH", key))
    assert not stale, f"listed as intended differences but now equal: {stale}"


def test_corpus_is_compared_whole(pair: Pair) -> None:
    """The comparison covers the corpus: every message got a structure on both."""
    assert len(NAMES) >= 25
    both = set(pair.dovecot.uids) & set(pair.mailbag.uids)
    assert len(both) >= len(NAMES) - 2, sorted(set(NAMES) - both)
    r = pair.mailbag.command("UID FETCH 1:* (UID)").ok()
    assert len(r.fetches()) == len(pair.mailbag.uids)
    # the part lists are real: the corpus has a few hundred parts in all
    assert sum(len(sections(pair, n)) for n in sorted(both)) > 200
