"""The full-text index of the SQLite store: exact IMAP SEARCH text keys
without reading the messages.

What SEARCH matches (RFC 9051 §6.4.4; `mailbag.message.search`, the scan in
`mailbag.session.imap.searching`) is ``needle.casefold() in text.casefold()``
for a few decoded texts of a message. This module keeps those texts,
case-folded, per content (COPY adds message rows, not text), and answers
the same question from them:

* ``content_text`` (schema.py) holds, per content, the folded columns
  ``body`` (exactly `body_text`), ``headers`` (every header line of every
  entity, in the order `message_text` has them) and ``hfrom`` … ``hsubject``
  (the decoded values of that top-level field, one per line). Delivery
  extracts them in the worker thread that parses the message and inserts
  the row in the unit that inserts the content row: both commit together.
  A server that defers parsing (`SQLiteStore(defer_parse=True)`) stores the
  bytes alone; :class:`TextIndexer` then parses them and inserts facts,
  IMAP forms and text in one unit.
* ``content_fts`` is an FTS5 index with the ``trigram`` tokenizer over those
  columns. ``case_sensitive 1``: the folding is Python's, done before the
  text is stored, so the index folds exactly as the scan does (FTS5's own
  folding is simple case folding from an older Unicode: ß, ﬁ, İ and newer
  letters would differ). A phrase of n >= 3 characters matches where its
  n - 2 trigrams sit at consecutive positions of one column: a substring
  match, no false hits. Tokenizing costs 4-6 ms per 8 KB of text in the one
  writer thread (measured; delivery takes ~1.4 ms), so :class:`TextIndexer`
  adds rows to it in the background, in small units between deliveries.

Answering a key (:func:`plan` then :meth:`SQLiteStore.search_text`):

* a folded needle of 3+ characters: FTS5 MATCH for rows in the index,
  ``instr()`` on the stored text for rows not in it yet;
* a shorter one: ``instr()`` on the stored text (a C loop over the
  mailbox's texts, far cheaper than reading and decoding the messages);
* messages without stored text (too big, or stored before the index existed
  and not reached yet by the backfill) come back as "unindexed": the caller
  scans those;
* needles the columns cannot answer exactly come back as None (scan all):
  a line break in a TEXT or header-field needle (a match could run across
  two header lines or two values that the scan sees apart, or across the
  headers/body split), and NUL, U+FFFD..U+FFFF or lone surrogates (NUL ends
  FTS5's tokenizing and SQLite's string functions, so stored text carries
  U+FFFD in its place; the tokenizer folds U+FFFE/U+FFFF into U+FFFD).

Why a needle without a line break finds the same messages in the columns as
in `message_text`: every piece of that text (a header line, a part's body)
ends with a line break, so a match without one lies inside one piece, and
each piece is in exactly one column.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import StoreError, StoreUnavailable
from ...message.facts import compute_facts
from ...message.search import decoded_headers, part_text
from ...message.sections import BODY_START, CHILDREN, KIND, LEAF, START, TYPE, Node
from ..models import MessageFacts

if TYPE_CHECKING:
    from .writer import Tx, Writer

log = logging.getLogger(__name__)

# Text rows (content_text.state).
PENDING, INDEXED, UNINDEXED = 0, 1, 2

# Messages bigger than this are not decoded at delivery: searched by reading.
MAX_SOURCE = 32 * 1024 * 1024
# Total folded characters kept per content; more is searched by reading, as
# one FTS5 insert of it holds the writer (and so deliveries) for ~0.5 s.
MAX_CHARS = 512 * 1024
# Message octets the backfill reads and decodes per round.
BACKFILL_BYTES = 8 * 1024 * 1024
# Characters of text one background unit adds to content_fts: fewer while
# deliveries are coming in (each waits for the unit in progress), more when
# the store is quiet (bigger FTS5 segments cost less per message). Tokenizing
# takes roughly 1 ms per 1,000 characters; a unit holds the writer, so
# deliveries wait for it (4 K: LMTP over 4 connections 166 -> 227 msg/s
# while indexing was outstanding).
UNIT_CHARS = 4 * 1024
IDLE_UNIT_CHARS = 256 * 1024
# Deliveries within this many seconds make the worker yield: it then sleeps
# three times as long as each unit took, so it takes at most a quarter of
# the writer while mail is arriving.
BUSY_WINDOW = 0.5
# While mail is arriving the worker does not index at all until this much
# text waits (searched meanwhile with instr(), ~0.7 GB/s: ~45 ms per key at
# worst), then at the quarter of the writer above. A unit holds the writer
# and commits on its own, so each one delays the deliveries queued behind
# it by its tokenizing and one fsync; after the burst, idle units index the
# same text in fewer, bigger commits. 1,500 LMTP deliveries over one
# connection: the writer thread's CPU while they arrive 1.4-1.9 -> 1.0-1.2
# ms per message (the indexing moves to after the burst, ~2.5 ms each).
BUSY_BACKLOG_CHARS = 32 * 1024 * 1024
# Octets of messages stored unparsed (defer_parse) that may wait while mail is
# arriving; past it the worker parses at the writer-quarter pace above. Until
# parsed, a header SEARCH reads and parses the message (~0.6 ms per 16 KB
# one), so this bounds such a search at a few seconds during a long burst.
PARSE_BACKLOG_BYTES = 256 * 1024 * 1024
# How long a backlog measured over its limit is taken to stay over it: the
# measuring query reads every waiting row, and it would otherwise run before
# each unit, which then costs more than the unit.
BACKLOG_RECHECK = 1.0
# How often an idle indexer looks for work another process left.
POLL = 30.0

HEADER_COLUMNS = ("hfrom", "hto", "hcc", "hbcc", "hsubject")
COLUMNS = ("body", "headers", *HEADER_COLUMNS)
_FIELD_COLUMN = {"from": "hfrom", "to": "hto", "cc": "hcc", "bcc": "hbcc", "subject": "hsubject"}
# IMAP search key -> the columns whose union it searches.
FIELDS: dict[str, tuple[str, ...]] = {
    "BODY": ("body",),
    "TEXT": ("headers", "body"),
    **{name.upper(): (column,) for name, column in _FIELD_COLUMN.items()},
}

# What stored text cannot carry (sqlite3 cannot encode surrogates; NUL ends
# tokenizing): replaced by U+FFFD, and needles holding U+FFFD are not answered.
_SURROGATES = re.compile("[\ud800-\udfff]")
_UNANSWERABLE = re.compile("[\x00\ud800-\udfff\ufffd\ufffe\uffff]")


@dataclass(slots=True, frozen=True)
class Texts:
    """The folded text columns of one content (COLUMNS order), or none."""

    state: int
    columns: tuple[str, ...]

    @property
    def chars(self) -> int:
        return sum(len(c) for c in self.columns)


NOT_INDEXED = Texts(UNINDEXED, ("",) * len(COLUMNS))


def fold(text: str) -> str:
    """What the index stores for `text`: the scan's case folding, with the
    characters SQLite cannot keep replaced."""
    folded = text.casefold()
    if "\x00" in folded:
        folded = folded.replace("\x00", "\ufffd")
    if not folded.isascii():
        try:
            folded.encode("utf-8")  # a C loop; the regular expression is much slower
        except UnicodeEncodeError:
            folded = _SURROGATES.sub("\ufffd", folded)
    return folded


def pieces(
    data: bytes, tree: Node, top: list[tuple[str, str]] | None = None
) -> list[tuple[bool, str]]:
    """(is a header line, text) in the order `mailbag.message.search.message_text`
    joins them; the body pieces alone make `body_text`. Kept in step with
    that module's walk (tests/store/test_fts.py compares them on the corpus).
    `top`: the root's decoded header fields, when the caller has them."""
    out: list[tuple[bool, str]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if node[BODY_START] > node[START]:
            fields = top if node is tree and top is not None else None
            if fields is None:
                fields = decoded_headers(data, node[START], node[BODY_START])
            out.extend((True, f"{n}: {v}\n") for n, v in fields)
        if node[KIND] == LEAF and node[TYPE].startswith(("text/", "message/")):
            out.append((False, part_text(data, node) + "\n"))
        stack.extend(reversed(node[CHILDREN]))
    return out


def extract(data: bytes, facts: MessageFacts | None = None) -> Texts:
    """The text columns of a message, from facts the store computed itself
    (None: computed here). Never raises: what cannot be extracted is left to
    the scan."""
    if len(data) > MAX_SOURCE:
        return NOT_INDEXED
    try:
        if facts is None:
            facts = compute_facts(data)
        # The header block as the scan's header pass reads it.
        top = decoded_headers(data[: facts.header_size])
        tree = facts.parts
        same = tree[START] == 0 and tree[BODY_START] == facts.header_size
        parts = pieces(data, tree, top if same else None)
        headers = fold("".join(text for is_header, text in parts if is_header))
        body = fold("".join(text for is_header, text in parts if not is_header))
        fields: dict[str, list[str]] = {name: [] for name in _FIELD_COLUMN}
        for name, value in top:
            if name in fields:
                fields[name].append(value + "\n")
        texts = Texts(PENDING, (body, headers, *(fold("".join(fields[n])) for n in _FIELD_COLUMN)))
    except Exception:
        log.exception("full-text index: no text for a message of %d octets", len(data))
        return NOT_INDEXED
    return texts if texts.chars <= MAX_CHARS else NOT_INDEXED


def insert_text(conn: sqlite3.Connection, content_rowid: int, texts: Texts) -> None:
    """The text row of a content just inserted (inside the caller's unit)."""
    conn.execute(
        f"INSERT INTO content_text (content_id, state, chars, {', '.join(COLUMNS)})"
        f" VALUES (?, ?, ?{', ?' * len(COLUMNS)})",
        (content_rowid, texts.state, texts.chars, *texts.columns),
    )
    if texts.state != UNINDEXED:
        conn.execute(
            f"INSERT OR REPLACE INTO content_headers (content_id, {', '.join(HEADER_COLUMNS)})"
            f" VALUES (?{', ?' * len(HEADER_COLUMNS)})",
            (content_rowid, *texts.columns[-len(HEADER_COLUMNS) :]),
        )


# ---- queries ----------------------------------------------------------------
@dataclass(slots=True, frozen=True)
class Plan:
    """How one (field, needle) is answered: `sql` yields (uid, matched) rows
    where matched 0 means "no stored text: scan this message"."""

    sql: str
    params: tuple[Any, ...]
    uses_fts: bool


def plan(mailbox_id: int, field: str, needle: str, uids: str | None) -> Plan | None:
    """The query answering SEARCH `field` `needle` over a mailbox (or over the
    UIDs in the JSON array `uids`), or None when only a scan is exact."""
    columns = FIELDS.get(field.upper())
    if columns is None:
        return None
    folded = needle.casefold()
    if _UNANSWERABLE.search(folded):
        return None
    if "\n" in folded and columns != ("body",):
        return None
    where_uid = " AND m.uid IN (SELECT value FROM json_each(?))" if uids is not None else ""
    scope: tuple[Any, ...] = (mailbox_id, uids) if uids is not None else (mailbox_id,)
    # RFC 9051 §6.4.4 as Dovecot reads it: a header-field key matches only
    # messages that have the field, even for an empty string.
    present = "".join(f" AND t.{c} != ''" for c in columns if c in HEADER_COLUMNS)
    contains = " OR ".join(f"instr(t.{c}, ?) > 0" for c in columns)
    contains_params = (folded,) * len(columns)
    if all(c in HEADER_COLUMNS for c in columns):
        # Header fields are short: scanning the narrow content_headers rows
        # with instr() beats a trigram query whose posting lists are those of
        # every body that holds the same trigrams.
        # One pass over the mailbox's rows: the matches, and (hit = 0) the
        # messages without a content_headers row, which only a scan decides.
        match = " OR ".join(f"(h.{c} != '' AND instr(h.{c}, ?) > 0)" for c in columns)
        sql = (
            "SELECT m.uid, h.content_id IS NOT NULL FROM messages m"
            " LEFT JOIN content_headers h ON h.content_id = m.content_id"
            f" WHERE m.mailbox_id = ?{where_uid} AND (h.content_id IS NULL OR {match})"
        )
        return Plan(sql, (*scope, *contains_params), False)
    unindexed = (
        f"SELECT m.uid, 0 FROM messages m WHERE m.mailbox_id = ?{where_uid} AND NOT EXISTS"
        " (SELECT 1 FROM content_text t INDEXED BY content_text_state"
        f" WHERE t.content_id = m.content_id AND t.state != {UNINDEXED})"
    )
    if len(folded) < 3:
        # Trigrams cannot find it; instr() over the stored text can.
        sql = (
            "SELECT m.uid, 1 FROM messages m JOIN content_text t ON t.content_id = m.content_id"
            f" WHERE m.mailbox_id = ?{where_uid} AND t.state IN ({PENDING}, {INDEXED})"
            f"{present} AND ({contains})"
            f" UNION ALL {unindexed}"
        )
        return Plan(sql, (*scope, *contains_params, *scope), False)
    # FTS5 query syntax: a column filter, then the needle as one quoted
    # string ("" inside is a quote): a phrase of the needle's trigrams.
    quoted = folded.replace('"', '""')
    phrase = "{" + " ".join(columns) + '} : "' + quoted + '"'
    # The MATCH runs once, as a subquery: joined instead, SQLite's planner
    # runs it once per message of the mailbox (rowid-constrained).
    sql = (
        "SELECT m.uid, 1 FROM messages m JOIN content_text t ON t.content_id = m.content_id"
        f" WHERE m.mailbox_id = ?{where_uid} AND t.state = {INDEXED}"
        " AND +t.id IN (SELECT rowid FROM content_fts WHERE content_fts MATCH ?)"
        " UNION ALL"
        " SELECT m.uid, 1 FROM messages m JOIN content_text t ON t.content_id = m.content_id"
        f" WHERE m.mailbox_id = ?{where_uid} AND t.state = {PENDING}{present} AND ({contains})"
        f" UNION ALL {unindexed}"
    )
    return Plan(sql, (*scope, phrase, *scope, *contains_params, *scope), True)


# ---- the background worker -------------------------------------------------
class TextIndexer:
    """Adds stored text to content_fts, removes the text of deleted contents
    from it, and gives text rows to contents stored before the index existed.

    One thread; each piece of work is one small unit on the store's writer
    (the one thread that writes), so it is atomic and never races deliveries.
    While mail is arriving it takes at most a quarter of the writer. Every
    process that opens the store runs one; units re-check the rows under the
    write lock, so two never do the same work twice.
    """

    def __init__(
        self,
        writer: Writer,
        query: Callable[[str, Sequence[Any]], list[Any]],
        read_blob: Callable[[str], bytes],
        parse: Callable[[bytes], tuple[Any, Texts]] | None = None,
    ) -> None:
        """`parse(data) -> (EncodedFacts, Texts)`: for contents stored unparsed."""
        self.writer = writer
        self.query = query
        self.read_blob = read_blob
        self.parse = parse
        self.parsed = 0  # contents parsed here; for tests and metrics
        # backlog query -> monotonic time until which its backlog counts as
        # over its limit (BACKLOG_RECHECK).
        self._over_until: dict[str, float] = {}
        self._parse_from = 0  # contents.id cursor past unreadable contents
        self.units = 0  # units committed; for tests and metrics
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._requested = 0  # generation of the latest drain request
        # Generation at the start of the last round without work; starts
        # equal to _requested, so no drain is pending before anyone asks.
        self._idle_at = 0
        self._backfill_from: int | None = 0  # contents.id cursor; None: nothing to do
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="mailbag-fts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the unit in progress and end the thread (blocking)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def kick(self) -> None:
        """New work may be there (after a commit that added or deleted text)."""
        self._wake.set()

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until a round of the worker found nothing left to do; for tests
        and tools. False on timeout or when the worker is not running."""
        with self._cond:
            self._requested += 1
            target = self._requested
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._idle_at < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None or self._stopping.is_set():
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    # ---- the thread ---------------------------------------------------------
    def _main(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            with self._cond:
                generation = self._requested
            try:
                worked = self._parse() or self._backfill() or self._index()
            except StoreUnavailable as e:
                if self._stopping.is_set():
                    break
                log.warning("full-text index: %s; retrying later", e)
                self._stopping.wait(5.0)
                continue
            except Exception:
                log.exception("full-text index worker failed; retrying later")
                self._stopping.wait(POLL)
                continue
            if worked:
                continue
            with self._cond:
                self._idle_at = generation
                self._cond.notify_all()
            self._wake.wait(POLL)

    def _busy(self) -> bool:
        return time.monotonic() - self.writer.foreground_at < BUSY_WINDOW

    def _run(self, fn: Callable[[Tx], int], started: float | None = None) -> int:
        """Run `fn` as a unit; while mail arrives, then rest three times as
        long as the work took since `started` (default: the unit's start)."""
        if started is None:
            started = time.monotonic()
        done = self.writer.run_blocking(fn)
        self.units += 1
        # The rest ends early once mail stops arriving: a unit that waited
        # long for the writer during a burst would otherwise keep the worker
        # asleep for seconds after it (seen: the whole backlog of a 10,000
        # message load left for later).
        until = time.monotonic() + 3 * (time.monotonic() - started)
        while self._busy() and not self._stopping.is_set():
            left = until - time.monotonic()
            if left <= 0:
                break
            self._stopping.wait(min(left, 0.05))
        return done

    def _draining(self) -> bool:
        with self._cond:
            return self._requested > self._idle_at

    def _defer(self) -> bool:
        """Wait while mail is arriving and the backlog is small (see
        BUSY_BACKLOG_CHARS); True when it waited. A drain() request ends the
        wait: tests and tools want the index now."""
        return self._hold_off(
            "SELECT coalesce(sum(chars), 0) FROM content_text"
            " WHERE state = 0 OR content_id IS NULL",
            BUSY_BACKLOG_CHARS,
        )

    def _hold_off(self, backlog_sql: str, limit: int) -> bool:
        """Wait while mail arrives and the backlog `backlog_sql` measures is
        under `limit`; True when it waited."""
        waited = False
        while self._busy() and not self._stopping.is_set() and not self._draining():
            if not waited:
                now = time.monotonic()
                if now < self._over_until.get(backlog_sql, 0.0):
                    return False
                if self.query(backlog_sql, ())[0][0] >= limit:
                    self._over_until[backlog_sql] = now + BACKLOG_RECHECK
                    return False
                waited = True
            self._stopping.wait(0.05)
        return waited

    def _parse(self) -> bool:
        """Parse a few contents delivery stored unparsed (facts = ''): their
        facts, IMAP forms and text rows in one unit. False when none waits."""
        if self.parse is None:
            return False
        rows = self.query(
            "SELECT id, cid, size FROM contents INDEXED BY contents_unparsed"
            " WHERE facts = '' AND id > ? ORDER BY id LIMIT 64",
            (self._parse_from,),
        )
        if not rows:
            return False
        if self._hold_off(
            "SELECT coalesce(sum(size), 0) FROM contents INDEXED BY contents_unparsed"
            " WHERE facts = ''",
            PARSE_BACKLOG_BYTES,
        ):
            return True  # look again: mail may be arriving again
        started = time.monotonic()
        found: list[tuple[int, str, Any, Texts]] = []
        read = 0
        for rowid, cid, size in rows:
            if found and read + size > BACKFILL_BYTES:
                break
            read += size
            try:
                data = self.read_blob(cid)
            except (OSError, StoreError) as e:
                # Readers hit the same error; skipped until the next start.
                log.warning("cannot read content %s to parse it: %s", cid, e)
                self._parse_from = rowid
                continue
            try:
                facts, texts = self.parse(data)
                # Parsing is Python holding the GIL (~0.6 ms a message): give
                # the event loop its turn between messages, not after the
                # interpreter's 5 ms switch interval.
                time.sleep(0)
            except Exception:
                # compute_facts takes any octets; a bug must not stall the rest.
                log.exception("cannot parse content %s", cid)
                self._parse_from = rowid
                continue
            found.append((rowid, cid, facts, texts))
            self.parsed += 1
        if not found:
            return True

        def unit(tx: Tx) -> int:
            conn = tx.conn
            for rowid, cid, facts, texts in found:
                forms = facts.forms or (None, None, None)
                # Re-checked under the write lock: another process may have
                # parsed it, or the content may be gone.
                cur = conn.execute(
                    "UPDATE contents SET facts = ?, imap_envelope = ?, imap_body = ?,"
                    " imap_bodystructure = ? WHERE id = ? AND cid = ? AND facts = ''",
                    (facts.json, *forms, rowid, cid),
                )
                if (
                    cur.rowcount
                    and not conn.execute(
                        "SELECT 1 FROM content_text WHERE content_id = ?", (rowid,)
                    ).fetchall()
                ):
                    insert_text(conn, rowid, texts)
            return len(found)

        self._run(unit, started)
        return True

    def _index(self) -> bool:
        """One unit of content_fts work; False when there was none."""
        if not self.query(
            "SELECT 1 FROM content_text WHERE state = 0 OR content_id IS NULL LIMIT 1", ()
        ):
            return False
        if self._defer():
            return True  # look again: the work may be gone, or mail arriving again

        def unit(tx: Tx) -> int:
            conn = tx.conn
            rows = conn.execute(
                "SELECT id, content_id IS NULL, chars FROM content_text"
                " WHERE state = 0 OR content_id IS NULL ORDER BY id LIMIT 256"
            ).fetchall()
            budget = UNIT_CHARS if self._busy() else IDLE_UNIT_CHARS
            done = 0
            columns = ", ".join(COLUMNS)
            for row_id, dead, chars in rows:
                if done and chars > budget:
                    break
                budget -= chars
                done += 1
                if dead:
                    # External content: the delete command needs the values
                    # that were indexed, which stay unchanged in the row.
                    conn.execute(
                        f"INSERT INTO content_fts (content_fts, rowid, {columns})"
                        f" SELECT 'delete', id, {columns} FROM content_text WHERE id = ?",
                        (row_id,),
                    )
                    conn.execute("DELETE FROM content_text WHERE id = ?", (row_id,))
                else:
                    conn.execute(
                        f"INSERT INTO content_fts (rowid, {columns})"
                        f" SELECT id, {columns} FROM content_text WHERE id = ?",
                        (row_id,),
                    )
                    conn.execute(
                        f"UPDATE content_text SET state = {INDEXED} WHERE id = ?", (row_id,)
                    )
            return done

        return self._run(unit) > 0

    def _backfill(self) -> bool:
        """Text rows for up to a few contents that have none; False when none
        is left (then remembered in meta, so later opens skip the search)."""
        flag = self.query("SELECT value FROM meta WHERE key = 'text_backfill'", ())
        if flag and flag[0][0]:
            self._backfill_from = None
            return False
        if self._backfill_from is None:  # reset by a process storing without text
            self._backfill_from = 0
        rows = self.query(
            "SELECT c.id, c.cid, c.size FROM contents c WHERE c.id > ? AND c.facts != ''"
            " AND NOT EXISTS (SELECT 1 FROM content_text t WHERE t.content_id = c.id)"
            " ORDER BY c.id LIMIT 16",
            (self._backfill_from,),
        )
        if not rows:
            return self._run(self._finish_backfill) > 0
        found: list[tuple[int, str, Texts]] = []
        read = 0
        for rowid, cid, size in rows:
            if found and read + size > BACKFILL_BYTES:
                break
            texts = NOT_INDEXED
            if size <= MAX_SOURCE:
                read += size
                try:
                    texts = extract(self.read_blob(cid))
                except (OSError, StoreError) as e:
                    # Left to the scan, which will find the same problem.
                    log.warning("full-text index: cannot read content %s: %s", cid, e)
            found.append((rowid, cid, texts))
        self._backfill_from = found[-1][0]

        def unit(tx: Tx) -> int:
            for rowid, cid, texts in found:
                # Re-checked under the write lock: the content may be gone, or
                # another process may have given it its text meanwhile.
                if tx.conn.execute(
                    "SELECT 1 FROM contents c WHERE c.id = ? AND c.cid = ?"
                    " AND NOT EXISTS (SELECT 1 FROM content_text t WHERE t.content_id = c.id)",
                    (rowid, cid),
                ).fetchall():
                    insert_text(tx.conn, rowid, texts)
            return len(found)

        self._run(unit)
        return True

    def _finish_backfill(self, tx: Tx) -> int:
        # Under the write lock, so no content can appear meanwhile; a process
        # that stores contents without text (full_text=False) resets the flag.
        left = tx.conn.execute(
            "SELECT c.id FROM contents c WHERE c.facts != '' AND NOT EXISTS"
            " (SELECT 1 FROM content_text t WHERE t.content_id = c.id) ORDER BY c.id LIMIT 1"
        ).fetchall()
        if left:
            self._backfill_from = left[0][0] - 1
            return 1
        tx.conn.execute("UPDATE meta SET value = 1 WHERE key = 'text_backfill'")
        self._backfill_from = None
        return 0
