"""A run split in parts (RunOptions.segment): the parts, run concurrently in one loop against
a real target, start the one-process run's users with their global ids at their start times,
dispatch its arrival iterations, deal its feeder rows, and together send what it sends."""

from __future__ import annotations

import asyncio
import os
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scenario_kit import Doc, Ran, act, document, edge, end, graph, http, on, routes, run
from scenario_kit import write_bundle as write
from transport_kit import HostileServer
from wbsrun.core.log import RunLog
from wbsrun.core.runner import Runner, RunOptions
from wbsrun.core.segments import SegmentSequence
from wbsrun.dsl.loader import load_plan
from wbsrun.progress.report import build_result
from wbsrun.protocols.registry import build_components, provides
from wbsrun.resources import attach_health_checks
from wbsrun.resources.pool import PoolManager
from wbsrun.target import TargetProcess


def fetch_doc(users: int = 1, **scenario: Any) -> Doc:
    flow = graph(act("probe", "fetch", edge("done")), end(), on_error=[{"goto": "error_out"}])
    return document({"fetch": http("get")}, flow, users, **scenario)


def run_parts(
    tmp_path: Path, doc: Doc, items: list[tuple[str, int]], seq: SegmentSequence
) -> list[Ran]:
    """Every part of `seq` as its own Runner (own components and pools), all in one loop."""
    bundle = write(tmp_path, doc, items)
    plan = load_plan(bundle, provides())
    parts: list[tuple[Runner, PoolManager, RunLog]] = []
    for i in range(len(seq)):
        pools, log = PoolManager(plan), RunLog()
        # The transport tests/conftest.py chose, as scenario_kit.run does.
        options = RunOptions(segment=seq.part(i), transport=os.environ.get("WBSRUN_TRANSPORT"))
        runner = Runner(plan, build_components(plan, log), pools, log, options)
        attach_health_checks(runner, pools)
        parts.append((runner, pools, log))

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            for runner, _, _ in parts:
                tg.create_task(runner.run())

    asyncio.run(main())
    return [
        Ran(r, pools, log, build_result(r, pools.statistics(), log.counts), bundle)
        for r, pools, log in parts
    ]


def first_starts(ran: Ran) -> dict[str, float]:
    """Per user id, when its first pass started, seconds after its run started."""
    out: dict[str, float] = {}
    for entry in ran.entries:
        at = entry.trace[0][2] - ran.runner.started_wall
        out[entry.user_id] = min(at, out.get(entry.user_id, at))
    return out


def test_two_parts_run_the_one_process_users_ids_passes_and_requests(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    doc = fetch_doc(users=7, iterations=3, spawn_rate="5/s")
    alone_target, split_target = target_factory(), target_factory()
    for where in ("alone", "split"):
        (tmp_path / where).mkdir()
    alone = run(tmp_path / "alone", doc, on(alone_target))
    parts = run_parts(tmp_path / "split", doc, on(split_target), SegmentSequence.even(2))

    ids = [{e.user_id for e in p.entries} for p in parts]
    assert ids == [{"u0001", "u0003", "u0005", "u0007"}, {"u0002", "u0004", "u0006"}]
    assert sorted(e.task_id for p in parts for e in p.entries) == sorted(
        e.task_id for e in alone.entries
    )
    for key in ("started", "finished", "planned"):
        assert sum(p.result["users"][key] for p in parts) == alone.result["users"][key] == 7
    for key in ("started", "succeeded"):
        assert sum(p.result["tasks"][key] for p in parts) == alone.result["tasks"][key] == 21
    assert [p.result["progress"]["planned_tasks"] for p in parts] == [12, 9]
    assert sum(p.result["requests"]["total"] for p in parts) == 21
    assert routes(split_target) == routes(alone_target) == {"GET /asset": 21}
    # Each user starts at its one-process time (index / 5 s), not at its rank in its part.
    for part in parts:
        for user, at in first_starts(part).items():
            due = (int(user[1:]) - 1) / 5
            assert due - 0.02 <= at < due + 0.15, (user, at, due)


def test_parts_of_an_arrival_rate_run_dispatch_its_iterations_once(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    doc = fetch_doc()
    doc["load"]["profiles"] = {
        "p": {
            "type": "constant-arrival-rate",
            "rate": 40,
            "duration": "1s",
            "pre-allocated-users": 2,
            "max-users": 10,
        }
    }
    doc["load"]["scenarios"][0]["profile"] = "p"
    target = target_factory()
    parts = run_parts(tmp_path, doc, on(target), SegmentSequence.even(3))
    assert [p.result["tasks"]["succeeded"] for p in parts] == [14, 13, 13]
    assert sum(p.result["dropped_iterations"] for p in parts) == 0
    assert routes(target) == {"GET /asset": 40}
    # Each part's users carry ids of its own stripe: no id is used by two parts.
    ids = [{e.user_id for e in p.entries} for p in parts]
    assert not (ids[0] & ids[1])
    assert not (ids[0] & ids[2])
    assert not (ids[1] & ids[2])
    for i, users in enumerate(ids):
        assert all((int(u[1:]) - 1) % 3 == i for u in users)
    assert [p.result["users"]["planned"] for p in parts] == [4, 3, 3]  # 10 max users, striped
    assert [p.runner.schedulers[0].plan.planned_iterations() for p in parts] == [14, 13, 13]


_SEEN = re.compile(r"/ok\?u=(?P<user>u\d+)&t=(?P<task>[^&]+)&id=(?P<id>\d+)$")


def _rows_doc(server: HostileServer, mode: str, users: int, iterations: int) -> Doc:
    url = f"http://127.0.0.1:{server.port}/ok?u={{{{env.user_id}}}}&t={{{{env.task_id}}}}"
    return {
        "version": "1.0",
        "name": "split-rows",
        "components": [
            {"name": "http", "version": "1.0.0", "kind": "native", "capabilities": ["get"]},
            {"name": "logger", "version": "1.0.0", "kind": "native", "capabilities": ["info"]},
        ],
        "data": {"people": {"file": "people.csv", "mode": mode}},
        "actions": {
            "get": {
                "component": "http",
                "call": "get",
                "with": {"url": url + "&id={{data.people.id}}"},
            }
        },
        "workflows": {"wf": {"type": "linear", "steps": [{"ref": "get"}]}},
        "load": {
            "scenarios": [
                {"name": "s", "workflow": "wf", "user-count": users, "iterations": iterations}
            ]
        },
    }


def _rows_run(
    tmp_path: Path, server: HostileServer, mode: str, seq: SegmentSequence | None
) -> dict[str, list[str]]:
    """Per user id, the rows its passes carried (as the server saw them)."""
    doc = _rows_doc(server, mode, users=5, iterations=2)
    bundle = tmp_path / "bundle"
    bundle.mkdir(parents=True)
    (bundle / "people.csv").write_text("id\n" + "".join(f"{i}\n" for i in range(8)))
    server.requests.clear()
    if seq is None:
        run(tmp_path, doc, [])
    else:
        run_parts(tmp_path, doc, [], seq)
    rows: dict[str, list[str]] = {}
    for path, count in server.requests.items():
        match = _SEEN.match(path)
        assert match is not None, path
        assert count == 1, path
        rows.setdefault(match["user"], []).append(match["id"])
    return rows


def test_split_users_get_the_per_user_rows_of_one_process(
    tmp_path: Path, hostile: HostileServer
) -> None:
    alone = _rows_run(tmp_path / "alone", hostile, "per-user", None)
    split = _rows_run(tmp_path / "split", hostile, "per-user", SegmentSequence.even(2))
    assert alone == split
    assert {u: set(r) for u, r in alone.items()} == {f"u{i + 1:04d}": {str(i)} for i in range(5)}


def test_split_users_never_share_a_unique_row_and_together_take_the_one_process_rows(
    tmp_path: Path, hostile: HostileServer
) -> None:
    alone = _rows_run(tmp_path / "alone", hostile, "unique", None)
    split = _rows_run(tmp_path / "split", hostile, "unique", SegmentSequence.even(2))
    taken = [r for rows in split.values() for r in rows]
    assert len(taken) == len(set(taken)) == 8  # 10 passes wanted, 8 rows
    assert Counter(taken) == Counter(r for rows in alone.values() for r in rows)
