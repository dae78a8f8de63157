"""Incremental roll-up of task progress into user, scenario and program progress (pure, sync).

Task → user → scenario → program, each a weighted average: a user is the mean of its planned
passes, a scenario the mean of its users weighted by their planned passes (so Σ task progress
over the planned passes), the program the mean of its scenarios weighted by their expected
passes. The plan is the denominator (`baseline.py`), so progress means something mid-run.

The aggregator keeps running sums keyed by task and never reads the workbook: an update costs
a dict look-up, a float comparison and a small-set comparison, whatever the run's size. Feed it
`TaskUpdate`s (the bus's events fit that protocol) or plug `AggregatingSink` in as the runner's
`ProgressSink`.
"""

from __future__ import annotations

import time
from bisect import insort
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Final, Protocol, final

from wbsrun.core.bus import ProgressBus
from wbsrun.core.events import ProgressSink, ProgressSubject
from wbsrun.core.runner import RunOptions
from wbsrun.core.sinks import Sink
from wbsrun.core.task import Task
from wbsrun.dsl.plan import Plan
from wbsrun.progress._tally import (
    ScenarioTally,
    TaskTally,
    UserTally,
    merge_milestones,
    program_forecast,
    rank,
    scenario_view,
    user_score,
)
from wbsrun.progress.baseline import ScenarioBaseline, baselines, total_planned
from wbsrun.progress.forecast import Prior
from wbsrun.progress.health import WORST_USERS, HealthBook, UserHealth
from wbsrun.progress.views import (
    ProgramProgress,
    UserProgress,
)

__all__ = [
    "AggregatingSink",
    "Aggregator",
    "ProgressUpdate",
    "ScenarioSums",
    "SettledState",
    "TaskUpdate",
]

_NO_AGGREGATE: Final = frozenset({"timeline.phase", "error", "lease"})
# Fields whose events only move an open task's progress and milestones: `AggregatingSink`
# notes the task and the aggregator folds its values in before anything is read.
_TOUCH: Final = frozenset({"progress", "milestone", "rollback"})
_OPENING: Final = "planning.ready"
_CLOSED: Final = "closed"

# Closed task ids remembered to drop a late duplicate of a `closed` update (bounded memory).
REMEMBER_CLOSED = 4096


class TaskUpdate(Protocol):
    """What the aggregator needs from one progress event: the task's current values."""

    @property
    def task_id(self) -> str: ...

    @property
    def user_id(self) -> str: ...

    @property
    def scenario(self) -> str: ...

    @property
    def progress(self) -> float: ...

    @property
    def milestones(self) -> Set[str]: ...

    @property
    def closed(self) -> bool: ...

    @property
    def error_class(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class ProgressUpdate:
    """A plain `TaskUpdate` (tests, replays, adapters)."""

    task_id: str
    user_id: str
    scenario: str
    progress: float
    milestones: frozenset[str] = frozenset()
    closed: bool = False
    # A pass closed with an error counts against its user's health (docs/progress-model.md).
    error_class: str | None = None


@dataclass(slots=True)
class ScenarioSums:
    """One scenario's running sums (`Aggregator.sums`): what a worker sends its coordinator.
    Not frozen: compiled with mypyc, a frozen dataclass cannot be unpickled (its state is
    restored through the frozen `__setattr__`), and workers pickle these into their reports."""

    total: float
    closed_total: float
    started: int
    closed: int
    users: int
    users_done: int
    pass_time: float
    counts: dict[str, int]


@dataclass(slots=True)  # not frozen: pickled into checkpoints (see ScenarioSums)
class SettledState:
    """The sums of the passes closed (`Aggregator.settled`, a checkpoint): per scenario, and
    per user id (scenario, Σ progress, passes started, passes closed, Σ progress of the closed
    ones, those closed with an error). Passes still open are left out: a second life runs
    them again."""

    scenarios: dict[str, ScenarioSums]
    users: dict[str, tuple[str, float, int, int, float, int]]


@final
class Aggregator:
    """Running progress sums of a run; `snapshot()` turns them into the reported dimensions."""

    def __init__(
        self,
        plans: Iterable[ScenarioBaseline] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._scenarios: dict[str, ScenarioTally] = {b.name: ScenarioTally(b) for b in plans}
        self._users: dict[str, UserTally] = {}
        self._open: dict[str, TaskTally] = {}
        self._recent: deque[str] = deque(maxlen=REMEMBER_CLOSED)
        self._recent_set: set[str] = set()
        # Open tasks whose progress or milestones moved since the last read (`touch()`), by
        # id: their current values are folded in before any read.
        self._touched: dict[str, ProgressSubject] = {}
        # The health's trends, fed by every progress snapshot (`progress_snapshot`).
        self.health = HealthBook()
        # Scenarios whose "will miss its plan" warning was handed out (`new_misses`).
        self._announced: set[str] = set()

    @classmethod
    def for_run(
        cls,
        plan: Plan,
        options: RunOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> Aggregator:
        """An aggregator whose denominators are the plan under the run's options."""
        opts = options or RunOptions()
        return cls(baselines(plan, opts.users, opts.duration, opts.segment), clock=clock)

    # -- updates: O(1) each ---------------------------------------------------------------------
    def apply(self, update: TaskUpdate) -> None:
        self.record(
            update.task_id,
            update.user_id,
            update.scenario,
            update.progress,
            update.milestones,
            update.closed,
            update.error_class,
        )

    def record(
        self,
        task_id: str,
        user_id: str,
        scenario: str,
        progress: float,
        milestones: Set[str],
        closed: bool,
        error_class: str | None = None,
    ) -> None:
        """The task's current values; an update after its `closed` one counts as a new task.
        `error_class`: the task's error, read at its close (None: none)."""
        if self._touched:
            self._fold()  # what was noted before this update comes first
        task = self._open.get(task_id)
        if task is None:
            if task_id in self._recent_set:
                return  # a repeated `closed` (or a straggler) of a task already counted
            task = self._open_task(task_id, user_id, scenario)
        if progress != task.progress:
            p = min(1.0, progress) if progress >= 0.0 else 0.0  # NaN counts as 0
            delta = p - task.progress
            task.progress = p
            task.scenario.total += delta
            task.user.total += delta
        # Identity first: the runner's tasks hand over the frozenset kept here last time.
        if milestones is not task.milestones and milestones != task.milestones:
            self._milestones(task, milestones)
        if closed:
            self._close(task_id, task, error_class is not None)

    def observe(self, subject: ProgressSubject, task_id: str, closed: bool) -> None:
        """`record()` from a live subject whose `task_id` the caller has read (what
        `AggregatingSink` calls for the events it takes at once): the scope (user, scenario)
        is read only when the task opens. The body repeats `record()`'s rather than sharing a
        helper: one call less on the runner's hot path."""
        task = self._open.get(task_id)
        if task is None:
            if task_id in self._recent_set:
                return  # a repeated `closed` (or a straggler) of a task already counted
            task = self._open_task(task_id, subject.user_id, subject.scenario_name)
        milestones: Set[str]
        if type(subject) is Task:
            # The runner's own subject: native reads (see AggregatingSink.publish).
            progress, milestones = subject.progress, subject.milestones
        else:
            progress, milestones = subject.progress, subject.milestones
        if progress != task.progress:
            p = min(1.0, progress) if progress >= 0.0 else 0.0  # NaN counts as 0
            delta = p - task.progress
            task.progress = p
            task.scenario.total += delta
            task.user.total += delta
        # Identity first: the runner's tasks hand over the frozenset kept here last time.
        if milestones is not task.milestones and milestones != task.milestones:
            self._milestones(task, milestones)
        if closed:
            # Whether the pass failed: read once a pass, natively from the runner's task.
            if type(subject) is Task:
                failed = subject.error is not None
            else:
                failed = subject.error_class is not None
            self._close(task_id, task, failed)
            self._touched.pop(task_id, None)

    def touch(self, subject: ProgressSubject, task_id: str) -> None:
        """`observe(subject, task_id, False)` for an update that only moves an open task's
        progress or milestones, deferred: the task is noted, and its values as they are then
        are folded in before the next read (`snapshot()`, `user()`, `tasks_open`, ...) or
        `record()`. Updates carry current values, so every figure is the one observing each
        update gives (the running float sums to within their last bits: fewer, larger deltas);
        a task updated ten times between two reads costs one fold. An update that would open
        the task is observed at once, since its pass time starts there."""
        if task_id in self._open:
            self._touched[task_id] = subject
        else:
            self.observe(subject, task_id, False)

    def _fold(self) -> None:
        touched = list(self._touched.items())
        self._touched.clear()  # cleared, not replaced: `AggregatingSink` writes to it
        for task_id, subject in touched:
            self.observe(subject, task_id, False)

    def _open_task(self, task_id: str, user_id: str, scenario: str) -> TaskTally:
        sc = self._scenarios.get(scenario)
        if sc is None:
            # Not in the plan: counted against the passes seen (no baseline to project from).
            sc = self._scenarios[scenario] = ScenarioTally(
                ScenarioBaseline(scenario, 0, None, None, None, 0.0)
            )
        user = self._users.get(user_id)
        if user is None:
            user = self._users[user_id] = UserTally(sc)
            sc.users += 1
        task = self._open[task_id] = TaskTally(sc, user, self._clock())
        sc.started += 1
        user.started += 1
        return task

    def _milestones(self, task: TaskTally, now: Set[str]) -> None:
        new = frozenset(now)
        counts = task.scenario.counts
        for name in new - task.milestones:
            counts[name] = counts.get(name, 0) + 1
        for name in task.milestones - new:
            n = counts[name] - 1
            if n or name in task.scenario.planned:
                counts[name] = n
            else:
                # An unplanned milestone no task holds any more (lost to a rollback) is not
                # listed: whether it was ever seen must not depend on when updates were read
                # (touch() folds a reach and its loss into one observation, or none).
                del counts[name]
        task.milestones = new

    def _close(self, task_id: str, task: TaskTally, failed: bool) -> None:
        del self._open[task_id]
        sc = task.scenario
        sc.closed += 1
        sc.closed_total += task.progress
        user = task.user
        user.closed += 1
        user.closed_total += task.progress
        if failed:
            user.failed += 1
        if user.closed == sc.base.passes_per_user:
            sc.users_done += 1
        sc.pass_time += max(0.0, self._clock() - task.opened)
        recent = self._recent
        if len(recent) == recent.maxlen:
            self._recent_set.discard(recent[0])
        recent.append(task_id)
        self._recent_set.add(task_id)

    # -- reading ----------------------------------------------------------------------------------
    @property
    def tasks_open(self) -> int:
        if self._touched:
            self._fold()
        return len(self._open)

    def user(self, user_id: str) -> UserProgress | None:
        if self._touched:
            self._fold()
        u = self._users.get(user_id)
        if u is None:
            return None
        passes = u.scenario.base.passes_per_user
        denominator = passes if passes is not None else u.started
        return UserProgress(
            user_id=user_id,
            scenario=u.scenario.base.name,
            progress=min(1.0, max(0.0, u.total / denominator)) if denominator else 0.0,
            tasks_started=u.started,
            tasks_closed=u.closed,
        )

    def snapshot(
        self, elapsed: float, *, finished: bool = False, paused: float = 0.0
    ) -> ProgramProgress:
        """The dimensions at `elapsed` seconds into the run, `paused` of them paused (left out
        of the ETA's pace). Also samples the work rate for the ETA, so call it as often as the
        ETA should learn (the live line: every redraw)."""
        if self._touched:
            self._fold()
        views = tuple(
            scenario_view(sc, elapsed, finished, paused) for sc in self._scenarios.values()
        )
        durations = [b.duration for b in self.baselines if b.duration]
        time_share = None
        if durations:
            time_share = 1.0 if finished else min(1.0, elapsed / max(durations))
        weighted = [(v, v.expected_tasks) for v in views if v.expected_tasks]
        weight = sum(w for _, w in weighted)
        work = sum(v.work * w for v, w in weighted) / weight if weight else 0.0
        if not weighted and views and all(v.planned_tasks == 0 for v in views):
            work = 1.0  # nothing was planned: nothing is left
        with_ms = [
            (v.milestones_weighted, w) for v, w in weighted if v.milestones_weighted is not None
        ]
        ms_weight = sum(w for _, w in with_ms)
        forecast = program_forecast(views, finished)
        expected = [v.expected_tasks for v in views]
        return ProgramProgress(
            elapsed=elapsed,
            time=time_share,
            work=min(1.0, work),
            milestones_weighted=(sum(m * w for m, w in with_ms) / ms_weight) if ms_weight else None,
            eta_s=forecast.eta_s,
            planned_tasks=total_planned(self.baselines),
            expected_tasks=sum(e for e in expected if e is not None)
            if None not in expected
            else None,
            tasks_started=sum(v.tasks_started for v in views),
            tasks_closed=sum(v.tasks_closed for v in views),
            scenarios=views,
            milestones=merge_milestones(views),
            forecast=forecast,
        )

    # -- prediction -------------------------------------------------------------------------------
    def use_history(self, priors: Mapping[str, Prior]) -> None:
        """Earlier runs' figures per scenario (`--history`): the forecasts start from them."""
        for name, prior in priors.items():
            sc = self._scenarios.get(name)
            if sc is not None:
                sc.forecaster.prior = prior

    def new_misses(self, detail: ProgramProgress) -> list[str]:
        """The scenarios of `detail` forecast to miss their plan that were not handed out
        before (each once: the caller warns)."""
        out = []
        for view in detail.scenarios:
            fc = view.forecast
            if fc is not None and fc.will_miss_plan and view.name not in self._announced:
                self._announced.add(view.name)
                out.append(view.name)
        return out

    # -- exchange (a cluster run: workers' sums, merged by the coordinator) ----------------------
    def sums(self) -> dict[str, ScenarioSums]:
        """Per scenario, the running sums every figure is computed from (plain, picklable)."""
        if self._touched:
            self._fold()
        return {
            name: ScenarioSums(
                sc.total,
                sc.closed_total,
                sc.started,
                sc.closed,
                sc.users,
                sc.users_done,
                sc.pass_time,
                dict(sc.counts),
            )
            for name, sc in self._scenarios.items()
        }

    def load(self, parts: Iterable[Mapping[str, ScenarioSums]]) -> None:
        """Set every scenario's sums to the total of `parts` (one `sums()` per worker, disjoint
        users): the coordinator's view. Open-task and per-user detail stays in the workers;
        the ETA estimators stay here and learn from the snapshots taken after a load."""
        for sc in self._scenarios.values():
            sc.total = sc.closed_total = sc.pass_time = 0.0
            sc.started = sc.closed = sc.users = sc.users_done = 0
            sc.counts = dict.fromkeys(sc.planned_order, 0)
        for part in parts:
            for name, s in part.items():
                found = self._scenarios.get(name)
                if found is None:
                    found = self._scenarios[name] = ScenarioTally(
                        ScenarioBaseline(name, 0, None, None, None, 0.0)
                    )
                sc = found
                sc.total += s.total
                sc.closed_total += s.closed_total
                sc.started += s.started
                sc.closed += s.closed
                sc.users += s.users
                sc.users_done += s.users_done
                sc.pass_time += s.pass_time
                for m, n in s.counts.items():
                    sc.counts[m] = sc.counts.get(m, 0) + n

    def settled(self) -> SettledState:
        """`sums()` and the per-user figures without the tasks still open."""
        sums = self.sums()  # folds what was touched
        open_total: dict[str, float] = {}
        open_started: dict[str, int] = {}
        open_marks: dict[str, dict[str, int]] = {}
        user_open: dict[int, tuple[float, int]] = {}
        for task in self._open.values():
            name = task.scenario.base.name
            open_total[name] = open_total.get(name, 0.0) + task.progress
            open_started[name] = open_started.get(name, 0) + 1
            marks = open_marks.setdefault(name, {})
            for m in task.milestones:
                marks[m] = marks.get(m, 0) + 1
            key = id(task.user)
            was = user_open.get(key, (0.0, 0))
            user_open[key] = (was[0] + task.progress, was[1] + 1)
        scenarios: dict[str, ScenarioSums] = {}
        for name, s in sums.items():
            marks = open_marks.get(name, {})
            scenarios[name] = ScenarioSums(
                s.total - open_total.get(name, 0.0),
                s.closed_total,
                s.started - open_started.get(name, 0),
                s.closed,
                s.users,
                s.users_done,
                s.pass_time,
                {m: n - marks.get(m, 0) for m, n in s.counts.items()},
            )
        users: dict[str, tuple[str, float, int, int, float, int]] = {}
        for uid, u in self._users.items():
            less = user_open.get(id(u), (0.0, 0))
            users[uid] = (
                u.scenario.base.name,
                u.total - less[0],
                u.started - less[1],
                u.closed,
                u.closed_total,
                u.failed,
            )
        return SettledState(scenarios, users)

    def load_settled(self, state: SettledState) -> None:
        """A second life starts from a first life's `settled()`."""
        self.load([state.scenarios])
        for uid, (name, total, started, closed, closed_total, failed) in state.users.items():
            sc = self._scenarios.get(name)
            if sc is None:
                continue
            user = self._users[uid] = UserTally(sc)
            user.total = total
            user.started = started
            user.closed = closed
            user.closed_total = closed_total
            user.failed = failed

    def user_health(self, worst: int = WORST_USERS) -> UserHealth | None:
        """Every user's health, summed up (docs/progress-model.md, "Health"): one pass over the
        users, keeping only the `worst` lowest scores by name and the scores themselves (a
        float each) for the percentiles. None where the users are not known here (a
        coordinator: its workers keep them)."""
        if self._touched:
            self._fold()
        users = self._users
        if not users:
            if any(sc.users for sc in self._scenarios.values()):
                return None
            return UserHealth(0, 0.0, 0.0, 0.0, 0.0, ())
        scores: list[float] = []
        low: list[tuple[float, str, str]] = []  # sorted, at most `worst`
        for uid, u in users.items():
            score = user_score(u)
            scores.append(score)
            if len(low) < worst:
                insort(low, (score, uid, u.scenario.base.name))
            elif low and score <= low[-1][0] and (score, uid) < (low[-1][0], low[-1][1]):
                insort(low, (score, uid, u.scenario.base.name))
                low.pop()
        scores.sort()
        n = len(scores)
        return UserHealth(
            n,
            scores[0],
            scores[rank(0.1, n)],
            scores[rank(0.5, n)],
            sum(scores) / n,
            tuple((uid, name, score) for score, uid, name in low),
        )

    @property
    def baselines(self) -> tuple[ScenarioBaseline, ...]:
        if self._touched:
            self._fold()  # a task of a scenario outside the plan adds one
        return tuple(sc.base for sc in self._scenarios.values())


@final
class AggregatingSink(Sink):
    """A `ProgressSink` that feeds an `Aggregator` directly, then passes the event on to
    `forward` (e.g. the progress bus) when given: `Runner(..., events=sink)`."""

    __slots__ = ("_bus", "_forward", "_send", "aggregator")

    def __init__(self, aggregator: Aggregator, forward: ProgressSink | None = None) -> None:
        self.aggregator = aggregator
        self.forward = forward

    @property
    def forward(self) -> ProgressSink | None:
        return self._forward

    @forward.setter
    def forward(self, sink: ProgressSink | None) -> None:
        self._forward = sink
        # Bound once: the hot path then makes one call, not an attribute walk and a call. The
        # bus takes the task id this sink has read already.
        self._send = sink.publish if sink is not None else None
        # Typed, so that the compiled hot path calls the bus directly, not through a bound
        # method object.
        self._bus: ProgressBus | None = sink if isinstance(sink, ProgressBus) else None

    @classmethod
    def for_run(
        cls, plan: Plan, options: RunOptions | None = None, forward: ProgressSink | None = None
    ) -> AggregatingSink:
        return cls(Aggregator.for_run(plan, options), forward)

    def publish(self, subject: ProgressSubject, field: str, priority: float) -> None:
        # Progress, milestones and rollbacks are only noted (`Aggregator.touch`): the
        # aggregate is read a few times a second, and a task publishes ~6 of them a pass.
        # Phase, error and lease events change no aggregate, except a pass's first event
        # (planning.ready), which opens it; a close is taken at once (its time counts).
        # The runner's own subject, typed: its attributes are native reads, not lookups by
        # name through the Protocol (one or two a publish, ~11 publishes a pass).
        t = subject if type(subject) is Task else None
        if field in _TOUCH:
            task_id = t.task_id if t is not None else subject.task_id
            agg = self.aggregator
            # `agg.touch()` written out: ~6 of a pass's ~11 events come this way.
            if task_id in agg._open:
                agg._touched[task_id] = subject
            else:
                agg.observe(subject, task_id, False)
        elif field in _NO_AGGREGATE and (t.phase if t is not None else subject.phase) != _OPENING:
            forward = self._bus
            if forward is not None:
                forward.publish(subject, field, priority)
                return
            send = self._send
            if send is not None:
                send(subject, field, priority)
            return
        else:
            task_id = t.task_id if t is not None else subject.task_id
            self.aggregator.observe(subject, task_id, field == _CLOSED)
        bus = self._bus
        if bus is not None:
            bus.publish_task(subject, task_id, field, priority)
            return
        send = self._send
        if send is not None:
            send(subject, field, priority)
