"""Live control of real runs (core/control.py): pause holds every request until the resume,
the paused time is left out of the rates, the window is not extended, scale re-sizes a closed
or an arrival-rate scenario live, stop is the graceful stop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scenario_kit import Doc, act, document, edge, end, graph, http, on, run
from wbsrun.core.control import ControlError
from wbsrun.core.runner import Runner, RunOptions
from wbsrun.progress.report import build_result, progress_snapshot
from wbsrun.target import TargetKnobs, TargetProcess
from wbsrun.telemetry.console import live_fields

RESULT_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json").read_text()
)


def closed_doc(users: int, **scenario: Any) -> Doc:
    """Passes of two GETs of /asset, back to back, filling the run window."""
    flow = graph(
        act("one", "fetch", edge("two")),
        act("two", "fetch", edge("done")),
        end(),
        on_error=[{"goto": "error_out"}],
    )
    return document({"fetch": http("get")}, flow, users, **scenario)


def arrival_doc(**profile: Any) -> Doc:
    flow = graph(act("probe", "fetch", edge("done")), end(), on_error=[{"goto": "error_out"}])
    doc = document({"fetch": http("get")}, flow, 1)
    doc["load"]["profiles"] = {"p": {k.replace("_", "-"): v for k, v in profile.items()}}
    doc["load"]["scenarios"][0]["profile"] = "p"
    return doc


async def received(target: TargetProcess) -> int:
    """Requests the target has received (read off the loop: the admin call blocks)."""
    stats = await asyncio.to_thread(target.stats)
    return int(stats["received"])


def slow(factory: Callable[..., TargetProcess], ms: float) -> TargetProcess:
    return factory(knobs=TargetKnobs(latency_ms=ms))


def test_pause_holds_every_request_until_resume_and_the_line_says_paused(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = slow(target_factory, 50)
    seen: dict[str, Any] = {}

    async def during(runner: Runner) -> None:
        await asyncio.sleep(1.0)
        runner.control.pause()
        seen["at_pause"] = await received(target)
        await asyncio.sleep(0.6)
        seen["settled"] = await received(target)
        await asyncio.sleep(1.0)
        seen["flat"] = await received(target)
        seen["live"] = build_result(runner, {}, {})
        seen["line"] = live_fields(runner, progress_snapshot(runner), 0.0)
        runner.control.resume()
        await asyncio.sleep(1.0)
        seen["after"] = await received(target)

    ran = run(tmp_path, closed_doc(4), on(target), RunOptions(duration=4.5), during)
    # Within one action in flight per user at the pause; then not one request.
    assert seen["settled"] - seen["at_pause"] <= 4
    assert seen["flat"] == seen["settled"]
    assert seen["after"] - seen["flat"] >= 20  # 4 users, 50 ms a request, for a second
    assert seen["live"]["status"] == "paused"
    jsonschema.validate(seen["live"], RESULT_SCHEMA)
    assert any(f.startswith("PAUSED") for f in seen["line"])
    assert "ETA paused" in seen["line"]
    result = ran.result
    jsonschema.validate(result, RESULT_SCHEMA)
    assert result["status"] == "completed"
    assert result["paused_s"] == pytest.approx(1.6, abs=0.3)
    assert result["tasks"]["interrupted"] == 0


def test_the_rates_leave_the_paused_seconds_out(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = slow(target_factory, 20)

    async def during(runner: Runner) -> None:
        await asyncio.sleep(0.8)
        runner.control.pause()
        await asyncio.sleep(1.5)
        runner.control.resume()

    result = run(tmp_path, closed_doc(2), on(target), RunOptions(duration=3.5), during).result
    paused, elapsed = result["paused_s"], result["duration_s"]
    assert paused == pytest.approx(1.5, abs=0.3)
    total = result["requests"]["total"]
    assert result["requests"]["per_second"] == pytest.approx(total / (elapsed - paused), rel=0.01)
    fetch = result["actions"]["fetch"]
    assert fetch["per_second"] == pytest.approx(fetch["count"] / (elapsed - paused), rel=0.01)
    assert result["scenarios"]["s"]["requests"]["per_second"] == pytest.approx(
        total / (elapsed - paused), rel=0.01
    )


def test_a_pause_does_not_extend_the_window_and_its_passes_end_within_the_graceful_stop(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = slow(target_factory, 30)

    async def during(runner: Runner) -> None:
        await asyncio.sleep(0.7)
        runner.control.pause()  # never resumed

    ran = run(tmp_path, closed_doc(3), on(target), RunOptions(duration=2.0), during)
    result = ran.result
    assert result["duration_s"] < 2.0 + 1.0  # the window, and the held passes' last action
    assert result["status"] == "completed"
    # Held passes were let go at the window's end: they finished, none was cut.
    assert result["tasks"]["interrupted"] == 0
    assert result["tasks"]["started"] == result["tasks"]["succeeded"]
    assert result["paused_s"] == pytest.approx(1.3, abs=0.3)


def test_scale_adds_users_with_new_ids_and_retires_those_above_after_their_pass(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = slow(target_factory, 20)
    seen: dict[str, Any] = {}

    async def during(runner: Runner) -> None:
        await asyncio.sleep(0.8)
        runner.control.scale("s", 5)
        await asyncio.sleep(0.5)
        snap = progress_snapshot(runner)
        seen["up"] = (snap.active_users, snap.planned_users)
        seen["status"] = runner.control.status()["scenarios"]["s"]
        runner.control.scale("s", 1)
        await asyncio.sleep(0.6)  # a pass is two 20 ms requests
        snap = progress_snapshot(runner)
        seen["down"] = (snap.active_users, snap.planned_users)

    ran = run(tmp_path, closed_doc(2), on(target), RunOptions(duration=3.0), during)
    assert seen["up"] == (5, 5)
    assert seen["status"]["users"] == 5
    assert seen["status"]["planned"] == 2
    assert seen["status"]["scaled"] is True
    assert seen["down"] == (1, 1)
    users = {e.user_id for e in ran.entries}
    assert users == {"u0001", "u0002", "u0003", "u0004", "u0005"}
    result = ran.result
    assert result["users"]["started"] == 5
    assert result["tasks"]["interrupted"] == 0


def test_a_scenario_scaled_to_zero_stays_open_until_its_window_ends_and_can_scale_up_again(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = slow(target_factory, 20)
    seen: dict[str, Any] = {}

    async def during(runner: Runner) -> None:
        await asyncio.sleep(0.5)
        runner.control.scale("s", 0)
        await asyncio.sleep(0.5)
        seen["zero"] = runner.active_users()
        runner.control.scale("s", 2)  # the run is still on: no ControlError
        await asyncio.sleep(0.5)
        seen["again"] = runner.active_users()

    ran = run(tmp_path, closed_doc(2), on(target), RunOptions(duration=2.0), during)
    assert seen["zero"] == 0
    assert seen["again"] == 2
    assert {e.user_id for e in ran.entries} >= {"u0003", "u0004"}  # new ids after the planned
    assert 1.9 <= ran.result["duration_s"] < 3.0  # the window ends it, not the empty scenario
    assert ran.result["tasks"]["interrupted"] == 0


def test_scale_pins_a_stages_scenario_to_its_users_until_the_window_ends(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    # Stages up to 6 in 2 s, then down to 0 by 4 s: pinned at 3 from 1 s on, the ramp (up
    # and down) no longer moves the population, and the window (4 s) still ends the run.
    target = slow(target_factory, 20)
    doc = closed_doc(1)
    doc["load"]["profiles"] = {
        "p": {
            "type": "stages",
            "stages": [{"duration": "2s", "target": 6}, {"duration": "2s", "target": 0}],
        }
    }
    doc["load"]["scenarios"][0]["profile"] = "p"
    counts: list[int] = []

    async def during(runner: Runner) -> None:
        await asyncio.sleep(0.5)
        runner.control.scale("s", 3)
        for _ in range(6):
            await asyncio.sleep(0.5)
            counts.append(runner.active_users())

    result = run(tmp_path, doc, on(target), during=during).result
    assert counts[:5] == [3] * 5  # 1.0 to 3.0 s: neither the ramp up nor the ramp down
    assert result["duration_s"] < 4.0 + 1.0
    assert result["tasks"]["interrupted"] == 0


def test_scale_changes_an_arrival_rate_scenarios_max_users_live(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    # 20 iterations/s of 300 ms: ~6 at once; 2 max-users drop most until the scale.
    target = slow(target_factory, 300)
    seen: dict[str, Any] = {}
    doc = arrival_doc(
        type="constant-arrival-rate", rate=20, duration="4s", pre_allocated_users=2, max_users=2
    )

    async def during(runner: Runner) -> None:
        await asyncio.sleep(1.0)
        seen["dropped_before"] = runner.ctx.stats.dropped_iterations
        runner.control.scale("s", 12)
        await asyncio.sleep(0.5)
        seen["dropped_scaled"] = runner.ctx.stats.dropped_iterations
        await asyncio.sleep(1.5)
        seen["active_up"] = runner.active_users()
        seen["dropped_after"] = runner.ctx.stats.dropped_iterations
        runner.control.scale("s", 1)
        await asyncio.sleep(0.5)  # busy users leave after their 300 ms pass
        seen["active_down"] = runner.active_users()

    result = run(tmp_path, doc, on(target), during=during).result
    assert seen["dropped_before"] >= 8
    assert 3 <= seen["active_up"] <= 12
    assert seen["dropped_after"] == seen["dropped_scaled"]  # enough users: none dropped
    assert seen["active_down"] == 1
    assert result["scenarios"]["s"]["arrival"]["started"] > 40


def test_iterations_due_while_paused_are_counted_as_paused_not_dropped(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = slow(target_factory, 20)
    doc = arrival_doc(
        type="constant-arrival-rate", rate=10, duration="3s", pre_allocated_users=4, max_users=4
    )

    async def during(runner: Runner) -> None:
        await asyncio.sleep(1.0)
        runner.control.pause()
        await asyncio.sleep(1.0)
        runner.control.resume()

    result = run(tmp_path, doc, on(target), during=during).result
    jsonschema.validate(result, RESULT_SCHEMA)
    arrival = result["scenarios"]["s"]["arrival"]
    assert arrival["paused"] == pytest.approx(10, abs=2)
    assert arrival["dropped"] == 0
    assert arrival["started"] + arrival["paused"] == arrival["planned"] == 30
    assert result["dropped_iterations"] == 0


def test_stop_is_the_graceful_stop_and_also_ends_a_pause(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = slow(target_factory, 30)
    states: list[str] = []

    async def during(runner: Runner) -> None:
        await asyncio.sleep(0.8)
        runner.control.pause()
        await asyncio.sleep(0.3)
        runner.control.stop()
        states.append(runner.control.state)
        with pytest.raises(ControlError) as refused:
            runner.control.pause()
        states.append(refused.value.kind)

    ran = run(tmp_path, closed_doc(3), on(target), RunOptions(duration=20.0), during)
    result = ran.result
    assert states == ["stopping", "conflict"]
    assert result["status"] == "interrupted"
    assert result["duration_s"] < 3.0
    # The passes in flight finished (the pause let go of them): none cut, none lost.
    assert result["tasks"]["interrupted"] == 0
    assert result["tasks"]["started"] == result["tasks"]["succeeded"]
    assert ran.runner.control.state == "ended"


def test_control_requests_the_run_cannot_take_are_refused_with_their_reason(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> None:
    target = slow(target_factory, 10)
    kinds: dict[str, str] = {}

    async def during(runner: Runner) -> None:
        await asyncio.sleep(0.5)
        asks: tuple[tuple[str, str, int], ...] = (
            ("unknown", "nope", 2),
            ("negative", "s", -1),
            ("huge", "s", 10**9),
            ("bool", "s", True),
        )
        for name, scenario, users in asks:
            try:
                runner.control.scale(scenario, users)
            except ControlError as exc:
                kinds[name] = exc.kind

    ran = run(tmp_path, closed_doc(1), on(target), RunOptions(duration=1.0), during)
    assert kinds == {
        "unknown": "not-found",
        "negative": "invalid",
        "huge": "invalid",
        "bool": "invalid",
    }
    with pytest.raises(ControlError) as over:
        ran.runner.control.scale("s", 2)
    assert over.value.kind == "conflict"
    with pytest.raises(ControlError):
        ran.runner.control.stop()
