"""`wbsrun compare` end to end: two real results of the demo (one against a target slowed by
20 ms) side by side, `--fail-on` exits 99 on a regression and 0 without, bad files and
malformed tolerances exit 2 with a message naming them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def wbsrun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wbsrun", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A: the demo against the embedded target as it is; B: the target answers /asset 20 ms
    later. 20 users for 2 s each."""
    out = tmp_path_factory.mktemp("compare")
    paths = []
    for name, extra in (("a", []), ("b", ["--latency-ms", "20"])):
        path = out / f"{name}.json"
        proc = wbsrun(
            "demo", "--users", "20", "--duration", "2s", "--workdir", str(out / name),
            "--json", str(path), "--quiet", *extra,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        paths.append(path)
    return paths[0], paths[1]


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_compare_shows_both_sides_with_ratios_and_trips_on_the_slower_target(
    results: tuple[Path, Path],
) -> None:
    a, b = results
    proc = wbsrun("compare", str(a), str(b), "--fail-on", "actions.probe-get.p50 > 1.5x")
    assert proc.returncode == 99, proc.stdout + proc.stderr
    text = proc.stdout
    for section in ("throughput", "action probe-get", "errors", "progress", "duration"):
        assert f"\n{section}" in text
    assert "ETA accuracy" in text
    assert "eta_error_s" in text
    ra, rb = load(a), load(b)
    rps = next(line.split() for line in text.splitlines() if line.startswith("  rps "))
    assert rps[-1] == f"{rb['requests']['per_second'] / ra['requests']['per_second']:.2f}x"
    assert "✗ actions.probe-get.p50 > 1.5x: B " in text
    assert "regression: 1 of 1 tolerance(s) tripped (exit 99)" in text


def test_compare_the_other_way_round_holds_the_tolerance(results: tuple[Path, Path]) -> None:
    a, b = results
    proc = wbsrun("compare", str(b), str(a), "--fail-on", "actions.probe-get.p50 > 1.5x")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no regression: 1 tolerance(s) held" in proc.stdout


def test_compare_json_gives_the_figures_ratios_and_verdicts(results: tuple[Path, Path]) -> None:
    a, b = results
    proc = wbsrun(
        "compare", str(a), str(b), "--json", "-",
        "--fail-on", "actions.probe-get.p50 > 1.5x", "--fail-on", "failed_rate > 0.01",
    )  # fmt: skip
    assert proc.returncode == 99
    doc = json.loads(proc.stdout)  # the table went to standard error
    assert "throughput" in proc.stderr
    ra, rb = load(a), load(b)
    assert doc["a"]["file"] == str(a)
    req = doc["metrics"]["requests"]
    assert (req["a"], req["b"]) == (ra["requests"]["total"], rb["requests"]["total"])
    assert req["ratio"] == round(rb["requests"]["total"] / ra["requests"]["total"], 4)
    p50 = doc["metrics"]["actions.probe-get.p50"]
    assert p50["b"] >= 20.0 > p50["a"]  # the target's 20 ms
    assert p50["ratio"] > 1.5
    assert doc["metrics"]["eta_error_s"]["ratio"] is None or "timeseries" in ra
    latency, failed = doc["tolerances"]
    assert latency["rule"] == "actions.probe-get.p50 > 1.5x"
    assert latency["tripped"] is True
    assert latency["limit"] == pytest.approx(1.5 * p50["a"])
    assert failed["tripped"] is False
    assert doc["regression"] is True


def test_compare_of_a_result_with_itself_writes_ratios_of_one(
    results: tuple[Path, Path], tmp_path: Path
) -> None:
    a, _ = results
    out = tmp_path / "cmp.json"
    rule = "actions.probe-get.p99 > 1.01x"
    proc = wbsrun("compare", str(a), str(a), "--json", str(out), "--fail-on", rule)
    assert proc.returncode == 0, proc.stderr
    doc = load(out)
    assert {m["ratio"] for m in doc["metrics"].values() if m["a"] is not None} == {1.0}
    assert doc["regression"] is False


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file (expected a result of `wbsrun run --json`)"),
        ('{"requests": {"total": 1},\n "x": }', ":2:7: not valid JSON: Expecting value"),
        ('["not", "a", "result"]', "not a wbsrun run result (expected a JSON object"),
        ('{"scenario": "s"}', "not a wbsrun run result"),
    ],
)
def test_a_bad_file_exits_two_naming_it(
    results: tuple[Path, Path], tmp_path: Path, content: str | None, message: str
) -> None:
    a, _ = results
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content, encoding="utf-8")
    proc = wbsrun("compare", str(a), str(bad))
    assert proc.returncode == 2
    assert f"error: {bad}" in proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("p95 >> 1.1x", "--fail-on 'p95 >> 1.1x': expected METRIC OP VALUE[x]"),
        ("latency > 2x", "--fail-on 'latency > 2x': unknown metric 'latency'"),
        ("actions.nope.p99 > 1.2x", "actions.nope.p99 is not in "),
        ("eta_error_s > 1.5x", "(it needs the result's timeseries.eta_s)"),
    ],
)
def test_a_bad_tolerance_exits_two_with_the_rule_and_what_was_expected(
    results: tuple[Path, Path], tmp_path: Path, rule: str, message: str
) -> None:
    a, b = results
    # Without a time series (results written before it existed): no ETA accuracy.
    plain = []
    for path in (a, b):
        result = load(path)
        result.pop("timeseries", None)
        plain.append(tmp_path / path.name)
        plain[-1].write_text(json.dumps(result), encoding="utf-8")
    proc = wbsrun("compare", *map(str, plain), "--fail-on", "rps < 0.5x", "--fail-on", rule)
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unwritable_json_path_exits_two_naming_it(
    results: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = results
    out = tmp_path / "missing" / "cmp.json"
    proc = wbsrun("compare", str(a), str(b), "--json", str(out))
    assert proc.returncode == 2
    assert f"error: --json {out}: cannot write: No such file or directory" in proc.stderr
    assert "Traceback" not in proc.stderr
