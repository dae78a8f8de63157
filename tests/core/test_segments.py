"""Work split (core/segments.py): k6's execution-segment striping, by properties over random
part counts and random sequences of fractions, and k6's own striping table."""

from __future__ import annotations

import itertools
import pickle
from fractions import Fraction
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wbsrun.core.segments import MAX_CYCLE, Segment, Segmentation, SegmentSequence


@st.composite
def sequences(draw: st.DrawFn) -> SegmentSequence:
    """An even split of 1..16 parts, or cuts at random fractions (of 360ths, 60ths or 7ths:
    the striping cycle stays small enough to walk)."""
    if draw(st.booleans()):
        return SegmentSequence.even(draw(st.integers(1, 16)))
    whole = draw(st.sampled_from([7, 60, 360]))
    cuts = draw(st.sets(st.integers(1, whole - 1), max_size=12))
    return SegmentSequence.from_points([0, *(Fraction(c, whole) for c in sorted(cuts)), 1])


@cache
def parts_of(sequence: SegmentSequence) -> tuple[Segmentation, ...]:
    return tuple(sequence.part(i) for i in range(len(sequence)))


COUNTS = st.integers(0, 3_000)


@given(sequences(), COUNTS)
def test_the_shares_of_every_count_sum_to_the_count(seq: SegmentSequence, count: int) -> None:
    assert sum(p.scale(count) for p in parts_of(seq)) == count


@given(sequences(), st.integers(0, 400))
def test_a_share_never_decreases_as_the_count_grows(seq: SegmentSequence, upto: int) -> None:
    for part in parts_of(seq):
        shares = [part.scale(c) for c in range(upto + 2)]
        assert all(b - a in (0, 1) for a, b in itertools.pairwise(shares))


@given(sequences(), st.integers(0, 400))
def test_owns_indices_and_scale_agree(seq: SegmentSequence, count: int) -> None:
    for part in parts_of(seq):
        owned = [k for k in range(count) if part.owns(k)]
        assert list(part.indices(count)) == owned
        assert part.scale(count) == len(owned)
        assert [part.nth(j) for j in range(len(owned))] == owned
        assert list(part.pick(range(count))) == owned


@given(sequences(), st.integers(0, 600))
def test_the_parts_are_disjoint_and_cover_every_index(seq: SegmentSequence, count: int) -> None:
    owners = [[p.index for p in parts_of(seq) if p.owns(k)] for k in range(count)]
    assert all(len(o) == 1 for o in owners)
    dealt = sorted(k for p in parts_of(seq) for k in p.indices(count))
    assert dealt == list(range(count))


@given(st.integers(1, 16), st.integers(0, 2_000))
def test_an_even_split_is_within_one_of_count_over_n_at_every_prefix(n: int, upto: int) -> None:
    for part in parts_of(SegmentSequence.even(n)):
        for count in range(0, upto + 1, max(1, upto // 200)):
            assert abs(part.scale(count) - Fraction(count, n)) < 1


@given(sequences(), st.integers(0, 1_000))
def test_no_part_gets_more_than_its_length_rounded_up_at_any_prefix(
    seq: SegmentSequence, count: int
) -> None:
    for part in parts_of(seq):
        share = count * part.segment.length
        assert part.scale(count) <= -(-share.numerator // share.denominator)


@given(sequences())
def test_each_part_owns_its_numerator_of_every_cycle(seq: SegmentSequence) -> None:
    cycle = seq.lcd
    for part in parts_of(seq):
        assert part.cycle == cycle
        assert part.scale(cycle) == cycle * part.segment.length
        start, steps, lcd = part.stripes()
        assert (start, sum(steps), lcd) == (part.positions[0], cycle, cycle)


@given(sequences(), st.integers(0, 10**12))
def test_scale_is_exact_for_long_runs(seq: SegmentSequence, count: int) -> None:
    """O(1) a count: a run of a trillion iterations is split exactly, with no walk."""
    parts = parts_of(seq)
    assert sum(p.scale(count) for p in parts) == count
    for p in parts:
        assert abs(p.scale(count) - count * p.segment.length) <= len(parts)


@given(sequences())
def test_a_part_survives_pickling_with_its_pattern(seq: SegmentSequence) -> None:
    for part in parts_of(seq):
        back = pickle.loads(pickle.dumps(part))
        assert back == part
        assert back.positions == part.positions
        assert [back.scale(c) for c in range(50)] == [part.scale(c) for c in range(50)]


# k6 lib/execution_segment_test.go TestGetStripedOffsets (the full sequences).
K6_STRIPES = [
    ("0,0.3,0.5,0.6,0.7,0.8,0.9,1", 0, (0, (4, 3, 3), 10)),
    ("0,0.3,0.5,0.6,0.7,0.8,0.9,1", 1, (1, (4, 6), 10)),
    ("0,0.3,0.5,0.6,0.7,0.8,0.9,1", 2, (2, (10,), 10)),
    ("0,0.3,0.5,0.6,0.7,0.8,0.9,1", 3, (3, (10,), 10)),
    ("0,0.3,0.5,0.6,0.7,0.8,0.9,1", 5, (8, (10,), 10)),
    ("0,0.3,0.5,0.6,0.7,0.8,0.9,1", 6, (9, (10,), 10)),
    ("0,0.2,0.5,0.6,0.7,0.8,0.9,1", 6, (9, (10,), 10)),
    ("0,0.2,0.5,0.6,0.7,0.8,0.9,1", 0, (1, (4, 6), 10)),
    ("0,0.2,0.5,0.6,0.7,0.8,0.9,1", 3, (3, (10,), 10)),
]


@pytest.mark.parametrize(("text", "index", "stripes"), K6_STRIPES)
def test_striping_matches_k6(
    text: str, index: int, stripes: tuple[int, tuple[int, ...], int]
) -> None:
    assert SegmentSequence.parse(text).part(index).stripes() == stripes


def test_k6s_worked_example_of_a_half_and_two_quarters() -> None:
    """lib/execution_segment.go's ExecutionTuple comment: 0:1/2, 1/2:3/4, 3/4:1."""
    parts = parts_of(SegmentSequence.from_points(["0", "1/2", "3/4", "1"]))
    assert [list(p.indices(12)) for p in parts] == [
        [0, 2, 4, 6, 8, 10],
        [1, 5, 9],
        [3, 7, 11],
    ]
    assert [[p.scale(v) for v in range(1, 13)] for p in parts] == [
        [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6],
        [0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3],
        [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3],
    ]


def test_sequences_parse_print_and_refuse_gaps_overlaps_and_bad_bounds() -> None:
    seq = SegmentSequence.parse("0, 25%, 0.5, 1")
    assert str(seq) == "0,1/4,1/2,1"
    assert SegmentSequence.parse(str(seq)) == seq
    assert SegmentSequence.even(4).segments[1] == Segment(Fraction(1, 4), Fraction(1, 2))
    bad = {
        "0,1/2": "must cover 0 to 1",
        "0,1/2,1/3,1": "0 <= start < end <= 1",
        "0,1,2": "0 <= start < end <= 1",
        "0,x,1": "'x' is not a fraction",
        "1": "at least 2 points",
    }
    for text, message in bad.items():
        with pytest.raises(ValueError, match=message):
            SegmentSequence.parse(text)
    with pytest.raises(ValueError, match="segment 1 starts at 2/3"):
        SegmentSequence(
            (Segment(Fraction(0), Fraction(1, 2)), Segment(Fraction(2, 3), Fraction(1)))
        )
    with pytest.raises(ValueError, match="at least 1 part"):
        SegmentSequence.even(0)
    with pytest.raises(ValueError, match=r"segment index 3 is not in 0\.\.2"):
        SegmentSequence.even(3).part(3)
    with pytest.raises(ValueError, match="common denominator"):
        SegmentSequence.from_points([0, Fraction(1, MAX_CYCLE + 1), 1])


def test_the_whole_run_as_one_part_owns_everything() -> None:
    whole = Segmentation.whole()
    assert [whole.scale(c) for c in range(5)] == list(range(5))
    assert list(whole.indices(4)) == [0, 1, 2, 3]
