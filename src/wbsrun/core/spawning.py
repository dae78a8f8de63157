"""Spawn plans: when each user of a scenario starts (and leaves), per its load profile, the
run's overrides and this process's segment of a split run."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from wbsrun.core.arrivals import ArrivalSchedule, StageCurve, arrival_schedule, stage_curve
from wbsrun.core.segments import Segmentation
from wbsrun.dsl.plan import ProfileSpec, ScenarioSpec

__all__ = ["SpawnPlan", "spawn_plan"]


@dataclass(frozen=True, slots=True)
class SpawnPlan:
    """When each user starts and when users must stop, in seconds after the run starts (a
    scenario's `start-after` shifts them). A `stages` plan has its target curve (users above
    it leave after their pass) and each planned user's leaving time; an arrival-rate plan its
    iteration schedule (`starts` are its pre-allocated users).

    A plan split by a `segment` (`_split_plan`) keeps this part's users only, each with its
    global index (`indices`: its id and think-time seed); its arrival schedule is the whole
    one, of which it runs the iterations its segment owns."""

    starts: tuple[float, ...]
    stop_after: float | None
    offset: float = 0.0
    curve: StageCurve | None = None
    ends: tuple[float, ...] = ()
    arrivals: ArrivalSchedule | None = None
    # The global index of each user of `starts` (a split plan; else 0, 1, 2 …).
    indices: tuple[int, ...] = ()
    segment: Segmentation | None = None
    # A split plan: the whole plan's users (the indices a scale adds come after them).
    whole: int = 0

    @property
    def users(self) -> int:
        if self.arrivals is not None:
            return self.arrivals.max_users
        return len(self.starts)

    def user_indices(self) -> Iterable[int]:
        """The global index of each user of `starts`, in order."""
        return self.indices if self.segment is not None else range(len(self.starts))

    def added_index(self, added: int) -> int:
        """Closed model: the global index of the `added`-th user a scale adds (from 0): after
        the whole plan's users, striped by the segment as the plan's are, so the users the
        parts of a split add never share an id (one part: `len(starts) + added`)."""
        if self.segment is None:
            return len(self.starts) + added
        return self.whole + self.segment.nth(added)

    def share(self, users: int) -> int:
        """This part's share of a scale of the whole scenario to `users` (the closed model's
        population, or arrival-rate's max-users), split as `_split_plan` splits the plan."""
        segment = self.segment
        if segment is None:
            return users
        share = segment.scale(users)
        arrivals = self.arrivals
        if arrivals is not None and not share and users and segment.scale(arrivals.planned()):
            share = 1  # as the plan's split: a part that owns iterations has a user for them
        return share

    def slot_index(self, made: int) -> int:
        """Arrival-rate plans: the global index of this part's `made`-th user."""
        return made if self.segment is None else self.segment.nth(made)

    def planned_iterations(self, until: float | None = None) -> int | None:
        """Arrival-rate plans: the iterations (of this part) that start before `until`
        (seconds after the run starts; None: all of them). Else None."""
        if self.arrivals is None:
            return None
        planned = self.arrivals.planned(None if until is None else until - self.offset)
        return planned if self.segment is None else self.segment.scale(planned)

    def iteration_offsets(self) -> Iterator[float]:
        """Arrival-rate plans: the start offsets of this part's iterations, ascending."""
        assert self.arrivals is not None
        offsets = self.arrivals.offsets()
        return offsets if self.segment is None else self.segment.pick(offsets)

    def target(self, t: float) -> int:
        """`stages` plans: this part's users due at `t` (its share of the curve's target)."""
        assert self.curve is not None
        due = self.curve.target(t)
        return due if self.segment is None else self.segment.scale(due)


def _even(count: int, rate: float | None, offset: float = 0.0) -> Iterator[float]:
    step = 1.0 / rate if rate else 0.0
    for i in range(count):
        yield offset + i * step


def _profile_starts(p: ProfileSpec, rate: float | None) -> tuple[tuple[float, ...], float | None]:
    if p.kind == "constant":
        return tuple(_even(p.users, rate)), p.duration or None
    if p.kind == "ramp":
        starts = list(_even(p.start_users, rate))
        extra = p.end_users - p.start_users
        # Linear ramp: user k (from 0) of the extra ones starts at k/extra of the duration, so
        # the population is the linear level rounded up. (k+1)/extra would start the last user
        # exactly when the profile's window closes: planned, but never running a pass.
        starts.extend(p.duration * k / extra for k in range(max(extra, 0)))
        return tuple(sorted(starts)), p.duration or None
    starts = []
    for at, count in p.phases:
        starts.extend(_even(count, rate, at))
    return tuple(sorted(starts)), None


def spawn_plan(
    s: ScenarioSpec, users: int | None = None, segment: Segmentation | None = None
) -> SpawnPlan:
    """The scenario's spawn times; `users` (a --users override) rescales the plan (an
    arrival-rate plan: its max-users). No users (an override of 0 or less) is an empty plan,
    never a division by zero. A `segment`: this part's share of the whole plan (`_split_plan`)."""
    plan, levels = _spawn_plan(s, users)
    if segment is not None:
        plan = _split_plan(plan, segment, levels)
    shift = s.start_after
    if not shift:
        return plan
    stop = plan.stop_after
    return replace(
        plan,
        starts=tuple(t + shift for t in plan.starts),
        stop_after=None if stop is None else stop + shift,
        offset=shift,
        ends=tuple(t + shift for t in plan.ends),
    )


def _split_plan(
    plan: SpawnPlan, segment: Segmentation, levels: tuple[int, ...] | None = None
) -> SpawnPlan:
    """The part of a whole plan `segment` runs. Closed model: the users whose level it owns
    (a user's level is its index, or for `stages` the population level it fills: the users
    alive at any time hold levels 0 … target − 1, so a part's alive users number its scale of
    the target); their start times, ends and global indices stay. Arrival-rate: the whole
    schedule (the part runs the iterations it owns) with its scale of pre-allocated and max
    users, at least one max user when it owns an iteration."""
    arrivals = plan.arrivals
    if arrivals is not None:
        cap = segment.scale(arrivals.max_users)
        if not cap and arrivals.max_users and segment.scale(arrivals.planned()):
            cap = 1
        pre = segment.scale(arrivals.pre_allocated)
        mine = replace(arrivals, pre_allocated=pre, max_users=cap)
        return replace(plan, starts=plan.starts[:pre], arrivals=mine, segment=segment)
    keys = levels if levels is not None else range(len(plan.starts))
    own = [i for i, key in enumerate(keys) if segment.owns(key)]
    return replace(
        plan,
        starts=tuple(plan.starts[i] for i in own),
        ends=tuple(plan.ends[i] for i in own) if plan.ends else (),
        indices=tuple(own),
        segment=segment,
        whole=len(plan.starts),
    )


def _spawn_plan(s: ScenarioSpec, users: int | None) -> tuple[SpawnPlan, tuple[int, ...] | None]:
    """The whole plan, and for a `stages` plan each user's level (None: its index)."""
    p = s.profile
    if p is not None and p.arrival:
        arrivals = arrival_schedule(p)
        assert arrivals is not None
        if users is not None:
            cap = max(0, users)
            arrivals = replace(
                arrivals, max_users=cap, pre_allocated=min(arrivals.pre_allocated, cap)
            )
        plan = SpawnPlan((0.0,) * arrivals.pre_allocated, arrivals.duration, arrivals=arrivals)
        return plan, None
    curve = stage_curve(p) if p is not None else None
    if p is not None and curve is not None:
        peak = max([p.start_users, *(t for _, t in p.stages)])
        if users is not None and users <= 0:
            return SpawnPlan((), curve.duration), None
        if users is not None and peak > 0:
            # Keep the stages' shape, scale their population to a peak of `users`.
            k = users / peak
            scaled = replace(
                p,
                start_users=round(p.start_users * k),
                stages=tuple((d, t * k) for d, t in p.stages),
            )
            curve = stage_curve(scaled)
            assert curve is not None
        starts, ends, levels = curve.windows()
        return SpawnPlan(starts, curve.duration, curve=curve, ends=ends), levels
    if users is not None and users <= 0:
        stop = _profile_starts(p, s.spawn_rate)[1] if p is not None else None
        return SpawnPlan((), stop), None
    if p is None:
        count = users if users is not None else s.user_count
        return SpawnPlan(tuple(_even(count, s.spawn_rate)), None), None
    starts, stop = _profile_starts(p, s.spawn_rate)
    if users is not None and starts and users != len(starts):
        # Keep the profile's shape, scale its population.
        factor = len(starts) / users
        starts = tuple(starts[min(int(i * factor), len(starts) - 1)] for i in range(users))
    return SpawnPlan(starts, stop), None
