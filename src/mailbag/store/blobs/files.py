"""Message bytes as files named by content id (DESIGN.md §3).

Since schema version 4 only contents bigger than :attr:`BlobStore.in_db_max`
(128 KiB) are files; smaller ones are kept in the SQLite database, committed
with their row (indb.py says why). Stores written before keep their files.

Layout under the root (``data_dir/blobs``)::

    ab/abcd…(64 hex digits)   one file per distinct content, sha256 of the bytes
    ab/<cid>.<random>.tmp     a file being written; never referenced by a row

One level of 256 shards, all made when the store is set up: a second level
(65,536 folders) made a fresh store create and fsync a new folder for almost
every message it took, and ext4's hashed directories stay fast with tens of
thousands of files per folder.

A file appears under its final name only by ``rename`` after its bytes were
fsynced, and the rename is made durable by fsyncing the shard directory before
the caller commits a row that references it. The temp file lives in the same
directory: a rename within one directory is measurably cheaper for the
filesystem journal than one across directories, and one directory fsync
covers it. So a committed row always points
at a complete file; what a crash can leave behind is a temp file or a complete
file nobody references, and :meth:`BlobStore.sweep` removes both.

Every method here is blocking: call it from a worker thread, never from the
event loop (except :meth:`read` of small ranges).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

from ...errors import NotFound
from ..models import ContentID
from .indb import IN_DB_MAX

_CID = re.compile(r"[0-9a-f]{64}")
_SHARD = re.compile(r"[0-9a-f]{2}")
TMP_SUFFIX = ".tmp"


def content_id(data: bytes) -> ContentID:
    return ContentID(hashlib.sha256(data).hexdigest())


def is_content_id(value: str) -> bool:
    return _CID.fullmatch(value) is not None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_str = str(root)
        # Shard directories whose own entry (and their parent's) we have made
        # durable in this process; a set of str is safe to share across threads
        # because adding is atomic and a duplicate fsync is harmless.
        self._durable_dirs: set[str] = set()
        # Contents up to this size are not files: the SQLite backend keeps
        # them in its database (indb.py). 0 makes every content a file (tests
        # of the file path, and of stores written before schema version 4).
        self.in_db_max = IN_DB_MAX

    def in_db(self, size: int) -> bool:
        """Whether a content of `size` octets belongs in the database, not here."""
        return size <= self.in_db_max

    def setup(self) -> None:
        if not self.root.is_dir():
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            fsync_dir(self.root.parent)
        # All 256 shards exist from the start: no message ever waits for a mkdir.
        created = False
        for i in range(256):
            top = self.root / f"{i:02x}"
            if not top.is_dir():
                top.mkdir(mode=0o700, exist_ok=True)
                created = True
        if created:
            fsync_dir(self.root)

    # ---- names --------------------------------------------------------------
    def path(self, cid: str) -> Path:
        # The id comes from the database or a client-visible value; checking it
        # here keeps a bad one from ever naming a path outside the store.
        if not is_content_id(cid):
            raise NotFound("no such content")
        return self.root / cid[:2] / cid

    # ---- writing ------------------------------------------------------------
    def _ensure_shard(self, shard: Path) -> None:
        key = str(shard)
        if key in self._durable_dirs:
            return
        # setup() made every shard; this only repairs one removed by hand. A new
        # directory entry is durable only once its parent is fsynced.
        shard.mkdir(mode=0o700, exist_ok=True)
        fsync_dir(self.root)
        self._durable_dirs.add(key)

    def has(self, cid: str, size: int) -> bool:
        try:
            return self.path(cid).stat().st_size == size
        except FileNotFoundError:
            return False

    def put(self, cid: str, data: bytes) -> None:
        """Make the file for `cid` exist durably with `data` as its bytes.

        When a file of the right size is already there (identical content is
        stored once) only the directory is fsynced: another thread may have
        renamed it a moment ago and not yet made the rename durable.
        """
        path = self.path(cid)
        shard = path.parent
        self._ensure_shard(shard)
        if self.has(cid, len(data)):
            fsync_dir(shard)
            return
        tmp = shard / f"{cid}.{secrets.token_hex(8)}{TMP_SUFFIX}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(shard)

    def remove(self, cid: str) -> None:
        # No directory fsync: a file that comes back after a crash is
        # unreferenced and the next sweep removes it.
        self.path(cid).unlink(missing_ok=True)

    # ---- reading ------------------------------------------------------------
    def read(self, cid: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.read_if_there(cid, offset, length)
        if data is None:
            raise NotFound("no such content")
        return data

    def read_if_there(self, cid: str, offset: int = 0, length: int | None = None) -> bytes | None:
        """`read`, or None when there is no such file (for a caller that then
        looks in the database: one exception fewer on its hot path)."""
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        if not is_content_id(cid):
            raise NotFound("no such content")
        try:
            # A plain string path: pathlib costs more than the read on this hot path.
            fd = os.open(f"{self._root_str}/{cid[:2]}/{cid}", os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            if length is None:
                length = max(0, os.fstat(fd).st_size - offset)
            chunks: list[bytes] = []
            while length > 0:
                chunk = os.pread(fd, length, offset)
                if not chunk:
                    break
                chunks.append(chunk)
                offset += len(chunk)
                length -= len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def size(self, cid: str) -> int:
        try:
            return self.path(cid).stat().st_size
        except FileNotFoundError:
            raise NotFound("no such content") from None

    # ---- recovery -----------------------------------------------------------
    def shards(self) -> Iterator[tuple[str, list[str]]]:
        """(two-hex-digit prefix like ``ab``, file names found there) per shard."""
        for top in sorted(os.listdir(self.root)):
            if _SHARD.fullmatch(top) and (self.root / top).is_dir():
                yield top, os.listdir(self.root / top)

    def sweep(self, referenced: Callable[[str], set[str]]) -> tuple[int, int]:
        """Remove temp files and blob files no row references.

        `referenced(prefix)` returns the content ids the database holds whose
        id starts with the 2-hex-digit prefix. Only safe while no other
        process or thread writes blobs (the caller holds the exclusive lock).
        Returns (temp files removed, unreferenced blobs removed).
        """
        temps = orphans = 0
        for prefix, names in self.shards():
            if not names:
                continue
            keep = referenced(prefix)
            shard = self.root / prefix
            for name in names:
                if name in keep:
                    continue
                # Anything else in a shard is a temp file, an orphaned blob or
                # a stray file; none of them can be referenced by a row.
                try:
                    (shard / name).unlink(missing_ok=True)
                except IsADirectoryError:
                    continue
                if name.endswith(TMP_SUFFIX):
                    temps += 1
                else:
                    orphans += 1
        return temps, orphans
