"""Families of where the run stands (progress, ETA, health) and of its machinery (workbook,
progress bus, poller, resource pools, log, threshold alerts)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from wbsrun.telemetry.metrics._sample import RunSample
from wbsrun.telemetry.metrics._sched import scheduling_families

__all__ = ["engine_families", "progress_families"]

# The quantile label of a latency the engine reports as quantiles only (ms keys → label).
_QUANTILES = (("p50", "0.5"), ("p99", "0.99"), ("max", "1"))


def _add(fam: GaugeMetricFamily, labels: list[str], value: float | None) -> None:
    if value is not None:
        fam.add_metric(labels, value)


def progress_families(s: RunSample) -> Iterator[Metric]:
    snap, detail = s.snapshot, s.progress
    work = GaugeMetricFamily("wbsrun_progress_work_ratio", "Work done of the planned work.")
    work.add_metric([], snap.work)
    yield work
    timed = GaugeMetricFamily(
        "wbsrun_progress_time_ratio", "Share of the planned time line elapsed."
    )
    _add(timed, [], snap.time)
    yield timed
    weighted = GaugeMetricFamily(
        "wbsrun_progress_milestones_ratio", "Milestones reached, weighted, of those planned."
    )
    _add(weighted, [], detail.milestones_weighted if detail is not None else None)
    yield weighted
    eta = GaugeMetricFamily(
        "wbsrun_eta_seconds",
        "Estimated seconds until the run ends: the forecast (mid) and its ~90 % band.",
        labels=["bound"],
    )
    fc = detail.forecast if detail is not None else None
    _add(eta, ["mid"], snap.eta_s)
    _add(eta, ["low"], fc.eta_low_s if fc is not None else snap.eta_s)
    _add(eta, ["high"], fc.eta_high_s if fc is not None else snap.eta_s)
    yield eta
    miss = GaugeMetricFamily(
        "wbsrun_forecast_miss_plan", "1 when the run is forecast to miss its plan's end."
    )
    miss.add_metric([], 1.0 if fc is not None and fc.will_miss_plan else 0.0)
    yield miss
    final = GaugeMetricFamily(
        "wbsrun_forecast_progress_ratio", "Work expected at the plan's end (the forecast)."
    )
    _add(final, [], fc.final_progress if fc is not None else None)
    yield final
    yield from _health(s)
    yield from _scenarios(s)


def _health(s: RunSample) -> Iterator[Metric]:
    """Health per scenario, the program's under `scenario=""`; the users' summed up."""
    figures = s.health
    score = GaugeMetricFamily(
        "wbsrun_health_score",
        "Health score: progress x 0.6 + (1 - error rate) x 0.3 + (1 - deviation) x 0.1; "
        'the program\'s under scenario="".',
        labels=["scenario"],
    )
    parts = GaugeMetricFamily(
        "wbsrun_health_input_ratio", "The health score's inputs.", labels=["scenario", "input"]
    )
    trend = GaugeMetricFamily(
        "wbsrun_health_trend_per_minute",
        "Health score change per minute (slope over the last 30 s).",
        labels=["scenario"],
    )
    rows = [("", figures.program, figures.trend), *figures.scenarios]
    for name, health, change in rows:
        score.add_metric([name], health.score)
        for key, value in (
            ("progress", health.progress),
            ("error_rate", health.error_rate),
            ("deviation", health.deviation),
        ):
            parts.add_metric([name, key], value)
        _add(trend, [name], change)
    yield from (score, parts, trend)
    users = GaugeMetricFamily(
        "wbsrun_user_health_score",
        "Per-user health scores: minimum (quantile 0), 10th and 50th percentiles.",
        labels=["quantile"],
    )
    mean = GaugeMetricFamily("wbsrun_user_health_mean_score", "Mean per-user health score.")
    u = s.users
    if u is not None and u.count:
        for q, value in (("0", u.min), ("0.1", u.p10), ("0.5", u.p50)):
            users.add_metric([q], value)
        mean.add_metric([], u.mean)
    yield users
    yield mean


def _scenarios(s: RunSample) -> Iterator[Metric]:
    detail = s.progress
    sc_work = GaugeMetricFamily(
        "wbsrun_scenario_work_ratio", "Work done per scenario.", labels=["scenario"]
    )
    sc_time = GaugeMetricFamily(
        "wbsrun_scenario_time_ratio", "Time line elapsed per scenario.", labels=["scenario"]
    )
    sc_ms = GaugeMetricFamily(
        "wbsrun_scenario_milestones_ratio",
        "Weighted milestones reached per scenario.",
        labels=["scenario"],
    )
    sc_eta = GaugeMetricFamily(
        "wbsrun_scenario_eta_seconds", "ETA per scenario.", labels=["scenario"]
    )
    planned = GaugeMetricFamily(
        "wbsrun_scenario_tasks_expected",
        "Passes the scenario's work is measured against (planned, or projected when time-boxed).",
        labels=["scenario"],
    )
    share = GaugeMetricFamily(
        "wbsrun_milestone_ratio",
        "Passes that reached a milestone, of the scenario's expected passes.",
        labels=["scenario", "milestone"],
    )
    reached = CounterMetricFamily(
        "wbsrun_milestone_reached",
        "Passes that reached a milestone.",
        labels=["scenario", "milestone"],
    )
    for sc in detail.scenarios if detail is not None else ():
        label = [sc.name]
        sc_work.add_metric(label, sc.work)
        _add(sc_time, label, sc.time)
        _add(sc_ms, label, sc.milestones_weighted)
        _add(sc_eta, label, sc.eta_s)
        _add(planned, label, sc.expected_tasks)
        for m in sc.milestones:
            share.add_metric([sc.name, m.name], m.share)
            reached.add_metric([sc.name, m.name], m.reached)
    yield from (sc_work, sc_time, sc_ms, sc_eta, planned, share, reached)


def _workbook(w: Mapping[str, int]) -> Iterator[Metric]:
    entries = GaugeMetricFamily(
        "wbsrun_workbook_entries",
        "Workbook entries held in memory (live and kept).",
        value=w["held"],
    )
    yield entries
    closed = CounterMetricFamily(
        "wbsrun_workbook_closed_entries",
        "Closed workbook entries, by fate (kept whole, dropped after folding, written to disk).",
        labels=["fate"],
    )
    for fate in ("kept", "dropped", "written"):
        closed.add_metric([fate], w[fate])
    yield closed
    size = GaugeMetricFamily(
        "wbsrun_workbook_bytes",
        "Workbook bytes: packed (closed entries' compressed blocks in memory), disk (the "
        "on-disk ledger of a full run).",
        labels=["store"],
    )
    size.add_metric(["packed"], w["packed_bytes"])
    if "disk_bytes" in w:
        size.add_metric(["disk"], w["disk_bytes"])
    yield size


def _quantiles(name: str, doc: str, ms: Mapping[str, float]) -> GaugeMetricFamily:
    fam = GaugeMetricFamily(name, doc, labels=["quantile"])
    for key, label in _QUANTILES:
        if key in ms:
            fam.add_metric([label], ms[key] / 1000.0)
    return fam


def _bus(s: RunSample) -> Iterator[Metric]:
    bus = s.bus
    if bus is None:
        return
    yield CounterMetricFamily(
        "wbsrun_bus_published", "Progress updates published.", value=bus.published
    )
    yield CounterMetricFamily(
        "wbsrun_bus_coalesced", "Updates merged into a pending event.", value=bus.coalesced
    )
    yield CounterMetricFamily("wbsrun_bus_events", "Events flushed.", value=bus.events)
    yield CounterMetricFamily(
        "wbsrun_bus_dropped", "Events replaced in a full subscriber queue.", value=bus.dropped
    )
    batches = CounterMetricFamily(
        "wbsrun_bus_batches",
        "Flushes by trigger (events / batches: the mean batch size).",
        labels=["trigger"],
    )
    for trigger, n in sorted(bus.flushes.items()):
        batches.add_metric([trigger], n)
    yield batches
    yield GaugeMetricFamily(
        "wbsrun_bus_batch_size_max", "Largest batch flushed.", value=bus.max_batch
    )
    yield GaugeMetricFamily(
        "wbsrun_bus_pending", "Tasks with updates waiting for the next flush.", value=bus.pending
    )
    yield _quantiles(
        "wbsrun_bus_latency_seconds",
        "Publish to delivery, batched updates (quantile 1: max).",
        bus.latency_ms,
    )


def _poller(s: RunSample) -> Iterator[Metric]:
    p, g = s.poller, s.poller_gauges
    if p is None:
        return
    yield CounterMetricFamily("wbsrun_poller_events", "Bus events taken in.", value=p.events)
    checks = CounterMetricFamily("wbsrun_poller_checks", "Checks run, by kind.", labels=["kind"])
    for kind, n in sorted(p.checks.items()):
        checks.add_metric([kind], n)
    yield checks
    yield _quantiles(
        "wbsrun_poller_latency_seconds",
        "Publish to check (quantile 1: max).",
        p.latency_ms,
    )
    yield GaugeMetricFamily(
        "wbsrun_poller_queue_depth_max", "Most checks queued at once.", value=p.queue_max
    )
    if g is not None:
        yield GaugeMetricFamily("wbsrun_poller_queue_depth", "Checks queued now.", value=g.queue)
        yield GaugeMetricFamily(
            "wbsrun_bus_queue_depth",
            "Events delivered to the poller's subscription, not taken in yet.",
            value=g.inbox,
        )


# (family, type, doc, key in RunSample.resources[pool])
_POOL_GAUGES = (
    ("wbsrun_pool_capacity", "Items a pool may lease at once.", "capacity"),
    ("wbsrun_pool_items", "Items in a pool.", "items"),
    ("wbsrun_pool_items_healthy", "Items in rotation (healthy).", "healthy"),
    ("wbsrun_leases_active", "Leases held now (provider).", "active"),
    ("wbsrun_leases_held", "Leases bound to passes now (lease book).", "book_held"),
)
_POOL_COUNTERS = (
    ("wbsrun_leases_granted", "Leases granted.", "leases"),
    ("wbsrun_leases_released", "Leases returned.", "released"),
    ("wbsrun_leases_expired", "Leases that ran out.", "book_expired"),
    ("wbsrun_leases_renewed", "Lease renewals.", "book_renewed"),
    ("wbsrun_pool_health_checks", "Health probes of a pool's items.", "health_probes"),
    ("wbsrun_pool_health_failures", "Failed health probes.", "health_failures"),
    ("wbsrun_pool_items_failed", "Items taken out of rotation.", "health_items_failed"),
    ("wbsrun_pool_items_recovered", "Items back in rotation.", "health_items_recovered"),
)


def _pools(s: RunSample) -> Iterator[Metric]:
    for name, doc, key in _POOL_GAUGES:
        fam = GaugeMetricFamily(name, doc, labels=["pool"])
        for pool, figures in sorted(s.resources.items()):
            if key in figures:
                fam.add_metric([pool], figures[key])
        yield fam
    for name, doc, key in _POOL_COUNTERS:
        cfam = CounterMetricFamily(name, doc, labels=["pool"])
        for pool, figures in sorted(s.resources.items()):
            cfam.add_metric([pool], figures.get(key, 0))
        yield cfam


def engine_families(s: RunSample) -> Iterator[Metric]:
    yield from _workbook(s.workbook)
    yield from _bus(s)
    yield from _poller(s)
    yield from _pools(s)
    yield from scheduling_families(s.scheduling or {})
    logs = CounterMetricFamily("wbsrun_log_lines", "Scenario log lines by level.", labels=["level"])
    for level, n in sorted(s.logs.items()):
        logs.add_metric([level], n)
    yield logs
    alerts = CounterMetricFamily(
        "wbsrun_threshold_alerts", "Live threshold alerts fired, by rule.", labels=["rule"]
    )
    for rule, n in sorted(s.alerts.items()):
        alerts.add_metric([rule], n)
    yield alerts
    checks = CounterMetricFamily(
        "wbsrun_checks",
        "Evaluations of the actions' checks, by action, check and result (pass, fail).",
        labels=["action", "check", "result"],
    )
    for (action, name), (passes, fails) in sorted(s.checks.items()):
        checks.add_metric([action, name, "pass"], passes)
        checks.add_metric([action, name, "fail"], fails)
    yield checks
