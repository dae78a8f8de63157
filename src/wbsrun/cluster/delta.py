"""The delta format: what a worker's run counted since its last report, and how it is merged.

A worker keeps a copy of its `RunStats` as last reported (`DeltaTaker`); every report carries
the difference (`StatsDelta`): counters subtracted, histograms as `Histogram.diff` but with the
worker's cumulative min and max (so the merged min and max are exact, not bucket bounds), error
samples by count. `merge_delta` adds a delta into the coordinator's `RunStats` with the same
operations a single process uses (`ActionStats.merge`, `Histogram.merge`, the message caps),
so the merged figures equal those of one `RunStats` that had counted every worker's requests.
Plain data only: any transport (a pipe here, a Ray stream later) may carry it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from wbsrun.core.stats import (
    MAX_MESSAGES,
    MAX_MESSAGES_PER_CODE,
    ActionStats,
    ArrivalStats,
    ErrorImpact,
    ErrorSample,
    Histogram,
    RunStats,
)

__all__ = ["COUNTERS", "DeltaTaker", "SampleDelta", "StatsDelta", "merge_delta", "totals"]

K = TypeVar("K", str, int)

# The RunStats integer counters, added as they are.
COUNTERS = (
    "requests_total",
    "requests_ok",
    "requests_failed",
    "requests_interrupted",
    "tasks_started",
    "tasks_succeeded",
    "tasks_failed",
    "tasks_timed_out",
    "tasks_rolled_back",
    "tasks_interrupted",
    "users_started",
    "users_finished",
    "rollbacks",
    "health_probes",
    "dropped_iterations",
)


@dataclass(frozen=True, slots=True)
class SampleDelta:
    """An error sample's new occurrences: `count` more, seen first (over the run) at
    `first_at` and last at `last_at`."""

    action: str | None
    code: str
    message: str | None
    count: int
    first_at: float
    last_at: float


@dataclass(slots=True)
class StatsDelta:
    counters: dict[str, int] = field(default_factory=dict)
    actions: dict[str, ActionStats] = field(default_factory=dict)
    scenarios: dict[str, dict[str, ActionStats]] = field(default_factory=dict)
    exits: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    milestones: dict[str, int] = field(default_factory=dict)
    pacing_missed: dict[str, int] = field(default_factory=dict)
    resource_health: dict[str, dict[str, int]] = field(default_factory=dict)
    samples: list[SampleDelta] = field(default_factory=list)
    arrivals: dict[str, ArrivalStats] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    # Error impact: per code (passes, progress lost, seconds) more; every pass's seconds more.
    impact: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    pass_seconds: float = 0.0


def _sub(now: dict[K, int], old: dict[K, int]) -> dict[K, int]:
    return {k: v - old.get(k, 0) for k, v in now.items() if v != old.get(k, 0)}


def _hist_delta(now: Histogram, old: Histogram) -> Histogram:
    out = now.diff(old)
    # Cumulative bounds: min over workers of their min is the run's min (exactly).
    out.min, out.max = now.min, now.max
    return out


def _copy_hist(h: Histogram) -> Histogram:
    return h.copy()


def _action_delta(now: ActionStats, old: ActionStats | None) -> ActionStats | None:
    if old is None:
        old = ActionStats()
    if (
        now.count == old.count
        and now.requests == old.requests
        and (now.interrupted == old.interrupted and now.checks == old.checks)
    ):
        return None
    return ActionStats(
        count=now.count - old.count,
        ok=now.ok - old.ok,
        failed=now.failed - old.failed,
        interrupted=now.interrupted - old.interrupted,
        latency=_hist_delta(now.latency, old.latency),
        requests=now.requests - old.requests,
        requests_failed=now.requests_failed - old.requests_failed,
        requests_interrupted=now.requests_interrupted - old.requests_interrupted,
        status=_sub(now.status, old.status),
        bytes_sent=now.bytes_sent - old.bytes_sent,
        bytes_received=now.bytes_received - old.bytes_received,
        checks={
            name: [p - old.checks.get(name, [0, 0])[0], f - old.checks.get(name, [0, 0])[1]]
            for name, (p, f) in now.checks.items()
            if [p, f] != old.checks.get(name, [0, 0])
        },
    )


def _copy_action(a: ActionStats) -> ActionStats:
    return ActionStats(
        count=a.count,
        ok=a.ok,
        failed=a.failed,
        interrupted=a.interrupted,
        latency=_copy_hist(a.latency),
        requests=a.requests,
        requests_failed=a.requests_failed,
        requests_interrupted=a.requests_interrupted,
        status=dict(a.status),
        bytes_sent=a.bytes_sent,
        bytes_received=a.bytes_received,
        checks={k: list(v) for k, v in a.checks.items()},
    )


def _arrival_delta(now: ArrivalStats, old: ArrivalStats | None) -> ArrivalStats:
    old = old or ArrivalStats()
    return ArrivalStats(
        asked_per_second=now.asked_per_second,  # this worker's share: a gauge, summed
        planned=now.planned,  # the plan of this worker's share: a gauge, summed
        started=now.started - old.started,
        dropped=now.dropped - old.dropped,
        paused=now.paused - old.paused,
        duration=now.duration,  # the scenario's window: the same in every worker
        delay=_hist_delta(now.delay, old.delay),
        from_schedule=_hist_delta(now.from_schedule, old.from_schedule),
    )


def _copy_arrival(a: ArrivalStats) -> ArrivalStats:
    return ArrivalStats(
        a.asked_per_second,
        a.planned,
        a.started,
        a.dropped,
        a.paused,
        a.duration,
        _copy_hist(a.delay),
        _copy_hist(a.from_schedule),
    )


class DeltaTaker:
    """The worker's side: `take(stats)` returns what changed since the last `take`."""

    def __init__(self) -> None:
        self._last = RunStats()
        self._samples: dict[tuple[str | None, str, str | None], int] = {}

    def take(self, st: RunStats) -> StatsDelta:
        last = self._last
        out = StatsDelta()
        for name in COUNTERS:
            n = getattr(st, name) - getattr(last, name)
            if n:
                out.counters[name] = n
        out.actions = _actions(st.actions, last.actions)
        for scenario, per in st.scenarios.items():
            moved = _actions(per, last.scenarios.get(scenario, {}))
            if moved:
                out.scenarios[scenario] = moved
        out.exits = _sub(st.exits, last.exits)
        out.errors = _sub(st.errors, last.errors)
        out.milestones = _sub(st.milestones, last.milestones)
        out.pacing_missed = _sub(st.pacing_missed, last.pacing_missed)
        for res, figures in st.resource_health.items():
            moved_health = _sub(figures, last.resource_health.get(res, {}))
            if moved_health:
                out.resource_health[res] = moved_health
        for key, sample in st.error_samples.items():
            n = sample.count - self._samples.get(key, 0)
            if n:
                out.samples.append(SampleDelta(*key, n, sample.first_at, sample.last_at))
                self._samples[key] = sample.count
        out.arrivals = {n: _arrival_delta(a, last.arrivals.get(n)) for n, a in st.arrivals.items()}
        out.notices = st.notices[len(last.notices) :]
        for code, imp in st.impact.items():
            was = last.impact.get(code) or ErrorImpact()
            if imp.passes != was.passes:
                out.impact[code] = (
                    imp.passes - was.passes,
                    imp.progress_lost - was.progress_lost,
                    imp.seconds - was.seconds,
                )
        out.pass_seconds = st.pass_seconds - last.pass_seconds
        self._last = _snapshot(st)
        return out


def _actions(now: dict[str, ActionStats], old: dict[str, ActionStats]) -> dict[str, ActionStats]:
    out: dict[str, ActionStats] = {}
    for name, a in now.items():
        d = _action_delta(a, old.get(name))
        if d is not None:
            out[name] = d
    return out


def _snapshot(st: RunStats) -> RunStats:
    """The figures a delta is taken against (no error samples: counted apart)."""
    out = RunStats()
    for name in COUNTERS:
        setattr(out, name, getattr(st, name))
    out.actions = {k: _copy_action(a) for k, a in st.actions.items()}
    out.scenarios = {s: {k: _copy_action(a) for k, a in p.items()} for s, p in st.scenarios.items()}
    out.exits = dict(st.exits)
    out.errors = dict(st.errors)
    out.milestones = dict(st.milestones)
    out.pacing_missed = dict(st.pacing_missed)
    out.resource_health = {k: dict(v) for k, v in st.resource_health.items()}
    out.arrivals = {k: _copy_arrival(a) for k, a in st.arrivals.items()}
    out.notices = list(st.notices)
    out.impact = {
        k: ErrorImpact(i.passes, i.progress_lost, i.seconds) for k, i in st.impact.items()
    }
    out.pass_seconds = st.pass_seconds
    return out


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0) + v


def merge_delta(st: RunStats, d: StatsDelta) -> None:
    """Add one worker's delta into the coordinator's figures."""
    for name, n in d.counters.items():
        setattr(st, name, getattr(st, name) + n)
    for name, a in d.actions.items():
        st.action(name).merge(a)
    for scenario, per in d.scenarios.items():
        for name, a in per.items():
            st.scenario_action(scenario, name).merge(a)
    _add(st.exits, d.exits)
    _add(st.errors, d.errors)
    _add(st.milestones, d.milestones)
    _add(st.pacing_missed, d.pacing_missed)
    for res, figures in d.resource_health.items():
        _add(st.resource_health.setdefault(res, {}), figures)
    for s in d.samples:
        _merge_sample(st, s)
    for name, arrival in d.arrivals.items():
        _merge_arrival(st, name, arrival)
    st.notices.extend(d.notices)
    for code, (passes, lost, seconds) in d.impact.items():
        into = st.impact.get(code)
        if into is None:
            into = st.impact[code] = ErrorImpact()
        into.passes += passes
        into.progress_lost += lost
        into.seconds += seconds
    st.pass_seconds += d.pass_seconds


def _merge_sample(st: RunStats, s: SampleDelta) -> None:
    """As `RunStats.count_error` would have: a new message under the caps gets its sample,
    beyond them it is counted in its (action, code)'s other sample."""
    samples = st.error_samples
    key = (s.action, s.code, s.message)
    sample = samples.get(key)
    if sample is None and s.message is not None:
        pair = (s.action, s.code)
        kept = st.kept_messages.get(pair, 0)
        if kept < MAX_MESSAGES_PER_CODE and st.messages_kept < MAX_MESSAGES:
            st.kept_messages[pair] = kept + 1
            st.messages_kept += 1
            sample = samples[key] = ErrorSample(s.action, s.code, s.message, s.first_at)
        else:
            key = (s.action, s.code, None)
            sample = samples.get(key)
    if sample is None:
        sample = samples[key] = ErrorSample(s.action, s.code, None, s.first_at)
    sample.count += s.count
    sample.first_at = min(sample.first_at, s.first_at)
    sample.last_at = max(sample.last_at, s.last_at)


def _merge_arrival(st: RunStats, name: str, a: ArrivalStats) -> None:
    """Gauges (asked rate, planned: per worker share) are set per worker by the caller's
    `ArrivalGauges`; here the counts and histograms are added."""
    into = st.arrivals.get(name)
    if into is None:
        into = st.arrivals[name] = ArrivalStats()
    into.started += a.started
    into.dropped += a.dropped
    into.paused += a.paused
    into.duration = max(into.duration, a.duration)
    into.delay.merge(a.delay)
    into.from_schedule.merge(a.from_schedule)


def totals(st: RunStats) -> dict[str, object]:
    """The figures the end-of-run check compares: every counter, per action and status, the
    histogram counts. Equal totals: nothing was lost or counted twice between the processes."""
    return {
        **{name: getattr(st, name) for name in COUNTERS},
        "errors": dict(sorted(st.errors.items())),
        "actions": {
            name: {
                "count": a.count,
                "requests": a.requests,
                "latency_count": a.latency.count,
                "status": dict(sorted(a.status.items())),
            }
            for name, a in sorted(st.actions.items())
        },
    }
