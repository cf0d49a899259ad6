"""What other processes commit to the store reaches this process's change feed.

Several processes may write one store: the server and `mailbag deliver` run
by an MTA (and, later, several server processes). Each writer stores the
change records of a commit in `change_log`, in the commit's transaction
(writer.py). The follower of each process reads the rows written by the
others and publishes their records on its own hub, so a session in IDLE sees
mail delivered by the command line as it sees mail delivered over LMTP.

Order matters. UIDs are given out in commit order, and a selected view only
takes UIDs above the ones it has (UIDRuns.extend_above): a record published
after a later one would be dropped. So this process's own records go through
the follower as well (`committed`, called by the writer's callback before any
caller resumes), and every record, own or not, is published in `change_log`
id order, which is commit order (writes are serialised by the database lock).
The follower never publishes past an own row whose callback has not run yet.

How others' commits are noticed: each follower binds a datagram socket, its
doorbell, in the store's `bells/` directory, and a writer that committed
records sends one byte to every other doorbell there (net/doorbell.py): the
follower reads the new rows at once (~0.1 ms after the commit instead of up
to the polling interval), as Dovecot's IDLE wakes on inotify of its index
log. Should a ring be lost (a full socket buffer, a follower that started
after the writer last listed the directory), `PRAGMA data_version`, which
changes when another connection commits, is also checked every
FOLLOW_INTERVAL seconds (one cheap statement; rows are read only when it
changed).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from ...net.doorbell import Doorbell
from ..changes import Change, ChangeHub, decode_changes
from .writer import BELLS_DIR, connect

log = logging.getLogger(__name__)

# Seconds between two looks at data_version: the most another process's
# delivery waits before this process's sessions hear of it when its ring
# was lost.
FOLLOW_INTERVAL = 0.5


class ChangeFollower:
    def __init__(
        self,
        db_path: Path,
        busy_timeout: float,
        origin: str,
        hub: ChangeHub,
        on_remote: Callable[[], None] = lambda: None,
        interval: float = FOLLOW_INTERVAL,
    ) -> None:
        self.db_path = db_path
        self.busy_timeout = busy_timeout
        self.origin = origin
        self.hub = hub
        self.on_remote = on_remote
        self.interval = interval
        self.loop: asyncio.AbstractEventLoop | None = None
        self.remote_rows = 0  # rows of other processes published; for tests and metrics
        self._conn: sqlite3.Connection | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._last_id = 0
        self._version = -1
        # Own commits' records by change_log id, until published in order.
        self._local: dict[int, list[Change]] = {}
        self._gap_logged = False
        self._bell = Doorbell(db_path.parent / BELLS_DIR, origin, self._look)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin after the rows committed so far (blocking; on `loop`'s thread)."""
        conn = connect(self.db_path, self.busy_timeout, readonly=True)
        try:
            (self._version,) = conn.execute("PRAGMA data_version").fetchone()
            (self._last_id,) = conn.execute(
                "SELECT coalesce(max(id), 0) FROM change_log"
            ).fetchone()
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self.loop = loop
        self._handle = loop.call_later(self.interval, self._tick)
        try:
            self._bell.open(loop)
        except OSError as e:
            # Polling alone still works, only slower.
            log.warning("no doorbell for changes of other processes: %s", e)

    def stop(self) -> None:
        """Stop following (on the loop's thread). Own records still committed
        are then published directly, without waiting for anyone's."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._bell.close()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        local, self._local = self._local, {}
        for log_id in sorted(local):
            self._publish(local[log_id])

    # ---- on the loop's thread -------------------------------------------------
    def committed(self, log_id: int, changes: list[Change]) -> None:
        """This process committed `changes` as change_log row `log_id`: publish
        them after every earlier row of the others."""
        if self._conn is None:
            self._publish(changes)
            return
        if log_id == self._last_id + 1 and not self._local:
            # No row between the last one published and this one: nothing of
            # the others' comes first. The common case, and reading the log
            # after a commit costs the loop ~0.1 ms (the connection's page
            # cache is stale), as much as the rest of an LMTP delivery's
            # commit handling.
            self._last_id = log_id
            self._publish(changes)
            return
        self._local[log_id] = changes
        self._advance()

    def poll(self) -> None:
        """Publish what the others committed since the last look."""
        conn = self._conn
        if conn is None:
            return
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:
            self._version = version
            self._advance()

    def _tick(self) -> None:
        self._handle = None
        self._look()
        if self._conn is not None and self.loop is not None:
            self._handle = self.loop.call_later(self.interval, self._tick)

    def _look(self) -> None:
        try:
            self.poll()
        except sqlite3.Error as e:
            # Busy or failing for a moment: the next look retries.
            log.warning("reading other processes' changes failed: %s", e)
        except Exception:
            log.exception("publishing other processes' changes failed")

    def _advance(self) -> None:
        conn = self._conn
        assert conn is not None
        rows = conn.execute(
            "SELECT id, origin = ?1, CASE WHEN origin = ?1 THEN NULL ELSE changes END"
            " FROM change_log WHERE id > ?2 ORDER BY id",
            (self.origin, self._last_id),
        ).fetchall()
        last = self._last_id
        remote = 0
        for log_id, own, text in rows:
            if own:
                changes = self._local.pop(log_id, None)
                if changes is None:
                    # Its writer callback is on its way; it calls us again.
                    break
            else:
                if log_id != last + 1 and not self._gap_logged:
                    # Pruned before this process read them (it did not run
                    # its loop for CHANGE_LOG_KEEP seconds).
                    self._gap_logged = True
                    log.error(
                        "change records %d-%d of other processes were pruned unread;"
                        " sessions may miss changes until they select again",
                        last + 1,
                        log_id - 1,
                    )
                try:
                    changes = decode_changes(text)
                except ValueError as e:
                    log.error("change record %d unreadable: %s", log_id, e)
                    changes = []
                remote += 1
            last = log_id
            self._publish(changes)
        self._last_id = last
        if remote:
            self.remote_rows += remote
            self.on_remote()

    def _publish(self, changes: list[Change]) -> None:
        for change in changes:
            try:
                self.hub.publish(change)
            except Exception:
                log.exception("change listener failed")
