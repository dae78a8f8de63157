"""`--scenario NAME`: the plan cut down to the scenarios selected.

The same cut for a plan loaded from YAML and one read from a compiled file (which decodes
only the selected scenarios and their workflows), so both give the same plan."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from types import MappingProxyType

from wbsrun.dsl.plan import Plan, ScenarioSpec, WorkflowSpec
from wbsrun.dsl.thresholds import ThresholdRule
from wbsrun.dsl.wbs import build_wbs
from wbsrun.errors import BundleError

__all__ = ["check_selection", "select_scenarios"]


def check_selection(known: Iterable[str], names: Iterable[str]) -> tuple[str, ...]:
    """The names asked for, each once; BundleError naming the known ones for an unknown one."""
    have = list(known)
    wanted = tuple(dict.fromkeys(names))
    missing = [n for n in wanted if n not in have]
    if missing:
        raise BundleError(
            f"--scenario {missing[0]}: no such scenario; the bundle has: {', '.join(have)}"
        )
    return wanted


def select_scenarios(
    plan: Plan,
    names: Iterable[str],
    workflows: Mapping[str, WorkflowSpec] | None = None,
) -> Plan:
    """`plan` with only the scenarios named (in the bundle's order), the workflows they run,
    the thresholds that are not about another scenario or its milestones, and the WBS of
    what is left. `workflows`: where to find them when `plan` carries none (a compiled
    file read incrementally)."""
    wanted = set(check_selection((s.name for s in plan.scenarios), names))
    scenarios = tuple(s for s in plan.scenarios if s.name in wanted)
    source = plan.workflows if workflows is None else workflows
    used = {s.workflow for s in scenarios}
    kept = MappingProxyType({n: wf for n, wf in source.items() if n in used})
    return replace(
        plan,
        scenarios=scenarios,
        workflows=kept,
        thresholds=_thresholds(plan, scenarios),
        wbs=build_wbs(plan.wbs.name, plan.version, scenarios, kept),
    )


def _thresholds(plan: Plan, kept: tuple[ScenarioSpec, ...]) -> tuple[ThresholdRule, ...]:
    """Validation made every scenario or milestone a rule names one of the bundle's, so a
    name not among those kept is about a scenario left out."""
    names = {s.name for s in kept}
    milestones = {m.name for s in kept for m in s.milestones}

    def about_dropped(rule: ThresholdRule) -> bool:
        family, name = rule.metric.family, rule.metric.name
        if family.startswith("scenarios."):
            return name not in names
        return family == "progress.milestones.share" and name not in milestones

    return tuple(r for r in plan.thresholds if not about_dropped(r))
