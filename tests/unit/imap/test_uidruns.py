"""UIDRuns (a selected mailbox's UIDs as runs) behaves like the sorted list
of the same UIDs, for every operation a session uses, on random mailboxes
with gaps, single-message runs and the highest 32-bit UID."""

from __future__ import annotations

import bisect
import random
from array import array

import pytest

from mailbag.session.imap.uidruns import UIDRuns


def check(runs: UIDRuns, plain: list[int], rng: random.Random) -> None:
    assert len(runs) == len(plain)
    assert list(runs) == plain
    assert runs.last() == (plain[-1] if plain else 0)
    for i in range(len(plain)):
        assert runs[i] == plain[i]
        assert runs[-1 - i] == plain[-1 - i]
    probes = set(plain) | {0, 1, 2**32 - 1} | {rng.randrange(0, 3000) for _ in range(50)}
    for uid in probes:
        where = bisect.bisect_left(plain, uid)
        found = where < len(plain) and plain[where] == uid
        assert runs.index(uid) == (where if found else None)
        assert runs.bisect_left(uid) == where
    assert runs.as_set() == set(plain)
    assert runs.same_as(array("I", plain))
    if plain:
        assert not runs.same_as(array("I", plain[:-1]))
        shifted = [*plain[:-1], plain[-1] + 1]
        assert not runs.same_as(array("I", shifted))
        inside = [u for u in plain if u != plain[len(plain) // 2]]
        inside.append(inside[-1] + 1)
        assert not runs.same_as(array("I", sorted(inside)))
    for _ in range(30):
        lo, hi = sorted(rng.randrange(0, 3000) for _ in range(2))
        assert list(runs.between(lo, hi)) == [u for u in plain if lo <= u <= hi]


@pytest.mark.parametrize("seed", range(8))
def test_runs_equal_the_plain_list(seed: int) -> None:
    rng = random.Random(seed)
    plain = sorted(rng.sample(range(1, 2500), rng.randrange(0, 1500)))
    # Dense stretches, as a real mailbox has.
    plain = sorted(set(plain) | set(range(100, 400)))
    runs = UIDRuns(array("I", plain))
    check(runs, plain, rng)
    for _ in range(20):
        for _ in range(rng.randrange(0, 5)):
            uid = (plain[-1] if plain else 0) + rng.choice([1, 1, 1, 2, 7])
            runs.append(uid)
            plain.append(uid)
        gone = rng.sample(plain, min(len(plain), rng.randrange(0, 40)))
        gone += [5000, 0]  # not there: ignored
        expected = []
        for uid in sorted(set(gone)):
            if uid in plain:
                expected.append((uid, plain.index(uid)))
                plain.remove(uid)
        assert runs.remove(gone) == expected
        check(runs, plain, rng)


def test_one_run_for_a_mailbox_without_gaps() -> None:
    runs = UIDRuns(range(1, 100_001))
    assert runs.runs == 1 and len(runs) == 100_000
    runs.append(100_001)
    assert runs.runs == 1
    runs.append(100_005)
    assert runs.runs == 2 and runs[-1] == 100_005
    assert runs.remove([50_000]) == [(50_000, 49_999)]
    assert runs.runs == 3 and runs.index(50_001) == 49_999


def test_highest_uid_and_bad_input() -> None:
    top = 2**32 - 1
    runs = UIDRuns([top - 2, top - 1])
    runs.append(top)
    assert runs.runs == 1 and list(runs) == [top - 2, top - 1, top] and runs.last() == top
    assert runs.remove([top]) == [(top, 2)] and runs.last() == top - 1
    with pytest.raises(ValueError):
        runs.append(5)
    with pytest.raises(IndexError):
        runs[10]
    empty = UIDRuns()
    assert not empty and empty.last() == 0 and list(empty.between(0, 10)) == []
    assert empty.remove([1]) == []
