"""The workbook as a run leaves it: update-workbook (aliases and section paths), the
transition trace, save-as scopes and persist files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scenario_kit import (
    act,
    document,
    edge,
    end,
    graph,
    http,
    log,
    on,
    run,
)
from wbsrun.target import TargetProcess

# -- workbook updates and the transition trace ---------------------------------------------------


def _failing_with(update: Mapping[str, Any]) -> dict[str, Any]:
    """One GET whose error handler writes `update` to the workbook, then exits."""
    handlers = [{"update-workbook": dict(update)}, {"goto": "error_out"}]
    flow = graph(act("probe", "fetch", edge("done"), on_error=handlers), end())
    return document({"fetch": http("get")}, flow)


def test_update_workbook_through_an_expose_alias(tmp_path: Path, target: TargetProcess) -> None:
    target.control(status=500)
    doc = _failing_with({"risk_flag": "escalated", "state": "monitoring.escalated"})
    ran = run(tmp_path, doc, on(target))

    entry = ran.entries[0]
    assert ran.book.get(entry, "registers.risk.flag") == "escalated"
    assert ran.book.get(entry, "risk_flag") == "escalated"
    assert ran.book.export(entry)["registers"]["risk"] == {"flag": "escalated", "entries": []}
    # `state` is timeline.phase: writing it is a phase transition, traced like any other.
    assert ("monitoring.error_detected", "monitoring.escalated", "update-workbook") in [
        (f, t, trig) for f, t, _, trig in entry.trace
    ]
    assert ran.result["exits"] == {"error_out": 1}


def test_update_workbook_through_a_section_path(tmp_path: Path, target: TargetProcess) -> None:
    target.control(status=500)
    doc = _failing_with(
        {"communications.last_synced_at": "{{error.code}}", "execution.evidence.reason": "x"}
    )
    ran = run(tmp_path, doc, on(target))

    entry = ran.entries[0]
    assert ran.book.get(entry, "communications.last_synced_at") == "http-5xx"
    assert ran.book.get(entry, "execution.evidence.reason") == "x"
    assert ran.book.get(entry, "execution.evidence.last_event") == "http-5xx"
    # The shared defaults were copied, not written in place: a fresh entry still sees them.
    fresh = ran.book.open("u9", "u9-t0", "s")
    assert ran.book.get(fresh, "communications.last_synced_at") is None
    assert ran.book.get(fresh, "execution.evidence.reason") is None


def test_transition_trace_appends_from_to_at_trigger_in_order(
    tmp_path: Path, target: TargetProcess
) -> None:
    actions = {"fetch": http("get"), "push": http("post")}
    flow = graph(act("probe", "fetch", edge("send")), act("send", "push", edge("done")), end())
    ran = run(tmp_path, document(actions, flow), on(target))

    trace = ran.book.get(ran.entries[0], "transition_trace")
    assert [(t["from"], t["to"], t["trigger"]) for t in trace] == [
        ("initiating.idle", "planning.ready", "plan"),
        ("planning.ready", "executing.waiting_resource", "lease"),
        ("executing.waiting_resource", "executing.running_action", "probe"),
        ("executing.running_action", "closing.success", "close"),
    ]
    stamps = [t["at"] for t in trace]
    assert stamps == sorted(stamps)
    assert ran.runner.started_wall <= stamps[0] <= stamps[-1] <= ran.runner.started_wall + 5
    assert ran.book.export(ran.entries[0])["timeline"]["transition_trace"] == trace
    assert ran.book.get(ran.entries[0], "state") == "closing.success"


# -- save-as scopes and persist ------------------------------------------------------------------


def saving(var: str, scope: str, message: str = "pass {{env.iteration}}") -> dict[str, Any]:
    return log("info", message, save={"var": var, "scope": scope})


def test_save_as_workbook_scope_lands_in_the_entry_vars(
    tmp_path: Path, target: TargetProcess
) -> None:
    actions = {"fetch": http("get", save="asset")}
    flow = graph(act("probe", "fetch", edge("done")), end())
    ran = run(tmp_path, document(actions, flow, users=2), on(target))

    for entry in ran.entries:
        assert entry.vars["asset"]["status"] == 200
        assert ran.book.export(entry)["vars"]["asset"]["json"]["id"] == "asset-001"


def test_save_as_task_local_is_read_later_in_the_pass_but_not_kept(
    tmp_path: Path, target: TargetProcess
) -> None:
    actions = {
        "fetch": http("get", save={"var": "probe", "scope": "task-local"}),
        "echo": log("info", "status {{probe.status}}"),
    }
    flow = graph(act("get", "fetch", edge("say")), act("say", "echo", edge("done")), end())
    ran = run(tmp_path, document(actions, flow, iterations=2), on(target))

    assert ran.result["tasks"]["succeeded"] == 2
    assert [line.split(" ", 2)[-1] for line in ran.log.recent] == ["u0001 status 200"] * 2
    assert all("probe" not in e.vars for e in ran.entries)


def test_save_as_user_local_is_visible_in_the_users_next_pass(
    tmp_path: Path, target: TargetProcess
) -> None:
    actions = {
        "fetch": http("get"),
        "mark": saving("mark", "user-local"),
        "echo": log("warn", "{{env.user_id}} saw {{mark.message}}"),
    }
    flow = graph(
        act("probe", "fetch", edge("set", "{{env.iteration == 0}}"), edge("say", "otherwise")),
        act("say", "echo", edge("set")),
        act("set", "mark", edge("done")),
        end(),
    )
    ran = run(tmp_path, document(actions, flow, users=2, iterations=3), on(target))

    assert ran.result["tasks"]["succeeded"] == 6
    seen = sorted(line.split(" ", 2)[-1] for line in ran.log.recent if line.startswith("WARN"))
    assert seen == [
        "u0001 u0001 saw pass 0",
        "u0001 u0001 saw pass 1",
        "u0002 u0002 saw pass 0",
        "u0002 u0002 saw pass 1",
    ]
    assert all("mark" not in e.vars for e in ran.entries)


def test_save_as_global_is_visible_to_other_users(tmp_path: Path, target: TargetProcess) -> None:
    actions = {
        "fetch": http("get"),
        "share": saving("shared", "global", "from {{env.user_id}}"),
        "echo": log("warn", "{{env.user_id}} got {{shared.message}}"),
    }
    flow = graph(
        act("probe", "fetch", edge("set", "{{env.user_id == 'u0001'}}"), edge("say", "otherwise")),
        act("say", "echo", edge("done")),
        act("set", "share", edge("done")),
        end(),
    )
    # u0002 starts 200 ms after u0001, which has saved by then.
    doc = document(actions, flow, users=2, spawn_rate="5/s")
    ran = run(tmp_path, doc, on(target))

    assert ran.result["tasks"]["succeeded"] == 2
    assert [line for line in ran.log.recent if line.startswith("WARN")] == [
        "WARN  u0002 u0002 got from u0001"
    ]
    assert ran.runner.ctx.global_vars["shared"]["message"] == "from u0001"
    assert all("shared" not in e.vars for e in ran.entries)


def test_persist_writes_the_last_saved_value_inside_the_bundle(
    tmp_path: Path, target: TargetProcess
) -> None:
    persist = {"type": "file", "dir": "./out/marks", "filename": "{{workbook.user_id}}.json"}
    actions = {"mark": log("info", "pass {{env.iteration}}", save={"var": "m", "persist": persist})}
    flow = graph(act("set", "mark", edge("done")), end())
    ran = run(tmp_path, document(actions, flow, users=2, iterations=3), on(target))

    out = ran.bundle / "out" / "marks"
    assert sorted(p.name for p in out.iterdir()) == ["u0001.json", "u0002.json"]
    for name in ("u0001", "u0002"):
        saved = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        assert saved == {"level": "info", "message": "pass 2"}
    assert ran.result["persist"]["errors"] == []
