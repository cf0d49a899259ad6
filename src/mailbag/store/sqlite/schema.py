"""The SQLite schema of the default backend, and how a database is brought to it.

Designed for what IMAP needs beyond the basics, so later features add
columns/tables instead of reshaping these:

- CONDSTORE/QRESYNC (RFC 7162): a per-message `modseq` with an index for
  CHANGEDSINCE, per-mailbox `highestmodseq`, and `expunged` (uid, modseq)
  for VANISHED.
- STATUS without a scan: `mailboxes` carries message/unseen/deleted/recent
  counts and the total size, kept exact by triggers on `messages`; the first
  unseen UID comes from a partial index. QUOTA (RFC 9208) sums `total_size` per account.
- Full-text search: `contents` has an integer rowid an FTS5 table (trigram
  tokenizer) can use as its external content key.
- Content is stored once: `contents.refcount` is kept by triggers on
  `messages`, and messages reference content by integer id (8 bytes a row
  instead of 64 hex digits). A content row is deleted in the same
  transaction that drops its count to zero; its file goes after the commit.
"""

from __future__ import annotations

import sqlite3

from ...errors import StoreUnavailable

SCHEMA_VERSION = 1

# System flags as bits of messages.flags, in models.SYSTEM_FLAGS order.
FLAG_BITS: dict[str, int] = {
    "\\Seen": 1,
    "\\Answered": 2,
    "\\Flagged": 4,
    "\\Deleted": 8,
    "\\Draft": 16,
}
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
    if version != SCHEMA_VERSION:
        # Migrations go here when SCHEMA_VERSION grows; a newer database than
        # this code knows must not be written by it.
        raise StoreUnavailable(
            f"database schema version {version} is not supported "
            f"(this mailbag uses {SCHEMA_VERSION})"
        )
