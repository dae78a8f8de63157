"""One reading of a run's figures, taken on the event loop at a scrape (never on the hot path).

The exporter's HTTP thread must not walk the run's dicts while the loop changes them, so a
scrape asks the loop for a `RunSample`: plain copies (counters, histogram bucket lists, frozen
snapshots) that the thread then turns into metric families at leisure. Nothing here is paid per
request: a sample costs O(actions + scenarios + open tasks + kept workbook entries).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from wbsrun.core.bus import BusStatistics
from wbsrun.core.codes import classify
from wbsrun.core.runner import Runner
from wbsrun.core.stats import ActionStats, Histogram, RunStats
from wbsrun.progress.aggregate import Aggregator
from wbsrun.progress.health import HealthFigures, UserHealth
from wbsrun.progress.report import ProgressSnapshot, progress_snapshot, snap_health
from wbsrun.progress.views import ProgramProgress

__all__ = [
    "ActionFigures",
    "BusLike",
    "HistogramCopy",
    "PollableFigures",
    "PollableLike",
    "PollerLike",
    "RunSample",
    "RunSources",
    "take_sample",
    "workbook_figures",
]

# The action label of errors counted against the pass itself (no action).
NO_ACTION = "(pass)"


class _PollerStats(Protocol):
    @property
    def events(self) -> int: ...
    @property
    def checks(self) -> Mapping[str, int]: ...
    @property
    def latency_ms(self) -> Mapping[str, float]: ...
    @property
    def queue_max(self) -> int: ...


class _PollerGauges(Protocol):
    @property
    def queue(self) -> int: ...
    @property
    def inbox(self) -> int: ...


class _PollableStats(Protocol):
    @property
    def subscriptions(self) -> int: ...
    @property
    def changes(self) -> int: ...
    @property
    def acked(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def queue_depth(self) -> int: ...
    @property
    def queue_max(self) -> int: ...
    @property
    def polls(self) -> Mapping[str, int]: ...
    @property
    def polls_per_s(self) -> float: ...
    @property
    def latency(self) -> Mapping[str, Histogram]: ...


class PollableLike(Protocol):
    """What the exporter reads of the progress pollable's feed (`wbsrun.poller.ProgressFeed`)."""

    def statistics(self) -> _PollableStats: ...


@dataclass(frozen=True, slots=True)
class PollableFigures:
    """The feed's figures at the sample; `latency`: host time of a ready() / block() call."""

    subscriptions: int
    changes: int
    acked: int
    dropped: int
    queue_depth: int
    queue_max: int
    polls: dict[str, int]
    polls_per_s: float
    latency: dict[str, HistogramCopy]


class BusLike(Protocol):
    """What the exporter reads of the progress bus (`ProgressBus`, or a `--workers` run's
    merged figures)."""

    def statistics(self) -> BusStatistics: ...


class PollerLike(Protocol):
    """What the exporter reads of the poller (`wbsrun.poller.Poller`; telemetry may not import
    its sibling adapter)."""

    def statistics(self) -> _PollerStats: ...
    def gauges(self) -> _PollerGauges: ...


@dataclass(frozen=True, slots=True)
class RunSources:
    """Where a sample reads from; the CLI fills it (`cli/session.py`). Optional parts absent
    give no series. `pools`: the resource provider's per-pool counts; `logs`: the run log's
    lines by level; `alerts`: live threshold alerts by rule (the threshold evaluator's hook)."""

    runner: Runner
    aggregator: Aggregator | None = None
    bus: BusLike | None = None
    poller: PollerLike | None = None
    pools: Callable[[], Mapping[str, Mapping[str, int]]] | None = None
    logs: Mapping[str, int] | None = None
    alerts: Callable[[], Mapping[str, int]] | None = None
    # The workbook's figures and its open entries by phase (`workbook_figures`); None: read
    # from the runner's workbook (a `--workers` run: the workers' merged ones).
    workbook: Callable[[], tuple[dict[str, int], dict[str, int]]] | None = None
    pollable: PollableLike | None = None
    # The live result's `pmp` object (progress/pmp.py): read at a scrape, never per request.
    pmp: Callable[[], Mapping[str, Any]] | None = None
    # The pools' lease-seconds and priority scheduling (`PoolManager.scheduling_figures`).
    scheduling: Callable[[], dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class HistogramCopy:
    """A `Histogram`'s buckets (ms, 1 % log buckets) copied at the sample."""

    buckets: list[int]
    count: int
    total_ms: float

    @classmethod
    def of(cls, h: Histogram) -> HistogramCopy:
        return cls(list(h.buckets), h.count, h.total)


@dataclass(frozen=True, slots=True)
class ActionFigures:
    """One action of one scenario. `status`, `requests` and the bytes are None on a build whose
    `ActionStats` does not count them yet (issue 19's stats change)."""

    scenario: str
    action: str
    count: int
    ok: int
    failed: int
    interrupted: int
    latency: HistogramCopy
    requests: int
    status: dict[int, int]
    bytes_sent: int
    bytes_received: int


@dataclass(frozen=True, slots=True)
class RunSample:
    name: str
    finished: bool
    interrupted: bool
    snapshot: ProgressSnapshot
    health: HealthFigures
    counters: dict[str, int]
    actions: list[ActionFigures]
    all_requests: HistogramCopy
    errors: dict[tuple[str, str], int]
    action_errors: dict[tuple[str, str], int]
    exits: dict[str, int]
    milestones_reached: dict[str, int]
    tasks_in_flight: int
    workbook: dict[str, int]
    open_phases: dict[str, int]
    resources: dict[str, dict[str, int]]
    bus: BusStatistics | None = None
    poller: _PollerStats | None = None
    poller_gauges: _PollerGauges | None = None
    pollable: PollableFigures | None = None
    logs: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)
    # (action, check) → (passes, fails) of the actions' `checks:`.
    checks: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    # Arrival-rate scenarios: iterations dropped (every user busy), by scenario.
    dropped: dict[str, int] = field(default_factory=dict)
    # `pacing` scenarios: passes that ended after the next one was due, by scenario.
    pacing_missed: dict[str, int] = field(default_factory=dict)
    # Every user's health summed up (None: not known here, or no aggregator).
    users: UserHealth | None = None
    # The PMP map (the result's `pmp`), when the sources give it.
    pmp: Mapping[str, Any] | None = None
    # {"lease_s": {pool: s}, "scheduling": the result's `scheduling` or None}.
    scheduling: dict[str, Any] | None = None

    @property
    def progress(self) -> ProgramProgress | None:
        return self.snapshot.detail


_COUNTERS = (
    "requests_total",
    "requests_ok",
    "requests_failed",
    "requests_interrupted",
    "health_probes",
    "tasks_started",
    "tasks_succeeded",
    "tasks_failed",
    "tasks_timed_out",
    "tasks_rolled_back",
    "tasks_interrupted",
    "users_started",
    "users_finished",
    "rollbacks",
)


def _figures(scenario: str, action: str, a: ActionStats) -> ActionFigures:
    return ActionFigures(
        scenario,
        action,
        a.count,
        a.ok,
        a.failed,
        a.interrupted,
        HistogramCopy.of(a.latency),
        a.requests,
        dict(a.status),
        a.bytes_sent,
        a.bytes_received,
    )


def _actions(st: RunStats) -> list[ActionFigures]:
    return [
        _figures(s, name, a) for s, actions in st.scenarios.items() for name, a in actions.items()
    ]


def _all_requests(st: RunStats) -> HistogramCopy:
    return HistogramCopy.of(st.all_requests().latency)


def _errors(runner: Runner) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """(code, class) → count, with the plan's transient / permanent catalogue; and
    (action, code) → count from the message samples, which add up to the codes' counts."""
    st = runner.ctx.stats
    spec = runner.plan.progress
    by_class: dict[tuple[str, str], int] = {
        (code, classify(code, spec.transient, spec.permanent)): n for code, n in st.errors.items()
    }
    by_action: dict[tuple[str, str], int] = {}
    for sample in st.error_samples.values():
        key = (sample.action or NO_ACTION, sample.code)
        by_action[key] = by_action.get(key, 0) + sample.count
    return by_class, by_action


def workbook_figures(runner: Runner) -> tuple[dict[str, int], dict[str, int]]:
    """The workbook's figures, and its open entries by phase."""
    book = runner.ctx.workbook
    summary = book.summary()
    held, packed, phases = book.footprint()
    out = {
        "held": held,
        "packed_bytes": packed,
        "closed": int(summary.get("closed", 0)),
        "kept": int(summary.get("kept", 0)),
        "dropped": int(summary.get("dropped", 0)),
        "written": int(summary.get("written", 0)),
    }
    path = summary.get("path")
    if path:
        # The on-disk ledger (`full`): its files as they stand (the writer thread appends).
        out["disk_bytes"] = (
            sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file())
            if os.path.isdir(path)
            else 0
        )
    return out, phases


def _resources(sources: RunSources) -> dict[str, dict[str, int]]:
    runner = sources.runner
    out: dict[str, dict[str, int]] = {}
    provided = sources.pools() if sources.pools is not None else {}
    for name, figures in provided.items():
        out.setdefault(name, {}).update(figures)
    book = runner.ctx.leases
    if book is not None:
        for name, figures in book.statistics().items():
            out.setdefault(name, {}).update({f"book_{k}": v for k, v in figures.items()})
    for name, figures in runner.ctx.stats.resource_health.items():
        out.setdefault(name, {}).update({f"health_{k}": v for k, v in figures.items()})
    return out


def _pollable(feed: PollableLike | None) -> PollableFigures | None:
    if feed is None:
        return None
    st = feed.statistics()
    return PollableFigures(
        subscriptions=st.subscriptions,
        changes=st.changes,
        acked=st.acked,
        dropped=st.dropped,
        queue_depth=st.queue_depth,
        queue_max=st.queue_max,
        polls=dict(st.polls),
        polls_per_s=st.polls_per_s,
        latency={call: HistogramCopy.of(h) for call, h in st.latency.items()},
    )


def take_sample(sources: RunSources) -> RunSample:
    """Read the run now. On the loop while it runs; after it, from any one thread."""
    runner = sources.runner
    st = runner.ctx.stats
    snap = progress_snapshot(runner, sources.aggregator)
    by_class, by_action = _errors(runner)
    poller = sources.poller
    read = sources.workbook
    workbook, phases = read() if read is not None else workbook_figures(runner)
    return RunSample(
        name=runner.plan.name,
        finished=runner.ended_at is not None,
        interrupted=runner.interrupted,
        snapshot=snap,
        health=snap_health(snap, st),
        users=sources.aggregator.user_health() if sources.aggregator is not None else None,
        counters={name: int(getattr(st, name)) for name in _COUNTERS},
        actions=_actions(st),
        all_requests=_all_requests(st),
        errors=by_class,
        action_errors=by_action,
        exits=dict(st.exits),
        dropped={name: a.dropped for name, a in st.arrivals.items()},
        pacing_missed=dict(st.pacing_missed),
        milestones_reached=dict(st.milestones),
        tasks_in_flight=len(runner.ctx.inflight),
        workbook=workbook,
        open_phases=phases,
        resources=_resources(sources),
        bus=sources.bus.statistics() if sources.bus is not None else None,
        poller=poller.statistics() if poller is not None else None,
        poller_gauges=poller.gauges() if poller is not None else None,
        pollable=_pollable(sources.pollable),
        logs=dict(sources.logs) if sources.logs is not None else {},
        alerts=dict(sources.alerts()) if sources.alerts is not None else {},
        scheduling=sources.scheduling() if sources.scheduling is not None else None,
        checks={
            (action, name): (counts[0], counts[1])
            for action, a in st.actions.items()
            for name, counts in a.checks.items()
        },
        pmp=sources.pmp() if sources.pmp is not None else None,
    )
