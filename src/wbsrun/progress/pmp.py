"""The run read as a PMP project (docs/pmp-mapping.md): the five process groups with their own
progress, the ten knowledge areas over the PMBOK process map, the stakeholder register and the
process-group metrics (`stakeholders-identified`, `wbs-completed`, …).

Pure and sync, and off the hot path: it reads a JSON result (`build_result`, live or final,
one process or the merged figures of `--workers`) and facts of the plan (`PmpPlan`), so the
result's `pmp` key, the `wbsrun_pmp_*` metrics and the report's section are one computation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wbsrun.dsl.plan import Plan, ScenarioSpec
from wbsrun.progress.pmp_map import AREA_SOURCES, CELLS, KNOWLEDGE_AREAS, PROCESS_GROUPS, processes

__all__ = [
    "GroupFigures",
    "PmpPlan",
    "PmpTimeline",
    "Stakeholder",
    "pmp_plan",
    "pmp_section",
    "process_groups",
    "used_cells",
]

STAKEHOLDER_STATES = ("declared", "identified", "engaged")


@dataclass(frozen=True, slots=True)
class Stakeholder:
    """A stakeholder register entry (`user.context.stakeholder.entries`, or the workbook's
    `registers.stakeholder.entries` default, which every scenario carries)."""

    name: str
    role: str
    interest: str
    influence: str
    scenarios: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PmpPlan:
    """What the plan declares that the map reads: counts, and which cells it uses."""

    scenarios: tuple[str, ...]
    milestones: int
    checks: int
    pools: tuple[str, ...]
    health_checked_pools: int
    components: int
    risk_plan: int
    communications: int | None
    stakeholders: tuple[Stakeholder, ...]
    concerns: int

    def uses(self, condition: str) -> bool:
        return {
            "always": True,
            "milestones": self.milestones > 0,
            "checks": self.checks > 0,
            "pools": bool(self.pools),
            "health-checks": self.health_checked_pools > 0,
            "communications": self.communications is not None,
            "risk-plan": self.risk_plan > 0,
            "components": self.components > 0,
            "stakeholders": bool(self.stakeholders),
        }[condition]


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _seq(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _stakeholders(plan: Plan) -> tuple[tuple[Stakeholder, ...], int]:
    shared = _map(_map(plan.workbook.defaults.get("registers")).get("stakeholder"))
    found: dict[str, dict[str, Any]] = {}
    concerns = len(_seq(shared.get("concerns")))
    names = tuple(s.name for s in plan.scenarios)
    for item in _seq(shared.get("entries")):
        _add_entry(found, _map(item), names)
    for sc in plan.scenarios:
        own = _map(sc.context.get("stakeholder"))
        concerns += len(_seq(own.get("concerns")))
        for item in _seq(own.get("entries")):
            _add_entry(found, _map(item), (sc.name,))
    out = tuple(
        Stakeholder(
            name,
            str(e.get("role", "")),
            str(e.get("interest", "")),
            str(e.get("influence", "")),
            tuple(e["scenarios"]),
        )
        for name, e in found.items()
    )
    return out, concerns


def _add_entry(
    found: dict[str, dict[str, Any]], item: Mapping[str, Any], sc: tuple[str, ...]
) -> None:
    name = item.get("name")
    if not isinstance(name, str) or not name:
        return  # the schema requires a name; a scenario built in code may lack one
    entry = found.setdefault(name, {**item, "scenarios": []})
    entry["scenarios"].extend(s for s in sc if s not in entry["scenarios"])


def _checks(plan: Plan) -> int:
    n = len(plan.thresholds)
    for action in plan.actions.values():
        if action.response is not None:
            n += len(action.response.checks)
    return n


def _risk_plan(plan: Plan) -> int:
    spec = plan.progress
    scenarios: tuple[ScenarioSpec, ...] = plan.scenarios
    return (
        len(spec.transient)
        + len(spec.permanent)
        + sum(1 for s in scenarios if s.health_threshold is not None)
        + sum(len(s.exits) for s in scenarios)
    )


def pmp_plan(plan: Plan) -> PmpPlan:
    """The plan's facts the map reads (O(scenarios + actions): once a run or a scrape)."""
    inherited = tuple(dict.fromkeys(p for s in plan.scenarios for p in s.inherit))
    checked = sum(
        1 for p in inherited if p in plan.resources and plan.resources[p].health_check is not None
    )
    comms = plan.workbook.defaults.get("communications")
    declared = "communications" in plan.workbook.process_groups or comms is not None
    stakeholders, concerns = _stakeholders(plan)
    return PmpPlan(
        scenarios=tuple(s.name for s in plan.scenarios),
        milestones=len({m.name for s in plan.scenarios for m in s.milestones}),
        checks=_checks(plan),
        pools=inherited,
        health_checked_pools=checked,
        components=len(plan.components),
        risk_plan=_risk_plan(plan),
        communications=len(_map(comms)) if declared else None,
        stakeholders=stakeholders,
        concerns=concerns,
    )


def used_cells(plan: PmpPlan) -> list[tuple[str, str]]:
    """The (area, group) cells this plan uses, in map order."""
    return [(area, group) for area, group, _, cond in CELLS if plan.uses(cond)]


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: object) -> int:
    n = _num(value)
    return int(n) if n is not None else 0


def _ratio(done: float, of: float | None) -> float | None:
    if of is None or of <= 0:
        return None
    return max(0.0, min(1.0, done / of))


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


_CLOSED = ("succeeded", "failed", "timed_out", "rolled_back", "interrupted")


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """What the process groups are computed from: a result's figures, or (per tick) the
    progress snapshot's (`progress.report.group_figures`)."""

    users_started: int
    users_planned: float | None
    tasks_started: int
    tasks_closed: int
    planned_tasks: float | None
    expected_tasks: float | None
    work: float
    time: float | None

    @classmethod
    def of_result(cls, r: Mapping[str, Any]) -> GroupFigures:
        users, tasks, prog = _map(r.get("users")), _map(r.get("tasks")), _map(r.get("progress"))
        return cls(
            users_started=_int(users.get("started")),
            users_planned=_num(users.get("planned")),
            tasks_started=_int(tasks.get("started")),
            tasks_closed=sum(_int(tasks.get(k)) for k in _CLOSED),
            planned_tasks=_num(prog.get("planned_tasks")),
            expected_tasks=_num(prog.get("expected_tasks")),
            work=_num(prog.get("work")) or 0.0,
            time=_num(prog.get("time")),
        )


def process_groups(f: GroupFigures, finished: bool) -> dict[str, dict[str, Any]]:
    """Each process group's progress, what it counts and of what (docs/pmp-mapping.md)."""
    expected = f.planned_tasks if f.expected_tasks is None else f.expected_tasks
    if finished and f.planned_tasks is None:
        # A time-boxed plan projects its passes while it runs; once ended, they are those run.
        expected = float(f.tasks_started)
    watched = f.time if f.time is not None else f.work
    u_started, u_planned, started, closed = (
        f.users_started,
        f.users_planned,
        f.tasks_started,
        f.tasks_closed,
    )
    rows: list[tuple[str, float | None, float, float | None, str]] = [
        ("initiating", _ratio(u_started, u_planned), u_started, u_planned, "users started"),
        ("planning", _ratio(started, expected), started, expected, "passes planned (started)"),
        ("executing", f.work, f.work, 1.0, "work done (WBS completion)"),
        ("monitoring", watched, watched, 1.0, "planned time line monitored"),
        ("closing", _ratio(closed, expected), closed, expected, "passes closed"),
    ]
    out: dict[str, dict[str, Any]] = {}
    for name, p, done, of, what in rows:
        if p is None:  # nothing planned: done when the run is, else not begun
            p = 1.0 if finished else 0.0
        out[name] = {"progress": _r(p), "done": _r(done), "of": _r(of), "counts": what}
    return out


class PmpTimeline:
    """When each process group began (progress above 0) and was done (progress 1), in
    seconds of the run: fed every tick of the run's series ticker and at every result. A
    group that falls back under 1 (a time-boxed projection that grew) is done again later."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.done: dict[str, float] = {}

    def observe(self, groups: Mapping[str, Mapping[str, Any]], t: float) -> None:
        for name, g in groups.items():
            p = _num(g.get("progress")) or 0.0
            if p > 0.0:
                self.started.setdefault(name, t)
            if p >= 1.0:
                self.done.setdefault(name, t)
            else:
                self.done.pop(name, None)

    def annotate(self, groups: dict[str, dict[str, Any]]) -> None:
        for name, g in groups.items():
            began, done = self.started.get(name), self.done.get(name)
            g["started_s"] = None if began is None else round(began, 3)
            g["done_s"] = None if done is None else round(done, 3)


def _states(r: Mapping[str, Any], plan: PmpPlan) -> list[dict[str, Any]]:
    """Each stakeholder's state: `identified` once a user carrying it has started, `engaged`
    once one of its passes has closed (per scenario, from the aggregator's figures)."""
    per = _map(_map(r.get("progress")).get("scenarios"))
    out = []
    for s in plan.stakeholders:
        seen = closed = 0
        for name in s.scenarios:
            sc = _map(per.get(name))
            seen += _int(_map(sc.get("users")).get("seen"))
            closed += _int(_map(sc.get("tasks")).get("closed"))
        if not per:  # no per-scenario figures: the program's
            seen = _int(_map(r.get("users")).get("started"))
            closed = _int(_map(_map(r.get("progress")).get("tasks")).get("closed"))
        state = "engaged" if closed else "identified" if seen else "declared"
        out.append(
            {
                "name": s.name,
                "role": s.role,
                "interest": s.interest,
                "influence": s.influence,
                "scenarios": list(s.scenarios),
                "state": state,
            }
        )
    return out


def _resource_sums(r: Mapping[str, Any], pools: tuple[str, ...]) -> dict[str, int]:
    res = _map(r.get("resources"))
    keys = ("capacity", "leases", "released", "expired", "health_checks")
    return {k: sum(_int(_map(res.get(p)).get(k)) for p in pools) for k in keys}


def _metrics(
    r: Mapping[str, Any],
    plan: PmpPlan,
    groups: Mapping[str, Mapping[str, Any]],
    register: list[dict[str, Any]],
) -> dict[str, float | None]:
    """Every metric a cell or the guide names; None: no data yet (never a made-up figure)."""
    tasks, prog, req = _map(r.get("tasks")), _map(r.get("progress")), _map(r.get("requests"))
    closed = sum(_int(tasks.get(k)) for k in _CLOSED)
    total = _int(req.get("total"))
    poller = _map(_map(r.get("engine")).get("poller"))
    logs = _map(r.get("logs"))
    res = _resource_sums(r, plan.pools)
    engaged = sum(1 for s in register if s["state"] == "engaged")
    identified = sum(1 for s in register if s["state"] != "declared")
    weighted, time = _num(prog.get("milestones_weighted")), _num(prog.get("time"))
    work = _num(prog.get("work")) or 0.0
    m: dict[str, float | None] = {f"{g}-progress": groups[g]["progress"] for g in PROCESS_GROUPS}
    m.update(
        {
            "health-score": _num(_map(r.get("health")).get("score")),
            "wbs-planned": groups["closing"]["of"],
            "wbs-completed": work,
            "milestones-planned": float(plan.milestones),
            "schedule-progress": weighted
            if weighted is not None
            else time
            if time is not None
            else work,
            "schedule-variance": None if time is None else work - time,
            "users-planned": _num(_map(r.get("users")).get("planned")),
            "requests-sent": float(total),
            "requests-per-pass": total / closed if closed else None,
            "checks-planned": float(plan.checks),
            "passes-succeeded": _ratio(_int(tasks.get("succeeded")), closed),
            "error-rate": _int(req.get("failed")) / total if total else 0.0,
            "pools-planned": float(len(plan.pools)),
            "leases-acquired": float(res["leases"]),
            "leases-released": _ratio(res["released"], res["leases"]),
            "leases-expired": float(res["expired"]),
            "communications-planned": _num(plan.communications),
            "log-lines": float(sum(_int(v) for v in logs.values())) if logs else 0.0,
            "log-warnings": float(_int(logs.get("warn")) + _int(logs.get("error"))),
            "risk-responses-planned": float(plan.risk_plan),
            "risk-responses": float(
                _int(tasks.get("rollbacks")) + sum(_int(v) for v in _map(r.get("exits")).values())
            ),
            "risks-identified": (
                float(_int(poller.get("identified")) + _int(poller.get("escalations")))
                if poller
                else None
            ),
            "risks-escalated": float(_int(poller.get("escalations"))) if poller else None,
            "plugins-planned": float(plan.components),
            "pool-capacity": float(res["capacity"]),
            "pool-health-checks": float(res["health_checks"]),
            "stakeholders-planned": float(len(plan.stakeholders)),
            "stakeholders-identified": float(identified),
            "stakeholders-engaged": float(engaged),
            "stakeholders-engaged-ratio": _ratio(engaged, len(plan.stakeholders)),
            "stakeholder-concerns": float(plan.concerns),
        }
    )
    return {k: _r(v) for k, v in m.items()}


def _areas(plan: PmpPlan, metrics: Mapping[str, float | None]) -> dict[str, dict[str, Any]]:
    areas: dict[str, dict[str, Any]] = {
        a: {"source": AREA_SOURCES[a], "cells": {}} for a in KNOWLEDGE_AREAS
    }
    for area, group, metric, cond in CELLS:
        if plan.uses(cond):
            areas[area]["cells"][group] = {
                "processes": processes(area, group),
                "metric": metric,
                "value": metrics.get(metric),
            }
    return areas


def pmp_section(
    result: Mapping[str, Any],
    plan: PmpPlan,
    *,
    finished: bool,
    timeline: PmpTimeline | None = None,
) -> dict[str, Any]:
    """The result's `pmp` object (result-schema.json) from a result without it; `finished`:
    the run has ended (a live result's status says `completed` while it runs); `timeline`:
    the run's, fed with these groups at the result's `duration_s`, adds when each began and
    was done."""
    groups = process_groups(GroupFigures.of_result(result), finished)
    if timeline is not None:
        timeline.observe(groups, _num(result.get("duration_s")) or 0.0)
        timeline.annotate(groups)
    register = _states(result, plan)
    metrics = _metrics(result, plan, groups, register)
    counts = {
        state: sum(1 for s in register if s["state"] == state) for state in STAKEHOLDER_STATES
    }
    return {
        "process_groups": groups,
        "knowledge_areas": _areas(plan, metrics),
        "stakeholders": {
            "declared": len(register),
            # identified counts the engaged too: an engaged stakeholder was identified first.
            "identified": counts["identified"] + counts["engaged"],
            "engaged": counts["engaged"],
            "concerns": plan.concerns,
            "entries": register,
        },
        "metrics": metrics,
    }
