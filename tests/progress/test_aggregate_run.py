"""The aggregator on real runs against the embedded target: its milestone and work figures
agree with the run's own counts, the result carries them and matches its schema, and the live
line shows them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scenario_kit import Doc, document, end, http, log, on, write_bundle
from wbsrun.core.log import RunLog
from wbsrun.core.runner import Runner, RunOptions
from wbsrun.dsl.loader import load_plan
from wbsrun.progress.aggregate import AggregatingSink
from wbsrun.progress.report import build_result, progress_snapshot
from wbsrun.protocols.registry import build_components, provides
from wbsrun.resources.pool import PoolManager
from wbsrun.target import TargetProcess
from wbsrun.telemetry.console import format_live

SCHEMA = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json"
WEIGHTS = {"fetched": 1.0, "noted": 3.0}


def watched_run(
    tmp_path: Path,
    doc: Doc,
    items: Sequence[tuple[str, int]],
    options: RunOptions | None = None,
    during: Callable[[Runner, AggregatingSink], Coroutine[Any, Any, None]] | None = None,
) -> tuple[Runner, AggregatingSink, dict[str, Any]]:
    """scenario_kit.run with the aggregating sink as the runner's progress port."""
    bundle = write_bundle(tmp_path, doc, items)
    plan = load_plan(bundle, provides())
    pools = PoolManager(plan)
    run_log = RunLog()
    sink = AggregatingSink.for_run(plan, options)
    runner = Runner(plan, build_components(plan, run_log), pools, run_log, options, events=sink)

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(runner.run())
            if during is not None:
                tg.create_task(during(runner, sink))

    asyncio.run(main())
    result = build_result(runner, pools.statistics(), run_log.counts, sink.aggregator)
    jsonschema.validate(result, json.loads(SCHEMA.read_text()))
    return runner, sink, result


def two_milestone_doc(users: int, **scenario: Any) -> Doc:
    """fetch (milestone `fetched`, weight 1) → note; even passes leave `note` by `even`
    (milestone `noted`, weight 3) and succeed, odd ones end in closing.error."""
    flow = {
        "type": "graph",
        "controls": {"timeout": "5s", "on-error": [{"goto": "error_out"}]},
        "nodes": [
            {
                "id": "fetch",
                "type": "action",
                "action": "fetch",
                "controls": {"exec": {"transitions": [{"edge": "ok", "to": "note"}]}},
            },
            {
                "id": "note",
                "type": "action",
                "action": "note",
                "controls": {
                    "exec": {
                        "transitions": [
                            {
                                "edge": "even",
                                "to": "done",
                                "condition": "{{env.iteration % 2 == 0}}",
                            },
                            {"edge": "odd", "to": "failed", "condition": "otherwise"},
                        ]
                    }
                },
            },
            end("done"),
            end("failed", "closing.error"),
        ],
    }
    milestones = [
        {"name": "fetched", "node": "fetch", "edge": "ok", "weight": WEIGHTS["fetched"]},
        {"name": "noted", "node": "note", "edge": "even", "weight": WEIGHTS["noted"]},
    ]
    actions = {"fetch": http("get"), "note": log("info", "pass {{env.iteration}}")}
    return document(actions, flow, users, milestones=milestones, **scenario)


def test_result_milestone_and_work_figures_match_the_runs_own_counts(
    tmp_path: Path, target: TargetProcess
) -> None:
    runner, sink, result = watched_run(tmp_path, two_milestone_doc(3, iterations=4), on(target))
    st = runner.ctx.stats
    prog = result["progress"]
    planned = 3 * 4
    assert prog["planned_tasks"] == planned == st.tasks_started
    assert (st.tasks_succeeded, st.tasks_failed) == (6, 6)
    total_weight = sum(WEIGHTS.values())
    for name in WEIGHTS:
        m = prog["milestones"][name]
        assert m["reached"] == st.milestones[name]
        assert m["share"] == round(st.milestones[name] / planned, 4)
        assert prog["scenarios"]["s"]["milestones"][name]["reached"] == st.milestones[name]
    # Succeeded passes count 1; failed ones reached `fetched` only.
    work = (st.tasks_succeeded + st.tasks_failed * WEIGHTS["fetched"] / total_weight) / planned
    assert prog["work"] == round(work, 4) == 0.625
    weighted = sum(w * st.milestones[n] / planned for n, w in WEIGHTS.items()) / total_weight
    assert prog["milestones_weighted"] == round(weighted, 4)
    scenario = prog["scenarios"]["s"]
    assert scenario["work"] == prog["work"]
    assert scenario["tasks"] == {"started": planned, "closed": planned, "open": 0}
    assert prog["tasks"] == scenario["tasks"]
    assert scenario["users"] == {"planned": 3, "seen": 3}
    assert scenario["expected_tasks"] == planned
    assert prog["eta_s"] == scenario["eta_s"] == 0.0
    user = sink.aggregator.user("u0001")
    assert user is not None
    assert user.progress == (2 * 1.0 + 2 * 0.25) / 4
    # The aggregator and the run's own progress sums agree.
    ctx = runner.ctx
    view = sink.aggregator.snapshot(runner.elapsed, finished=True)
    assert view.work == pytest.approx(ctx.progress_done / planned)


def test_time_boxed_run_projects_its_plan_while_it_goes_and_shows_it_live(
    tmp_path: Path, target: TargetProcess
) -> None:
    samples: list[tuple[float, float, float | None, str]] = []

    async def watch(runner: Runner, sink: AggregatingSink) -> None:
        while runner.ended_at is None:
            await asyncio.sleep(0.2)
            snap = progress_snapshot(runner, sink.aggregator)
            samples.append((snap.elapsed, snap.work, snap.eta_s, format_live(runner, snap, 0.0)))

    doc = two_milestone_doc(2, task_duration="1.5s", think_time="50ms")
    _, _, result = watched_run(tmp_path, doc, on(target), during=watch)
    prog = result["progress"]
    assert prog["planned_tasks"] is None
    started = result["tasks"]["started"]
    assert prog["expected_tasks"] == started == prog["tasks"]["closed"]
    assert (prog["time"], prog["eta_s"]) == (1.0, 0.0)
    assert prog["milestones"]["fetched"]["share"] == 1.0
    assert 0.0 < prog["milestones"]["noted"]["share"] < 1.0
    mid = [s for s in samples if 0.3 < s[0] < 1.2]
    assert mid, samples
    for elapsed, work, eta, line in mid:
        assert 0.0 < work <= 1.0
        # The window ends 1.5 s in (both users start at once); the ETA counts down to it.
        assert eta is not None
        assert abs(eta - (1.5 - elapsed)) < 0.5, (elapsed, eta)
        for shown in ("milestones", "| s ", "fetched", "ETA"):
            assert shown in line
