"""Small message contents kept in the SQLite database instead of files.

The SQLite backend stores a content of at most :data:`IN_DB_MAX` octets as a
row of ``content_bytes`` (schema version 4, keyed by ``contents.id``),
inserted by the same unit, so in the same transaction, as its ``contents``
row. With ``synchronous=FULL`` the commit is then the only fsync the message
costs, and the writer's group commit shares that one fsync among every
message of the batch. A file costs its own fsync, a rename and a directory
fsync, and ext4 orders those through its one journal: measured here, 10
files of 16 KB written in parallel took ~4.5-6 ms, the same 10 as rows of
one commit ~1 ms (one file alone ~1.4-1.8 ms against ~0.45 ms for a commit).
Bigger contents stay files (`files.py`): SQLite reads and writes a large
value whole through its page chain, and a file streams; 98.8% of the
benchmark corpus's messages, and 88% of its bytes, fit under the limit.

What this keeps true (DESIGN.md §2.1):

- a row's bytes commit with it, or neither does: nothing to sweep after a
  crash, nothing to fsync first;
- the bytes go with the content row: deleting a ``contents`` row deletes its
  ``content_bytes`` row (the unit that drops the last reference does it, and
  a trigger covers any other deletion), in the same transaction;
- whether a content is in the database or in a file follows from its size,
  so every copy of one content id is stored the same way; contents stored
  before version 4 stay files and are read as before.

These functions run on whatever thread calls them, with that thread's
connection.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

# Contents up to this size go to the database. 128 KiB: SQLite's own
# measurements put the break-even between in-database values and files at
# ~100 KB, and above it a message is rare (1.2% of the corpus).
IN_DB_MAX = 128 * 1024


def put(conn: sqlite3.Connection, content_rowid: int, data: bytes) -> None:
    """Store the bytes of the content row just inserted (inside its unit)."""
    conn.execute(
        "INSERT INTO content_bytes (content_id, data) VALUES (?, ?)", (content_rowid, data)
    )


def read(
    conn: sqlite3.Connection, cid: str, offset: int = 0, length: int | None = None
) -> bytes | None:
    """The bytes `offset` .. `offset + length` of content `cid` (to the end when
    `length` is None), or None when the database does not hold them.

    One statement, so one snapshot: a range is cut by ``substr``, which
    counts bytes in a BLOB. For values of at most IN_DB_MAX octets this
    measured as fast as ``Connection.blobopen``, which needs the row id
    first (two statements, and a read transaction around them, since
    ``contents.id`` values can be reused).
    """
    join = "FROM contents c JOIN content_bytes b ON b.content_id = c.id WHERE c.cid = ?"
    if length is None:
        if offset == 0:
            rows = conn.execute(f"SELECT b.data {join}", (cid,)).fetchall()
        else:
            rows = conn.execute(f"SELECT substr(b.data, ?) {join}", (offset + 1, cid)).fetchall()
    else:
        rows = conn.execute(
            f"SELECT substr(b.data, ?, ?) {join}", (offset + 1, length, cid)
        ).fetchall()
    if not rows:
        return None
    data: bytes | None = rows[0][0]
    # substr() of a zero-length BLOB is NULL; the column itself never is.
    return data if data is not None else b""


def read_many(conn: sqlite3.Connection, cids: Sequence[str]) -> dict[str, bytes]:
    """The whole bytes of those of `cids` the database holds, by one statement
    (a statement per content costs more than reading its bytes)."""
    rows = conn.execute(
        "SELECT c.cid, b.data FROM contents c JOIN content_bytes b ON b.content_id = c.id"
        " WHERE c.cid IN (SELECT value FROM json_each(?))",
        (json.dumps(cids),),
    ).fetchall()
    return dict(rows)
