"""Open-model schedules: when each iteration of an arrival-rate profile starts, and the user
population of a `stages` profile over time."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from wbsrun.dsl.plan import ProfileSpec

__all__ = ["ArrivalSchedule", "StageCurve", "arrival_schedule", "stage_curve"]

# Stages are (start, end, from, to) segments, times in seconds from the scenario's start.
Segment = tuple[float, float, float, float]


def _segments(start: float, stages: tuple[tuple[float, float], ...]) -> tuple[Segment, ...]:
    out: list[Segment] = []
    t, level = 0.0, start
    for duration, target in stages:
        out.append((t, t + duration, level, target))
        t, level = t + duration, target
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ArrivalSchedule:
    """Iterations per second, piecewise linear (a constant rate is one flat segment).
    Iteration k (from 0) starts when the cumulative planned count reaches k, so a constant
    rate r starts one at 0, 1/r, 2/r … and plans ⌈r × duration⌉ iterations."""

    segments: tuple[Segment, ...]
    pre_allocated: int
    max_users: int

    @property
    def duration(self) -> float:
        return self.segments[-1][1] if self.segments else 0.0

    def planned(self, until: float | None = None) -> int:
        """Iterations that start before `until` (None: the whole schedule); as `offsets`
        yields them, ⌈N(end)⌉ of the cumulative count N."""
        end = self.duration if until is None else min(until, self.duration)
        total = 0.0
        for t0, t1, a, b in self.segments:
            if end <= t0:
                break
            d = t1 - t0
            tau = min(end, t1) - t0
            total += a * tau + ((b - a) * tau * tau / (2 * d) if d > 0 else 0.0)
        # Iteration k starts at t_k with N(t_k) = k: those before `end` are k < N(end).
        return max(0, math.ceil(total - 1e-9))

    def rate_at(self, t: float) -> float:
        for t0, t1, a, b in self.segments:
            if t0 <= t < t1:
                return a + (b - a) * (t - t0) / (t1 - t0)
        return 0.0

    def offsets(self) -> Iterator[float]:
        """The iterations' start offsets, ascending (a generator: a long run plans millions)."""
        k = 0
        done = 0.0  # cumulative count at the current segment's start
        for t0, t1, a, b in self.segments:
            d = t1 - t0
            in_seg = a * d + (b - a) * d / 2
            end = done + in_seg
            while k < end - 1e-9:
                m = k - done
                # a·τ + (b−a)·τ²/(2d) = m, in the form stable when a is 0.
                root = a if b == a else math.sqrt(max(0.0, a * a + 2 * (b - a) * m / d))
                tau = 2 * m / (a + root) if m > 0 else 0.0
                yield t0 + tau
                k += 1
            done = end


def arrival_schedule(p: ProfileSpec) -> ArrivalSchedule | None:
    if p.kind == "constant-arrival-rate":
        segments: tuple[Segment, ...] = ((0.0, p.duration, p.rate, p.rate),)
    elif p.kind == "ramping-arrival-rate":
        segments = _segments(p.rate, p.stages)
    else:
        return None
    max_users = max(p.max_users, p.pre_allocated)
    return ArrivalSchedule(segments, p.pre_allocated, max_users)


@dataclass(frozen=True, slots=True)
class StageCurve:
    """A `stages` profile's target users over time: a ramp from 0 to n starts user k (from 0)
    at k/n of its stage, as the `ramp` profile does; a ramp down retires one each time the
    linear level reaches a whole number (the last started first)."""

    segments: tuple[Segment, ...]

    @property
    def duration(self) -> float:
        return self.segments[-1][1] if self.segments else 0.0

    def target(self, t: float) -> int:
        """Users due at `t`, as `windows` starts and retires them: rising from lo to hi, user
        k (from 0) of the step joins at k/(hi − lo) of it; falling, one leaves each time the
        level reaches a whole number."""
        for t0, t1, a, b in self.segments:
            if t < t1:
                lo, hi = round(a), round(b)
                if t1 <= t0:  # a zero-length step jumps to its target
                    return hi
                f = max(0.0, t - t0) / (t1 - t0)
                if hi > lo:
                    return lo + min(hi - lo, math.floor(f * (hi - lo) + 1e-9) + 1)
                if hi < lo:
                    return hi + math.ceil((1.0 - f) * (lo - hi) - 1e-9)
                return lo
        return round(self.segments[-1][3]) if self.segments else 0

    def windows(self) -> tuple[tuple[float, ...], tuple[float, ...], tuple[int, ...]]:
        """When each planned user starts and leaves, and its level: a user starts each time
        the target rises by one, and the last one started leaves when it falls by one, so
        the users alive at any time hold the levels 0 … target − 1 (a split deals levels)."""
        starts: list[float] = []
        ends: list[float | None] = []
        levels: list[int] = []
        alive: list[int] = []
        first = self.segments[0][2] if self.segments else 0.0
        for _ in range(math.ceil(first - 1e-9)):
            levels.append(len(alive))
            alive.append(len(starts))
            starts.append(0.0)
            ends.append(None)
        for t0, t1, a, b in self.segments:
            lo, hi = round(a), round(b)
            if hi > lo:
                for n in range(lo, hi):
                    levels.append(len(alive))
                    alive.append(len(starts))
                    starts.append(t0 + (n - lo) / (hi - lo) * (t1 - t0))
                    ends.append(None)
            elif hi < lo:
                for n in range(lo - 1, hi - 1, -1):
                    if alive:
                        ends[alive.pop()] = t0 + (lo - n) / (lo - hi) * (t1 - t0)
        stop = self.duration
        return tuple(starts), tuple(stop if e is None else e for e in ends), tuple(levels)


def stage_curve(p: ProfileSpec) -> StageCurve | None:
    if p.kind != "stages":
        return None
    return StageCurve(_segments(float(p.start_users), p.stages))
