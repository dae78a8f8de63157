"""The HTML report tests' fixtures (a real demo run with its report, a headless Chromium:
registered in tests/conftest.py) and results completed to the full result shape.

`complete(result)` adds, where a result lacks them, the keys of issue 19's result contract
(SPEC-19: full latency figures, status codes, bytes, scenarios, health, thresholds and the
`timeseries`), derived from the run's own figures, so the report can be tested with every
section and chart before all of them are written by the runner. `figures_match` checks that
every figure a page shows is the value at its `data-path` in the result.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from browser_kit import Chromium, chromium_binary, launch

__all__ = [
    "HOSTILE",
    "DemoReport",
    "chromium",
    "complete",
    "demo_report",
    "demo_run",
    "figures",
    "figures_match",
    "hostile",
    "value_at",
]

LATENCY = ("count", "min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max")
# Untrusted text as it can reach a result: an error message, a scenario name, an error code.
HOSTILE = (
    '</script><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
    "<!-- \u2028 & 'quotes' \"double\""
)


@dataclass(frozen=True)
class DemoReport:
    """A demo run's result and the report `--report` wrote of it."""

    workdir: Path
    result: dict[str, Any]
    report: Path
    stdout: str


def demo_run(
    workdir: Path,
    *extra: str,
    users: int = 50,
    duration: str = "3s",
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`wbsrun demo` with 5 % of the asset requests answered 500 (so there are errors)."""
    args = ["demo", "--users", str(users), "--duration", duration, "--error-rate", "0.05"]
    return subprocess.run(
        [sys.executable, "-m", "wbsrun", *args, "--quiet", "--workdir", str(workdir), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


@pytest.fixture(scope="session")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> DemoReport:
    """`wbsrun demo --users 50 --duration 3s --error-rate 0.05 --json … --report …`."""
    work = tmp_path_factory.mktemp("demo")
    out, report = work / "r.json", work / "report.html"
    proc = demo_run(work / "run", "--json", str(out), "--report", str(report))
    assert proc.returncode == 0, proc.stderr
    return DemoReport(work, json.loads(out.read_text()), report, proc.stdout)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    """Headless Chromium (tests/browser_kit.py); the tests skip without it, as nginx's do,
    except in CI, where `make test` installed it: there a missing browser fails."""
    if chromium_binary() is None:
        missing = "chromium is not installed (make test installs it: make chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    browser = launch()
    try:
        yield browser
    finally:
        browser.close()


def _latency(summary: Mapping[str, Any], count: int) -> dict[str, Any]:
    out = dict(summary)
    p50, p90, p99 = (float(out.get(k, 0.0)) for k in ("p50", "p90", "p99"))
    top = float(out.get("max", p99))
    out.setdefault("count", count)
    out.setdefault("min", round(p50 / 4, 3))
    out.setdefault("mean", p50)
    out.setdefault("p95", round((p90 + p99) / 2, 3))
    out.setdefault("p99.9", round((p99 + top) / 2, 3))
    return {k: out[k] for k in LATENCY}


def _timeseries(r: Mapping[str, Any]) -> dict[str, Any]:
    n = max(3, math.ceil(float(r["duration_s"])))
    req = r["requests"]
    lat = req["latency_ms"]
    share = [(i + 1) / n for i in range(n)]
    per = req["total"] / n
    errors = {code: [round(count / n, 1)] * n for code, count in r["errors"].items()}
    users = r["users"]["started"]
    work = float(r["progress"]["work"])
    return {
        "interval_s": 1.0,
        "cap": 3600,
        "t": [float(i + 1) for i in range(n)],
        "requests": [round(per)] * n,
        "failed": [round(req["failed"] / n)] * n,
        "rps": [round(per * (0.9 + 0.1 * s), 2) for s in share],
        "errors": errors,
        "p50": [None, *[lat["p50"]] * (n - 1)],
        "p95": [None, *[lat["p95"]] * (n - 1)],
        "p99": [None, *[round(lat["p99"] * (1 + s / 4), 3) for s in share[1:]]],
        "users": [min(users, round(users * s * 2)) for s in share],
        "work": [round(work * s, 4) for s in share],
        "time": share,
        "planned": [round(min(1.0, s * 1.15), 4) for s in share],
        "milestones": [round(r["progress"].get("milestones_weighted", work) * s, 4) for s in share],
        "eta_s": [float(n - i - 1) for i in range(n)],
        "health": [round(0.8 + 0.15 * s, 3) for s in share],
        "leases": [min(users, round(users * s * 2)) for s in share],
    }


def complete(result: Mapping[str, Any]) -> dict[str, Any]:
    """The result with SPEC-19's keys filled in where missing (see the module docstring)."""
    r = copy.deepcopy(dict(result))
    req = r["requests"]
    total, ok, failed = req["total"], req["ok"], req["failed"]
    req.setdefault("failed_rate", round(failed / total, 6) if total else 0.0)
    http = [a for a in r["actions"].values() if a["latency_ms"].get("p50", 0) > 0.1]
    busiest = max(http or r["actions"].values(), key=lambda a: a["count"])
    req.setdefault("latency_ms", _latency(busiest["latency_ms"], total))
    req.setdefault("status", {"2xx": ok, **({"5xx": failed} if failed else {})})
    req.setdefault("status_codes", {"200": ok, **({"500": failed} if failed else {})})
    req.setdefault("bytes", {"sent": total * 131, "received": total * 187})
    for a in r["actions"].values():
        a["latency_ms"] = _latency(a["latency_ms"], a["count"])
        a.setdefault("requests", a["count"])
        a.setdefault(
            "status_codes", {"200": a["ok"], **({"500": a["failed"]} if a["failed"] else {})}
        )
    if "scenarios" not in r:
        r["scenarios"] = {
            name: {
                "requests": {
                    k: req[k] for k in ("total", "ok", "failed", "failed_rate", "per_second")
                },
                "latency_ms": req["latency_ms"],
                "status": req["status"],
                "status_codes": req["status_codes"],
                "bytes": req["bytes"],
            }
            for name in r["progress"].get("scenarios", {"main": None})
        }
    r.setdefault(
        "health",
        {
            "score": 0.91,
            "progress": r["progress"]["work"],
            "error_rate": req["failed_rate"],
            "deviation": 0.04,
        },
    )
    p95 = req["latency_ms"]["p95"]
    if not r.get("thresholds"):  # a run without rules has []: show some
        r["thresholds"] = [
            _rule(
                "http.failed_rate < 0.01", "http.failed_rate", "<", 0.01, req["failed_rate"], 1.0
            ),
            _rule("http.latency_ms.p95 < 200", "http.latency_ms.p95", "<", 200, p95, None),
            _rule("health.score >= 0.8", "health.score", ">=", 0.8, r["health"]["score"], None),
        ]
    r.setdefault("timeseries", _timeseries(r))
    r.setdefault("scheduling", _scheduling(r))
    return r


def _scheduling(r: Mapping[str, Any]) -> dict[str, Any]:
    """Issue 23's `scheduling` key, as a priority pool of the run's first resource would
    report it (business value 10, health 0.9 for every scenario)."""
    names = list(r["progress"].get("scenarios", {"main": None}))
    pool = next(iter(r["resources"]), "pool")
    return {
        "priorities": dict.fromkeys(names, 11.0),
        "health": dict.fromkeys(names, 0.9),
        "pools": {
            pool: {
                "grants": 120,
                "reordered": 31,
                "inherited": 4,
                "starvation_guard": 2,
                "max_bypassed": 16,
                "reallocations": 7,
                "shares": dict.fromkeys(names, 1.5),
                "predicted_demand": dict.fromkeys(names, 2.25),
                "lease_s": 42.125,
            }
        },
    }


def _rule(
    rule: str, metric: str, op: str, value: float, observed: float, failed_s: float | None
) -> dict[str, Any]:
    ok = {"<": observed < value, ">=": observed >= value}[op]
    return {
        "rule": rule,
        "metric": metric,
        "op": op,
        "value": value,
        "observed": observed,
        "ok": ok,
        "abort_on_fail": False,
        "delay_abort_eval_s": 0.0,
        "first_failed_s": None if ok else failed_s,
    }


def hostile(result: Mapping[str, Any]) -> dict[str, Any]:
    """The result with untrusted text in every place a run copies it from outside."""
    r = copy.deepcopy(dict(result))
    r["scenario"] = HOSTILE
    r["errors"][HOSTILE] = 3
    r["error_messages"].insert(
        0, {**r["error_messages"][0], "message": HOSTILE, "code": HOSTILE, "action": HOSTILE}
    )
    r["actions"][HOSTILE] = next(iter(r["actions"].values()))
    r["timeseries"]["errors"][HOSTILE] = [1] * len(r["timeseries"]["t"])
    r["resources"][HOSTILE] = next(iter(r["resources"].values()))
    return r


def value_at(result: Any, path: Iterable[str | int]) -> Any:
    node = result
    for step in path:
        node = node[step]
    return node


class _Figures(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        path = dict(attrs).get("data-path")
        if path is not None:
            self._open, self._text = path, ""

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if self._open is not None and tag == "span":
            self.found.append((self._open, self._text))
            self._open = None


def figures(page: str) -> list[tuple[str, str]]:
    """(data-path, text) of every figure in an HTML page, parsed without a browser."""
    parser = _Figures()
    parser.feed(page)
    return parser.found


_NUMBER = re.compile(r"^(-?[\d,]+(?:\.(\d+))?)( %| s)?$")


def figures_match(result: Any, shown: Iterable[tuple[str, str]]) -> list[str]:
    """The figures whose text is not the value at their path (empty: all equal). A dash must
    stand for a missing value or one that is no number; a number must equal the value to its
    shown precision."""
    wrong = []
    for raw, text in shown:
        path = json.loads(raw)
        try:
            value = value_at(result, path)
        except (KeyError, IndexError, TypeError):
            value = None
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if text == "–":
            if number and math.isfinite(value):
                wrong.append(f"{path}: shows a dash for {value!r}")
            continue
        m = _NUMBER.match(text)
        if m is None or not isinstance(value, int | float):
            wrong.append(f"{path}: shows {text!r} for {value!r}")
            continue
        shown_value = float(m.group(1).replace(",", ""))
        decimals = len(m.group(2) or "")
        if m.group(3) == " %":
            shown_value, decimals = shown_value / 100, decimals + 2
        if abs(shown_value - value) > 0.5 * 10**-decimals + 1e-9:
            wrong.append(f"{path}: shows {text!r} for {value!r}")
    return wrong
