"""The report's "PMP mapping" section, from the result's `pmp` key (docs/pmp-mapping.md): the
process groups' progress, the knowledge areas × process groups map with the figure feeding each
used cell, and the stakeholder register. A result without `pmp` has no section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wbsrun.telemetry.html.fmt import cell, esc, figure, table

__all__ = ["pmp"]

_GROUPS = ("initiating", "planning", "executing", "monitoring", "closing")


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _groups(r: Mapping[str, Any]) -> str:
    base = ["pmp", "process_groups"]
    rows = [
        [
            cell(esc(g), "name"),
            cell(figure(r, [*base, g, "progress"], "pct"), "num"),
            cell(figure(r, [*base, g, "done"]), "num"),
            cell(figure(r, [*base, g, "of"]), "num"),
            cell(figure(r, [*base, g, "started_s"], "s"), "num"),
            cell(figure(r, [*base, g, "done_s"], "s"), "num"),
            cell(esc(_map(_map(r["pmp"].get("process_groups")).get(g)).get("counts", ""))),
        ]
        for g in _GROUPS
        if g in _map(r["pmp"].get("process_groups"))
    ]
    head = ["process group", "progress", "done", "of", "began at", "done at", "counts"]
    return table(head, rows, "figures")


def _grid(r: Mapping[str, Any]) -> str:
    areas = _map(r["pmp"].get("knowledge_areas"))
    rows = []
    for area, body in areas.items():
        cells = _map(_map(body).get("cells"))
        row = [cell(f"{esc(area)}<br><small>{esc(_map(body).get('source', ''))}</small>", "name")]
        for g in _GROUPS:
            c = _map(cells.get(g))
            if not c:
                row.append(cell("·", "none"))
                continue
            ids = ", ".join(str(p) for p in c.get("processes", []))
            path = ["pmp", "knowledge_areas", area, "cells", g, "value"]
            row.append(
                cell(
                    f'<span title="PMBOK {esc(ids)}">{esc(c.get("metric", ""))}</span><br>'
                    + figure(r, path),
                    "num",
                )
            )
        rows.append(row)
    return table(["knowledge area", *_GROUPS], rows, "pmp-map")


def _register(r: Mapping[str, Any]) -> str:
    reg = _map(r["pmp"].get("stakeholders"))
    entries = reg.get("entries")
    if not isinstance(entries, list) or not entries:
        return "<p>No stakeholder register entries declared.</p>"
    base = ["pmp", "stakeholders"]
    rows = [
        [
            cell(esc(_map(e).get("name", "")), "name"),
            cell(esc(_map(e).get("role", ""))),
            cell(esc(_map(e).get("interest", ""))),
            cell(esc(_map(e).get("influence", ""))),
            cell(esc(", ".join(str(s) for s in _map(e).get("scenarios", [])))),
            cell(f'<span class="state">{esc(_map(e).get("state", ""))}</span>'),
        ]
        for e in entries
    ]
    summary = (
        f"<p>Identified {figure(r, [*base, 'identified'], 'int')} of "
        f"{figure(r, [*base, 'declared'], 'int')}, engaged {figure(r, [*base, 'engaged'], 'int')}"
        f" · concerns {figure(r, [*base, 'concerns'], 'int')}</p>"
    )
    head = ["stakeholder", "role", "interest", "influence", "scenarios", "state"]
    return summary + table(head, rows, "stakeholders")


def pmp(r: Mapping[str, Any]) -> str:
    if not isinstance(r.get("pmp"), Mapping):
        return ""
    note = (
        "<p>Each used cell of the PMBOK map (10 knowledge areas × 5 process groups, 49 "
        "processes) with the figure that feeds it; · : a cell this scenario does not use or "
        "the map has no process in. See docs/pmp-mapping.md.</p>"
    )
    body = (
        "<h3>Process groups</h3>"
        + _groups(r)
        + "<h3>Knowledge areas × process groups</h3>"
        + note
        + _grid(r)
        + "<h3>Stakeholder register</h3>"
        + _register(r)
    )
    return f'<section id="pmp"><h2>PMP mapping</h2>{body}</section>'
