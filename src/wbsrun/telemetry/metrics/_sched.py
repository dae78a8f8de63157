"""`wbsrun_resource_*`: the pools' lease-seconds and their priority scheduling
(resources/sched.py), from a sample's `scheduling` figures (`PoolManager.scheduling_figures`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["scheduling_families"]

# (family, doc, key in the result's scheduling.pools[pool])
_DECISIONS = (
    ("wbsrun_resource_grants", "Items handed to waiters of a priority pool.", "grants"),
    (
        "wbsrun_resource_grants_reordered",
        "Grants not to the longest waiter (first-come-first-served would have chosen another).",
        "reordered",
    ),
    (
        "wbsrun_resource_grants_inherited",
        "Grants to a waiter ranked with a priority inherited from a task it blocks.",
        "inherited",
    ),
    (
        "wbsrun_resource_grants_starvation_guard",
        "Grants forced by the bypass bound (a waiter overtaken 16 times).",
        "starvation_guard",
    ),
    (
        "wbsrun_resource_reallocations",
        "Times a priority pool's capacity shares changed (rounded to items).",
        "reallocations",
    ),
)


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def scheduling_families(figures: Mapping[str, Any]) -> Iterator[Metric]:
    held = CounterMetricFamily(
        "wbsrun_resource_lease_seconds",
        "Seconds a pool's leases were held (given back so far): its utilisation over "
        "capacity × time.",
        labels=["pool"],
    )
    for pool, seconds in sorted(_map(figures.get("lease_s")).items()):
        held.add_metric([pool], float(seconds))
    yield held
    # Without a priority pool the families are served empty (a scrape lists them all).
    sched = _map(figures.get("scheduling"))
    prio = GaugeMetricFamily(
        "wbsrun_resource_priority",
        "A scenario's scheduling priority: business-value × (2 − health).",
        labels=["scenario"],
    )
    for scenario, value in sorted(_map(sched.get("priorities")).items()):
        prio.add_metric([scenario], float(value))
    yield prio
    pools = _map(sched.get("pools"))
    for name, doc, key in _DECISIONS:
        fam = CounterMetricFamily(name, doc, labels=["pool"])
        for pool, p in sorted(pools.items()):
            fam.add_metric([pool], float(_map(p).get(key, 0)))
        yield fam
    for name, doc, key in (
        ("wbsrun_resource_share", "A scenario's share of a priority pool (items).", "shares"),
        (
            "wbsrun_resource_predicted_demand",
            "A scenario's predicted leases of a pool (waiting + holding, 5 s average).",
            "predicted_demand",
        ),
    ):
        gauge = GaugeMetricFamily(name, doc, labels=["pool", "scenario"])
        for pool, p in sorted(pools.items()):
            for scenario, value in sorted(_map(_map(p).get(key)).items()):
                gauge.add_metric([pool, scenario], float(value))
        yield gauge
