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
    for round_ in range(20):
        new = []
        for _ in range(rng.randrange(0, 5)):
            uid = ((new or plain)[-1] if (new or plain) else 0) + rng.choice([1, 1, 1, 2, 7])
            new.append(uid)
        if round_ % 2:
            for uid in new:
                runs.append(uid)
        else:
            # A delivery's UIDs, some of which the view may know already.
            known = plain[-rng.randrange(0, 3) :] if plain else []
            assert runs.extend_above([*known, *new]) == len(new)
        plain += new
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
    assert runs.extend_above([100_004, 100_005, 100_006, 100_008]) == 2
    assert runs.runs == 3 and list(runs.between(100_004, 100_010)) == [100_005, 100_006, 100_008]
    assert runs.remove([100_006, 100_008]) == [(100_006, 100_002), (100_008, 100_002)]
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
    assert empty.extend_above([]) == 0 and empty.extend_above([3, 4]) == 2
    assert list(empty) == [3, 4] and empty.runs == 1 and empty.index(4) == 1
    empty.remove([3, 4])
    assert empty.remove([1]) == []
