"""A `RunSample` as Prometheus metric families: names, types, labels (docs/observability.md).

Conventions: prefix `wbsrun_`, base units (seconds, bytes; shares as `_ratio` in [0, 1]),
counters end `_total`, labels of bounded cardinality only (scenario, action, status code, error
code, phase, pool, milestone: all fixed by the plan or by HTTP). A figure that is unknown (no ETA
yet, a plan without a time line) has no sample rather than a made-up one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from wbsrun.telemetry.metrics._engine import engine_families, progress_families
from wbsrun.telemetry.metrics._pmp import pmp_families
from wbsrun.telemetry.metrics._sample import HistogramCopy, RunSample

__all__ = ["LATENCY_BOUNDS_S", "cumulative_buckets", "families"]

# `le` bounds of the latency histograms, in seconds.
LATENCY_BOUNDS_S: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
# `core.stats.Histogram`: bucket i holds values v (ms) with growth^i <= 1 + 1000 v < growth^(i+1)
# (tests/telemetry/test_metrics_exporter.py holds the two to this).
_GROWTH = 1.01
_LOG_GROWTH = math.log(_GROWTH)


def _edge_s(k: int) -> float:
    """The lower edge of log bucket k, in seconds (= the upper edge of bucket k - 1)."""
    return math.expm1(k * _LOG_GROWTH) / 1_000_000.0


def _buckets_at_or_below(bound_s: float) -> int:
    """How many leading log buckets lie wholly at or below `bound_s` seconds."""
    k = int(math.log1p(bound_s * 1_000_000.0) / _LOG_GROWTH)
    while _edge_s(k + 1) <= bound_s:
        k += 1
    while k > 0 and _edge_s(k) > bound_s:
        k -= 1
    return k


_CUTS = tuple(_buckets_at_or_below(b) for b in LATENCY_BOUNDS_S)


def cumulative_buckets(h: HistogramCopy) -> list[tuple[str, float]]:
    """Cumulative (`le`, count) pairs at LATENCY_BOUNDS_S and +Inf. The count at a bound is
    exact for the log-bucket edge at or below it (within 1 % under the bound): a value of the
    one bucket that straddles a bound is counted at the next bound, never at a lower one."""
    out: list[tuple[str, float]] = []
    b = h.buckets
    for bound, cut in zip(LATENCY_BOUNDS_S, _CUTS, strict=True):
        out.append((_le(bound), float(sum(b[:cut]))))
    out.append(("+Inf", float(h.count)))
    return out


def _le(bound: float) -> str:
    return repr(bound)


def _histogram(
    name: str, doc: str, labels: Sequence[str], rows: Sequence[tuple[Sequence[str], HistogramCopy]]
) -> HistogramMetricFamily:
    fam = HistogramMetricFamily(name, doc, labels=list(labels), unit="")
    for values, h in rows:
        fam.add_metric(list(values), cumulative_buckets(h), h.total_ms / 1000.0)
    return fam


def _status_label(code: int) -> str:
    return "none" if code == 0 else str(code)


def _requests(s: RunSample) -> Iterator[Metric]:
    c = s.counters
    outcomes = CounterMetricFamily(
        "wbsrun_request_outcomes",
        "Requests sent, by outcome (interrupted: cancelled unanswered at a stop).",
        labels=["outcome"],
    )
    for outcome in ("ok", "failed", "interrupted"):
        outcomes.add_metric([outcome], c[f"requests_{outcome}"])
    yield outcomes
    yield CounterMetricFamily(
        "wbsrun_health_probes", "Resource health probes sent.", value=c["health_probes"]
    )
    counted = [a for a in s.actions if a.requests]
    if counted:
        by_status = CounterMetricFamily(
            "wbsrun_requests",
            "Requests sent by each action, by HTTP status (none: no answer with a status).",
            labels=["scenario", "action", "status"],
        )
        sent = CounterMetricFamily(
            "wbsrun_sent_bytes", "Bytes sent on the wire.", labels=["scenario", "action"]
        )
        received = CounterMetricFamily(
            "wbsrun_received_bytes", "Bytes received on the wire.", labels=["scenario", "action"]
        )
        for a in counted:
            for code, n in sorted(a.status.items()):
                by_status.add_metric([a.scenario, a.action, _status_label(code)], n)
            sent.add_metric([a.scenario, a.action], a.bytes_sent)
            received.add_metric([a.scenario, a.action], a.bytes_received)
        yield from (by_status, sent, received)
    if s.all_requests.count:
        yield _histogram(
            "wbsrun_request_duration_seconds",
            "Latency of the calls that sent requests, all actions (health probes excluded).",
            (),
            [((), s.all_requests)],
        )


def _actions(s: RunSample) -> Iterator[Metric]:
    calls = CounterMetricFamily(
        "wbsrun_actions",
        "Action calls, by result.",
        labels=["scenario", "action", "result"],
    )
    for a in s.actions:
        for result, n in (("ok", a.ok), ("failed", a.failed), ("interrupted", a.interrupted)):
            calls.add_metric([a.scenario, a.action, result], n)
    yield calls
    yield _histogram(
        "wbsrun_action_duration_seconds",
        "Latency of action calls (an http action: its request, answer read).",
        ("scenario", "action"),
        [((a.scenario, a.action), a.latency) for a in s.actions],
    )


def _errors(s: RunSample) -> Iterator[Metric]:
    errors = CounterMetricFamily(
        "wbsrun_errors",
        "Errors by code (DSL section 9) and class (the plan's transient / permanent catalogue).",
        labels=["code", "class"],
    )
    for (code, cls), n in sorted(s.errors.items()):
        errors.add_metric([code, cls], n)
    yield errors
    by_action = CounterMetricFamily(
        "wbsrun_action_errors",
        "Errors by action and code ((pass): errors of the pass itself).",
        labels=["action", "code"],
    )
    for (action, code), n in sorted(s.action_errors.items()):
        by_action.add_metric([action, code], n)
    yield by_action


def _gauge(name: str, doc: str, value: float | None) -> Iterator[Metric]:
    if value is not None:
        yield GaugeMetricFamily(name, doc, value=value)


def _users_tasks(s: RunSample) -> Iterator[Metric]:
    c, snap = s.counters, s.snapshot
    yield GaugeMetricFamily("wbsrun_users_active", "Users running now.", value=snap.active_users)
    yield GaugeMetricFamily("wbsrun_users_planned", "Users of the plan.", value=snap.planned_users)
    users = CounterMetricFamily("wbsrun_users", "Users started and finished.", labels=["event"])
    users.add_metric(["started"], c["users_started"])
    users.add_metric(["finished"], c["users_finished"])
    yield users
    yield CounterMetricFamily("wbsrun_tasks_started", "Passes started.", value=c["tasks_started"])
    closed = CounterMetricFamily(
        "wbsrun_tasks_closed", "Passes ended, by outcome.", labels=["outcome"]
    )
    for outcome in ("succeeded", "failed", "timed_out", "rolled_back", "interrupted"):
        closed.add_metric([outcome], c[f"tasks_{outcome}"])
    yield closed
    yield CounterMetricFamily(
        "wbsrun_rollbacks", "Rollbacks to a stable point.", value=c["rollbacks"]
    )
    yield GaugeMetricFamily(
        "wbsrun_tasks_in_flight", "Passes running now.", value=s.tasks_in_flight
    )
    phases = GaugeMetricFamily(
        "wbsrun_tasks_open", "Open passes by phase (their workbook entries').", labels=["phase"]
    )
    for phase, n in sorted(s.open_phases.items()):
        phases.add_metric([phase], n)
    yield phases
    dropped = CounterMetricFamily(
        "wbsrun_dropped_iterations",
        "Arrival-rate iterations not started: every user (max-users) was busy.",
        labels=["scenario"],
    )
    for name, n in sorted(s.dropped.items()):
        dropped.add_metric([name], n)
    yield dropped
    late = CounterMetricFamily(
        "wbsrun_pacing_missed",
        "Passes of a `pacing` scenario that ended after the next one was due.",
        labels=["scenario"],
    )
    for name, n in sorted(s.pacing_missed.items()):
        late.add_metric([name], n)
    yield late
    exits = CounterMetricFamily("wbsrun_task_exits", "Passes by workflow exit.", labels=["exit"])
    for name, n in sorted(s.exits.items()):
        exits.add_metric([name], n)
    yield exits


def _pollable(s: RunSample) -> Iterator[Metric]:
    """The progress pollable's feed (only when `progress.poller.progress_pollable` is on)."""
    p = s.pollable
    if p is None:
        return
    yield GaugeMetricFamily(
        "wbsrun_pollable_subscriptions", "Progress pollables subscribed.", value=p.subscriptions
    )
    for name, doc, value in (
        ("wbsrun_pollable_changes", "Changes taken in from the progress bus.", p.changes),
        ("wbsrun_pollable_acked", "Changes handed out and acked.", p.acked),
        ("wbsrun_pollable_dropped", "Changes dropped at a backlog cap.", p.dropped),
    ):
        yield CounterMetricFamily(name, doc, value=value)
    yield GaugeMetricFamily(
        "wbsrun_pollable_queue_depth", "Changes waiting, all pollables.", value=p.queue_depth
    )
    yield GaugeMetricFamily(
        "wbsrun_pollable_queue_depth_max", "Most changes waiting at once.", value=p.queue_max
    )
    polls = CounterMetricFamily(
        "wbsrun_pollable_polls", "Pollable calls, by call (ready, block).", labels=["call"]
    )
    for call, n in sorted(p.polls.items()):
        polls.add_metric([call], n)
    yield polls
    yield GaugeMetricFamily(
        "wbsrun_pollable_polls_per_second",
        "Pollable calls per second, first to last call.",
        value=p.polls_per_s,
    )
    yield _histogram(
        "wbsrun_pollable_poll_latency_seconds",
        "Host time of one pollable call (ready, block).",
        ["call"],
        [([call], h) for call, h in sorted(p.latency.items())],
    )


def families(s: RunSample) -> Iterator[Metric]:
    """Every family of a sample, in a stable order."""
    info = GaugeMetricFamily("wbsrun_run_info", "The run's plan (always 1).", labels=["plan"])
    info.add_metric([s.name], 1)
    yield info
    yield GaugeMetricFamily(
        "wbsrun_run_finished", "1 once the run has ended, else 0.", value=int(s.finished)
    )
    yield GaugeMetricFamily(
        "wbsrun_run_elapsed_seconds", "Seconds since the run started.", value=s.snapshot.elapsed
    )
    yield GaugeMetricFamily(
        "wbsrun_run_paused",
        "1 while the run is paused (live control), else 0.",
        value=int(s.snapshot.paused),
    )
    yield GaugeMetricFamily(
        "wbsrun_run_paused_seconds",
        "Seconds the run has spent paused (left out of every rate).",
        value=s.snapshot.paused_s,
    )
    yield from _requests(s)
    yield from _actions(s)
    yield from _errors(s)
    yield from _users_tasks(s)
    yield from progress_families(s)
    yield from engine_families(s)
    yield from _pollable(s)
    yield from pmp_families(s)
