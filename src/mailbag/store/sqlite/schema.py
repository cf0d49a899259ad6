"""The SQLite schema of the default backend, and how a database is brought to it.

Designed for what IMAP needs beyond the basics, so later features add
columns/tables instead of reshaping these:

- CONDSTORE/QRESYNC (RFC 7162): a per-message `modseq` with an index for
  CHANGEDSINCE, per-mailbox `highestmodseq`, and `expunged` (uid, modseq)
  for VANISHED.
- STATUS without a scan: `mailboxes` carries message/unseen/deleted/recent
  counts and the total size, kept exact by triggers on `messages` (and,
  since version 5, unseen/deleted across flag changes by `store_flags`
  with one statement per STORE); the first unseen UID comes from a
  partial index. QUOTA (RFC 9208) sums `total_size` per account.
- Full-text search (version 2, see fts.py): `content_text` holds, per
  content, the case-folded text SEARCH looks in, written in the same
  transaction as the content row; `content_fts` is an FTS5 trigram index
  over it (external content) that a background worker fills, so delivery
  does not pay for tokenizing.
- FETCH without parsing (version 3): `contents.imap_*` hold ENVELOPE, BODY
  and BODYSTRUCTURE serialised at delivery when they are the same for every
  client (`mailbag.proto.imap.structures`); `content_headers` keeps the
  decoded FROM/TO/CC/BCC/SUBJECT apart from the wide `content_text` rows,
  so a header SEARCH scans a few hundred kilobytes instead of every body.
- Message bytes in the database (version 4): `content_bytes` holds the
  bytes of contents up to 128 KiB, committed with their `contents` row
  (`mailbag.store.blobs.indb`); bigger ones are files named by `cid`.
- Content is stored once: `contents.refcount` is kept by triggers on
  `messages`, and messages reference content by integer id (8 bytes a row
  instead of 64 hex digits). A content row is deleted in the same
  transaction that drops its count to zero; its file goes after the commit.
- Parsing after delivery (version 6): a server may store a message's bytes
  with `contents.facts = ''` and leave the parsing (facts, `imap_*`, the
  text rows) to its background worker, which finds them through the
  partial index `contents_unparsed`; until then readers parse on demand.
- Change records between processes (version 7): `change_log` holds the
  change-feed records of each commit, written in the commit's own
  transaction, so every process sharing the store (the server, `mailbag
  deliver`, later several server processes) publishes what the others
  changed (follow.py). Rows older than a few minutes are pruned.
"""

from __future__ import annotations

import sqlite3

from ...errors import StoreUnavailable
from ..models import FLAG_BIT

SCHEMA_VERSION = 7

# System flags as bits of messages.flags, in models.SYSTEM_FLAGS order.
# (\\Seen 1, \\Answered 2, \\Flagged 4, \\Deleted 8, \\Draft 16: the triggers below use them.)
FLAG_BITS: dict[str, int] = FLAG_BIT
SEEN_BIT = 1
DELETED_BIT = 8

_DDL = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

-- AUTOINCREMENT: ids are never reused, so a session holding the id of a deleted
-- account or mailbox can never reach a newer one that got the same number.
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    address TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created INTEGER NOT NULL              -- unix seconds, UTC
);

CREATE TABLE IF NOT EXISTS mailboxes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,                   -- full '/'-separated name, UTF-8
    uidvalidity INTEGER NOT NULL,
    uidnext INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    special_use TEXT,
    first_recent_uid INTEGER NOT NULL DEFAULT 1,
    message_count INTEGER NOT NULL DEFAULT 0,
    unseen_count INTEGER NOT NULL DEFAULT 0,
    deleted_count INTEGER NOT NULL DEFAULT 0,
    recent_count INTEGER NOT NULL DEFAULT 0,  -- messages with uid >= first_recent_uid
    total_size INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account_id, name)
);

CREATE TABLE IF NOT EXISTS subscriptions (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS contents (
    id INTEGER PRIMARY KEY,
    cid TEXT NOT NULL UNIQUE,             -- sha256 hex; names the blob file
    size INTEGER NOT NULL,
    refcount INTEGER NOT NULL DEFAULT 0,
    facts TEXT NOT NULL                   -- JSON, see backend.encode_facts
);
CREATE INDEX IF NOT EXISTS contents_garbage ON contents(id) WHERE refcount <= 0;

CREATE TABLE IF NOT EXISTS messages (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    flags INTEGER NOT NULL DEFAULT 0,     -- FLAG_BITS
    keywords TEXT,                        -- JSON array, sorted; NULL when none
    internal_date INTEGER NOT NULL,       -- unix seconds
    internal_tz INTEGER NOT NULL,         -- UTC offset in seconds
    size INTEGER NOT NULL,
    content_id INTEGER NOT NULL REFERENCES contents(id),
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_modseq ON messages(mailbox_id, modseq);
CREATE INDEX IF NOT EXISTS messages_content ON messages(content_id);
CREATE INDEX IF NOT EXISTS messages_unseen ON messages(mailbox_id, uid) WHERE (flags & 1) = 0;

CREATE TABLE IF NOT EXISTS expunged (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS expunged_modseq ON expunged(mailbox_id, modseq);

CREATE TRIGGER IF NOT EXISTS messages_inserted AFTER INSERT ON messages BEGIN
    UPDATE mailboxes SET
        message_count = message_count + 1,
        unseen_count = unseen_count + ((NEW.flags & 1) = 0),
        deleted_count = deleted_count + ((NEW.flags & 8) != 0),
        recent_count = recent_count + (NEW.uid >= first_recent_uid),
        total_size = total_size + NEW.size
    WHERE id = NEW.mailbox_id;
    UPDATE contents SET refcount = refcount + 1 WHERE id = NEW.content_id;
END;

CREATE TRIGGER IF NOT EXISTS messages_deleted AFTER DELETE ON messages BEGIN
    UPDATE mailboxes SET
        message_count = message_count - 1,
        unseen_count = unseen_count - ((OLD.flags & 1) = 0),
        deleted_count = deleted_count - ((OLD.flags & 8) != 0),
        recent_count = recent_count - (OLD.uid >= first_recent_uid),
        total_size = total_size - OLD.size
    WHERE id = OLD.mailbox_id;
    UPDATE contents SET refcount = refcount - 1 WHERE id = OLD.content_id;
END;

-- Dropped by version 5 (store_flags keeps these two counters itself).
CREATE TRIGGER IF NOT EXISTS messages_flagged AFTER UPDATE OF flags ON messages
WHEN (OLD.flags & 9) != (NEW.flags & 9) BEGIN
    UPDATE mailboxes SET
        unseen_count = unseen_count + ((NEW.flags & 1) = 0) - ((OLD.flags & 1) = 0),
        deleted_count = deleted_count + ((NEW.flags & 8) != 0) - ((OLD.flags & 8) != 0)
    WHERE id = NEW.mailbox_id;
END;

INSERT INTO schema_version (version)
    SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM schema_version);
COMMIT;
"""


# Version 2: the full-text index (fts.py explains the design).
#
# content_text.state: 0 = text stored, not yet in content_fts (searched with
# instr()); 1 = in content_fts; 2 = no text kept (too big, or the text could
# not be extracted): searched by reading the message.
# A content row's deletion detaches its text row (content_id = NULL) when
# the row is in content_fts, because removing it from an external-content
# FTS5 index needs the indexed values and costs as much as adding it: the
# background worker does that later. Rows not in content_fts just go.
# AUTOINCREMENT: a text row's id is its FTS rowid and is never reused, so
# postings not yet removed can never name a newer row.
_V2 = """
CREATE TABLE IF NOT EXISTS content_text (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    content_id INTEGER UNIQUE,            -- contents.id; NULL once it is deleted
    state INTEGER NOT NULL,
    chars INTEGER NOT NULL,               -- total length of the text columns
    body TEXT NOT NULL,                   -- what SEARCH BODY looks in
    headers TEXT NOT NULL,                -- with body, what SEARCH TEXT looks in
    hfrom TEXT NOT NULL,                  -- decoded top-level fields, one value a line
    hto TEXT NOT NULL,
    hcc TEXT NOT NULL,
    hbcc TEXT NOT NULL,
    hsubject TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS content_text_todo ON content_text(id)
    WHERE state = 0 OR content_id IS NULL;
-- Covers the joins of a search (messages -> text row id and state), so
-- they never touch the wide rows.
CREATE INDEX IF NOT EXISTS content_text_state ON content_text(content_id, state);
CREATE VIRTUAL TABLE IF NOT EXISTS content_fts USING fts5(
    body, headers, hfrom, hto, hcc, hbcc, hsubject,
    content = 'content_text', content_rowid = 'id',
    tokenize = 'trigram case_sensitive 1'
);
CREATE TRIGGER IF NOT EXISTS contents_text_gone AFTER DELETE ON contents BEGIN
    DELETE FROM content_text WHERE content_id = OLD.id AND state != 1;
    UPDATE content_text SET content_id = NULL WHERE content_id = OLD.id;
END;
-- Contents stored before this version have no text row yet: fts.TextIndexer
-- adds them in the background and sets this to 1 when none is left.
INSERT OR REPLACE INTO meta (key, value) VALUES ('text_backfill', 0);
UPDATE schema_version SET version = 2 WHERE version = 1;
"""


# Version 3: serialised FETCH forms and the narrow header-field table.
# Contents stored before it have no forms (FETCH serialises their facts, as
# before) and get their header row from content_text here.
_V3 = """
ALTER TABLE contents ADD COLUMN imap_envelope BLOB;
ALTER TABLE contents ADD COLUMN imap_body BLOB;
ALTER TABLE contents ADD COLUMN imap_bodystructure BLOB;
CREATE TABLE IF NOT EXISTS content_headers (
    content_id INTEGER PRIMARY KEY,       -- contents.id
    hfrom TEXT NOT NULL,                  -- as in content_text
    hto TEXT NOT NULL,
    hcc TEXT NOT NULL,
    hbcc TEXT NOT NULL,
    hsubject TEXT NOT NULL
);
INSERT OR IGNORE INTO content_headers (content_id, hfrom, hto, hcc, hbcc, hsubject)
    SELECT content_id, hfrom, hto, hcc, hbcc, hsubject FROM content_text
    WHERE content_id IS NOT NULL AND state != 2;
CREATE TRIGGER IF NOT EXISTS contents_headers_gone AFTER DELETE ON contents BEGIN
    DELETE FROM content_headers WHERE content_id = OLD.id;
END;
UPDATE schema_version SET version = 3 WHERE version = 2;
"""


# Version 4: small contents keep their bytes in the database
# (`mailbag.store.blobs.indb` explains why and what stays true). Contents
# stored before keep their files; nothing is moved.
_V4 = """
CREATE TABLE IF NOT EXISTS content_bytes (
    content_id INTEGER PRIMARY KEY,       -- contents.id
    data BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS contents_bytes_gone AFTER DELETE ON contents BEGIN
    DELETE FROM content_bytes WHERE content_id = OLD.id;
END;
UPDATE schema_version SET version = 4 WHERE version = 3;
"""


# Version 5: store_flags keeps unseen_count/deleted_count with one UPDATE per
# STORE instead of this trigger's UPDATE of the mailbox row per changed
# message (STORE 1:* +FLAGS \Seen on 10,000 messages: 105 -> 32 ms in the
# unit). store_flags is the only statement that changes messages.flags.
_V5 = """
DROP TRIGGER IF EXISTS messages_flagged;
UPDATE schema_version SET version = 5 WHERE version = 4;
"""


# Version 6: contents stored unparsed (facts = '') for the background worker
# to parse; (id, size) so the backlog's bytes are summed from the index.
_V6 = """
CREATE INDEX IF NOT EXISTS contents_unparsed ON contents(id, size) WHERE facts = '';
UPDATE schema_version SET version = 6 WHERE version = 5;
"""


# Version 7: the change records of each commit, for the other processes that
# share the store (follow.py). Ids only grow (the pruning in writer.py never
# deletes the newest row, so the rowid is never reused, without the extra
# page AUTOINCREMENT writes per commit), and writes are serialised by the
# database lock: id order is commit order, and a reader that remembers the
# last id it saw never misses or repeats a row.
_V7 = """
CREATE TABLE IF NOT EXISTS change_log (
    id INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,                 -- the writing store's random id
    at INTEGER NOT NULL,                  -- unix time of the commit
    changes TEXT NOT NULL                 -- changes.encode_changes()
);
UPDATE schema_version SET version = 7 WHERE version = 6;
"""


# The script that brings a database of each version to the next (1 -> 2, FTS5,
# is ensure_schema's own step: it may fail for want of the tokenizer).
_STEPS = {2: _V3, 3: _V4, 4: _V5, 5: _V6, 6: _V7}


def _migrate(conn: sqlite3.Connection, source: int, script: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated while this one waited for the lock.
        if _version(conn) == source:
            for statement in _split(script):
                conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    _migrate(conn, 1, _V2)


def _split(script: str) -> list[str]:
    """The statements of `script` (executescript would commit on its own)."""
    out: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    return out


def _version(conn: sqlite3.Connection) -> int | None:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchall()
    if not row:
        return None
    rows = conn.execute("SELECT version FROM schema_version").fetchall()
    return int(rows[0][0]) if rows else None


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the schema, or check that an existing database has ours.

    Safe when two processes (server and CLI) open a new database at once: the
    DDL is idempotent and runs under BEGIN IMMEDIATE.
    """
    version = _version(conn)
    if version is None:
        conn.executescript(_DDL)
        version = _version(conn)
    if version == 1:
        try:
            _migrate_to_2(conn)
        except sqlite3.OperationalError as e:
            # FTS5 and its trigram tokenizer need SQLite >= 3.34 built with FTS5.
            raise StoreUnavailable(
                f"cannot create the full-text index (SQLite {sqlite3.sqlite_version}): {e}"
            ) from e
        version = _version(conn)
    while version in _STEPS:
        _migrate(conn, version, _STEPS[version])
        version = _version(conn)
    if version != SCHEMA_VERSION:
        # A newer database than this code knows must not be written by it.
        raise StoreUnavailable(
            f"database schema version {version} is not supported "
            f"(this mailbag uses {SCHEMA_VERSION})"
        )
