"""Transition conditions as a state machine (issue 22 item 7): a node's guards choose exactly
the transition the expressions would, for any values in the workbook and the variable stores,
and hand over to the expressions (`EVALUATE`) whenever those would fail or say why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from wbsrun.core.guards import EVALUATE, NONE, guard_for, machine_for
from wbsrun.core.handles import UserHandle
from wbsrun.core.ledger import open_workbook
from wbsrun.core.log import RunLog
from wbsrun.core.persist import PersistBuffer
from wbsrun.core.scope import scope_of
from wbsrun.core.stats import RunStats
from wbsrun.core.task import RunContext, Task, UserState
from wbsrun.dsl.expr import ExprError, compile_expr
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import Plan, Transition
from wbsrun.protocols.registry import provides

EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "examples" / "http_tri_phase"
_PLAN = load_plan(EXAMPLE, provides())

PHASES = ["planning.ready", "monitoring.timeout", "monitoring.error_detected", "closing.success"]
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.floats(allow_nan=True, allow_infinity=False, width=32),
    st.sampled_from(["ok", "200", "monitoring.timeout", "x"]),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from(["status", "k"]), st.integers(0, 300), max_size=2),
)
literals = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.sampled_from(["'ok'", "'200'", "'monitoring.timeout'", "1.5", "-2", "true", "null"]),
)
paths = st.sampled_from(
    [
        "workbook.state",
        "workbook.risk_flag",
        "workbook.retry_left",
        "workbook.metrics.success",
        "workbook.execution.last_action",
        "workbook.telemetry.counters.failure",
        "workbook.missing_alias",
        "asset.status",
        "asset",
        "asset['k']",
        "token",
        "env.phase",
        "missing.name",
    ]
)
ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])


def _task(plan: Plan, model: str) -> Task:
    book = open_workbook(plan.workbook, "dense" if model == "dense" else "sparse")
    stats = RunStats()
    run = RunContext(plan, book, stats, {}, None, RunLog(None), PersistBuffer(stats=stats))
    scenario = plan.scenarios[0]
    user = UserState(UserHandle("u1", scenario.name, False), 0)
    entry = book.open("u1", "t1", scenario.name)
    return Task(run, scenario, plan.workflows[scenario.workflow], user, entry, 0)


def _expected(task: Task, transitions: tuple[Transition, ...]) -> int | str:
    """What the executor's expression loop takes: an index, NONE, or 'error'."""
    fallback = NONE
    for i, t in enumerate(transitions):
        if t.kind == "always":
            return i
        if t.kind == "otherwise":
            fallback = i if fallback == NONE else fallback
            continue
        assert t.condition is not None
        try:
            if t.condition.evaluate(scope_of(task)):
                return i
        except ExprError:
            return "error"
    return fallback


def _transitions(conditions: list[str]) -> tuple[Transition, ...]:
    out = []
    for i, c in enumerate(conditions):
        if c in ("always", "otherwise"):
            out.append(Transition(f"e{i}", "n", c, None))  # type: ignore[arg-type]
        else:
            out.append(Transition(f"e{i}", "n", "expr", compile_expr(c)))
    return tuple(out)


conditions = st.one_of(
    st.builds(lambda p, o, lit: f"{p} {o} {lit}", paths, ops, literals),
    st.just("always"),
    st.just("otherwise"),
)


@pytest.mark.parametrize("model", ["dense", "sparse"])
@given(
    conds=st.lists(conditions, min_size=1, max_size=4),
    phase=st.sampled_from(PHASES),
    asset=values,
    token=values,
    risk=values,
    where=st.sampled_from(["task", "entry", "user", "global", "nowhere"]),
)
@example(
    conds=["workbook.state == 'monitoring.timeout'", "workbook.state == 'planning.ready'"],
    phase="planning.ready",
    asset=None,
    token=None,
    risk=None,
    where="task",
)
@example(
    conds=["asset.status == 200", "otherwise"],
    phase="planning.ready",
    asset={"status": 200},
    token=None,
    risk=None,
    where="entry",
)
def test_the_machine_takes_the_transition_the_expressions_take(
    model: str, conds: list[str], phase: str, asset: Any, token: Any, risk: Any, where: str
) -> None:
    task = _task(_PLAN, model)
    task.run.workbook.transition(task.entry, "initiating.idle", phase, 1.0, "t")
    task.run.workbook.set(task.entry, "risk_flag", risk)
    stores = {
        "task": task.vars,
        "entry": task.entry.vars,
        "user": task.user.vars,
        "global": task.run.global_vars,
        "nowhere": {},
    }
    stores[where]["asset"] = asset
    task.user.vars["token"] = token
    transitions = _transitions(conds)
    expected = _expected(task, transitions)
    machine = machine_for(transitions, _PLAN.workbook)
    if machine is None:
        return  # a condition without a guard: the executor evaluates them all, as before
    got = machine.choose(task)
    if got == EVALUATE:
        return  # handed over: the expressions answer (`expected`), as before
    assert got == expected


def test_guards_cover_the_reference_conditions_and_leave_the_rest_to_expressions() -> None:
    spec = _PLAN.workbook
    assert guard_for(compile_expr("workbook.state == 'monitoring.timeout'").shape, spec)
    assert guard_for(compile_expr("asset.status == 200").shape, spec)
    assert guard_for(compile_expr("workbook.telemetry.counters.success >= 3").shape, spec)
    for text in ("env.phase == 'x'", "global.x == 1", "a == b", "a in [1]", "len(a) == 1"):
        assert guard_for(compile_expr(text).shape, spec) is None, text


def test_one_read_and_a_table_choose_among_many_equalities() -> None:
    conds = [f"workbook.state == '{p}'" for p in PHASES] + ["otherwise"]
    machine = machine_for(_transitions(conds), _PLAN.workbook)
    assert machine is not None
    assert machine.table is not None
    task = _task(_PLAN, "sparse")
    for i, phase in enumerate(PHASES):
        task.run.workbook.transition(task.entry, "x", phase, 1.0, "t")
        assert machine.choose(task) == i
    task.run.workbook.transition(task.entry, "x", "executing.other", 1.0, "t")
    assert machine.choose(task) == len(PHASES)  # the otherwise


def test_a_compiled_plan_keeps_the_shapes_its_machines_are_built_from(tmp_path: Path) -> None:
    """A `.wbsc` file's conditions are compiled on first use; their shapes travel with them,
    so a run from the file chooses its transitions by the same machines as from the YAML."""
    from wbsrun.dsl.binary import compile_bundle, load_compiled

    _, data = compile_bundle(EXAMPLE, provides())
    (tmp_path / "plan.wbsc").write_bytes(data)
    loaded = load_compiled(tmp_path / "plan.wbsc", provides()).plan
    for name, wf in _PLAN.workflows.items():
        for node_id, node in wf.nodes.items():
            again = loaded.workflows[name].nodes[node_id]
            shapes = [t.condition.shape for t in node.transitions if t.condition is not None]
            assert [t.condition.shape for t in again.transitions if t.condition] == shapes
            built = machine_for(node.transitions, _PLAN.workbook) is not None
            assert (machine_for(again.transitions, loaded.workbook) is not None) == built
    assert any(
        machine_for(n.transitions, loaded.workbook)
        for wf in loaded.workflows.values()
        for n in wf.nodes.values()
    )
