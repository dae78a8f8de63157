"""The PMP mapping end to end: `wbsrun run --json --metrics --report` against the embedded
target. Every cell of the map the scenario uses (derived from its plan) is fed at the end, and
every fed cell is reported: in the result's `pmp`, in the `wbsrun_pmp_*` metrics and in the
report's PMP section; a live scrape shows the process groups under way."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema

from metrics_kit import Scrape, free_port, scrape, wait_for, wbsrun_with_metrics
from pmp_kit import full_bundle, minimal_bundle
from report_kit import figures, figures_match
from wbsrun.dsl.loader import load_plan
from wbsrun.progress.pmp import pmp_plan, used_cells
from wbsrun.progress.pmp_map import CELLS, PROCESS_GROUPS
from wbsrun.protocols.registry import provides
from wbsrun.target import TargetKnobs, TargetProcess

SCHEMA = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json"
Cell = tuple[str, str]


def _fed(pmp: Mapping[str, Any]) -> set[Cell]:
    return {
        (area, group)
        for area, body in pmp["knowledge_areas"].items()
        for group, cell in body["cells"].items()
        if cell["value"] is not None
    }


def _scraped(s: Scrape) -> set[Cell]:
    return {(x.labels["area"], x.labels["group"]) for x in s.samples("wbsrun_pmp_cell")}


def _reported(page: str) -> set[Cell]:
    """Cells whose figure the report shows (a number, not a dash)."""
    out = set()
    for raw, text in figures(page):
        path = json.loads(raw)
        if path[:2] == ["pmp", "knowledge_areas"] and path[3] == "cells" and text != "–":
            out.add((path[2], path[4]))
    return out


def _midway(s: Scrape) -> Scrape | None:
    """A scrape of the run under way: some passes closed, not all (so not yet finished)."""
    groups = s.samples("wbsrun_pmp_process_group_progress_ratio")
    closing = [x.value for x in groups if x.labels["group"] == "closing"]  # none before the loop
    return s if closing and 0 < closing[0] < 1 and s.value("wbsrun_run_finished") == 0 else None


def _run(bundle: Path, tmp_path: Path) -> tuple[dict[str, Any], Scrape, Scrape, str]:
    """The run with its live scrape (closing under way), final scrape, result and report."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    out, report = tmp_path / "result.json", tmp_path / "report.html"
    args = ("run", str(bundle), "--json", str(out), "--report", str(report))
    with wbsrun_with_metrics(*args, port=port, linger="30s") as proc:
        live = wait_for(lambda: _midway(scrape(url)), 30, "a scrape while passes close", proc)
        wait_for(lambda: report.is_file() or None, 60, "the report", proc)
        time.sleep(0.2)
        final = scrape(url)
        proc.send_signal(2)
        assert proc.wait(10) == 0, proc.stderr.read() if proc.stderr else ""
    return json.loads(out.read_text()), live, final, report.read_text(encoding="utf-8")


def _check(result: dict[str, Any], final: Scrape, page: str, used: list[Cell]) -> None:
    jsonschema.validate(result, json.loads(SCHEMA.read_text()))
    pmp = result["pmp"]
    assert _fed(pmp) == set(used), "every used cell fed, no other cell listed"
    assert _scraped(final) == set(used)
    assert _reported(page) == set(used)
    assert not figures_match(result, figures(page))
    for area, group in used:
        cell = pmp["knowledge_areas"][area]["cells"][group]
        assert final.value("wbsrun_pmp_cell", area=area, group=group) == cell["value"]
        assert final.value("wbsrun_pmp_metric", metric=cell["metric"]) == cell["value"]
        assert cell["processes"], (area, group)
    for group in PROCESS_GROUPS:
        progress = pmp["process_groups"][group]["progress"]
        assert final.value("wbsrun_pmp_process_group_progress_ratio", group=group) == progress
    assert '<section id="pmp">' in page


def test_every_cell_the_full_scenario_uses_is_fed_and_reported(
    target_factory: Callable[..., TargetProcess], tmp_path: Path
) -> None:
    target = target_factory(knobs=TargetKnobs(latency_ms=60))
    bundle = full_bundle(tmp_path / "bundle", target.hosts[0], target.port, users=3)
    # 3 users x 4 passes of ~80 ms: under way for a few scrapes.
    used = used_cells(pmp_plan(load_plan(bundle, provides(None))))
    assert len(used) == len(CELLS) == 30  # this plan uses every cell of the map
    result, live, final, page = _run(bundle, tmp_path)
    _check(result, final, page, used)
    pmp = result["pmp"]
    # A complete run: every process group is done, each from its own figures.
    groups = pmp["process_groups"]
    assert {g: groups[g]["progress"] for g in PROCESS_GROUPS} == dict.fromkeys(PROCESS_GROUPS, 1.0)
    assert groups["initiating"]["done"] == result["users"]["started"] == 3
    assert groups["closing"]["done"] == result["tasks"]["succeeded"] == 12
    m = pmp["metrics"]
    assert m["wbs-completed"] == result["progress"]["work"] == 1.0
    assert m["requests-sent"] == result["requests"]["total"] == target.stats()["received"]
    assert m["leases-acquired"] == result["resources"]["pool"]["leases"] == 12
    assert m["leases-released"] == 1.0
    assert m["checks-planned"] == 1
    assert m["milestones-planned"] == 2
    assert m["log-lines"] == sum(result["logs"].values())
    # The register: both stakeholders identified (users started) and engaged (passes closed).
    register = pmp["stakeholders"]
    assert (register["declared"], register["identified"], register["engaged"]) == (2, 2, 2)
    assert [e["state"] for e in register["entries"]] == ["engaged", "engaged"]
    assert m["stakeholders-identified"] == 2
    assert m["stakeholder-concerns"] == 1
    assert final.value("wbsrun_pmp_stakeholders", state="engaged") == 2
    assert "sponsor" in page
    assert "PMBOK 13.1" in page
    # Live, mid-run: the groups under way, closing behind planning.
    live_closing = live.value("wbsrun_pmp_process_group_progress_ratio", group="closing")
    live_planning = live.value("wbsrun_pmp_process_group_progress_ratio", group="planning")
    assert live_closing <= live_planning


def test_a_minimal_scenario_uses_and_feeds_only_the_cells_every_plan_has(
    target_factory: Callable[..., TargetProcess], tmp_path: Path
) -> None:
    target = target_factory(knobs=TargetKnobs(latency_ms=150))
    bundle = minimal_bundle(tmp_path / "bundle", target.url())
    used = used_cells(pmp_plan(load_plan(bundle, provides(None))))
    always = {(a, g) for a, g, _, cond in CELLS if cond == "always"}
    assert set(used) == always | {("procurement", "planning")}
    result, _, final, page = _run(bundle, tmp_path)
    _check(result, final, page, used)
    assert result["pmp"]["knowledge_areas"]["stakeholders"]["cells"] == {}
    assert result["pmp"]["stakeholders"]["entries"] == []
    assert final.value("wbsrun_pmp_stakeholders", state="declared") == 0


def test_a_workers_run_maps_the_merged_figures(
    target_factory: Callable[..., TargetProcess], tmp_path: Path
) -> None:
    target = target_factory()
    bundle = full_bundle(tmp_path / "bundle", target.hosts[0], target.port, users=4)
    out = tmp_path / "result.json"
    args = ["run", str(bundle), "--workers", "2", "--quiet", "--json", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "wbsrun", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    pmp, used = result["pmp"], used_cells(pmp_plan(load_plan(bundle, provides(None))))
    assert _fed(pmp) == set(used)
    m = pmp["metrics"]
    # The workers' pools and logs, merged: the coordinator itself leases nothing, logs nothing.
    assert m["leases-acquired"] == result["resources"]["pool"]["leases"] == 16
    assert m["log-lines"] == sum(result["logs"].values()) >= 16
    assert m["requests-sent"] == target.stats()["received"] - result["requests"]["health_probes"]
    assert pmp["stakeholders"]["engaged"] == 2


def test_the_process_groups_are_dated_by_the_series_ticker_as_the_run_goes(
    target_factory: Callable[..., TargetProcess], tmp_path: Path
) -> None:
    target = target_factory(knobs=TargetKnobs(latency_ms=50))
    bundle = full_bundle(
        tmp_path / "bundle", target.hosts[0], target.port, length="task-duration: 2500ms"
    )
    out = tmp_path / "result.json"
    args = ["run", str(bundle), "--quiet", "--json", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "wbsrun", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    groups = result["pmp"]["process_groups"]
    end = result["duration_s"]
    # The users all start at once: initiating is done at the first tick (t = 1 s), no reading
    # but the ticker's being taken before the end; the time line is done only at the end.
    assert groups["initiating"]["started_s"] == groups["initiating"]["done_s"]
    assert 0.9 <= groups["initiating"]["done_s"] <= 1.5
    assert groups["monitoring"]["done_s"] == end >= 2.5
    assert groups["closing"]["started_s"] <= 1.5
    for g in PROCESS_GROUPS:
        assert groups[g]["progress"] == 1.0
        assert groups[g]["started_s"] <= groups[g]["done_s"] <= end
