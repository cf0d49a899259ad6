"""Sequence sets (RFC 9051 §4.1.1, §9 `sequence-set`)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbag.proto.imap.seqset import STAR, SeqSet, SeqSetError

NUMBER = st.one_of(st.integers(1, 2**32 - 1), st.just(STAR))
SEQSETS = st.one_of(
    st.lists(st.tuples(NUMBER, NUMBER), min_size=1, max_size=20).map(lambda r: SeqSet(tuple(r))),
    st.just(SeqSet.last_result()),
)


@given(SEQSETS)
def test_round_trip(s: SeqSet) -> None:
    assert SeqSet.parse(str(s)) == s
    assert SeqSet.parse(s.to_bytes()) == s


@given(st.sets(st.integers(1, 500), min_size=1))
def test_from_numbers_is_exact_and_compact(values: set[int]) -> None:
    s = SeqSet.from_numbers(values)
    assert list(s.numbers(500)) == sorted(values)
    # compact: no two ranges touch
    for (_, hi), (lo, _) in zip(s.ranges, s.ranges[1:], strict=False):
        assert lo > hi + 1


@settings(max_examples=50)
@given(SEQSETS.filter(lambda s: not s.saved), st.integers(0, 40))
def test_membership_matches_iteration(s: SeqSet, largest: int) -> None:
    members = set(s.numbers(largest))
    for n in range(1, largest + 1):
        assert s.contains(n, largest) == (n in members)


def test_rfc_examples() -> None:
    # RFC 9051 §9: 2,4:7,9,12:* with 15 messages
    s = SeqSet.parse("2,4:7,9,12:*")
    assert list(s.numbers(15)) == [2, 4, 5, 6, 7, 9, 12, 13, 14, 15]
    # *:4,5:7 with 10 messages is 4..10
    assert list(SeqSet.parse("*:4,5:7").numbers(10)) == list(range(4, 11))
    # 2:4 and 4:2 are equivalent
    assert list(SeqSet.parse("4:2").numbers(10)) == [2, 3, 4]
    # a UID range 3291:* includes the last UID even if it is smaller than 3291
    assert SeqSet.parse("3291:*").select([5, 17, 100]) == [100]


def test_wire_form_keeps_what_the_client_wrote() -> None:
    assert str(SeqSet.parse("7,1:3,*:5,9:9")) == "7,1:3,*:5,9"
    assert repr(SeqSet.parse("1:*")) == "SeqSet('1:*')"


def test_resolution_helpers() -> None:
    s = SeqSet.parse("1:3,10:*,2")
    assert s.resolved(12) == [(1, 3), (10, 12)]
    assert s.max_explicit() == 10
    assert s.has_star
    uids = [3, 8, 9, 20, 21, 40, 41, 42, 50, 51, 60, 70]
    assert s.seq_to_uids(uids) == [3, 8, 9, 51, 60, 70]
    assert SeqSet.parse("1:4294967295").select(uids) == uids  # cheap on a huge range
    assert SeqSet.parse("9:20,41").select(uids) == [9, 20, 41]
    assert SeqSet.parse("*").select([]) == []
    assert list(SeqSet.parse("*").numbers(0)) == []  # `*` of an empty mailbox


@pytest.mark.parametrize(
    "bad", ["", "0", "01", "1:", ":1", "1,,2", "a", "4294967296", "1:2:3", "$,1", "1 "]
)
def test_invalid(bad: str) -> None:
    with pytest.raises(SeqSetError):
        SeqSet.parse(bad)


def test_star_and_dollar_can_be_forbidden() -> None:
    with pytest.raises(SeqSetError):
        SeqSet.parse("1:*", allow_star=False)
    with pytest.raises(SeqSetError):
        SeqSet.parse("$", allow_saved=False)
    with pytest.raises(SeqSetError):
        SeqSet.last_result().resolved(5)


def test_range_count_limit_is_checked_before_splitting() -> None:
    text = ",".join(str(i) for i in range(1, 200_001))
    with pytest.raises(SeqSetError, match="more than 100000 ranges"):
        SeqSet.parse(text, max_ranges=100_000)
    assert len(SeqSet.parse(text, max_ranges=200_000).ranges) == 200_000
