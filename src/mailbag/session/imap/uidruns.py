"""The UIDs of a selected mailbox as runs of consecutive UIDs.

Every session that selects a mailbox keeps its own list of the mailbox's
UIDs (message sequence numbers are per session, RFC 9051 §2.3.1.2). As a
plain array that is 4 bytes a message: 40 KB per session on a mailbox of
10,000 messages, 400 KB on 100,000, more than everything else a session
holds. UIDs are assigned in ascending order and only removed by EXPUNGE, so
a mailbox's UIDs are a few runs of consecutive numbers (one run when nothing
was ever removed); a run costs 12 bytes whatever its length.

`UIDRuns` keeps, per run, its first UID, its end (exclusive) and how many
UIDs come before it, so sequence number <-> UID is a binary search over the
runs. Adding UIDs at the end (new mail) extends the last run or starts one;
removing (EXPUNGE) rebuilds the runs once for all the UIDs removed.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence


class UIDRuns:
    """An ascending sequence of distinct UIDs, stored as runs."""

    __slots__ = ("_before", "_lasts", "_len", "_starts")

    def __init__(self, uids: Iterable[int] = ()) -> None:
        # UIDs are 32-bit (RFC 9051 §2.3.1.1); runs are inclusive.
        self._starts = array("I")
        self._lasts = array("I")
        self._before = array("I")  # how many UIDs the runs before this one hold
        self._len = 0
        prev = -2
        for uid in uids:
            if uid == prev + 1:
                self._lasts[-1] = uid
                self._len += 1
            else:
                self.append(uid)
            prev = uid

    # ---- reading ----------------------------------------------------------------
    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def __getitem__(self, index: int) -> int:
        """The UID at 0-based `index` (negative counts from the end)."""
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError("UID index out of range")
        r = bisect_right(self._before, index) - 1
        return self._starts[r] + (index - self._before[r])

    def __iter__(self) -> Iterator[int]:
        for start, last in zip(self._starts, self._lasts, strict=True):
            yield from range(start, last + 1)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, UIDRuns):
            return (self._starts, self._lasts) == (other._starts, other._lasts)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        runs = ", ".join(f"{s}:{e}" for s, e in zip(self._starts, self._lasts, strict=True))
        return f"UIDRuns({runs})"

    def as_set(self) -> set[int]:
        out: set[int] = set()
        for start, last in zip(self._starts, self._lasts, strict=True):
            out.update(range(start, last + 1))
        return out

    def same_as(self, uids: Sequence[int]) -> bool:
        """Whether `uids` (ascending and distinct, as a store lists them) are
        exactly these: checked at the ends of each run, so O(runs)."""
        if len(uids) != self._len:
            return False
        for start, last, before in zip(self._starts, self._lasts, self._before, strict=True):
            if uids[before] != start or uids[before + last - start] != last:
                return False
        return True

    @property
    def runs(self) -> int:
        return len(self._starts)

    def last(self) -> int:
        """The highest UID (0 when empty)."""
        return self._lasts[-1] if self._len else 0

    def index(self, uid: int) -> int | None:
        """The 0-based position of `uid`, or None when it is not here."""
        r = bisect_right(self._starts, uid) - 1
        if r >= 0 and uid <= self._lasts[r]:
            return self._before[r] + (uid - self._starts[r])
        return None

    def bisect_left(self, uid: int) -> int:
        """How many UIDs here are below `uid`."""
        r = bisect_right(self._starts, uid) - 1
        if r < 0:
            return 0
        return self._before[r] + min(uid, self._lasts[r] + 1) - self._starts[r]

    def between(self, lo: int, hi: int) -> Iterator[int]:
        """The UIDs here in [lo, hi], ascending."""
        r = max(bisect_right(self._starts, lo) - 1, 0)
        for i in range(r, len(self._starts)):
            start = self._starts[i]
            if start > hi:
                break
            yield from range(max(start, lo), min(self._lasts[i], hi) + 1)

    # ---- changing ---------------------------------------------------------------
    def append(self, uid: int) -> None:
        """Add `uid`, which must be above every UID here (new mail)."""
        if self._len and uid <= self._lasts[-1]:
            raise ValueError("UIDs must be ascending and distinct")
        self.extend_above((uid,))

    def extend_above(self, uids: Iterable[int]) -> int:
        """Append those of `uids` (ascending) that are above every UID here,
        skipping the rest (already known); return how many were added. One
        call for a delivery's UIDs: an IDLE push runs this for every session
        watching the mailbox."""
        starts, lasts = self._starts, self._lasts
        last = lasts[-1] if self._len else 0
        added = 0
        for uid in uids:
            if uid <= last:
                continue
            if uid == last + 1 and added + self._len:
                lasts[-1] = uid
            else:
                starts.append(uid)
                lasts.append(uid)
                self._before.append(self._len + added)
            last = uid
            added += 1
        self._len += added
        return added

    def remove(self, uids: Iterable[int]) -> list[tuple[int, int]]:
        """Remove those of `uids` that are here; return (uid, 0-based
        position at the moment it is removed) in ascending UID order (what
        EXPUNGE responses number, RFC 9051 §7.4.1)."""
        gone = sorted({u for u in uids if self.index(u) is not None})
        if not gone:
            return []
        removed = [(u, self.bisect_left(u) - i) for i, u in enumerate(gone)]
        starts, lasts, before = array("I"), array("I"), array("I")
        count = 0
        g = 0
        for start, last in zip(self._starts, self._lasts, strict=True):
            lo = start
            while g < len(gone) and gone[g] <= last:
                if gone[g] > lo:
                    starts.append(lo)
                    lasts.append(gone[g] - 1)
                    before.append(count)
                    count += gone[g] - lo
                lo = gone[g] + 1
                g += 1
            if lo <= last:
                starts.append(lo)
                lasts.append(last)
                before.append(count)
                count += last + 1 - lo
        self._starts, self._lasts, self._before, self._len = starts, lasts, before, count
        return removed
