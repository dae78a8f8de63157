"""Warn where `monitoring.retry` can never fire: every pass that reaches it has no budget."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from wbsrun.dsl.plan import ScenarioSpec, WorkbookSpec, WorkflowSpec
from wbsrun.dsl.source import PathKey, SourceDoc, iter_paths
from wbsrun.errors import Diagnostic

__all__ = ["BUDGET_PATH", "check_retry_budgets", "initial_budget"]

BUDGET_PATH: Final = "execution.retry_budget"
RETRY: Final = "monitoring.retry"
_HANDLERS: Final = ("on-error", "on-timeout")
# Where a scenario names monitoring.retry, relative to its workflow ("*": any key or index).
_NODE_SITES: Final = (
    *(("controls", "exec", key, "*", "goto") for key in _HANDLERS),
    *(("controls", key, "*", "goto") for key in _HANDLERS),
    *(("controls", part, "transitions", "*", "to") for part in ("exec", "flow")),
)
_WORKFLOW_SITES: Final = (
    *(("controls", key, "*", "goto") for key in _HANDLERS),
    *((key, "*", "goto") for key in _HANDLERS),
)


def initial_budget(workbook: WorkbookSpec, scenario: ScenarioSpec) -> Any:
    """The retry budget each pass of `scenario` starts with: its user.context, else the
    workbook's execution default, else 0."""
    value: Any = workbook.defaults.get("execution", {}).get("retry_budget", 0)
    for key, given in scenario.context.items():
        if workbook.context_path(key) == BUDGET_PATH:
            value = given
    return value


def _spendable(budget: Any) -> bool:
    return isinstance(budget, int) and not isinstance(budget, bool) and budget > 0


def _writes_budget(data: Any, workbook: WorkbookSpec) -> bool:
    """Whether any update-workbook step sets the budget (then it may be above 0 at run time)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            update = item.get("update-workbook")
            if isinstance(update, Mapping) and any(
                workbook.resolve(str(k)) == BUDGET_PATH for k in update
            ):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _sites(doc: SourceDoc, wf: WorkflowSpec, reachable: Iterable[str]) -> Iterator[PathKey]:
    base = ("workflows", wf.name)
    live = {node.index for node in wf.nodes.values() if node.id in set(reachable)}
    for pattern in _WORKFLOW_SITES:
        for path, value in iter_paths(doc.data, (*base, *pattern)):
            if value == RETRY:
                yield path
    for pattern in _NODE_SITES:
        for path, value in iter_paths(doc.data, (*base, "nodes", "*", *pattern)):
            if value == RETRY and path[3] in live:
                yield path


def check_retry_budgets(
    doc: SourceDoc,
    workbook: WorkbookSpec,
    workflows: Mapping[str, WorkflowSpec],
    scenarios: Iterable[ScenarioSpec],
    reachable: Mapping[str, frozenset[str]],
) -> list[Diagnostic]:
    """A warning at each reachable `monitoring.retry` that no pass can spend a budget on."""
    if _writes_budget(doc.data, workbook):
        return []
    out: list[Diagnostic] = []
    for wf in workflows.values():
        runs = [s for s in scenarios if s.workflow == wf.name]
        empty = [(s.name, initial_budget(workbook, s)) for s in runs]
        empty = [(name, budget) for name, budget in empty if not _spendable(budget)]
        if not runs or len(empty) < len(runs):
            continue  # no scenario runs it, or one has retries to spend
        names = ", ".join(f"'{name}'" for name, _ in empty)
        budget = empty[0][1]
        for path in _sites(doc, wf, reachable.get(wf.name, frozenset(wf.nodes))):
            which = "scenario" if len(empty) == 1 else "scenarios"
            default = " (the default)" if budget == 0 else ""
            message = (
                f"monitoring.retry can never fire: every pass of {which} {names} starts with "
                f"execution.retry_budget {budget!r}{default}"
            )
            out.append(
                doc.diag(
                    path,
                    "retry-never-fires",
                    message,
                    value=budget,
                    expected="execution.retry_budget above 0",
                    severity="warning",
                    hint="set user.context: {retry_budget: N} on the scenario, or "
                    "retry_budget in the workbook's execution defaults",
                )
            )
    return out
