"""The PMP map's families (`wbsrun_pmp_*`, docs/observability.md): the result's `pmp` object
(progress/pmp.py) as gauges. Labels are bounded: the five groups, the ten areas, the map's
metric names and the three stakeholder states, all fixed by wbsrun."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from wbsrun.telemetry.metrics._sample import RunSample

__all__ = ["pmp_families"]


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def pmp_families(s: RunSample) -> Iterator[Metric]:
    """No `pmp` in the sample (sources without it): no families."""
    if s.pmp is None:
        return
    pmp = s.pmp
    groups = GaugeMetricFamily(
        "wbsrun_pmp_process_group_progress_ratio",
        "Progress of each PMP process group (docs/pmp-mapping.md).",
        labels=["group"],
    )
    for name, g in _map(pmp.get("process_groups")).items():
        value = _num(_map(g).get("progress"))
        if value is not None:
            groups.add_metric([name], value)
    yield groups
    cells = GaugeMetricFamily(
        "wbsrun_pmp_cell",
        "The figure feeding each used cell of the PMP map (knowledge area x process group).",
        labels=["area", "group", "metric"],
    )
    for area, body in _map(pmp.get("knowledge_areas")).items():
        for group, cell in _map(_map(body).get("cells")).items():
            value = _num(_map(cell).get("value"))
            if value is not None:  # not fed yet: no sample rather than a made-up one
                cells.add_metric([area, group, str(_map(cell).get("metric"))], value)
    yield cells
    metrics = GaugeMetricFamily(
        "wbsrun_pmp_metric",
        "The PMP process-group metrics (stakeholders-identified, wbs-completed, ...).",
        labels=["metric"],
    )
    for name, raw in _map(pmp.get("metrics")).items():
        value = _num(raw)
        if value is not None:
            metrics.add_metric([name], value)
    yield metrics
    register = _map(pmp.get("stakeholders"))
    people = GaugeMetricFamily(
        "wbsrun_pmp_stakeholders",
        "Stakeholder register entries: declared, and those identified and engaged.",
        labels=["state"],
    )
    for state in ("declared", "identified", "engaged"):
        people.add_metric([state], _num(register.get(state)) or 0.0)
    yield people
