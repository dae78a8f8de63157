"""The report's "Error impact" and "Scheduling" sections (result keys `impact`, `scheduling`).

As sections.py: a key the result lacks leaves its section out; nothing here raises."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wbsrun.telemetry.html.fmt import DASH, at, cell, esc, figure, table

__all__ = ["impact", "scheduling"]


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _section(id_: str, title: str, body: str) -> str:
    return f'<section id="{esc(id_)}"><h2>{esc(title)}</h2>{body}</section>'


def impact(r: Mapping[str, Any]) -> str:
    """Per error code: the failed passes, the progress and the time they cost."""
    if not isinstance(r.get("impact"), Mapping):
        return ""
    codes = list(_map(at(r, ["impact", "codes"])))
    if not codes:
        return _section("impact", "Error impact", "<p>No pass failed.</p>")
    rows = []
    for code in codes:
        base = ["impact", "codes", code]
        rows.append(
            [
                cell(esc(code)),
                cell(figure(r, [*base, "passes"], "int"), "num"),
                cell(figure(r, [*base, "progress_lost"]), "num"),
                cell(figure(r, [*base, "work_share"], "pct"), "num"),
                cell(figure(r, [*base, "mean_progress_at_failure"], "pct"), "num"),
                cell(figure(r, [*base, "seconds"], "s"), "num"),
                cell(figure(r, [*base, "time_share"], "pct"), "num"),
            ]
        )
    head = [
        "code",
        "passes failed",
        "progress lost (passes)",
        "of the work",
        "progress at failure (mean)",
        "time in them",
        "of all pass time",
    ]
    total = (
        f"<p>Failed passes cost {figure(r, ['impact', 'progress_lost'])} passes of progress "
        f"({figure(r, ['impact', 'work_share'], 'pct')} of the work started) and "
        f"{figure(r, ['impact', 'seconds'], 's')} "
        f"({figure(r, ['impact', 'time_share'], 'pct')} of all pass time).</p>"
    )
    return _section("impact", "Error impact", total + table(head, rows, "figures"))


def scheduling(r: Mapping[str, Any]) -> str:
    """Priorities, and per priority pool how its grants were decided."""
    if not isinstance(r.get("scheduling"), Mapping):
        return ""
    prio = [
        [
            cell(esc(name)),
            cell(figure(r, ["scheduling", "priorities", name]), "num"),
            cell(figure(r, ["scheduling", "health", name]), "num"),
        ]
        for name in _map(at(r, ["scheduling", "priorities"]))
    ]
    keys = ("grants", "reordered", "inherited", "starvation_guard", "reallocations")
    pools = []
    for name in _map(at(r, ["scheduling", "pools"])):
        base = ["scheduling", "pools", name]
        shares = _map(at(r, [*base, "shares"]))
        shown = " · ".join(f"{esc(s)}: {figure(r, [*base, 'shares', s])}" for s in shares)
        pools.append(
            [
                cell(esc(name)),
                *(cell(figure(r, [*base, k], "int"), "num") for k in keys),
                cell(figure(r, [*base, "lease_s"], "s"), "num"),
                cell(shown or DASH),
            ]
        )
    body = table(["scenario", "priority", "health"], prio, "figures") + table(
        ["pool", *keys, "lease-seconds", "shares (items)"], pools, "figures"
    )
    return _section("scheduling", "Scheduling", body)
