"""The one thread that writes the database, with group commit.

Async callers submit a *unit*: a function that takes a :class:`Tx` and does
one whole store operation with the connection. The thread takes every unit
queued at that moment and runs them in ONE transaction, each inside its own
SAVEPOINT so a failing unit rolls back alone, then commits once and resolves
every future. With ``synchronous=FULL`` the commit is the fsync that makes
the batch durable, so many deliveries share one fsync (DESIGN.md §2.1).

Futures are resolved on the submitting loop with ``call_soon_threadsafe``,
which also publishes the unit's change records first, so a record is never
seen before its commit, and never after the caller has already moved on
(DESIGN.md §2.2).

Content files are unlinked only after the commit that deleted their rows,
inside a second, write-locked transaction that re-checks the rows: another
unit (in this process or in the CLI's) may have re-added the same content
meanwhile, and must then find the file. Contents kept in the database
(blobs/indb.py) leave no file to collect: their bytes go with their row.

The change records of a batch are also written to `change_log`, in the
batch's transaction, so the other processes sharing the store publish them
too (follow.py); the writer prunes rows older than CHANGE_LOG_KEEP.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import logging
import os
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ...errors import StoreError, StoreUnavailable
from ...net.doorbell import Bells
from ..blobs import BlobStore
from ..changes import Change, ChangeHub, encode_changes
from .schema import ensure_schema

if TYPE_CHECKING:
    from .follow import ChangeFollower

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(slots=True)
class Tx:
    """What a unit gets: the write connection inside the unit's savepoint."""

    conn: sqlite3.Connection
    blobs: BlobStore
    changes: list[Change] = field(default_factory=list)
    # Content ids whose rows this unit deleted; their files go after commit.
    garbage: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Job(Generic[T]):
    fn: Callable[[Tx], T] | None  # None: only collect `fresh` as garbage
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[T] | None
    # Blob files written for this unit before it was queued; when the unit
    # fails they may be referenced by nothing.
    fresh: tuple[str, ...] = ()
    # For units submitted from a plain thread (run_blocking).
    waiter: concurrent.futures.Future[T] | None = None


_STOP = object()

# How long a batch waits for units being prepared (Writer.expect): below a
# commit's fsync, above the usual time to parse a message.
GATHER_WAIT = 0.002

# Seconds a change_log row is kept: far longer than any process sharing the
# store takes to read it (follow.py polls a few times a second), short
# enough that a busy store's log stays small (one row per commit).
CHANGE_LOG_KEEP = 600.0
# How often a writer prunes the log (and at its first commit).
CHANGE_LOG_PRUNE_EVERY = 30.0

# The followers' doorbells (follow.py, net/doorbell.py), in the data dir.
BELLS_DIR = "bells"


# Taken by every writer of the store around its write transactions (_lock_writes).
WRITE_LOCK_NAME = "write.lock"

# Upper bound of the database file mapped per connection (see connect()).
MMAP_SIZE = 1 << 30

# (future, result, change records, exception) for a loop to settle.
_Outcome = tuple["asyncio.Future[Any]", Any, tuple[Change, ...], BaseException | None]


def connect(path: Path, busy_timeout: float, *, readonly: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    # Pages of the database file are read through a shared mapping instead
    # of one pread() and copy each: FETCH 1:* BODY.PEEK[] reading 10,000
    # in-database contents measured 184 -> 131 ms of CPU (72 ms with batched
    # reads), and the cost no longer grows with the size of the file. It
    # maps address space, not memory: untouched pages cost nothing and
    # touched ones are the page cache the kernel keeps anyway. SQLite only
    # reads through the mapping; writes still go through write() and the
    # WAL, so durability is unchanged.
    conn.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")
    conn.execute("PRAGMA temp_store = MEMORY")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    else:
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: in WAL mode NORMAL may lose the last commits on power failure,
        # and we acknowledge a message right after its commit.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    return conn


def as_store_error(exc: BaseException) -> BaseException:
    if isinstance(exc, sqlite3.IntegrityError):
        # A constraint the unit did not check first: a bug, but not the
        # caller's to retry.
        return StoreError(f"database constraint: {exc}")
    if isinstance(exc, sqlite3.Error):
        return StoreUnavailable(f"database error: {exc}")
    return exc


class Writer:
    def __init__(
        self,
        path: Path,
        blobs: BlobStore,
        hub: ChangeHub,
        busy_timeout: float,
        max_batch: int = 512,
    ) -> None:
        self.path = path
        self.blobs = blobs
        self.hub = hub
        self.busy_timeout = busy_timeout
        self.max_batch = max_batch
        self.commits = 0  # batches with a caller's unit committed; for tests and metrics
        self.units = 0  # callers' units committed (not run_blocking ones)
        # time.monotonic() of the last batch with a caller's unit, so
        # background work can tell whether it competes with deliveries.
        self.foreground_at = 0.0
        # Names this writer's rows in change_log, so the follower of the same
        # store skips the records its own hub already had.
        self.origin = secrets.token_hex(8)
        self._pruned_at = 0.0
        # Set once it runs (SQLiteStore.open): publishes the records of
        # commits, this writer's and other processes', in commit order.
        self.follower: ChangeFollower | None = None
        self.bells = Bells(path.parent / BELLS_DIR, self.origin)
        self._write_lock_fd = -1
        self._write_locked = False
        self._queue: queue.SimpleQueue[_Job[Any] | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._submit_lock = threading.Lock()
        # Units callers are preparing in worker threads right now (expect()):
        # a batch waits up to GATHER_WAIT for them, see _gather().
        self._expected = 0
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._conn: sqlite3.Connection | None = None
        # Content ids whose files could not be collected yet (writer thread only).
        self._garbage: set[str] = set()

    # ---- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        """Open the connection, create the schema, start the thread (blocking)."""
        self._thread = threading.Thread(
            target=self._main, name="mailbag-sqlite-writer", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error

    def close(self) -> None:
        """Finish every unit queued so far, then stop (blocking)."""
        with self._submit_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join()

    # ---- submitting ---------------------------------------------------------
    async def run(self, fn: Callable[[Tx], T], fresh: Iterable[str] = ()) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self.submit(fn, loop, future, fresh)
        return await future

    def submit(
        self,
        fn: Callable[[Tx], T],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[T],
        fresh: Iterable[str] = (),
        expected: bool = False,
    ) -> None:
        """Queue a unit whose outcome goes to `future` on `loop` (thread-safe).

        For a worker thread that prepared the unit: queueing it from there
        saves a round trip through the event loop. A unit whose future is
        cancelled before it starts is not run, and its `fresh` files are
        collected. `expected`: the caller announced it with expect(1), and
        this ends that (also when it raises).
        """
        job = _Job(fn, loop, future, tuple(fresh))
        with self._submit_lock:
            if expected:
                # Before the put: a batch that misses the unit takes it in
                # the next one; one that saw the count without the unit
                # would wait GATHER_WAIT for nothing.
                self._expected -= 1
            if self._closed:
                raise StoreUnavailable("store is closed")
            self._queue.put(job)

    def expect(self, count: int) -> None:
        """`count` more (or, negative, fewer) units are being prepared and
        will be submitted soon (thread-safe). Each expect(1) is ended once:
        by submit(..., expected=True), or by expect(-1) when the unit is
        given up. A count left too high costs each batch GATHER_WAIT."""
        with self._submit_lock:
            self._expected += count

    def run_blocking(self, fn: Callable[[Tx], T]) -> T:
        """`run` for a thread without an event loop (the full-text worker).

        Such units publish no change records: they must not change what a
        session can see.
        """
        waiter: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._submit_lock:
            if self._closed:
                raise StoreUnavailable("store is closed")
            self._queue.put(_Job(fn, None, None, (), waiter))
        return waiter.result()

    def discard(self, cids: Iterable[str]) -> None:
        """Remove these blob files unless a row references them (thread-safe)."""
        cids = tuple(cids)
        if not cids:
            return
        with self._submit_lock:
            if not self._closed:
                self._queue.put(_Job(None, None, None, cids))

    # ---- the thread ---------------------------------------------------------
    def _main(self) -> None:
        try:
            conn = connect(self.path, self.busy_timeout)
        except BaseException as e:
            self._start_error = as_store_error(e)
            self._ready.set()
            return
        try:
            self._write_lock_fd = os.open(
                self.path.parent / WRITE_LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
        except OSError as e:
            conn.close()
            self._start_error = StoreUnavailable(f"cannot open the write lock: {e}")
            self._ready.set()
            return
        try:
            ensure_schema(conn)
        except BaseException as e:
            conn.close()
            os.close(self._write_lock_fd)
            self._start_error = as_store_error(e)
            self._ready.set()
            return
        self._conn = conn
        self._ready.set()
        try:
            stopping = False
            while not stopping:
                first = self._queue.get()
                if first is _STOP:
                    break
                batch: list[_Job[Any]] = [first]  # type: ignore[list-item]
                stopping = self._gather(batch)
                try:
                    self._run_batch(conn, batch)
                except BaseException as e:  # a bug here must not strand the callers
                    log.exception("writer batch failed")
                    if conn.in_transaction:
                        try:
                            conn.execute("ROLLBACK")
                        except sqlite3.Error:
                            log.exception("rollback failed")
                    self._unlock_writes()
                    for job in batch:
                        self._resolve_now(job, None, (), StoreUnavailable(f"writer failed: {e}"))
        finally:
            conn.close()
            self.bells.close()
            os.close(self._write_lock_fd)

    def _lock_writes(self) -> None:
        """Take the store's write lock file before SQLite's write lock.

        Several processes write one store (`serve --workers`, the CLI). SQLite
        makes a writer that finds the database locked sleep 1, 2, 5, 10, 15,
        20, 25 ... ms between tries, whatever the holder does: two workers
        delivering over LMTP spent more time asleep than committing (four
        lock-step connections over two workers: ~400 msg/s, against ~550
        over one). This flock is tried every 20 µs to 1 ms instead, so the
        next writer starts ~0.1 ms after the commit before it, and SQLite's
        lock is then free. Alone, it costs two system calls a commit.
        """
        if self._write_locked:
            return
        fd = self._write_lock_fd
        delay = 20e-6
        deadline = 0.0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._write_locked = True
                return
            except BlockingIOError:
                now = time.monotonic()
                if not deadline:
                    deadline = now + self.busy_timeout
                elif now > deadline:
                    # SQLite's busy timeout decides what happens next.
                    return
                time.sleep(delay)
                delay = min(delay * 2, 0.001)

    def _unlock_writes(self) -> None:
        if self._write_locked:
            self._write_locked = False
            fcntl.flock(self._write_lock_fd, fcntl.LOCK_UN)

    def _gather(self, batch: list[_Job[Any]]) -> bool:
        """Add the units queued now to `batch`, and those being prepared,
        waiting at most GATHER_WAIT for them; True when _STOP came.

        Each batch costs one fsync (~3.5 ms here), preparing a unit well under
        one: a unit that is ready a moment after the batch began would wait
        for that whole commit and then pay a commit of its own. 1,500
        appends, 4 at a time, on the store alone: 2.7-3.0 -> 3.0-3.7 units
        per commit. A caller alone (LMTP over one connection, one APPEND at
        a time) never waits: nothing else is being prepared.
        """
        deadline = 0.0
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                if self._expected <= 0:
                    return False
                now = time.monotonic()
                if not deadline:
                    deadline = now + GATHER_WAIT
                if now >= deadline:
                    return False
                try:
                    item = self._queue.get(timeout=deadline - now)
                except queue.Empty:
                    return False
            if item is _STOP:
                return True
            batch.append(item)  # type: ignore[arg-type]
        return False

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job[Any]]) -> None:
        # (job, result, tx or None, exception or None)
        outcomes: list[tuple[_Job[Any], Any, Tx | None, BaseException | None]] = []
        garbage: set[str] = set()
        units = [j for j in batch if j.fn is not None]
        # (change_log id, the batch's records) once committed with records.
        logged: tuple[int, list[Change]] | None = None
        for job in batch:
            if job.fn is None:
                garbage.update(job.fresh)
        if units:
            try:
                self._lock_writes()
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                self._unlock_writes()
                # Not even the lock: collecting would wait as long again, so
                # the files are left for the next batch.
                err = StoreUnavailable(f"database busy or failing: {e}")
                for job in units:
                    self._garbage.update(job.fresh)
                    self._resolve_now(job, None, (), err)
                return
            aborted: BaseException | None = None
            for job in units:
                if aborted is not None:
                    outcomes.append((job, None, None, aborted))
                    continue
                if job.future is not None and job.future.cancelled():
                    # The caller gave up before the unit started: do not store
                    # what nobody will be told about.
                    outcomes.append((job, None, None, asyncio.CancelledError()))
                    continue
                unit_tx = Tx(conn, self.blobs)
                try:
                    conn.execute("SAVEPOINT unit")
                    assert job.fn is not None
                    result = job.fn(unit_tx)
                    conn.execute("RELEASE unit")
                    outcomes.append((job, result, unit_tx, None))
                except Exception as e:
                    if conn.in_transaction:
                        try:
                            conn.execute("ROLLBACK TO unit")
                            conn.execute("RELEASE unit")
                        except sqlite3.Error as e2:
                            aborted = StoreUnavailable(f"database error: {e2}")
                    else:
                        # SQLite rolled the whole transaction back (disk full,
                        # I/O error): the units before this one are lost too.
                        aborted = StoreUnavailable(f"database error: {e}")
                    if not isinstance(e, (StoreError, OSError, sqlite3.Error)):
                        log.exception("store unit raised")
                    outcomes.append((job, None, None, as_store_error(e)))
            if aborted is None:
                records = [c for _, _, tx, _ in outcomes if tx for c in tx.changes]
                try:
                    log_id = self._log_changes(conn, records)
                    conn.execute("COMMIT")
                    if log_id is not None:
                        logged = (log_id, records)
                except sqlite3.Error as e:
                    aborted = StoreUnavailable(f"commit failed: {e}")
            if aborted is not None:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        log.exception("rollback failed")
                outcomes = [(job, None, None, aborted) for job, _, _, _ in outcomes]
            elif any(job.waiter is None for job in units):
                # Background units (run_blocking) are not counted: these
                # numbers describe the callers' group commits.
                self.commits += 1
                self.foreground_at = time.monotonic()
            self._unlock_writes()
            for job, _, tx, _ in outcomes:
                garbage.update(tx.garbage if tx is not None else job.fresh)
        if logged is not None:
            # The other processes' followers read the new row now.
            self.bells.ring()
        # Files go before the callers hear back, so a caller that deleted the
        # last reference never reads the bytes again.
        self._collect(conn, garbage)
        # One wake-up per event loop for the whole batch, not one per unit.
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for job, result, tx, exc in outcomes:
            if tx is not None:
                if job.waiter is None:
                    self.units += 1
                outcome = self._resolve(job, result, tx.changes, None)
            else:
                outcome = self._resolve(job, None, (), exc)
            if outcome is not None:
                assert job.loop is not None
                by_loop.setdefault(job.loop, []).append(outcome)
        # With a follower, its loop publishes the batch's records, in
        # change_log order among other processes' (follow.py); without one,
        # each caller's loop publishes its units' records.
        follower = self.follower
        follow_loop = follower.loop if follower is not None else None
        for loop, done in by_loop.items():
            try:
                loop.call_soon_threadsafe(
                    self._finish,
                    done,
                    logged if loop is follow_loop else None,
                    follow_loop is None,
                )
            except RuntimeError:
                # The caller's loop is closed; the outcome has nobody to go to.
                pass
        if logged is not None and follow_loop is not None and follow_loop not in by_loop:
            assert follower is not None
            try:
                follow_loop.call_soon_threadsafe(follower.committed, *logged)
            except RuntimeError:
                pass

    def _log_changes(self, conn: sqlite3.Connection, changes: list[Change]) -> int | None:
        """Write the batch's records to change_log; its row id, or None."""
        if not changes:
            return None
        now = time.time()
        cursor = conn.execute(
            "INSERT INTO change_log (origin, at, changes) VALUES (?, ?, ?)",
            (self.origin, int(now), encode_changes(changes)),
        )
        if now - self._pruned_at >= CHANGE_LOG_PRUNE_EVERY:
            self._pruned_at = now
            # `at` grows with the id, so the rows to delete are the first
            # ones: the scan stops at the first row young enough, with no
            # index on `at` to keep up at every commit. (Should the clock
            # step back, the rows before that one are still all old.) The row
            # just written always stays, so ids are never reused.
            conn.execute(
                "DELETE FROM change_log WHERE id <"
                " (SELECT id FROM change_log WHERE at >= ? ORDER BY id LIMIT 1)",
                (int(now - CHANGE_LOG_KEEP),),
            )
        return cursor.lastrowid

    def _resolve(
        self,
        job: _Job[Any],
        result: Any,
        changes: Iterable[Change],
        exc: BaseException | None,
    ) -> _Outcome | None:
        """Settle a thread's waiter now; return what a loop's future gets."""
        if job.waiter is not None:
            if exc is not None:
                job.waiter.set_exception(exc)
            else:
                job.waiter.set_result(result)
            return None
        if job.loop is None or job.future is None:
            return None
        return (job.future, result, tuple(changes), exc)

    def _resolve_now(
        self,
        job: _Job[Any],
        result: Any,
        changes: Iterable[Change],
        exc: BaseException | None,
    ) -> None:
        outcome = self._resolve(job, result, changes, exc)
        if outcome is not None:
            assert job.loop is not None
            try:
                job.loop.call_soon_threadsafe(self._finish, [outcome], None, True)
            except RuntimeError:
                pass

    def _finish(
        self, done: list[_Outcome], logged: tuple[int, list[Change]] | None, publish: bool
    ) -> None:
        # Every change of the batch is published before any caller resumes,
        # and in commit order.
        if logged is not None:
            assert self.follower is not None
            self.follower.committed(*logged)
        for future, result, changes, exc in done:
            if publish:
                for change in changes:
                    try:
                        self.hub.publish(change)
                    except Exception:
                        log.exception("change listener failed")
            if future.cancelled():
                continue
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def _collect(self, conn: sqlite3.Connection, cids: set[str]) -> None:
        """Unlink the files of `cids` that no content row references.

        Holding the write lock while checking and unlinking is what makes this
        safe against a unit in another process that checks for the file and
        inserts the row under the same lock.
        """
        if self._garbage:
            cids = cids | self._garbage
            self._garbage = set()
        if not cids:
            return
        try:
            self._lock_writes()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for cid in sorted(cids):
                    # A row whose bytes are in the database (blobs/indb.py)
                    # does not need the file: one left by a crash goes too.
                    row = conn.execute(
                        "SELECT 1 FROM contents c WHERE c.cid = ? AND NOT EXISTS"
                        " (SELECT 1 FROM content_bytes b WHERE b.content_id = c.id)",
                        (cid,),
                    ).fetchall()
                    if not row:
                        self.blobs.remove(cid)
            finally:
                conn.execute("COMMIT")
                self._unlock_writes()
        except (sqlite3.Error, OSError) as e:
            self._unlock_writes()
            # Retried after the next batch; a crash before that leaves them
            # to the sweep at the next open.
            log.warning("removing unreferenced content files failed: %s", e)
            self._garbage = cids
            if conn.in_transaction:
                conn.execute("ROLLBACK")
