"""What choosing a transition costs: the expressions over a scope against the state machine.

    .venv/bin/python bench/guards.py            # compiled build (make compiled); --reps N

The reference scenario's conditional nodes, as the executor meets them (issue 22 item 7): a
probe node (`{{asset.status == 200}}` / `!= 200`, a saved HTTP result) and the checkpoint
node (`{{workbook.state == 'monitoring.timeout'}}` / `'monitoring.error_detected'` /
otherwise), plus a node of eight equalities on the phase (the table's case). Each decision is
timed both ways on a real task of the reference plan, on the sparse workbook, interleaved;
the figure is ns a decision, the median of the repetitions, and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from wbsrun.core.guards import EVALUATE, machine_for
from wbsrun.core.handles import UserHandle
from wbsrun.core.ledger import open_workbook
from wbsrun.core.log import RunLog
from wbsrun.core.persist import PersistBuffer
from wbsrun.core.scope import scope_of
from wbsrun.core.stats import RunStats
from wbsrun.core.task import RunContext, Task, UserState
from wbsrun.dsl.expr import compile_expr
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import Transition
from wbsrun.protocols.registry import provides

REFERENCE = Path(__file__).resolve().parents[1] / "src" / "wbsrun" / "examples" / "http_tri_phase"
PHASES = [
    "planning.ready",
    "executing.running_action",
    "executing.throttled",
    "monitoring.timeout",
    "monitoring.error_detected",
    "monitoring.escalated",
    "closing.success",
    "closing.error",
]


def _transitions(conditions: list[str]) -> tuple[Transition, ...]:
    out = []
    for i, c in enumerate(conditions):
        if c == "otherwise":
            out.append(Transition(f"e{i}", "n", "otherwise", None))
        else:
            out.append(Transition(f"e{i}", "n", "expr", compile_expr(c)))
    return tuple(out)


NODES = {
    "probe (asset.status == 200)": ["asset.status == 200", "asset.status != 200"],
    "checkpoint (workbook.state, 2 + otherwise)": [
        "workbook.state == 'monitoring.timeout'",
        "workbook.state == 'monitoring.error_detected'",
        "otherwise",
    ],
    "8 phases (table)": [f"workbook.state == '{p}'" for p in PHASES] + ["otherwise"],
}


def _task() -> Task:
    plan = load_plan(REFERENCE, provides())
    book = open_workbook(plan.workbook, "sparse")
    stats = RunStats()
    run = RunContext(plan, book, stats, {}, None, RunLog(None), PersistBuffer(stats=stats))
    scenario = plan.scenarios[0]
    user = UserState(UserHandle("u1", scenario.name, False), 0)
    entry = book.open("u1", "t1", scenario.name)
    task = Task(run, scenario, plan.workflows[scenario.workflow], user, entry, 0)
    book.transition(entry, "initiating.idle", "closing.error", 1.0, "t")
    # A saved HTTP result is a Mapping; a dict reads the same way through both paths.
    task.entry.vars["asset"] = {"status": 200, "body": "x"}
    return task


def _by_expressions(task: Task, transitions: tuple[Transition, ...], n: int) -> float:
    scope = scope_of(task)  # built once a pass anyway (the action's templates use it)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        for t in transitions:
            if t.kind == "otherwise":
                continue
            assert t.condition is not None
            if t.condition.evaluate(scope):
                break
    return (time.perf_counter_ns() - t0) / n


def _by_machine(task: Task, transitions: tuple[Transition, ...], n: int) -> float:
    machine = machine_for(transitions, task.run.plan.workbook)
    assert machine is not None
    assert machine.choose(task) != EVALUATE
    t0 = time.perf_counter_ns()
    for _ in range(n):
        machine.choose(task)
    return (time.perf_counter_ns() - t0) / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--n", type=int, default=200_000)
    args = ap.parse_args(argv)
    import wbsrun.core.guards as g

    build = "compiled" if g.__file__ and g.__file__.endswith(".so") else "pure"
    task = _task()
    print(f"build: {build}; ns a decision, median of {args.reps} (interleaved)")
    for name, conds in NODES.items():
        trans = _transitions(conds)
        got: dict[str, list[float]] = {"expressions": [], "machine": []}
        for _ in range(args.reps):
            got["expressions"].append(_by_expressions(task, trans, args.n))
            got["machine"].append(_by_machine(task, trans, args.n))
        e, m = statistics.median(got["expressions"]), statistics.median(got["machine"])
        print(f"{name:45s} expressions {e:7.1f}  machine {m:7.1f}  ratio {e / m:5.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
