"""The WBS: L0 program → L1 portfolio → L2 scenario → L3 workflow → L4 task → L5 action."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from wbsrun.dsl.plan import ScenarioSpec, WbsNode, WorkflowSpec
from wbsrun.dsl.units import format_duration

__all__ = ["build_wbs", "portfolio_of", "render_wbs"]

# Components that serve a workflow without being its protocol domain.
_SUPPORT = frozenset({"logger", "resource-manager"})


def portfolio_of(wf: WorkflowSpec) -> str:
    """The protocol domain of a workflow: its most used non-support component."""
    counts = Counter(
        n.action.component
        for n in wf.nodes.values()
        if n.action is not None and n.action.component not in _SUPPORT
    )
    if not counts:
        return "native"
    return counts.most_common(1)[0][0]


def _passes(s: ScenarioSpec) -> str:
    """The passes the scenario plans, as the scheduler runs them (docs/dsl.md "Load model")."""
    p = s.profile
    if p is not None and p.arrival:
        n = p.planned_iterations()
        return (
            f"{n} planned pass(es) in all, on an arrival schedule over {format_duration(p.window)}"
        )
    if s.iterations is not None:
        return f"{s.iterations} pass(es) each"
    if s.task_duration is not None:
        return f"passes for {format_duration(s.task_duration)} each"
    if p is not None and p.window > 0 and p.kind != "phases":
        return f"repeated passes for the profile's {format_duration(p.window)} (time-boxed)"
    return "1 pass each (repeated passes for --duration when given)"


def _workflow_node(wf: WorkflowSpec, s: ScenarioSpec) -> WbsNode:
    actions = tuple(
        WbsNode(
            level=5,
            kind="action",
            name=n.id,
            detail=f"{n.action.name} ({n.action.component}.{n.action.call})",
        )
        for n in sorted(wf.nodes.values(), key=lambda n: n.index)
        if n.action is not None
    )
    users = s.profile.peak_users if s.profile else s.user_count
    if s.profile is not None and s.profile.arrival:
        users_text = f"up to {users} user(s)"
    else:
        users_text = f"{users} user(s)"
    task = WbsNode(
        level=4,
        kind="task",
        name=f"{s.name}/task",
        detail=f"one per user × pass: {users_text}, {_passes(s)}",
        children=actions,
    )
    timeout = f", pass timeout {format_duration(wf.timeout)}" if wf.timeout else ""
    return WbsNode(
        level=3,
        kind="workflow",
        name=wf.name,
        detail=f"{len(wf.nodes)} nodes{timeout}",
        children=(task,),
    )


def build_wbs(
    name: str,
    version: str,
    scenarios: Iterable[ScenarioSpec],
    workflows: Mapping[str, WorkflowSpec],
) -> WbsNode:
    by_domain: dict[str, list[WbsNode]] = {}
    for s in scenarios:
        wf = workflows.get(s.workflow)
        if wf is None:
            continue
        scenario = WbsNode(
            level=2,
            kind="scenario",
            name=s.name,
            detail=f"workflow {wf.name}",
            children=(_workflow_node(wf, s),),
        )
        by_domain.setdefault(portfolio_of(wf), []).append(scenario)
    portfolios = tuple(
        WbsNode(level=1, kind="portfolio", name=domain, children=tuple(children))
        for domain, children in sorted(by_domain.items())
    )
    return WbsNode(
        level=0, kind="program", name=name, detail=f"version {version}", children=portfolios
    )


def render_wbs(root: WbsNode) -> str:
    """Plain-text tree, one line per element, prefixed by its WBS level."""
    lines: list[str] = []

    def walk(node: WbsNode, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        detail = f"  — {node.detail}" if node.detail else ""
        lines.append(f"{prefix}{branch}L{node.level} {node.kind} {node.name}{detail}")
        child_prefix = prefix if top else prefix + ("    " if last else "│   ")
        for i, child in enumerate(node.children):
            walk(child, child_prefix, i == len(node.children) - 1, False)

    walk(root, "", True, True)
    return "\n".join(lines)
