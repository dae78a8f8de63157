"""`wbsrun compile` and `wbsrun run PLAN.wbsc`, the plan cache and `--scenario`, end to end
against the embedded target: the YAML, the compiled file and the cached plan run alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scenario_kit import act, document, edge, end, graph, http
from wbsrun.dsl.binary import cache_dir, load_any
from wbsrun.dsl.binary.cache import trim
from wbsrun.protocols.registry import provides
from wbsrun.target import TargetProcess


def _bundle(tmp_path: Path, target: TargetProcess) -> Path:
    wf = graph(act("get", "fetch", edge("done")), end())
    doc = document({"fetch": http("get")}, wf, users=2, iterations=3)
    second = {**doc["load"]["scenarios"][0], "name": "t", "user-count": 1, "iterations": 5}
    doc["load"]["scenarios"].append(second)
    doc["thresholds"] = ["scenarios.t.progress.work >= 1", "scenarios.s.progress.work >= 1"]
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    host, port = target.hosts[0], target.port
    (bundle / "resource.yaml").write_text(f"ip,port\n{host},{port}\n", encoding="utf-8")
    (bundle / "script.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    return bundle


def _wbsrun(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WBSRUN_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "wbsrun", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env=env,
    )


def _ran(cache: Path, path: Path, out: Path, *more: str) -> dict[str, Any]:
    done = _wbsrun(cache, "run", str(path), "--quiet", "--json", str(out), *more)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def _shape(result: dict[str, Any]) -> dict[str, Any]:
    """What does not depend on timing: who ran what, how it ended, what was judged."""
    return {
        "scenario": result["scenario"],
        "source": result["source"],
        "status": result["status"],
        "tasks": result["tasks"],
        "requests": result["requests"]["total"],
        "scenarios": {n: s["requests"]["total"] for n, s in result["scenarios"].items()},
        "thresholds": [(t["rule"], t["ok"]) for t in result["thresholds"]],
    }


def test_yaml_compiled_and_cached_runs_are_identical(tmp_path: Path, target_factory: Any) -> None:
    target = target_factory()
    bundle, cache = _bundle(tmp_path, target), tmp_path / "cache"
    plan = tmp_path / "plan.wbsc"
    done = _wbsrun(cache, "compile", str(bundle), "-o", str(plan))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{plan}: compiled t (2 scenarios, ")
    yaml_run = _ran(cache, bundle, tmp_path / "y.json", "--no-cache")
    assert not cache.exists()  # --no-cache neither reads nor writes it
    compiled_run = _ran(cache, plan, tmp_path / "c.json")
    first = _ran(cache, bundle, tmp_path / "1.json")
    assert len(list((cache / "plans").glob("*.wbsc"))) == 1
    second = _ran(cache, bundle, tmp_path / "2.json")
    assert yaml_run["tasks"]["succeeded"] == 2 * 3 + 5
    assert _shape(compiled_run) == _shape(yaml_run)
    assert _shape(first) == _shape(second) == _shape(yaml_run)


def test_scenario_selects_the_same_scenarios_from_yaml_and_compiled(
    tmp_path: Path, target_factory: Any
) -> None:
    target = target_factory()
    bundle, cache = _bundle(tmp_path, target), tmp_path / "cache"
    plan = tmp_path / "plan.wbsc"
    assert _wbsrun(cache, "compile", str(bundle), "-o", str(plan)).returncode == 0
    from_yaml = _ran(cache, bundle, tmp_path / "y.json", "--scenario", "t", "--no-cache")
    from_file = _ran(cache, plan, tmp_path / "c.json", "--scenario", "t")
    assert list(from_yaml["scenarios"]) == ["t"]
    assert from_yaml["tasks"]["succeeded"] == 5
    # The threshold about the scenario left out is dropped with it.
    assert [t["rule"] for t in from_yaml["thresholds"]] == ["scenarios.t.progress.work >= 1"]
    assert _shape(from_file) == _shape(from_yaml)
    # Worker processes load the bundle the file names, with the same selection.
    split = _ran(cache, plan, tmp_path / "w.json", "--scenario", "t", "--workers", "2")
    assert _shape(split) == _shape(from_yaml)
    wrong = _wbsrun(cache, "run", str(plan), "--scenario", "nope", "--quiet")
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == (
        "error: --scenario nope: no such scenario; the bundle has: s, t"
    )


def test_a_second_load_of_an_unchanged_bundle_skips_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache hit never reaches the YAML loader; a changed source is parsed again."""
    bundle = tmp_path / "b"
    bundle.mkdir()
    doc = document({"fetch": http("get")}, graph(act("get", "fetch", edge("done")), end()))
    (bundle / "resource.yaml").write_text("ip,port\n127.0.0.1,9\n", encoding="utf-8")
    script = bundle / "script.yaml"
    script.write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    monkeypatch.setenv("WBSRUN_CACHE_DIR", str(tmp_path / "cache"))
    parsed: list[Path] = []
    import wbsrun.dsl.binary as binary

    real = binary.load_plan

    def counting(path: Path, given: Any) -> Any:
        parsed.append(path)
        return real(path, given)

    monkeypatch.setattr(binary, "load_plan", counting)
    first = load_any(bundle, provides())
    second = load_any(bundle, provides())
    assert len(parsed) == 1
    assert first.plan.name == second.plan.name == "t"
    (bundle / "resource.yaml").write_text("ip,port\n127.0.0.1,10\n", encoding="utf-8")
    load_any(bundle, provides())
    assert len(parsed) == 2  # the manifest is a source: stale entry, parsed again
    assert cache_dir() == tmp_path / "cache"


def test_the_cache_keeps_at_most_its_bound_dropping_the_oldest(tmp_path: Path) -> None:
    for i in range(5):
        entry = tmp_path / f"{i}.wbsc"
        entry.write_bytes(b"x" * 100)
        os.utime(entry, (1000 + i, 1000 + i))
    trim(tmp_path, 250)
    assert sorted(p.name for p in tmp_path.glob("*.wbsc")) == ["3.wbsc", "4.wbsc"]
