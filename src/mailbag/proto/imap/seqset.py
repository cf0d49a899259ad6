"""Sequence sets and UID sets (RFC 9051 §4.1.1, §9 `sequence-set`).

A :class:`SeqSet` keeps the ranges exactly as the client wrote them, so a set
serialises back to an equivalent wire form; the helpers resolve `*` against a
mailbox and normalise order and overlaps only when asked. `$` (the saved
search result, RFC 5182 / RFC 9051 §6.4.4.1) is a set of its own kind: the
session substitutes the saved result.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from ...errors import ProtocolError

STAR: Final[int] = -1
"""Stands for `*`: the largest number in use (RFC 9051 §9 `seq-number`)."""

MAX_NUMBER: Final[int] = 2**32 - 1  # nz-number is an unsigned 32-bit integer


class SeqSetError(ProtocolError, ValueError):
    """Not a valid sequence set."""


def _check(n: int) -> None:
    if n != STAR and not 1 <= n <= MAX_NUMBER:
        raise SeqSetError(f"sequence number out of range: {n}")


@dataclass(slots=True, frozen=True)
class SeqSet:
    ranges: tuple[tuple[int, int], ...] = ()
    saved: bool = False  # the `$` marker

    def __post_init__(self) -> None:
        if self.saved:
            if self.ranges:
                raise SeqSetError('"$" cannot be combined with other ranges')
            return
        if not self.ranges:
            raise SeqSetError("empty sequence set")
        for lo, hi in self.ranges:
            _check(lo)
            _check(hi)

    # -- construction -------------------------------------------------------

    @classmethod
    def last_result(cls) -> SeqSet:
        return cls((), saved=True)

    @classmethod
    def single(cls, n: int) -> SeqSet:
        return cls(((n, n),))

    @classmethod
    def from_numbers(cls, numbers: Iterable[int]) -> SeqSet:
        """The most compact ascending set holding exactly `numbers` (non-empty)."""
        values = sorted(set(numbers))
        if not values:
            raise SeqSetError("empty sequence set")
        ranges: list[tuple[int, int]] = []
        lo = hi = values[0]
        for v in values[1:]:
            if v == hi + 1:
                hi = v
            else:
                ranges.append((lo, hi))
                lo = hi = v
        ranges.append((lo, hi))
        return cls(tuple(ranges))

    @classmethod
    def parse(
        cls,
        text: str | bytes,
        *,
        allow_star: bool = True,
        allow_saved: bool = True,
        max_ranges: int | None = None,
    ) -> SeqSet:
        if isinstance(text, bytes):
            try:
                text = text.decode("ascii")
            except UnicodeDecodeError:
                raise SeqSetError("invalid sequence set") from None
        if text == "$":
            if not allow_saved:
                raise SeqSetError('"$" is not allowed here')
            return cls.last_result()
        # Checked before splitting so a huge set costs nothing (DESIGN.md §2.5).
        if max_ranges is not None and text.count(",") >= max_ranges:
            raise SeqSetError(f"sequence set has more than {max_ranges} ranges")
        ranges: list[tuple[int, int]] = []
        for part in text.split(","):
            lo_s, colon, hi_s = part.partition(":")
            lo = _parse_number(lo_s, allow_star)
            hi = _parse_number(hi_s, allow_star) if colon else lo
            ranges.append((lo, hi))
        return cls(tuple(ranges))

    # -- wire form ----------------------------------------------------------

    def __str__(self) -> str:
        if self.saved:
            return "$"
        parts = []
        for lo, hi in self.ranges:
            a = "*" if lo == STAR else str(lo)
            parts.append(a if lo == hi else f"{a}:{'*' if hi == STAR else hi}")
        return ",".join(parts)

    def __repr__(self) -> str:
        return f"SeqSet({str(self)!r})"

    def to_bytes(self) -> bytes:
        return str(self).encode("ascii")

    # -- resolution -----------------------------------------------------------

    @property
    def has_star(self) -> bool:
        return any(lo == STAR or hi == STAR for lo, hi in self.ranges)

    def max_explicit(self) -> int:
        """The largest number written out (0 if only `*`); for the "seq > EXISTS" check."""
        return max((v for r in self.ranges for v in r if v != STAR), default=0)

    def resolved(self, largest: int) -> list[tuple[int, int]]:
        """Ascending, merged, non-overlapping ranges with `*` = `largest`.

        `largest` is the message count for sequence numbers, or the highest UID
        (UIDNEXT-1 semantics are the caller's choice) for UIDs. RFC 9051 §9:
        `3291:*` includes the last UID even if it is smaller than 3291. Values
        are not clipped; use :meth:`numbers` for that.
        """
        if self.saved:
            raise SeqSetError('"$" must be replaced by the saved search result first')
        spans: list[tuple[int, int]] = []
        for lo, hi in self.ranges:
            a = largest if lo == STAR else lo
            b = largest if hi == STAR else hi
            if a > b:
                a, b = b, a
            if b < 1:  # `*` of an empty mailbox
                continue
            spans.append((max(a, 1), b))
        spans.sort()
        merged: list[tuple[int, int]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1] + 1:
                if b > merged[-1][1]:
                    merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        return merged

    def contains(self, n: int, largest: int) -> bool:
        if self.saved:
            raise SeqSetError('"$" must be replaced by the saved search result first')
        for lo, hi in self.ranges:
            a = largest if lo == STAR else lo
            b = largest if hi == STAR else hi
            if a <= n <= b or b <= n <= a:
                return True
        return False

    def numbers(self, largest: int) -> Iterator[int]:
        """Members in 1..largest, ascending, each once (message sequence numbers)."""
        for a, b in self.resolved(largest):
            if a > largest:
                break
            yield from range(a, min(b, largest) + 1)

    def select(self, values: Sequence[int]) -> list[int]:
        """The members of ascending `values` (e.g. a mailbox's UIDs) that are in the set.

        `*` is the last of `values`. Costs O(ranges · log n + matches), so
        `1:4294967295` over a small mailbox is cheap.
        """
        if not values:
            return []
        out: list[int] = []
        for a, b in self.resolved(values[-1]):
            i = bisect.bisect_left(values, a)
            j = bisect.bisect_right(values, b)
            out.extend(values[i:j])
        return out

    def seq_to_uids(self, uids: Sequence[int]) -> list[int]:
        """Map message sequence numbers to UIDs given the view's ascending UID list."""
        return [uids[n - 1] for n in self.numbers(len(uids))]


def _parse_number(s: str, allow_star: bool) -> int:
    if s == "*":
        if not allow_star:
            raise SeqSetError('"*" is not allowed here')
        return STAR
    if not s or not s.isascii() or not s.isdigit() or s[0] == "0" or len(s) > 10:
        raise SeqSetError(f"invalid sequence number {s!r}")
    n = int(s)
    if n > MAX_NUMBER:
        raise SeqSetError(f"sequence number out of range: {s}")
    return n
