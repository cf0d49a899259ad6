"""The default store: one SQLite database plus content-addressed files.

Layout under ``data_dir``::

    mailbag.db (+ -wal, -shm)   accounts, mailboxes, messages, facts (schema.py),
                                and the bytes of contents up to 128 KiB
    blobs/ab/<sha256>           bytes of bigger contents, one file per content
    blobs/ab/<sha256>.*.tmp     files being written (blobs/files.py)
    mailbag.lock                flock: shared while open, exclusive to sweep

How the invariants of DESIGN.md §2 hold here:

- *Durable before acknowledged.* A small content's bytes are a row of
  ``content_bytes`` inserted by the unit that inserts its other rows
  (blobs/indb.py); a big one's file is written, fsynced and renamed (and its
  directory fsynced) in a worker thread before its unit is queued. The
  writer thread's commit, with ``synchronous=FULL``, is the fsync after which
  the caller's await returns: for small messages the only one, shared by the
  whole group commit.
- *No row without bytes.* Bytes in the database commit with their row or
  not at all. For a file, inside the unit, under the write lock, a content
  row is inserted only after checking that the file is there (writing it
  again if a concurrent garbage collection removed it); files are removed
  only after the commit that deleted their row, again under the write lock.
- *No bytes nobody references, forever.* A ``content_bytes`` row is deleted
  with its content row, in the same transaction. A failed unit's fresh files
  are collected after the batch; what a crash leaves (temp files, files
  written before a commit that never happened, a file whose content is kept
  in the database) is swept at the next ``open()`` by the first process to
  open the store (it alone can take the exclusive lock).
- *Changes after commit.* See writer.py.

Cross-process use: the CLI opens the same directory while the server runs.
Nothing about accounts, mailboxes or UIDNEXT is cached in memory; every write
reads what it needs inside its own BEGIN IMMEDIATE transaction, and readers
always see the latest commit. Change records cross processes through
`change_log` (follow.py). POP3 maildrop locks are flock()s on a file per
account, so they hold between server processes too, and go with a process
that dies. \\Recent claims are decided in memory unless `multi_process`
(several server processes run IMAP sessions), where they are committed
before SELECT answers.

Full-text search (fts.py): the case-folded text SEARCH looks in is extracted
with the facts in the parsing worker thread and stored in the unit that
stores the content; a background thread (fts.TextIndexer) feeds it to an
FTS5 trigram index through the writer. `search_text` (the
store.interface.FullTextSearch capability) answers text keys from these.

Reads: point lookups (and mailbox_status, which reads trigger-kept counters)
run directly on the caller's thread with a per-thread read-only connection
(~20 µs, against ~100 µs for a hop to a worker thread); scans whose size grows
with the mailbox (list_messages of many or all UIDs, list_accounts) and
content reads of files over 256 KiB run in a worker thread. Content kept in
the database is read on the caller's thread (at most 128 KiB, one statement).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

from ...errors import AlreadyExists, Cannot, NotFound, StoreUnavailable
from ...message.facts import compute_facts, compute_facts_off_loop
from ..blobs import BlobStore, content_id, fsync_dir, indb, is_content_id
from ..changes import (
    ChangeHub,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
)
from ..interface import TextMatches
from ..models import (
    DEFAULT_MAILBOXES,
    INBOX,
    SEPARATOR,
    UID,
    Account,
    AccountID,
    AppendRequest,
    AppendResult,
    ContentID,
    CopyResult,
    FlagOp,
    FlagUpdate,
    Mailbox,
    MailboxID,
    MailboxStatus,
    Message,
    MessageFacts,
    MessageIndex,
    ModSeq,
    ResponseForms,
    SpecialUse,
    UIDValidity,
    canonical_mailbox_name,
    normalize_flag,
)
from . import fts
from .follow import FOLLOW_INTERVAL, ChangeFollower
from .schema import DELETED_BIT, FLAG_BITS, SEEN_BIT
from .writer import Tx, Writer, as_store_error, connect

log = logging.getLogger(__name__)

T = TypeVar("T")

DB_NAME = "mailbag.db"
LOCK_NAME = "mailbag.lock"
# POP3 maildrop lock files, one per account that ever logged in over POP3.
LOCKS_DIR = "locks"
MAX_UID = 2**32 - 1
# Point reads below this many UIDs run on the caller's thread.
_DIRECT_UIDS = 64
# Content reads up to this size run on the caller's thread: from the page cache
# 256 KB take tens of microseconds, less than a hop to a worker thread.
_DIRECT_READ = 256 * 1024

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_BIT_FLAGS: tuple[frozenset[str], ...] = tuple(
    frozenset(name for name, bit in FLAG_BITS.items() if mask & bit) for mask in range(32)
)

_MAILBOX_COLUMNS = """
    m.id, m.account_id, m.name, m.uidvalidity, m.uidnext, m.highestmodseq,
    EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = m.account_id AND s.name = m.name),
    m.special_use, m.first_recent_uid
"""
_MESSAGE_COLUMNS = """
    m.uid, m.modseq, m.flags, m.keywords, m.internal_date, m.internal_tz, m.size, c.cid
"""


# ---- value codecs -----------------------------------------------------------
_FACT_FIELDS = tuple(f.name for f in dataclasses.fields(MessageFacts) if f.name != "forms")


class EncodedFacts(NamedTuple):
    """MessageFacts as the `contents` columns hold them."""

    json: str
    forms: tuple[bytes, bytes, bytes] | None  # imap_envelope, imap_body, imap_bodystructure


def encode_facts(facts: MessageFacts) -> EncodedFacts:
    """Every MessageFacts field but `forms` as one JSON object (fields added
    later come along); `forms` goes to columns of its own (get_forms).

    ensure_ascii: decoded header text may hold lone surrogates, which UTF-8
    (and so SQLite TEXT) cannot carry; \\uXXXX escapes round-trip them.
    """
    doc = {name: getattr(facts, name) for name in _FACT_FIELDS}
    doc["sent_date"] = facts.sent_date.isoformat() if facts.sent_date else None
    f = facts.forms
    forms = (f.envelope, f.body, f.bodystructure) if f is not None else None
    return EncodedFacts(json.dumps(doc, separators=(",", ":")), forms)


# What `_prepare` stores for a content it leaves to the background worker to
# parse (defer_parse); schema.py, version 6.
UNPARSED = EncodedFacts("", None)


def decode_facts(text: str) -> MessageFacts:
    doc = json.loads(text)
    # Fields this code does not know (written by a newer one) are ignored;
    # fields missing from an older row keep their defaults.
    kwargs = {name: doc[name] for name in _FACT_FIELDS if name in doc}
    sent = kwargs.get("sent_date")
    kwargs["sent_date"] = dt.datetime.fromisoformat(sent) if sent else None
    return MessageFacts(**kwargs)


def split_flags(flags: Iterable[str]) -> tuple[int, frozenset[str]]:
    """(system flag bits, keywords); system flags are case-insensitive (RFC 9051 §2.3.2)."""
    mask = 0
    keywords: set[str] = set()
    for flag in flags:
        flag = normalize_flag(flag)
        bit = FLAG_BITS.get(flag)
        if bit is None:
            keywords.add(flag)
        else:
            mask |= bit
    return mask, frozenset(keywords)


def keywords_doc(keywords: frozenset[str]) -> str | None:
    # Sorted, so equal sets are equal text; NULL keeps the common case small.
    return json.dumps(sorted(keywords)) if keywords else None


def keywords_set(doc: str | None) -> frozenset[str]:
    return frozenset(json.loads(doc)) if doc else frozenset()


def decode_flags(mask: int, keywords: str | None) -> frozenset[str]:
    base = _BIT_FLAGS[mask & 31]
    return base | keywords_set(keywords) if keywords else base


_TZ_CACHE: dict[int, dt.tzinfo] = {0: dt.UTC}


def _tz(offset: int) -> dt.tzinfo:
    tz = _TZ_CACHE.get(offset)
    if tz is None:
        tz = _TZ_CACHE[offset] = dt.timezone(dt.timedelta(seconds=offset))
    return tz


def encode_date(when: dt.datetime) -> tuple[int, int]:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    offset = when.utcoffset()
    return int(when.timestamp()), int(offset.total_seconds()) if offset else 0


def decode_date(ts: int, offset: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, _tz(offset))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


# message_index columns (models.INDEX_COLUMNS): the SQL that reads each and
# the array type it is kept in ("" for keywords, kept as a dict). Days are
# floored in SQL (its `/` and `%` truncate toward zero; dates before 1970).
_LOCAL = "(internal_date + internal_tz)"
_INDEX_SQL: dict[str, tuple[str, str]] = {
    "flags": ("flags", "B"),
    "keywords": ("keywords", ""),
    "days": (
        f"({_LOCAL} - ({_LOCAL} % 86400 + 86400) % 86400) / 86400 + {_EPOCH_ORDINAL}",
        "q",
    ),
    "sizes": ("size", "Q"),
    "modseqs": ("modseq", "Q"),
    "dates": ("internal_date", "q"),
    "zones": ("internal_tz", "i"),
}


def _uid_json(uids: Iterable[int]) -> str:
    return json.dumps(sorted({int(u) for u in uids}))


def _mailbox(row: Sequence[Any]) -> Mailbox:
    return Mailbox(
        id=MailboxID(row[0]),
        account_id=AccountID(row[1]),
        name=row[2],
        uidvalidity=UIDValidity(row[3]),
        uidnext=UID(row[4]),
        highestmodseq=ModSeq(row[5]),
        subscribed=bool(row[6]),
        special_use=SpecialUse(row[7]) if row[7] else None,
        first_recent_uid=UID(row[8]),
    )


def _account(row: Sequence[Any]) -> Account:
    return Account(AccountID(row[0]), row[1], dt.datetime.fromtimestamp(row[2], dt.UTC))


def _messages(mailbox_id: MailboxID, rows: Iterable[Sequence[Any]]) -> list[Message]:
    # Flag sets repeat across a mailbox: decode each (bits, keywords) once per
    # call. (UID, ModSeq and ContentID are NewTypes: no conversion at run time.)
    flag_sets: dict[tuple[int, str | None], frozenset[str]] = {}
    out = []
    for uid, modseq, flags, keywords, date, tz, size, cid in rows:
        key = (flags, keywords)
        decoded = flag_sets.get(key)
        if decoded is None:
            decoded = flag_sets[key] = decode_flags(flags, keywords)
        out.append(Message(mailbox_id, uid, modseq, decoded, decode_date(date, tz), size, cid))
    return out


@dataclass(slots=True, frozen=True)
class _Prepared:
    """An AppendRequest after the work done outside the writer thread."""

    cid: str
    data: bytes
    facts: EncodedFacts | None  # None: the content was stored already, facts not computed
    texts: fts.Texts | None  # full-text columns; None when facts is, or without full_text
    flags: int
    keywords: str | None
    date: int
    tz: int


@dataclass(slots=True, frozen=True)
class _Box:
    """A mailbox row as a write unit needs it."""

    id: MailboxID
    account_id: AccountID
    uidvalidity: UIDValidity
    uidnext: int
    highestmodseq: int


class SQLiteStore:
    """The default backend (module docstring). Implements store.interface.Store."""

    def __init__(
        self,
        data_dir: Path,
        *,
        busy_timeout: float = 10.0,
        max_batch: int = 512,
        blob_threads: int = 16,
        full_text: bool = True,
        fts_worker: bool = True,
        defer_parse: bool = False,
        follow_interval: float | None = FOLLOW_INTERVAL,
        multi_process: bool = False,
    ) -> None:
        """`full_text`: keep the text SEARCH looks in at delivery and answer
        text keys from it (`search_text`); `fts_worker`: build the trigram
        index in the background (off, stored text is searched with instr();
        for tests); `defer_parse`: append stores the bytes only and the
        background worker parses them (facts, IMAP forms, text) once no mail
        has arrived for a moment, or while it arrives once the backlog is
        big (fts.PARSE_BACKLOG_BYTES). Parsing is most of what a delivery
        costs (~0.6 ms of CPU for a 16 KB message, the rest ~0.2 ms), and a
        long-running server has the worker; a short-lived process (the CLI)
        parses at once. Until the worker has been, get_facts parses on
        demand and SEARCH reads the message, so answers are the same.

        `follow_interval`: how often to look for changes other processes
        sharing the store committed, to publish them on `changes`
        (follow.py); None for a process without sessions to tell (the
        CLI).

        `multi_process`: one of several server processes sharing the store
        (`mailbag serve --workers`): \\Recent claims are committed before
        they are answered, and `defer_parse` holds without `fts_worker`,
        because one of the others runs the worker."""
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / DB_NAME
        self.blobs = BlobStore(self.data_dir / "blobs")
        self.changes = ChangeHub()
        self.busy_timeout = busy_timeout
        self.max_batch = max_batch
        self.blob_threads = blob_threads
        # (temp files, unreferenced blobs) removed by the sweep at open, or
        # None when another process had the store open.
        self.swept: tuple[int, int] | None = None
        self._writer: Writer | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._lock_fd: int | None = None
        # Open lock files of the maildrops this process holds (flock'ed).
        self._maildrops: dict[AccountID, int] = {}
        # \Recent claims (first_recent_uid) not known to be committed yet.
        self._recent_claims: dict[MailboxID, int] = {}
        self._recent_lock = threading.Lock()
        self.full_text = full_text
        self.fts_worker = fts_worker
        self.multi_process = multi_process
        # Only with a worker that parses later (needs full_text to run), here
        # or, with multi_process, in another process.
        self.defer_parse = defer_parse and full_text and (fts_worker or multi_process)
        self._indexer: fts.TextIndexer | None = None
        self.follow_interval = follow_interval
        self.follower: ChangeFollower | None = None
        self.text_searches = 0  # text keys answered by search_text; for tests and metrics
        self._yielded = 0.0  # when read_content last gave the event loop a turn

    # ---- lifecycle ----------------------------------------------------------
    @property
    def commit_count(self) -> int:
        """Write transactions committed (group commit: one per batch of units)."""
        return self._writer.commits if self._writer else 0

    @property
    def unit_count(self) -> int:
        """Write units committed."""
        return self._writer.units if self._writer else 0

    async def open(self) -> None:
        if self._writer is not None:
            return
        await asyncio.to_thread(self._open)
        if self.follow_interval is not None and self._writer is not None:
            follower = ChangeFollower(
                self.db_path,
                self.busy_timeout,
                self._writer.origin,
                self.changes,
                self._remote_commit,
                self.follow_interval,
            )
            try:
                follower.start(asyncio.get_running_loop())
            except sqlite3.Error as e:
                await self.close()
                raise as_store_error(e) from e
            self.follower = self._writer.follower = follower

    def _open(self) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.blobs.setup()
        fd = os.open(self.data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                exclusive = True
            except BlockingIOError:
                exclusive = False
                self._lock_shared(fd)
            if not self.db_path.exists():
                # Mail is private: create the file 0600 before SQLite creates
                # it with the umask (its -wal and -shm copy these permissions).
                os.close(os.open(self.db_path, os.O_RDWR | os.O_CREAT, 0o600))
                fsync_dir(self.data_dir)
            writer = Writer(
                self.db_path, self.blobs, self.changes, self.busy_timeout, self.max_batch
            )
            writer.start()
            if exclusive:
                try:
                    self.swept = self._sweep()
                except BaseException:
                    writer.close()
                    raise
                # Not atomic (flock converts by unlocking first); harmless,
                # because nothing of ours is being written yet.
                fcntl.flock(fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd
        self._writer = writer
        self._executor = ThreadPoolExecutor(self.blob_threads, thread_name_prefix="mailbag-blob")
        if not self.full_text:
            # Contents stored now get no text: whoever indexes next must look.
            writer.run_blocking(
                lambda tx: tx.conn.execute("UPDATE meta SET value = 0 WHERE key = 'text_backfill'")
            )
        elif self.fts_worker:
            self._indexer = fts.TextIndexer(writer, self._q, self._read_content, self._parse_stored)
            self._indexer.start()
        if self.swept and any(self.swept):
            log.warning(
                "removed %d temp files and %d unreferenced message files left by a crash",
                *self.swept,
            )

    def _lock_shared(self, fd: int) -> None:
        # Another process holds the lock; if it is sweeping (exclusive), wait.
        deadline = time.monotonic() + max(self.busy_timeout, 60.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreUnavailable("store is locked by another process") from None
                time.sleep(0.05)

    def _sweep(self) -> tuple[int, int]:
        conn = connect(self.db_path, self.busy_timeout, readonly=True)
        try:

            def referenced(prefix: str) -> set[str]:
                # Contents whose bytes are in the database need no file: a
                # file of the same id is left over and goes.
                rows = conn.execute(
                    "SELECT cid FROM contents c WHERE cid >= ? AND cid < ? AND NOT EXISTS"
                    " (SELECT 1 FROM content_bytes b WHERE b.content_id = c.id)",
                    (prefix, prefix + "g"),
                ).fetchall()
                return {r[0] for r in rows}

            return self.blobs.sweep(referenced)
        finally:
            conn.close()

    async def close(self) -> None:
        follower, self.follower = self.follower, None
        if follower is not None:
            follower.stop()
        indexer, self._indexer = self._indexer, None
        if indexer is not None:
            await asyncio.to_thread(indexer.stop)
        writer, self._writer = self._writer, None
        if writer is None:
            return
        await asyncio.to_thread(writer.close)
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, True)
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        self._local = threading.local()
        maildrops, self._maildrops = self._maildrops, {}
        for fd in maildrops.values():
            os.close(fd)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---- plumbing -----------------------------------------------------------
    def _w(self) -> Writer:
        if self._writer is None:
            raise StoreUnavailable("store is not open")
        return self._writer

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._writer is None:
                raise StoreUnavailable("store is not open")
            conn = connect(self.db_path, self.busy_timeout, readonly=True)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            # fetchall ends the statement, so no read transaction stays open
            # and pins an old WAL snapshot.
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise as_store_error(e) from e

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def _write(self, fn: Callable[[Tx], T], fresh: Iterable[str] = ()) -> T:
        try:
            return await self._w().run(fn, fresh)
        finally:
            self._kick()

    def _remote_commit(self) -> None:
        # Another process delivered: for the background worker that is mail
        # arriving, as much as our own writer's commits (it holds off while
        # mail arrives, and a server process that runs it while another
        # takes the deliveries must not take the write lock from them).
        if self._writer is not None:
            self._writer.foreground_at = time.monotonic()
        self._kick()

    def _kick(self) -> None:
        # The unit may have added text rows or detached some from deleted
        # contents: the full-text worker has work.
        if self._indexer is not None:
            self._indexer.kick()

    # ---- write helpers (run on the writer thread) ----------------------------
    @staticmethod
    def _box(conn: sqlite3.Connection, mailbox_id: MailboxID) -> _Box:
        rows = conn.execute(
            "SELECT account_id, uidvalidity, uidnext, highestmodseq FROM mailboxes WHERE id = ?",
            (mailbox_id,),
        ).fetchall()
        if not rows:
            raise NotFound("mailbox does not exist")
        aid, uidvalidity, uidnext, hms = rows[0]
        return _Box(mailbox_id, AccountID(aid), UIDValidity(uidvalidity), uidnext, hms)

    @staticmethod
    def _mailbox_by_id(conn: sqlite3.Connection, mailbox_id: MailboxID) -> Mailbox:
        rows = conn.execute(
            f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes m WHERE m.id = ?", (mailbox_id,)
        ).fetchall()
        if not rows:
            raise NotFound("mailbox does not exist")
        return _mailbox(rows[0])

    @staticmethod
    def _mailbox_id(conn: sqlite3.Connection, account_id: AccountID, name: str) -> int | None:
        rows = conn.execute(
            "SELECT id FROM mailboxes WHERE account_id = ? AND name = ?", (account_id, name)
        ).fetchall()
        return rows[0][0] if rows else None

    @staticmethod
    def _next_uidvalidity(conn: sqlite3.Connection) -> int:
        # Time-based and persisted, so a recreated mailbox never gets an old
        # value, not even after a restart or a clock step back
        # (RFC 9051 §2.3.1.1).
        rows = conn.execute("SELECT value FROM meta WHERE key = 'uidvalidity'").fetchall()
        last = rows[0][0] if rows else 0
        value = max(last + 1, int(time.time()))
        if value > MAX_UID:
            raise Cannot("UIDVALIDITY space exhausted")
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('uidvalidity', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (value,),
        )
        return value

    def _insert_mailbox(
        self, conn: sqlite3.Connection, account_id: AccountID, name: str, use: SpecialUse | None
    ) -> MailboxID:
        cur = conn.execute(
            "INSERT INTO mailboxes (account_id, name, uidvalidity, special_use)"
            " VALUES (?, ?, ?, ?)",
            (account_id, name, self._next_uidvalidity(conn), use.value if use else None),
        )
        assert cur.lastrowid is not None
        return MailboxID(cur.lastrowid)

    @staticmethod
    def _collect_garbage(tx: Tx) -> None:
        # Bytes kept in the database go with their row, in this transaction
        # (the trigger contents_bytes_gone would do it too; deleting them
        # first tells which contents have no file to collect after commit).
        in_db = {
            r[0]
            for r in tx.conn.execute(
                "DELETE FROM content_bytes WHERE content_id IN"
                " (SELECT id FROM contents WHERE refcount <= 0) RETURNING content_id"
            ).fetchall()
        }
        rows = tx.conn.execute(
            "DELETE FROM contents WHERE refcount <= 0 RETURNING id, cid"
        ).fetchall()
        tx.garbage.extend(cid for rowid, cid in rows if rowid not in in_db)

    def _content_ref(self, tx: Tx, item: _Prepared) -> int:
        rows = tx.conn.execute("SELECT id FROM contents WHERE cid = ?", (item.cid,)).fetchall()
        if rows:
            # A committed content row always has its bytes (invariant).
            return int(rows[0][0])
        in_db = self.blobs.in_db(len(item.data))
        # A collection since the file was written (or found) may have removed
        # it; we hold the write lock, so what we see now stays true until our
        # commit. Rare, so the work is done here rather than retried.
        if not in_db and not self.blobs.has(item.cid, len(item.data)):
            self.blobs.put(item.cid, item.data)
        computed = None
        if item.facts is not None:
            facts = item.facts
        else:
            computed = compute_facts(item.data)
            facts = encode_facts(computed)
        texts = item.texts
        if texts is None and self.full_text and facts is not UNPARSED:
            # The content was there when the request was prepared (so nothing
            # was extracted) and went since: rare, so done here.
            texts = fts.extract(item.data, computed)
        env, body, bs = facts.forms or (None, None, None)
        cur = tx.conn.execute(
            "INSERT INTO contents (cid, size, facts, imap_envelope, imap_body, imap_bodystructure)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (item.cid, len(item.data), facts.json, env, body, bs),
        )
        assert cur.lastrowid is not None
        if in_db:
            # Same transaction as the row: the commit is the bytes' only fsync.
            indb.put(tx.conn, cur.lastrowid, item.data)
        if texts is not None:
            # Same unit, same commit: stored text never lags its content.
            fts.insert_text(tx.conn, cur.lastrowid, texts)
        return cur.lastrowid

    def _add_messages(
        self, tx: Tx, box: _Box, rows: Sequence[tuple[int, str | None, int, int, int, int]]
    ) -> tuple[tuple[UID, ...], ModSeq]:
        """Insert (flags, keywords, date, tz, size, content rowid) rows; one new modseq."""
        if box.uidnext + len(rows) > MAX_UID:
            raise Cannot("mailbox UID space exhausted")
        modseq = ModSeq(box.highestmodseq + 1)
        uids = tuple(UID(box.uidnext + i) for i in range(len(rows)))
        tx.conn.executemany(
            "INSERT INTO messages (mailbox_id, uid, modseq, flags, keywords, internal_date,"
            " internal_tz, size, content_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(box.id, uid, modseq, *row) for uid, row in zip(uids, rows, strict=True)],
        )
        tx.conn.execute(
            "UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?",
            (box.uidnext + len(rows), modseq, box.id),
        )
        docs = {row[1] for row in rows if row[1]}  # a few distinct keyword sets
        keywords = frozenset().union(*map(keywords_set, docs)) if docs else frozenset()
        tx.changes.append(MessagesAdded(box.account_id, box.id, uids, modseq, keywords))
        return uids, modseq

    def _expunge_uids(self, tx: Tx, box: _Box, uids: list[UID]) -> None:
        if not uids:
            return
        modseq = ModSeq(box.highestmodseq + 1)
        doc = json.dumps(uids)
        tx.conn.execute(
            "DELETE FROM messages WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?))",
            (box.id, doc),
        )
        # RFC 7162 §3.2.10: remembered for VANISHED (EARLIER).
        tx.conn.execute(
            "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq)"
            " SELECT ?, value, ? FROM json_each(?)",
            (box.id, modseq, doc),
        )
        tx.conn.execute("UPDATE mailboxes SET highestmodseq = ? WHERE id = ?", (modseq, box.id))
        self._collect_garbage(tx)
        tx.changes.append(MessagesExpunged(box.account_id, box.id, tuple(uids), modseq))

    def _copy_rows(self, tx: Tx, src: MailboxID, uids: str, dest: _Box) -> CopyResult:
        rows = tx.conn.execute(
            "SELECT uid, flags, keywords, internal_date, internal_tz, size, content_id"
            " FROM messages WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?))"
            " ORDER BY uid",
            (src, uids),
        ).fetchall()
        if not rows:
            return CopyResult(dest.uidvalidity, (), ())
        new_uids, _ = self._add_messages(tx, dest, [tuple(r[1:]) for r in rows])
        return CopyResult(dest.uidvalidity, tuple(UID(r[0]) for r in rows), new_uids)

    # ---- accounts -----------------------------------------------------------
    async def create_account(self, address: str, password_hash: str) -> Account:
        created = _now()

        def unit(tx: Tx) -> Account:
            conn = tx.conn
            if conn.execute("SELECT 1 FROM accounts WHERE address = ?", (address,)).fetchall():
                raise AlreadyExists(address)
            cur = conn.execute(
                "INSERT INTO accounts (address, password_hash, created) VALUES (?, ?, ?)",
                (address, password_hash, int(created.timestamp())),
            )
            assert cur.lastrowid is not None
            aid = AccountID(cur.lastrowid)
            for name, use in DEFAULT_MAILBOXES:
                self._insert_mailbox(conn, aid, name, use)
                conn.execute(
                    "INSERT INTO subscriptions (account_id, name) VALUES (?, ?)", (aid, name)
                )
            return Account(aid, address, created)

        return await self._write(unit)

    async def get_account(self, address: str) -> Account | None:
        rows = self._q("SELECT id, address, created FROM accounts WHERE address = ?", (address,))
        return _account(rows[0]) if rows else None

    async def get_password_hash(self, account_id: AccountID) -> str | None:
        rows = self._q("SELECT password_hash FROM accounts WHERE id = ?", (account_id,))
        return str(rows[0][0]) if rows else None

    async def set_password_hash(self, account_id: AccountID, password_hash: str) -> None:
        def unit(tx: Tx) -> None:
            cur = tx.conn.execute(
                "UPDATE accounts SET password_hash = ? WHERE id = ?", (password_hash, account_id)
            )
            if cur.rowcount == 0:
                raise NotFound("no such account")

        await self._write(unit)

    async def list_accounts(self) -> list[Account]:
        rows = await self._in_thread(
            self._q, "SELECT id, address, created FROM accounts ORDER BY address"
        )
        return [_account(r) for r in rows]

    async def delete_account(self, account_id: AccountID) -> None:
        def unit(tx: Tx) -> None:
            conn = tx.conn
            if not conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchall():
                raise NotFound("no such account")
            conn.execute(
                "DELETE FROM messages WHERE mailbox_id IN"
                " (SELECT id FROM mailboxes WHERE account_id = ?)",
                (account_id,),
            )
            # Cascades to mailboxes, subscriptions and expunged.
            conn.execute("DELETE FROM accounts WHERE id = ?", (account_id,))
            self._collect_garbage(tx)

        await self._write(unit)

    # ---- mailboxes ----------------------------------------------------------
    async def list_mailboxes(self, account_id: AccountID) -> list[Mailbox]:
        rows = self._q(
            f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes m WHERE m.account_id = ? ORDER BY m.name",
            (account_id,),
        )
        return [self._claimed(_mailbox(r)) for r in rows]

    async def get_mailbox(self, account_id: AccountID, name: str) -> Mailbox | None:
        rows = self._q(
            f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes m WHERE m.account_id = ? AND m.name = ?",
            (account_id, canonical_mailbox_name(name)),
        )
        return self._claimed(_mailbox(rows[0])) if rows else None

    async def get_mailbox_by_id(self, mailbox_id: MailboxID) -> Mailbox | None:
        rows = self._q(f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes m WHERE m.id = ?", (mailbox_id,))
        return self._claimed(_mailbox(rows[0])) if rows else None

    async def create_mailbox(
        self, account_id: AccountID, name: str, special_use: SpecialUse | None = None
    ) -> Mailbox:
        name = canonical_mailbox_name(name)

        def unit(tx: Tx) -> Mailbox:
            conn = tx.conn
            if not conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchall():
                raise NotFound("no such account")
            if self._mailbox_id(conn, account_id, name) is not None:
                raise AlreadyExists(name)
            mid = self._insert_mailbox(conn, account_id, name, special_use)
            tx.changes.append(MailboxCreated(account_id, mid, name))
            return self._mailbox_by_id(conn, mid)

        return await self._write(unit)

    async def delete_mailbox(self, account_id: AccountID, name: str) -> None:
        name = canonical_mailbox_name(name)
        if name == INBOX:
            raise Cannot("INBOX cannot be deleted")

        def unit(tx: Tx) -> None:
            conn = tx.conn
            mid = self._mailbox_id(conn, account_id, name)
            if mid is None:
                raise NotFound(name)
            conn.execute("DELETE FROM messages WHERE mailbox_id = ?", (mid,))
            conn.execute("DELETE FROM mailboxes WHERE id = ?", (mid,))
            self._collect_garbage(tx)
            tx.changes.append(MailboxDeleted(account_id, MailboxID(mid), name))

        await self._write(unit)

    async def rename_mailbox(self, account_id: AccountID, old: str, new: str) -> Mailbox:
        old, new = canonical_mailbox_name(old), canonical_mailbox_name(new)

        def unit(tx: Tx) -> Mailbox:
            conn = tx.conn
            src = self._mailbox_id(conn, account_id, old)
            if src is None:
                raise NotFound(old)
            if self._mailbox_id(conn, account_id, new) is not None:
                raise AlreadyExists(new)
            if old == INBOX:
                # RFC 9051 §6.3.6: INBOX's messages move to a new mailbox and
                # INBOX stays, empty; its children are not renamed.
                dest_id = self._insert_mailbox(conn, account_id, new, None)
                tx.changes.append(MailboxCreated(account_id, dest_id, new))
                src_box = self._box(conn, MailboxID(src))
                uids = [
                    UID(r[0])
                    for r in conn.execute(
                        "SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", (src,)
                    ).fetchall()
                ]
                self._copy_rows(tx, src_box.id, json.dumps(uids), self._box(conn, dest_id))
                self._expunge_uids(tx, src_box, uids)
                return self._mailbox_by_id(conn, dest_id)
            rows = conn.execute(
                "SELECT id, name FROM mailboxes WHERE account_id = ?"
                " AND (name = ? OR substr(name, 1, ?) = ?) ORDER BY name",
                (account_id, old, len(old) + 1, old + SEPARATOR),
            ).fetchall()
            renamed = [(mid, name, new + name[len(old) :]) for mid, name in rows]
            for _mid, _name, new_name in renamed:
                if self._mailbox_id(conn, account_id, new_name) is not None:
                    raise AlreadyExists(new_name)
            for mid, _name, new_name in renamed:
                conn.execute("UPDATE mailboxes SET name = ? WHERE id = ?", (new_name, mid))
            for mid, old_name, new_name in renamed:
                tx.changes.append(MailboxRenamed(account_id, mid, old_name, new_name))
            return self._mailbox_by_id(conn, MailboxID(src))

        return await self._write(unit)

    async def subscribe(self, account_id: AccountID, name: str) -> None:
        name = canonical_mailbox_name(name)

        def unit(tx: Tx) -> None:
            if not tx.conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchall():
                raise NotFound("no such account")
            tx.conn.execute(
                "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)",
                (account_id, name),
            )

        await self._write(unit)

    async def unsubscribe(self, account_id: AccountID, name: str) -> None:
        name = canonical_mailbox_name(name)

        def unit(tx: Tx) -> None:
            cur = tx.conn.execute(
                "DELETE FROM subscriptions WHERE account_id = ? AND name = ?", (account_id, name)
            )
            if cur.rowcount == 0:
                raise NotFound(name)

        await self._write(unit)

    async def list_subscriptions(self, account_id: AccountID) -> list[str]:
        rows = self._q(
            "SELECT name FROM subscriptions WHERE account_id = ? ORDER BY name", (account_id,)
        )
        return [r[0] for r in rows]

    async def mailbox_status(self, mailbox_id: MailboxID) -> MailboxStatus:
        # One statement, so one snapshot. Counts come from the trigger-kept
        # columns and the first unseen UID is the head of a partial index, so
        # this never scans the mailbox and can run on the event loop.
        rows = self._q(
            """
            SELECT m.message_count, m.unseen_count, m.deleted_count, m.total_size,
                m.recent_count, m.uidnext, m.uidvalidity, m.highestmodseq,
                (SELECT min(u.uid) FROM messages u INDEXED BY messages_unseen
                    WHERE u.mailbox_id = m.id AND (u.flags & 1) = 0)
            FROM mailboxes m WHERE m.id = ?
            """,
            (mailbox_id,),
        )
        if not rows:
            raise NotFound("mailbox does not exist")
        r = rows[0]
        recent = r[4]
        claimed = self._recent_claims.get(mailbox_id)
        if claimed is not None:
            # A \Recent claim whose write has not committed yet (claim_recent).
            recent = self._q(
                "SELECT count(*) FROM messages WHERE mailbox_id = ? AND uid >= ?",
                (mailbox_id, claimed),
            )[0][0]
        return MailboxStatus(
            messages=r[0],
            unseen=r[1],
            deleted=r[2],
            size=r[3],
            recent=recent,
            uidnext=UID(r[5]),
            uidvalidity=UIDValidity(r[6]),
            highestmodseq=ModSeq(r[7]),
            first_unseen_uid=UID(r[8]) if r[8] is not None else None,
        )

    async def claim_recent(self, mailbox_id: MailboxID) -> UID:
        # RFC 3501 §2.3.2: exactly one session sees each message as \Recent.
        # The claim is decided here, under a lock, from the committed
        # first_recent_uid and the claims whose write has not committed yet;
        # that write is queued without waiting for it. \Recent need not survive
        # a crash (Dovecot keeps it with lazy index writes), and a SELECT must
        # not wait for a commit and its fsync behind other units (issue 4).
        # In-memory claims are per process: with several server processes
        # the claim is a write unit of its own, committed before the answer.
        if self.multi_process:
            first, uidnext = self._recent_range(self._reader(), mailbox_id)
            if first >= uidnext:
                return UID(first)  # nothing to claim: no write to wait for
            return await self._w().run(lambda tx: self._claim_recent_now(tx.conn, mailbox_id))
        with self._recent_lock:
            first, uidnext = self._recent_range(self._reader(), mailbox_id)
            first = max(first, self._recent_claims.get(mailbox_id, 0))
            if first >= uidnext:
                return UID(first)
            # Every message is below UIDNEXT, so none is recent any more.
            self._recent_claims[mailbox_id] = uidnext
        self._write_recent_claim(mailbox_id, uidnext)
        return UID(first)

    @staticmethod
    def _recent_range(conn: sqlite3.Connection, mailbox_id: MailboxID) -> tuple[int, int]:
        """(first_recent_uid, uidnext) as committed."""
        try:
            rows = conn.execute(
                "SELECT first_recent_uid, uidnext FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchall()
        except sqlite3.Error as e:
            raise as_store_error(e) from e
        if not rows:
            raise NotFound("mailbox does not exist")
        return rows[0][0], rows[0][1]

    @classmethod
    def _claim_recent_now(cls, conn: sqlite3.Connection, mailbox_id: MailboxID) -> UID:
        first, uidnext = cls._recent_range(conn, mailbox_id)
        if first < uidnext:
            conn.execute(
                "UPDATE mailboxes SET first_recent_uid = ?, recent_count = 0 WHERE id = ?",
                (uidnext, mailbox_id),
            )
        return UID(first)

    def _claimed(self, box: Mailbox) -> Mailbox:
        """`box` with a \\Recent claim whose write has not committed yet."""
        claimed = self._recent_claims.get(box.id)
        if claimed is None or claimed <= box.first_recent_uid:
            return box
        return dataclasses.replace(box, first_recent_uid=UID(claimed))

    def _write_recent_claim(self, mailbox_id: MailboxID, first: int) -> None:
        def unit(tx: Tx) -> None:
            # Messages may have arrived since the claim: recount from `first`.
            tx.conn.execute(
                "UPDATE mailboxes SET first_recent_uid = ?1, recent_count ="
                " (SELECT count(*) FROM messages WHERE mailbox_id = ?2 AND uid >= ?1)"
                " WHERE id = ?2 AND first_recent_uid < ?1",
                (first, mailbox_id),
            )

        def written(future: asyncio.Future[None]) -> None:
            if future.cancelled():
                return
            if (exc := future.exception()) is not None:
                # The claim stays in memory, which is what readers consult.
                log.warning("writing the \\Recent claim of mailbox %d failed: %s", mailbox_id, exc)
                return
            with self._recent_lock:
                if self._recent_claims.get(mailbox_id) == first:
                    del self._recent_claims[mailbox_id]

        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        future.add_done_callback(written)
        try:
            self._w().submit(unit, loop, future)
        except StoreUnavailable:
            future.cancel()  # closing: the claim goes, as after a crash

    # ---- messages -----------------------------------------------------------
    def _prepare(self, requests: Sequence[AppendRequest], written: list[str]) -> list[_Prepared]:
        """Hash, parse, and write the files of big contents (worker thread,
        outside the writer). Small contents are written by the unit, into the
        database (blobs/indb.py); `written` collects the files made here.

        Content the database holds already (the same message to several
        recipients) is neither parsed nor written again: its bytes are durable
        since that commit.
        """
        out = []
        for req in requests:
            cid = content_id(req.data)
            mask, keywords = split_flags(req.flags)
            date, tz = encode_date(req.internal_date or _now())
            kw = keywords_doc(keywords)
            if self.defer_parse and req.facts is None:
                # Only a file of a content not stored yet is written now;
                # whether one kept in the database is there the unit finds.
                if not self.blobs.in_db(len(req.data)) and not self._q(
                    "SELECT 1 FROM contents WHERE cid = ?", (cid,)
                ):
                    self.blobs.put(cid, req.data)
                    written.append(cid)
                out.append(_Prepared(cid, req.data, UNPARSED, None, mask, kw, date, tz))
                continue
            if self._q("SELECT 1 FROM contents WHERE cid = ?", (cid,)):
                given = encode_facts(req.facts) if req.facts is not None else None
                out.append(_Prepared(cid, req.data, given, None, mask, kw, date, tz))
                continue
            facts = req.facts if req.facts is not None else compute_facts(req.data)
            texts = None
            if self.full_text:
                # The text comes from facts computed here, never from facts a
                # caller supplied: those are not checked against the bytes.
                texts = fts.extract(req.data, facts if req.facts is None else None)
            if not self.blobs.in_db(len(req.data)):
                self.blobs.put(cid, req.data)
                written.append(cid)
            out.append(_Prepared(cid, req.data, encode_facts(facts), texts, mask, kw, date, tz))
        return out

    def _direct(self, req: AppendRequest) -> bool:
        """Whether `req` is stored without parsing and with its bytes in the
        database: then the only work before the unit is hashing (~12 us for
        16 KB), cheaper on the caller's thread than a hop to a worker thread
        and back, and whether the content is stored already is left to the
        unit (_content_ref). LMTP over one connection: ~10 % more messages a
        second and ~10 % less CPU a message (three A/B pairs, 3,000 each)."""
        return self.defer_parse and req.facts is None and self.blobs.in_db(len(req.data))

    async def append(
        self, mailbox_id: MailboxID, requests: Sequence[AppendRequest]
    ) -> AppendResult:
        writer = self._w()
        if not requests:
            box = await self.get_mailbox_by_id(mailbox_id)
            if box is None:
                raise NotFound("mailbox does not exist")
            return AppendResult(mailbox_id, box.uidvalidity, ())
        executor = self._executor
        assert executor is not None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AppendResult] = loop.create_future()

        def store(tx: Tx, items: list[_Prepared]) -> AppendResult:
            box = self._box(tx.conn, mailbox_id)
            rows = [
                (p.flags, p.keywords, p.date, p.tz, len(p.data), self._content_ref(tx, p))
                for p in items
            ]
            uids, _ = self._add_messages(tx, box, rows)
            return AppendResult(mailbox_id, box.uidvalidity, uids)

        if len(requests) == 1 and self._direct(requests[0]):
            # One message (a delivery, a lone APPEND); batches of pipelined
            # APPENDs keep the worker thread, which hashes them meanwhile.
            direct = self._prepare(requests, [])
            writer.submit(lambda tx: store(tx, direct), loop, future)
            try:
                return await future
            finally:
                self._kick()

        def fail(exc: BaseException) -> None:
            if not future.done():
                future.set_exception(exc)

        def prepare() -> None:
            # The worker thread queues the unit itself: one hop through the
            # event loop fewer per message. A caller cancelled meanwhile
            # cancels `future`; the writer then skips the unit and collects
            # the files written for it.
            written: list[str] = []
            pending = True  # the writer.expect(1) below is not ended yet
            try:
                items = self._prepare(requests, written)
                pending = False
                writer.submit(lambda tx: store(tx, items), loop, future, written, expected=True)
            except BaseException as e:
                if pending:
                    writer.expect(-1)
                writer.discard(written)
                try:
                    loop.call_soon_threadsafe(fail, e)
                except RuntimeError:
                    pass  # the caller's loop is gone

        # The writer may hold its next commit a moment for this unit
        # (group commit with the other appends being prepared meanwhile).
        writer.expect(1)
        try:
            executor.submit(prepare)
        except RuntimeError as e:  # shut down by close()
            writer.expect(-1)
            raise StoreUnavailable("store is closed") from e
        try:
            return await future
        finally:
            self._kick()

    def _require_mailbox(self, mailbox_id: MailboxID) -> None:
        """NotFound unless the mailbox exists (an empty answer may mean either)."""
        if not self._q("SELECT 1 FROM mailboxes WHERE id = ?", (mailbox_id,)):
            raise NotFound("mailbox does not exist")

    def _list(self, mailbox_id: MailboxID, uids: list[int] | None) -> list[Message]:
        select = f"SELECT {_MESSAGE_COLUMNS} FROM messages m JOIN contents c ON c.id = m.content_id"
        if uids is None:
            rows = self._q(f"{select} WHERE m.mailbox_id = ? ORDER BY m.uid", (mailbox_id,))
        elif uids and uids[-1] - uids[0] < 2 * len(uids):
            # A dense run (FETCH 1:* in batches): a range scan of the primary
            # key costs less than joining a JSON list, the few extra rows are
            # dropped here.
            rows = self._q(
                f"{select} WHERE m.mailbox_id = ? AND m.uid BETWEEN ? AND ? ORDER BY m.uid",
                (mailbox_id, uids[0], uids[-1]),
            )
            if len(rows) != len(uids):
                wanted = set(uids)
                rows = [r for r in rows if r[0] in wanted]
        else:
            rows = self._q(
                f"{select} WHERE m.mailbox_id = ? AND m.uid IN (SELECT value FROM json_each(?))"
                " ORDER BY m.uid",
                (mailbox_id, json.dumps(uids)),
            )
        if not rows:
            self._require_mailbox(mailbox_id)
        return _messages(mailbox_id, rows)

    async def list_messages(
        self, mailbox_id: MailboxID, uids: Iterable[UID] | None = None
    ) -> list[Message]:
        if uids is None:
            return await self._in_thread(self._list, mailbox_id, None)
        wanted = sorted({int(u) for u in uids})
        if len(wanted) <= _DIRECT_UIDS:
            return self._list(mailbox_id, wanted)
        return await self._in_thread(self._list, mailbox_id, wanted)

    async def get_facts(self, content_id: ContentID) -> MessageFacts:
        rows = self._q(
            "SELECT facts, imap_envelope, imap_body, imap_bodystructure FROM contents"
            " WHERE cid = ?",
            (content_id,),
        )
        if not rows:
            raise NotFound("no such content")
        doc, env, body, bs = rows[0]
        if not doc:
            # Stored unparsed (defer_parse) and the worker has not been yet:
            # parsed here for this answer; the worker stores it.
            return await compute_facts_off_loop(await self.read_content(content_id))
        facts = decode_facts(doc)
        if env is not None:
            facts = dataclasses.replace(facts, forms=ResponseForms(env, body, bs))
        return facts

    def _parse_stored(self, data: bytes) -> tuple[EncodedFacts, fts.Texts]:
        """What delivery would have stored for `data` without defer_parse
        (the background worker's parse step)."""
        facts = compute_facts(data)
        return encode_facts(facts), fts.extract(data, facts)

    async def get_forms(self, content_ids: Iterable[ContentID]) -> dict[ContentID, ResponseForms]:
        doc = json.dumps(sorted(set(content_ids)))
        rows = self._q(
            "SELECT cid, imap_envelope, imap_body, imap_bodystructure FROM contents"
            " WHERE cid IN (SELECT value FROM json_each(?)) AND imap_envelope IS NOT NULL",
            (doc,),
        )
        return {ContentID(cid): ResponseForms(env, body, bs) for cid, env, body, bs in rows}

    async def list_uids(self, mailbox_id: MailboxID) -> array[int]:
        return (await self.message_index(mailbox_id)).uids

    async def unseen_uids(self, mailbox_id: MailboxID) -> array[int]:
        return await self._by_count(mailbox_id, "unseen_count", self._unseen)

    def _unseen(self, mailbox_id: MailboxID) -> array[int]:
        # The partial index holds the unseen messages only: O(unseen), where
        # message_index reads every message (10,000 messages, 6,666 unseen:
        # 2.6 against 4.8 ms; a handful unseen: well under 1 ms).
        (doc,) = self._q(
            "SELECT json_group_array(uid) FROM (SELECT uid FROM messages"
            " INDEXED BY messages_unseen WHERE mailbox_id = ? AND (flags & 1) = 0"
            " ORDER BY uid)",
            (mailbox_id,),
        )[0]
        # Sorted all the same (see _index: an aggregate's input order); on an
        # ordered list that is one linear pass.
        return array("I", sorted(json.loads(doc)))

    def _index(self, mailbox_id: MailboxID, columns: frozenset[str]) -> MessageIndex:
        wanted = [c for c in _INDEX_SQL if c in columns]
        # One row of JSON arrays, built and decoded in C, instead of a tuple
        # per message: 10,000 messages' UIDs and days 13.7 -> 8.2 ms.
        arrays = "".join(f", json_group_array({_INDEX_SQL[c][0]})" for c in wanted)
        doc = self._q(
            f"SELECT count(*), json_group_array(uid){arrays} FROM"
            " (SELECT * FROM messages WHERE mailbox_id = ? ORDER BY uid)",
            (mailbox_id,),
        )[0]
        if not doc[0]:
            self._require_mailbox(mailbox_id)
        data: list[list[Any]] = [json.loads(d) for d in doc[1:]]
        uids = array("I", data[0])
        if uids != array("I", sorted(uids)):
            # A planner that drops the subquery's ORDER BY (allowed since
            # SQLite 3.43 where it cannot matter, which an aggregate's input
            # order may be taken not to): order the columns here.
            order = sorted(range(len(uids)), key=uids.__getitem__)
            data = [[column[i] for i in order] for column in data]
            uids = array("I", data[0])
        values: dict[str, Any] = {}
        for name, column in zip(wanted, data[1:], strict=True):
            if name == "keywords":
                # A mailbox has few distinct keyword sets: decode each once.
                sets: dict[str, frozenset[str]] = {}
                keywords = {}
                for uid, doc in zip(uids, column, strict=True):
                    if doc:
                        kws = sets.get(doc)
                        if kws is None:
                            kws = sets[doc] = keywords_set(doc)
                        keywords[uid] = kws
                values[name] = keywords
            else:
                values[name] = array(_INDEX_SQL[name][1], column)
        return MessageIndex(uids, **values)

    async def message_index(
        self, mailbox_id: MailboxID, columns: frozenset[str] = frozenset()
    ) -> MessageIndex:
        return await self._by_count(mailbox_id, "message_count", self._index, columns)

    async def _by_count(
        self, mailbox_id: MailboxID, counter: str, fn: Callable[..., T], *args: Any
    ) -> T:
        """`fn(mailbox_id, *args)` here when the mailbox row's `counter` says
        the answer is small, else in a worker thread (it would hold the event
        loop for milliseconds). NotFound for a mailbox that does not exist."""
        status = self._q(f"SELECT {counter} FROM mailboxes WHERE id = ?", (mailbox_id,))
        if not status:
            raise NotFound("mailbox does not exist")
        if status[0][0] <= _DIRECT_UIDS * 16:
            return fn(mailbox_id, *args)
        return await self._in_thread(fn, mailbox_id, *args)

    async def list_keywords(self, mailbox_id: MailboxID) -> list[str]:
        rows = self._q(
            "SELECT DISTINCT keywords FROM messages WHERE mailbox_id = ? AND keywords IS NOT NULL",
            (mailbox_id,),
        )
        if not rows:
            self._require_mailbox(mailbox_id)
        found: set[str] = set()
        for (doc,) in rows:
            found.update(json.loads(doc))
        return sorted(found)

    async def read_content(
        self, content_id: ContentID, offset: int = 0, length: int | None = None
    ) -> bytes:
        self._w()
        if not is_content_id(content_id):
            raise NotFound("no such content")
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        if length is not None and length <= _DIRECT_READ:
            # A missing file costs a failed open() (~5 us); a miss in the
            # database a query (~20 us): files first, as _read_content does.
            return self._read_content(content_id, offset, length)
        # Whole contents (size unknown): one kept in the database is at most
        # indb.IN_DB_MAX octets, cheaper to read here than a thread hop.
        data = self._read_in_db(content_id, offset, length)
        if data is not None:
            # A caller reading message after message (a SEARCH scan, FETCH
            # 1:*) must not hold the loop for all of them; a turn of the loop
            # every 2 ms costs far less than one per read.
            now = time.monotonic()
            if now - self._yielded > 0.002:
                self._yielded = now
                await asyncio.sleep(0)
            return data
        return await self._in_thread(self.blobs.read, content_id, offset, length)

    async def read_contents(self, content_ids: Iterable[ContentID]) -> dict[ContentID, bytes]:
        self._w()
        wanted = sorted({c for c in content_ids if is_content_id(c)})
        if not wanted:
            return {}
        try:
            # ContentID is a NewType of str: the keys are the ids asked for.
            found = cast(dict[ContentID, bytes], indb.read_many(self._reader(), wanted))
        except sqlite3.Error as e:
            raise as_store_error(e) from e
        rest = [c for c in wanted if c not in found]
        if rest:
            # Big contents, and contents stored before schema version 4, are files.
            found.update(await self._in_thread(self._read_files, rest))
        return found

    def _read_files(self, cids: list[ContentID]) -> dict[ContentID, bytes]:
        found = {}
        for cid in cids:
            data = self.blobs.read_if_there(cid)
            if data is not None:
                found[cid] = data
        return found

    def _read_content(self, content_id: str, offset: int = 0, length: int | None = None) -> bytes:
        """Blocking read: the file if there is one (big contents, and contents
        stored before schema version 4), else the database's copy."""
        data = self.blobs.read_if_there(content_id, offset, length)
        if data is None:
            data = self._read_in_db(content_id, offset, length)
        if data is None:
            raise NotFound("no such content")
        return data

    def _read_in_db(self, content_id: str, offset: int, length: int | None) -> bytes | None:
        try:
            return indb.read(self._reader(), content_id, offset, length)
        except sqlite3.Error as e:
            raise as_store_error(e) from e

    async def store_flags(
        self,
        mailbox_id: MailboxID,
        uids: Iterable[UID],
        op: FlagOp,
        flags: Iterable[str],
        unchanged_since: ModSeq | None = None,
    ) -> list[FlagUpdate]:
        given_mask, given_kw = split_flags(flags)
        doc = _uid_json(uids)

        def unit(tx: Tx) -> list[FlagUpdate]:
            box = self._box(tx.conn, mailbox_id)
            rows = tx.conn.execute(
                "SELECT uid, modseq, flags, keywords FROM messages WHERE mailbox_id = ?"
                " AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid",
                (mailbox_id, doc),
            ).fetchall()
            changed: list[tuple[int, int, str | None]] = []
            unseen_delta = deleted_delta = 0
            # A mailbox has few distinct keyword sets: decode, combine and
            # encode each once, not once per message (STORE 1:* on 100,000).
            outcome: dict[tuple[int, str | None], tuple[int, str | None] | None] = {}
            for uid, modseq, mask, kw_doc in rows:
                # RFC 7162 §3.2: UNCHANGEDSINCE leaves newer messages alone.
                if unchanged_since is not None and modseq > unchanged_since:
                    continue
                key = (mask, kw_doc)
                if key in outcome:
                    result = outcome[key]
                else:
                    kws = keywords_set(kw_doc)
                    if op is FlagOp.REPLACE:
                        new_mask, new_kws = given_mask, given_kw
                    elif op is FlagOp.ADD:
                        new_mask, new_kws = mask | given_mask, kws | given_kw
                    else:
                        new_mask, new_kws = mask & ~given_mask, kws - given_kw
                    result = None
                    if new_mask != mask or new_kws != kws:
                        result = (new_mask, keywords_doc(new_kws))
                    outcome[key] = result
                if result is not None:
                    changed.append((uid, *result))
                    new_mask = result[0]
                    unseen_delta += (not new_mask & SEEN_BIT) - (not mask & SEEN_BIT)
                    deleted_delta += bool(new_mask & DELETED_BIT) - bool(mask & DELETED_BIT)
            if not changed:
                return []
            # RFC 7162 §3.1: every changed message gets the new mod-sequence.
            modseq = ModSeq(box.highestmodseq + 1)
            # One statement per outcome (a STORE gives few distinct flag
            # sets), not one per message.
            groups: dict[tuple[int, str | None], list[int]] = {}
            for uid, mask, kw in changed:
                groups.setdefault((mask, kw), []).append(uid)
            for (mask, kw), members in groups.items():
                tx.conn.execute(
                    "UPDATE messages SET flags = ?, keywords = ?, modseq = ?"
                    " WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?))",
                    (mask, kw, modseq, mailbox_id, json.dumps(members)),
                )
            # The counters the schema's version 5 no longer keeps by trigger.
            tx.conn.execute(
                "UPDATE mailboxes SET highestmodseq = ?, unseen_count = unseen_count + ?,"
                " deleted_count = deleted_count + ? WHERE id = ?",
                (modseq, unseen_delta, deleted_delta, mailbox_id),
            )
            decoded: dict[tuple[int, str | None], frozenset[str]] = {}
            updates = []
            for uid, mask, kw in changed:
                flags = decoded.get((mask, kw))
                if flags is None:
                    flags = decoded[mask, kw] = decode_flags(mask, kw)
                updates.append(FlagUpdate(UID(uid), modseq, flags))
            tx.changes.append(
                FlagsChanged(
                    box.account_id, mailbox_id, tuple((u.uid, u.modseq, u.flags) for u in updates)
                )
            )
            return updates

        return await self._write(unit)

    async def expunge(
        self,
        mailbox_id: MailboxID,
        uids: Iterable[UID] | None = None,
        require_deleted: bool = True,
    ) -> list[UID]:
        doc = None if uids is None else _uid_json(uids)

        def unit(tx: Tx) -> list[UID]:
            box = self._box(tx.conn, mailbox_id)
            sql = "SELECT uid FROM messages WHERE mailbox_id = ?"
            params: list[Any] = [mailbox_id]
            if doc is not None:
                sql += " AND uid IN (SELECT value FROM json_each(?))"
                params.append(doc)
            if require_deleted:
                # Decided inside the transaction: another session may have
                # cleared \Deleted since this one looked.
                sql += f" AND (flags & {DELETED_BIT}) != 0"
            gone = [UID(r[0]) for r in tx.conn.execute(sql + " ORDER BY uid", params).fetchall()]
            self._expunge_uids(tx, box, gone)
            return gone

        return await self._write(unit)

    async def copy(self, source: MailboxID, uids: Iterable[UID], dest: MailboxID) -> CopyResult:
        doc = _uid_json(uids)

        def unit(tx: Tx) -> CopyResult:
            self._box(tx.conn, source)
            return self._copy_rows(tx, source, doc, self._box(tx.conn, dest))

        return await self._write(unit)

    async def move(self, source: MailboxID, uids: Iterable[UID], dest: MailboxID) -> CopyResult:
        doc = _uid_json(uids)

        def unit(tx: Tx) -> CopyResult:
            self._box(tx.conn, source)
            result = self._copy_rows(tx, source, doc, self._box(tx.conn, dest))
            # Read again: when source == dest the copy just moved its modseq.
            self._expunge_uids(tx, self._box(tx.conn, source), list(result.source_uids))
            return result

        return await self._write(unit)

    # ---- full-text search (store.interface.FullTextSearch) -------------------
    async def search_text(
        self,
        mailbox_id: MailboxID,
        field: str,
        needle: str,
        uids: Iterable[UID] | None = None,
    ) -> TextMatches | None:
        if not self.full_text:
            return None
        self._w()
        doc = None if uids is None else _uid_json(uids)
        query = fts.plan(mailbox_id, field, needle, doc)
        if query is None:
            return None
        rows = await self._in_thread(self._q, query.sql, query.params)
        self.text_searches += 1
        return TextMatches(
            frozenset(UID(uid) for uid, hit in rows if hit),
            frozenset(UID(uid) for uid, hit in rows if not hit),
        )

    def drain_text_index(self, timeout: float = 60.0) -> bool:
        """Block until the background full-text worker has nothing left to do
        (for tests and tools); False when it is not running or on timeout."""
        return self._indexer is not None and self._indexer.drain(timeout)

    # ---- POP3 maildrop lock ---------------------------------------------------
    def try_lock_maildrop(self, account_id: AccountID) -> bool:
        # flock() locks belong to the open file: a second open in this
        # process conflicts like one in another server process, and a
        # process that dies drops its locks with its files.
        if account_id in self._maildrops:
            return False
        path = self.data_dir / LOCKS_DIR / f"maildrop-{int(account_id)}"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._maildrops[account_id] = fd
        return True

    def unlock_maildrop(self, account_id: AccountID) -> None:
        fd = self._maildrops.pop(account_id, None)
        if fd is not None:
            os.close(fd)  # closing drops the flock

    # ---- checks for tests and `mailbag fsck`-like tools ----------------------
    def verify(self) -> tuple[list[str], list[str]]:
        """(content ids whose bytes are missing, files no row needs); blocking.

        A content kept in the database (blobs/indb.py) needs no file, and a
        file of its id is one the sweep removes."""
        conn = connect(self.db_path, self.busy_timeout, readonly=True)
        try:
            cids = {
                r[0]
                for r in conn.execute(
                    "SELECT cid FROM contents c WHERE NOT EXISTS"
                    " (SELECT 1 FROM content_bytes b WHERE b.content_id = c.id)"
                ).fetchall()
            }
        finally:
            conn.close()
        on_disk = {name for _prefix, names in self.blobs.shards() for name in names}
        return sorted(cids - on_disk), sorted(on_disk - cids)
