"""The PMP mapping (progress/pmp.py, progress/pmp_map.py): the PMBOK map itself, each process
group's progress from its own figures, the stakeholder register's states, metrics that say "no
data" rather than make a figure up, the register's schema, and the report section."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pmp_kit import FULL, full_bundle, minimal_bundle
from wbsrun.dsl.loader import load_plan
from wbsrun.errors import ScenarioError
from wbsrun.progress.pmp import (
    PmpPlan,
    PmpTimeline,
    Stakeholder,
    pmp_plan,
    pmp_section,
    used_cells,
)
from wbsrun.progress.pmp_map import CELLS, KNOWLEDGE_AREAS, PROCESS_GROUPS, PROCESSES, processes
from wbsrun.protocols.registry import provides
from wbsrun.telemetry.html.pmp_section import pmp as pmp_html

# -- the map -----------------------------------------------------------------------------------


def test_the_map_holds_pmboks_49_processes_in_10_areas_and_5_groups() -> None:
    assert len(PROCESSES) == 49
    assert len({p[0] for p in PROCESSES}) == 49
    by_area = Counter(p[2] for p in PROCESSES)
    assert [by_area[a] for a in KNOWLEDGE_AREAS] == [7, 6, 6, 4, 3, 6, 3, 7, 3, 4]
    by_group = Counter(p[3] for p in PROCESSES)
    assert [by_group[g] for g in PROCESS_GROUPS] == [2, 24, 10, 12, 1]


def test_every_cell_with_a_process_has_one_feed_and_no_empty_cell_has_one() -> None:
    with_processes = {(a, g) for a in KNOWLEDGE_AREAS for g in PROCESS_GROUPS if processes(a, g)}
    fed = [(a, g) for a, g, _, _ in CELLS]
    assert len(fed) == len(set(fed)) == len(with_processes) == 30
    assert set(fed) == with_processes


def test_every_metric_a_cell_names_is_computed() -> None:
    plan = PmpPlan(("s",), 1, 1, ("p",), 1, 1, 1, 0, (Stakeholder("x", "", "", "", ("s",)),), 0)
    metrics = pmp_section({}, plan, finished=False)["metrics"]
    assert {metric for _, _, metric, _ in CELLS} <= set(metrics)


# -- process groups ----------------------------------------------------------------------------

NOTHING = PmpPlan((), 0, 0, (), 0, 0, 0, None, (), 0)


def _result(**parts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "users": {"planned": 4, "started": 4},
        "tasks": {"started": 0, "succeeded": 0, "failed": 0, "timed_out": 0},
        "progress": {"work": 0.0, "time": None, "planned_tasks": None},
        "requests": {"total": 0, "failed": 0},
    }
    base.update(parts)
    return base


def _groups(result: dict[str, Any], finished: bool) -> dict[str, float]:
    groups = pmp_section(result, NOTHING, finished=finished)["process_groups"]
    return {g: groups[g]["progress"] for g in PROCESS_GROUPS}


def test_an_interrupted_counted_plan_has_each_group_at_its_own_figure() -> None:
    r = _result(
        users={"planned": 5, "started": 4},
        tasks={"started": 6, "succeeded": 4, "failed": 1, "interrupted": 1},
        progress={"work": 0.55, "time": None, "planned_tasks": 10, "expected_tasks": 10},
    )
    assert _groups(r, finished=True) == {
        "initiating": 0.8,
        "planning": 0.6,
        "executing": 0.55,
        "monitoring": 0.55,  # no time line: the work is what was watched
        "closing": 0.6,
    }


def test_a_time_boxed_plan_projects_its_passes_while_running_and_counts_them_once_ended() -> None:
    r = _result(
        tasks={"started": 8, "succeeded": 6},
        progress={"work": 0.6, "time": 0.5, "planned_tasks": None, "expected_tasks": 16.0},
    )
    running = _groups(r, finished=False)
    assert (running["planning"], running["closing"], running["monitoring"]) == (0.5, 0.375, 0.5)
    r["tasks"]["succeeded"] = 8
    r["progress"].update(work=1.0, time=1.0)
    assert _groups(r, finished=True) == dict.fromkeys(PROCESS_GROUPS, 1.0)


def test_nothing_planned_is_not_begun_while_running_and_done_once_ended() -> None:
    r = _result(users={"planned": 0, "started": 0})
    assert _groups(r, finished=False)["initiating"] == 0.0
    assert _groups(r, finished=True)["initiating"] == 1.0


def test_the_timeline_dates_each_group_from_its_first_move_to_its_last_completion() -> None:
    timeline = PmpTimeline()
    r = _result(tasks={"started": 2}, progress={"work": 0.1, "time": 0.2, "expected_tasks": 4.0})
    r["duration_s"] = 1.0
    pmp_section(r, NOTHING, finished=False, timeline=timeline)
    r.update(duration_s=2.0, tasks={"started": 4, "succeeded": 4})
    r["progress"].update(work=1.0, time=0.5)
    pmp_section(r, NOTHING, finished=False, timeline=timeline)
    # The projection grows: planning and closing fall back under 1, done again later.
    r.update(duration_s=3.0, tasks={"started": 5, "succeeded": 4})
    r["progress"].update(expected_tasks=6.0, time=0.8)
    pmp_section(r, NOTHING, finished=False, timeline=timeline)
    r.update(duration_s=4.0, tasks={"started": 6, "succeeded": 6})
    r["progress"].update(time=1.0)
    groups = pmp_section(r, NOTHING, finished=True, timeline=timeline)["process_groups"]
    dates = {g: (groups[g]["started_s"], groups[g]["done_s"]) for g in PROCESS_GROUPS}
    assert dates == {
        "initiating": (1.0, 1.0),
        "planning": (1.0, 4.0),
        "executing": (1.0, 2.0),
        "monitoring": (1.0, 4.0),
        "closing": (2.0, 4.0),
    }
    untimed = pmp_section(r, NOTHING, finished=True)["process_groups"]["closing"]
    assert "started_s" not in untimed


# -- the stakeholder register ------------------------------------------------------------------


def _figures(seen: int, closed: int) -> dict[str, Any]:
    return {"users": {"seen": seen}, "tasks": {"closed": closed}}


def test_stakeholders_are_declared_then_identified_then_engaged_by_their_scenarios() -> None:
    people = (
        Stakeholder("ops", "operator", "high", "low", ("a",)),
        Stakeholder("qa", "tester", "", "", ("b",)),
        Stakeholder("cfo", "sponsor", "", "", ("c",)),
        Stakeholder("all", "", "", "", ("b", "c")),
    )
    plan = PmpPlan(("a", "b", "c"), 0, 0, (), 0, 0, 0, None, people, 3)
    r = _result(
        progress={
            "work": 0.2,
            "scenarios": {"a": _figures(2, 1), "b": _figures(1, 0), "c": _figures(0, 0)},
        }
    )
    section = pmp_section(r, plan, finished=False)
    register = section["stakeholders"]
    states = {e["name"]: e["state"] for e in register["entries"]}
    assert states == {"ops": "engaged", "qa": "identified", "cfo": "declared", "all": "identified"}
    assert (register["declared"], register["identified"], register["engaged"]) == (4, 3, 1)
    m = section["metrics"]
    assert (m["stakeholders-identified"], m["stakeholders-engaged"]) == (3, 1)
    assert m["stakeholders-engaged-ratio"] == 0.25
    assert m["stakeholder-concerns"] == 3


def test_the_register_reads_user_context_and_the_workbooks_shared_entries(
    tmp_path: Path,
) -> None:
    text = FULL.replace("{users}", "1").replace("{length}", "iterations: 1")
    text = text.replace(
        "      defaults: {risk: {flag: none, entries: []}}",
        "      defaults: {risk: {flag: none, entries: []}, stakeholder: {entries: "
        "[{name: auditor, role: regulator}, {name: ops}], concerns: [a, b]}}",
    )
    (tmp_path / "script.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "resource.yaml").write_text("ip,port\n127.0.0.1,9\n", encoding="utf-8")
    plan = pmp_plan(load_plan(tmp_path, provides(None)))
    assert [(s.name, s.role, s.scenarios) for s in plan.stakeholders] == [
        ("auditor", "regulator", ("buyers",)),
        ("ops", "", ("buyers",)),  # the scenario's own `ops` adds to the shared one
        ("sponsor", "sponsor", ("buyers",)),
    ]
    assert plan.concerns == 3


@pytest.mark.parametrize(
    ("entry", "found"),
    [("{role: operator}", "name"), ("{name: ops, interest: huge}", "huge")],
)
def test_a_bad_stakeholder_entry_is_refused_at_its_place(
    tmp_path: Path, entry: str, found: str
) -> None:
    bundle = full_bundle(tmp_path, "127.0.0.1", 9)
    script = bundle / "script.yaml"
    text = script.read_text(encoding="utf-8")
    bad = text.replace(
        "- {name: ops, role: operator, interest: high, influence: medium}", f"- {entry}"
    )
    script.write_text(bad, encoding="utf-8")
    with pytest.raises(ScenarioError) as err:
        load_plan(bundle, provides(None))
    text = err.value.format()
    assert "script.yaml:68:" in text, text  # file:line:col of the entry
    assert "load.scenarios[0].user.context.stakeholder.entries[0]" in text, text
    assert found in text, text


# -- figures that are not there are not made up ------------------------------------------------


def test_metrics_without_data_are_null_and_cells_of_unused_areas_absent(tmp_path: Path) -> None:
    plan = pmp_plan(load_plan(minimal_bundle(tmp_path, "http://127.0.0.1:9"), provides(None)))
    section = pmp_section(_result(), plan, finished=False)
    m = section["metrics"]
    assert m["passes-succeeded"] is None
    assert m["requests-per-pass"] is None
    assert m["leases-released"] is None
    assert m["risks-identified"] is None
    assert m["error-rate"] == 0.0  # no request failed: as the health score has it
    assert section["knowledge_areas"]["resources"]["cells"] == {}
    assert set(used_cells(plan)) == {
        (a, g) for a, body in section["knowledge_areas"].items() for g in body["cells"]
    }


# -- the report section ------------------------------------------------------------------------


def test_the_report_section_escapes_names_and_is_absent_without_pmp() -> None:
    hostile = "<script>alert(1)</script>"
    plan = PmpPlan(
        ("s",), 0, 0, (), 0, 0, 0, None, (Stakeholder(hostile, hostile, "", "", ("s",)),), 0
    )
    r = _result()
    r["pmp"] = pmp_section(r, plan, finished=False)
    page = pmp_html(r)
    assert '<section id="pmp">' in page
    assert hostile not in page
    assert "&lt;script&gt;" in page
    assert pmp_html(_result()) == ""
