"""A run split into parts, as k6's execution segments (docs/distributed.md "Work split").

A `SegmentSequence` cuts [0, 1] into consecutive `Segment`s; a `Segmentation` is one of them,
the part a worker runs. Items of a global stream (users, arrival-rate iterations, feeder
takes), numbered from 0, are dealt to the parts by striping: over a cycle of L items, L the
least common denominator of the segments' lengths, a segment of length n/d owns n·(L/d) of
them, each at the first free position at or after its ideal one (c·L/numerator for its c-th),
the larger segments first (k6's `NewExecutionSegmentSequenceWrapper`). So any prefix of the
stream is split as evenly as the lengths allow, every item has exactly one owner, and a part's
share of `count` items never decreases as `count` grows and the shares always sum to `count`.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from math import lcm
from typing import Final, TypeVar

__all__ = ["MAX_CYCLE", "Segment", "SegmentSequence", "Segmentation"]

T = TypeVar("T")

MAX_CYCLE: Final = 1 << 16
"""The longest striping cycle (the LCD of the segments' lengths) a sequence may have: the
pattern is computed once, O(L log segments), and held as L bytes."""


def _fraction(value: Fraction | int | str) -> Fraction:
    try:
        if isinstance(value, str) and value.endswith("%"):
            return Fraction(value[:-1]) / 100
        return Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"'{value}' is not a fraction, a decimal or a percentage") from None


@dataclass(frozen=True, slots=True)
class Segment:
    """The part (start, end] of the run, 0 ≤ start < end ≤ 1."""

    start: Fraction
    end: Fraction

    def __post_init__(self) -> None:
        start, end = _fraction(self.start), _fraction(self.end)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        if not 0 <= start < end <= 1:
            raise ValueError(f"a segment needs 0 <= start < end <= 1, got {start}:{end}")

    @property
    def length(self) -> Fraction:
        return self.end - self.start

    def __str__(self) -> str:
        return f"{self.start}:{self.end}"


@dataclass(frozen=True, slots=True)
class SegmentSequence:
    """Consecutive segments covering [0, 1] without a gap or an overlap."""

    segments: tuple[Segment, ...]

    def __post_init__(self) -> None:
        segs = tuple(self.segments)
        object.__setattr__(self, "segments", segs)
        if not segs:
            raise ValueError("a segment sequence needs at least one segment")
        if segs[0].start != 0 or segs[-1].end != 1:
            raise ValueError(f"a segment sequence must cover 0 to 1, got {self}")
        for i, (a, b) in enumerate(itertools.pairwise(segs), start=1):
            if a.end != b.start:
                raise ValueError(
                    f"segment {i} starts at {b.start} where the one before ends at {a.end}"
                )
        if self.lcd > MAX_CYCLE:
            raise ValueError(
                f"the segments' lengths have a common denominator of {self.lcd:,}, "
                f"above {MAX_CYCLE:,}: use coarser fractions"
            )

    @classmethod
    def even(cls, n: int) -> SegmentSequence:
        """`n` equal parts."""
        if n < 1:
            raise ValueError(f"a run splits into at least 1 part, got {n}")
        return cls(tuple(Segment(Fraction(i, n), Fraction(i + 1, n)) for i in range(n)))

    @classmethod
    def from_points(cls, points: Sequence[Fraction | int | str]) -> SegmentSequence:
        """Segments between consecutive points: `[0, 1/4, 1]` is (0, 1/4], (1/4, 1]; points
        may be fractions, decimals or percentages (as k6's `--execution-segment-sequence`)."""
        values = [_fraction(p) for p in points]
        if len(values) < 2:
            raise ValueError(f"a segment sequence needs at least 2 points, got {len(values)}")
        return cls(tuple(Segment(a, b) for a, b in itertools.pairwise(values)))

    @classmethod
    def parse(cls, text: str) -> SegmentSequence:
        """`"0,1/3,2/3,1"` (as `str()` writes it)."""
        return cls.from_points([p.strip() for p in text.split(",")])

    @property
    def lcd(self) -> int:
        """The least common denominator of the segments' lengths: the striping cycle."""
        return lcm(*(s.length.denominator for s in self.segments))

    def part(self, index: int) -> Segmentation:
        return Segmentation(self, index)

    def __len__(self) -> int:
        return len(self.segments)

    def __str__(self) -> str:
        return ",".join(str(p) for p in (self.segments[0].start, *(s.end for s in self.segments)))


def _stripes(sequence: SegmentSequence) -> tuple[tuple[int, ...], ...]:
    """Per segment, the positions in [0, L) it owns, ascending. Position i goes to the first
    segment (largest length first, then sequence order) whose next item is due, i.e. whose
    c-th item has i ≥ ⌈c·L/numerator⌉; each ends the cycle with exactly its numerator."""
    cycle = sequence.lcd
    nums = [s.length.numerator * (cycle // s.length.denominator) for s in sequence.segments]
    rank = sorted(range(len(nums)), key=lambda j: -nums[j])  # stable: sequence order on ties
    owned: list[list[int]] = [[] for _ in nums]
    taken = [0] * len(nums)
    # Segments due (by rank), and the others by the position their next item is due at.
    due: list[int] = list(range(len(rank)))
    waiting: list[tuple[int, int]] = []
    for i in range(cycle):
        while waiting and waiting[0][0] <= i:
            heapq.heappush(due, heapq.heappop(waiting)[1])
        r = heapq.heappop(due)
        j = rank[r]
        owned[j].append(i)
        taken[j] += 1
        if taken[j] < nums[j]:
            nxt = -(-taken[j] * cycle // nums[j])  # ceil(c·L/n)
            if nxt <= i + 1:
                heapq.heappush(due, r)
            else:
                heapq.heappush(waiting, (nxt, r))
    return tuple(tuple(p) for p in owned)


@dataclass(frozen=True, slots=True)
class Segmentation:
    """One part of a run: segment `index` of `sequence`. Pickled as (sequence, index); the
    striping pattern is computed where it is built."""

    sequence: SegmentSequence
    index: int
    cycle: int = field(init=False, repr=False, compare=False)
    positions: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _set: frozenset[int] = field(init=False, repr=False, compare=False)
    _mask: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.index < len(self.sequence):
            raise ValueError(
                f"segment index {self.index} is not in 0..{len(self.sequence) - 1} "
                f"(a sequence of {len(self.sequence)})"
            )
        cycle = self.sequence.lcd
        mine = _stripes(self.sequence)[self.index]
        mask = bytearray(cycle)
        for p in mine:
            mask[p] = 1
        object.__setattr__(self, "cycle", cycle)
        object.__setattr__(self, "positions", mine)
        object.__setattr__(self, "_set", frozenset(mine))
        object.__setattr__(self, "_mask", bytes(mask))

    def __reduce__(self) -> tuple[type[Segmentation], tuple[SegmentSequence, int]]:
        return (Segmentation, (self.sequence, self.index))

    @classmethod
    def whole(cls) -> Segmentation:
        """The whole run as one part."""
        return cls(SegmentSequence.even(1), 0)

    @property
    def segment(self) -> Segment:
        return self.sequence.segments[self.index]

    @property
    def parts(self) -> int:
        return len(self.sequence)

    def stripes(self) -> tuple[int, tuple[int, ...], int]:
        """k6's `GetStripedOffsets`: the first position owned, the steps from each owned
        position to the next (the last one wraps to the next cycle), and the cycle."""
        pos = self.positions
        steps = (*tuple(b - a for a, b in itertools.pairwise(pos)), pos[0] + self.cycle - pos[-1])
        return pos[0], steps, self.cycle

    def scale(self, count: int) -> int:
        """This part's share of `count` items: how many k < count it owns."""
        if count <= 0:
            return 0
        whole, rest = divmod(count, self.cycle)
        return whole * len(self.positions) + bisect_left(self.positions, rest)

    def owns(self, k: int) -> bool:
        """Whether item k (from 0) of a global stream is this part's."""
        return k >= 0 and k % self.cycle in self._set

    def nth(self, j: int) -> int:
        """The global index of this part's j-th item (from 0)."""
        whole, rest = divmod(j, len(self.positions))
        return whole * self.cycle + self.positions[rest]

    def indices(self, count: int) -> Iterator[int]:
        """The global indices below `count` this part owns, ascending."""
        for base in range(0, max(count, 0), self.cycle):
            for p in self.positions:
                if base + p >= count:
                    return
                yield base + p

    def pick(self, items: Iterable[T]) -> Iterator[T]:
        """The items of a global stream this part owns, lazily (item k is the k-th)."""
        return itertools.compress(items, itertools.cycle(self._mask))
