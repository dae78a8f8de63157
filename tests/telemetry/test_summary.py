"""The end summary: the aggregate row with every percentile, status codes, thresholds ✓ / ✗
with their observed values, progress and health, the files written; within 80 columns."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
from rich.console import Console

from wbsrun.telemetry.summary import fmt_ms, print_summary


def lat(base: float) -> dict[str, Any]:
    return {
        "count": 1000,
        "min": base * 0.5,
        "mean": base * 1.1,
        "p50": base,
        "p90": base * 1.8,
        "p95": base * 2.2,
        "p99": base * 3.1,
        "p99.9": base * 4.0,
        "max": base * 5.0,
    }


def spec_result() -> dict[str, Any]:
    """A result in the shape SPEC-19 fixes (keys the stats/thresholds helpers add)."""
    return {
        "scenario": "checkout",
        "status": "completed",
        "duration_s": 30.004,
        "requests": {
            "total": 12345,
            "ok": 12300,
            "failed": 45,
            "interrupted": 0,
            "per_second": 411.45,
            "health_probes": 0,
            "failed_rate": 0.003645,
            "latency_ms": lat(12.25),
            "status": {"2xx": 12300, "5xx": 40, "none": 5},
            "status_codes": {"0": 5, "200": 12300, "503": 40},
            "bytes": {"sent": 1_234_567, "received": 98_765_432},
        },
        "tasks": {
            "started": 4115,
            "succeeded": 4100,
            "failed": 15,
            "timed_out": 0,
            "rolled_back": 0,
            "interrupted": 0,
            "rollbacks": 0,
        },
        "actions": {
            "login-post": {
                "count": 4115,
                "ok": 4110,
                "failed": 5,
                "interrupted": 0,
                "requests": 4115,
                "per_second": 137.15,
                "latency_ms": lat(20.5),
            },
            "cart-get": {
                "count": 4115,
                "ok": 4100,
                "failed": 15,
                "interrupted": 0,
                "requests": 4115,
                "per_second": 137.15,
                "latency_ms": lat(3.5),
            },
            "pay-post": {
                "count": 4115,
                "ok": 4090,
                "failed": 25,
                "interrupted": 0,
                "requests": 4115,
                "per_second": 137.15,
                "latency_ms": lat(250.0),
            },
        },
        "exits": {"error_out": 15},
        "errors": {"http-5xx": 40, "network-timeout": 5},
        "error_messages": [
            {
                "action": "pay-post",
                "code": "http-5xx",
                "message": "POST /pay: HTTP 503",
                "count": 40,
            },
            {"action": None, "code": "network-timeout", "message": "[pass] timed out", "count": 5},
        ],
        "progress": {
            "work": 0.9876,
            "time": 1.0,
            "planned_tasks": None,
            "milestones": {"paid": {"reached": 4090, "weight": 1.0, "share": 0.9939}},
            "milestones_weighted": 0.9939,
        },
        "health": {"score": 0.9911, "progress": 0.9876, "error_rate": 0.0036, "deviation": 0.0124},
        "thresholds": [
            {
                "rule": "http.failed_rate < 0.01",
                "metric": "http.failed_rate",
                "op": "<",
                "value": 0.01,
                "observed": 0.003645,
                "ok": True,
                "abort_on_fail": False,
                "delay_abort_eval_s": None,
                "first_failed_s": None,
            },
            {
                "rule": "actions.pay-post.latency_ms.p95 < 200",
                "metric": "actions.pay-post.latency_ms.p95",
                "op": "<",
                "value": 200,
                "observed": 550.0,
                "ok": False,
                "abort_on_fail": False,
                "delay_abort_eval_s": None,
                "first_failed_s": 3.0,
            },
        ],
        "resources": {},
        "logs": {"info": 2},
        "engine": {"bus": {}, "poller": {}},
    }


def render(result: dict[str, Any], width: int = 80, files: dict[str, str] | None = None) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, highlight=False)
    console.soft_wrap = True  # as when piped: only what the summary itself lays out
    print_summary(console, result, files=files)
    return out.getvalue()


def row(text: str, first: str, nth: int = 0) -> list[str]:
    """The words of the `nth` line starting with `first` (0: requests table, 1: latency)."""
    return [line.split() for line in text.splitlines() if line.startswith(first)][nth]


def test_summary_has_an_all_requests_row_with_every_percentile() -> None:
    text = render(spec_result())
    header = row(text, "action", 1)
    assert header == ["action", "min", "mean", "p50", "p90", "p95", "p99", "max"]
    overall = lat(12.25)
    latency_rows = [line for line in text.splitlines() if line.startswith("all requests")]
    assert len(latency_rows) == 2  # requests table, latency table
    counts, latency = latency_rows[0].split()[2:], latency_rows[1].split()[2:]
    assert counts == ["12,345", "12,300", "45", "0.4%", "411.4"]
    assert latency == [fmt_ms(overall[k]) for k in header[1:]]
    assert row(text, "pay-post")[1:] == ["4,115", "4,090", "25", "0.6%", "137.2"]
    assert "p95" in text
    assert fmt_ms(250.0 * 2.2) == "550"


def test_summary_lists_status_codes_bytes_progress_and_health() -> None:
    text = render(spec_result())
    assert "  status    no status ×5 · 200 ×12,300 · 503 ×40" in text
    assert "  bytes     1.2 MB sent · 98.8 MB received" in text
    assert "  progress  work 98.8% · time 100.0% · milestones 99.4%" in text
    assert "  health    0.99 (progress 0.99 · error rate 0.004 · deviation 0.01)" in text


def test_summary_marks_each_threshold_with_its_observed_value() -> None:
    text = render(spec_result())
    assert "thresholds 1 of 2 passed" in text
    assert "  ✓ http.failed_rate < 0.01  observed 0.003645" in text
    assert "  ✗ actions.pay-post.latency_ms.p95 < 200  observed 550, failing from 3.0s" in text


def test_summary_keeps_the_top_error_messages_and_names_the_files() -> None:
    text = render(spec_result(), files={"result": "out/result.json", "log": "out/scenario.log"})
    assert "  40  pay-post  http-5xx         POST /pay: HTTP 503" in text
    assert "   5  (pass)    network-timeout  [pass] timed out" in text
    assert text.rstrip().endswith("  result  out/result.json\n  log     out/scenario.log")


@pytest.mark.parametrize("width", [80, 120])
def test_summary_fits_80_columns(width: int) -> None:
    text = render(spec_result(), width, {"result": "out/result.json"})
    assert max(len(line) for line in text.splitlines()) <= 80


def test_summary_of_an_older_result_without_the_new_keys_still_prints() -> None:
    result = copy.deepcopy(spec_result())
    for key in ("failed_rate", "latency_ms", "status", "status_codes", "bytes"):
        del result["requests"][key]
    for a in result["actions"].values():
        del a["per_second"]
        a["latency_ms"] = {k: v for k, v in a["latency_ms"].items() if k in ("p50", "p99")}
    del result["health"], result["thresholds"]
    text = render(result)
    assert "thresholds" not in text
    assert "status " not in text
    assert row(text, "pay-post", 1)[1:] == ["-", "-", "250", "-", "-", "775", "-"]
    # health computed from progress and requests as run_health does.
    assert "  health    0.99 (progress 0.99 · error rate 0.004 · deviation 0.01)" in text


def test_large_rates_print_as_whole_numbers_not_exponents() -> None:
    result = spec_result()
    result["requests"]["per_second"] = 26_520.4
    result["actions"]["login-post"]["per_second"] = 8_840.1
    text = render(result)
    assert "26,520" in text
    assert "8,840" in text
    assert "e+" not in text
