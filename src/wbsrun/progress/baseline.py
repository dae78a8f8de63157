"""The plan as the progress denominator: planned passes per scenario, or its profile over time."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import accumulate

from wbsrun.core.scheduler import SpawnPlan, spawn_plan
from wbsrun.core.segments import Segmentation
from wbsrun.dsl.plan import Plan, ScenarioSpec

__all__ = ["ScenarioBaseline", "baseline", "baselines", "total_planned"]


@dataclass(frozen=True, slots=True)
class ScenarioBaseline:
    """What one scenario plans to do, fixed before the run starts.

    Count-bounded (`planned_tasks` set): users × passes is the denominator; `starts` (seconds
    after the scenario starts) feed the ETA. Time-boxed (`planned_tasks` None): every user plans
    to run passes during its window `[starts[i], ends[i]]`; `profile_share(t)` is the part of the
    planned user-time already elapsed, from which the run projects its planned passes.
    """

    name: str
    users: int
    planned_tasks: int | None
    passes_per_user: int | None
    # Planned duration for the time dimension (None: the plan fixes no duration).
    duration: float | None
    last_start: float
    think_time: float = 0.0
    # Passes of a user start this far apart (0: no pacing); the gap after a pass is the rest.
    pacing: float = 0.0
    milestones: tuple[tuple[str, float], ...] = ()
    starts: tuple[float, ...] = ()
    ends: tuple[float, ...] = ()
    # Arrival-rate plans: when the iteration schedule ends (the last planned one starts just
    # before); the ETA follows the schedule, not the throughput.
    schedule_end: float | None = None
    _start_sums: tuple[float, ...] = field(default=(), repr=False, compare=False)
    _end_sums: tuple[float, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        # Sorted windows and prefix sums make user_time O(log users); frozen, hence setattr.
        starts, ends = tuple(sorted(self.starts)), tuple(sorted(self.ends))
        object.__setattr__(self, "starts", starts)
        object.__setattr__(self, "ends", ends)
        object.__setattr__(self, "_start_sums", (0.0, *accumulate(starts)))
        object.__setattr__(self, "_end_sums", (0.0, *accumulate(ends)))

    @property
    def time_boxed(self) -> bool:
        return self.planned_tasks is None

    @property
    def window_end(self) -> float | None:
        """When the last planned pass may start (time-boxed plans), else None."""
        return self.ends[-1] if self.ends else None

    @property
    def milestone_total(self) -> float:
        return sum(w for _, w in self.milestones)

    def user_time(self, t: float) -> float:
        """Planned user-seconds elapsed at `t`: Σ over users of the part of its window before t."""
        a = bisect_right(self.starts, t)
        b = bisect_right(self.ends, t)
        # A window ending by t started by t (end ≥ start), so b ≤ a.
        return self._end_sums[b] + (a - b) * t - self._start_sums[a]

    def profile_share(self, t: float) -> float:
        """Share of the planned user-time elapsed at `t`, in [0, 1] (time-boxed plans)."""
        if not self.ends or len(self.ends) != len(self.starts):
            return 1.0
        total = self._end_sums[-1] - self._start_sums[-1]
        if total <= 0.0:
            return 1.0 if t >= self.ends[-1] else 0.0
        return min(1.0, max(0.0, self.user_time(t) / total))


def _stop(spec: ScenarioSpec, spawn: SpawnPlan, duration: float | None) -> float:
    """When no pass may start any more, relative to the scenario start (inf: never)."""
    limits = [x for x in (spawn.stop_after, _max_duration(spec, spawn), duration) if x is not None]
    return min(limits) if limits else math.inf


def _max_duration(spec: ScenarioSpec, spawn: SpawnPlan) -> float | None:
    """The scenario's max-duration on the run's clock (it counts from its start-after)."""
    return None if spec.max_duration is None else spec.max_duration + spawn.offset


def baseline(
    spec: ScenarioSpec, spawn: SpawnPlan, duration: float | None = None
) -> ScenarioBaseline:
    """The scenario's baseline under its spawn plan and the run's `--duration` window.

    Mirrors the scheduler's rules: `iterations` fixes the passes per user; without it and
    without a window (task-duration, a profile duration, --duration) each user runs one pass;
    otherwise users fill their windows with passes.
    """
    users = spawn.users
    windowed = spec.task_duration is not None or spawn.stop_after is not None
    windowed = windowed or duration is not None
    if spawn.arrivals is not None:
        return _arrival_baseline(spec, spawn, duration)
    passes: int | None
    if spec.iterations is not None:
        passes = spec.iterations
    elif not windowed:
        passes = 1
    else:
        passes = None
    last_start = max(spawn.starts, default=0.0)
    limits = (spawn.stop_after, _max_duration(spec, spawn), duration)
    candidates = [x for x in limits if x is not None]
    if spec.task_duration is not None:
        candidates.append(last_start + spec.task_duration)
    planned_duration = min(candidates) if candidates else None
    ends: tuple[float, ...] = ()
    if passes is None:
        stop = _stop(spec, spawn, duration)
        span = spec.task_duration if spec.task_duration is not None else math.inf
        # A user spawned after the stop never runs: its window is empty.
        if spawn.ends:  # stages: each user leaves when the target falls below it
            ends = tuple(
                max(s, min(s + span, stop, e))
                for s, e in zip(spawn.starts, spawn.ends, strict=True)
            )
        else:
            ends = tuple(max(s, min(s + span, stop)) for s in spawn.starts)
    return ScenarioBaseline(
        name=spec.name,
        users=users,
        planned_tasks=users * passes if passes is not None else None,
        passes_per_user=passes,
        duration=planned_duration,
        last_start=last_start,
        think_time=spec.think_time,
        pacing=spec.pacing or 0.0,
        milestones=tuple((m.name, m.weight) for m in spec.milestones),
        starts=spawn.starts,
        ends=ends,
    )


def _arrival_baseline(
    spec: ScenarioSpec, spawn: SpawnPlan, duration: float | None
) -> ScenarioBaseline:
    """An arrival-rate scenario plans its iterations: those scheduled before its stop."""
    stop = _stop(spec, spawn, duration)
    planned = spawn.planned_iterations(None if math.isinf(stop) else stop) or 0
    arrivals = spawn.arrivals
    assert arrivals is not None  # `baseline` sends only arrival-rate plans here
    end = spawn.offset + arrivals.duration
    return ScenarioBaseline(
        name=spec.name,
        users=spawn.users,
        planned_tasks=planned,
        passes_per_user=None,
        duration=min(end, stop),
        last_start=max(spawn.starts, default=0.0),
        milestones=tuple((m.name, m.weight) for m in spec.milestones),
        starts=spawn.starts,
        schedule_end=min(end, stop),
    )


def baselines(
    plan: Plan,
    users: int | None = None,
    duration: float | None = None,
    segment: Segmentation | None = None,
) -> tuple[ScenarioBaseline, ...]:
    """Every scenario's baseline, with the run's `--users` and `--duration` overrides; a
    worker's `segment`: its share of the plan (its users, its arrival iterations)."""
    return tuple(baseline(s, spawn_plan(s, users, segment), duration) for s in plan.scenarios)


def total_planned(items: Iterable[ScenarioBaseline]) -> int | None:
    """Σ planned passes, or None when any scenario is time-boxed."""
    out = 0
    for b in items:
        if b.planned_tasks is None:
            return None
        out += b.planned_tasks
    return out
