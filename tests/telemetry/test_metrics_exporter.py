"""The exporter scraped directly (prometheus_client's text parser): names, types, labels and
units by Prometheus's conventions, figures equal to the JSON result, the histogram conversion
exact at the log buckets' edges, and the `--metrics` options' errors."""

from __future__ import annotations

import json
import math
import random
import re
import socket
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path

import pytest

from metrics_kit import Scrape, free_port, scrape, wait_for, wbsrun_with_metrics
from wbsrun.core.stats import Histogram
from wbsrun.target import TargetProcess
from wbsrun.telemetry.metrics import LATENCY_BOUNDS_S, MetricsAddress, cumulative_buckets
from wbsrun.telemetry.metrics._families import _CUTS, _edge_s
from wbsrun.telemetry.metrics._sample import HistogramCopy

# -- the histogram conversion -------------------------------------------------------------------


def _bucket_of(ms: float) -> int:
    h = Histogram()
    h.record(ms)
    return next(i for i, n in enumerate(h.buckets) if n)


def test_bucket_edges_are_those_of_the_core_histogram() -> None:
    for k in range(1, 2600, 37):
        edge_ms = _edge_s(k) * 1000.0
        assert _bucket_of(edge_ms * (1 - 1e-9)) == k - 1
        assert _bucket_of(edge_ms * (1 + 1e-9)) == k


@pytest.mark.parametrize("shape", ["lognormal", "bimodal"])
def test_cumulative_counts_are_exact_at_the_edge_under_each_bound(shape: str) -> None:
    rng = random.Random(19)
    if shape == "lognormal":
        values = [rng.lognormvariate(math.log(20.0), 1.5) for _ in range(50_000)]
    else:
        values = [
            rng.gauss(2.0, 0.3) if rng.random() < 0.7 else rng.gauss(800.0, 100.0)
            for _ in range(50_000)
        ]
    values = [abs(v) for v in values]
    h = Histogram()
    for v in values:
        h.record(v)
    pairs = cumulative_buckets(HistogramCopy.of(h))
    assert [le for le, _ in pairs] == [repr(b) for b in LATENCY_BOUNDS_S] + ["+Inf"]
    assert pairs[-1][1] == len(values)
    counts = [n for _, n in pairs]
    assert counts == sorted(counts)
    for (_, n), bound, cut in zip(pairs, LATENCY_BOUNDS_S, _CUTS, strict=False):
        edge = _edge_s(cut)
        assert bound * 0.99 < edge <= bound
        # Exactly the values under the edge: none above the bound, none of those under 99 %
        # of it missing.
        assert n == sum(1 for v in values if v / 1000.0 < edge)


# -- the address -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("9464", "127.0.0.1", 9464),
        ("0", "127.0.0.1", 0),
        ("0.0.0.0:9464", "0.0.0.0", 9464),
        ("localhost:80", "localhost", 80),
        ("[::1]:9464", "::1", 9464),
    ],
)
def test_metrics_address_defaults_to_loopback(text: str, host: str, port: int) -> None:
    assert MetricsAddress.parse(text) == MetricsAddress(host, port)


@pytest.mark.parametrize(
    "text", ["", "abc", "70000", ":9464", "host:", "1.2.3.4:-1", "::1:9464", "[]:80"]
)
def test_bad_metrics_address_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected \[HOST:\]PORT"):
        MetricsAddress.parse(text)


def _cli(*args: str) -> tuple[int, str]:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "wbsrun", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stderr


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--metrics", "nine", "expected [HOST:]PORT"),
        ("--metrics", "127.0.0.1:99999", "expected [HOST:]PORT"),
        ("--metrics-linger", "soon", "expected a duration such as 5s"),
    ],
)
def test_bad_metrics_option_exits_two_saying_what_was_expected(
    flag: str, value: str, said: str
) -> None:
    code, err = _cli("run", "no-such-bundle", flag, value)
    assert code == 2
    assert said in err
    assert value in err
    assert "Traceback" not in err


def test_a_metrics_port_in_use_is_a_clear_error_before_any_request(
    live_reference: Callable[[int], tuple[Path, TargetProcess]],
) -> None:
    bundle, target = live_reference(1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = _cli("run", str(bundle), "--users", "1", "--metrics", str(port))
    assert code == 1
    assert f"--metrics 127.0.0.1:{port}: cannot listen" in err
    assert "Traceback" not in err
    assert target.stats()["received"] == 0


# -- a live exporter -------------------------------------------------------------------------

_BOUNDED_LABELS = {
    "scenario",
    "action",
    "status",
    "result",
    "outcome",
    "code",
    "class",
    "event",
    "phase",
    "exit",
    "milestone",
    "input",
    "fate",
    "store",
    "trigger",
    "kind",
    "call",  # the progress pollable's: ready, block
    "quantile",
    "pool",
    "level",
    "rule",
    "plan",
    "le",
    # The PMP map's (wbsrun_pmp_*): fixed by wbsrun's map (docs/pmp-mapping.md).
    "group",
    "area",
    "metric",
    "state",
    "bound",  # the ETA's: mid, low, high
}


def _check_conventions(s: Scrape) -> None:
    names = set(s.families)
    assert names, s.text
    for name, fam in s.families.items():
        assert name.startswith(("wbsrun_", "process_")), name
        assert not re.search(r"_(ms|millis|milliseconds|kb|mb|percent)(_|$)", name), name
        for sample in fam.samples:
            assert set(sample.labels) <= _BOUNDED_LABELS, (name, sample.labels)
            # No per-user or per-task label values (unbounded cardinality).
            assert not any(re.fullmatch(r"u\d{4,}.*", v) for v in sample.labels.values())
            if fam.type == "counter":
                assert sample.name.endswith("_total"), sample.name
                assert sample.value >= 0
            if name.endswith("_ratio"):
                assert 0.0 <= sample.value <= 1.0, (name, sample)
        if fam.type == "histogram":
            assert name.endswith("_seconds"), name
    for name in ("wbsrun_workbook_bytes", "process_resident_memory_bytes"):
        assert name in names


def _check_histograms(s: Scrape) -> None:
    fam = s.families["wbsrun_action_duration_seconds"]
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    counts: dict[tuple[str, str], float] = {}
    for sample in fam.samples:
        key = (sample.labels["scenario"], sample.labels["action"])
        if sample.name.endswith("_bucket"):
            series.setdefault(key, []).append((float(sample.labels["le"]), sample.value))
        elif sample.name.endswith("_count"):
            counts[key] = sample.value
    assert series
    for key, buckets in series.items():
        bounds = [le for le, _ in buckets]
        assert bounds == [*LATENCY_BOUNDS_S, math.inf]
        values = [n for _, n in buckets]
        assert values == sorted(values)
        assert values[-1] == counts[key]


def test_live_scrapes_follow_the_conventions_and_the_final_one_equals_the_result(
    live_reference: Callable[[int], tuple[Path, TargetProcess]], tmp_path: Path
) -> None:
    bundle, target = live_reference(4)
    port = free_port()
    out = tmp_path / "result.json"
    url = f"http://127.0.0.1:{port}/metrics"
    args = ("run", str(bundle), "--users", "4", "--duration", "3s", "--json", str(out))
    with wbsrun_with_metrics(*args, port=port, linger="30s") as run:
        # Mid-run: every user started, work under way (0 until the first passes give the
        # time-boxed plan a projection).
        live = wait_for(
            lambda: (
                s
                if (s := scrape(url)).total("wbsrun_users_active") == 4
                and s.total("wbsrun_progress_work_ratio") > 0
                else None
            ),
            20,
            "a scrape in the middle of the run",
            run,
        )
        assert live.value("wbsrun_run_finished") == 0
        assert live.total("wbsrun_request_outcomes_total") > 0
        assert live.value("wbsrun_progress_work_ratio") < 1
        assert "wbsrun_tasks_open" in live.families
        assert live.total("wbsrun_tasks_open") <= 4
        for sample in live.samples("wbsrun_tasks_open"):
            assert re.fullmatch(
                r"(initiating|planning|executing|monitoring)\.\w+", sample.labels["phase"]
            )
        _check_conventions(live)
        _check_histograms(live)
        wait_for(lambda: out.is_file() or None, 30, "the result file", run)
        time.sleep(0.2)
        final = scrape(url)
        result = json.loads(out.read_text())
        began = time.monotonic()
        run.send_signal(2)  # Ctrl-C ends the linger at once
        assert run.wait(10) == 0
        assert time.monotonic() - began < 5
    _check_conventions(final)
    assert final.value("wbsrun_run_finished") == 1
    requests = result["requests"]
    for outcome in ("ok", "failed", "interrupted"):
        assert final.value("wbsrun_request_outcomes_total", outcome=outcome) == requests[outcome]
    assert requests["total"] == target.stats()["received"]
    assert final.value("wbsrun_tasks_started_total") == result["tasks"]["started"]
    for outcome in ("succeeded", "failed", "timed_out", "rolled_back", "interrupted"):
        assert final.value("wbsrun_tasks_closed_total", outcome=outcome) == result["tasks"][outcome]
    for name, a in result["actions"].items():
        assert final.total("wbsrun_actions_total", action=name) == a["count"]
        assert final.total("wbsrun_action_duration_seconds_count", action=name) == a["count"]
    assert final.value("wbsrun_progress_work_ratio") == result["progress"]["work"] == 1.0
    for bound in ("mid", "low", "high"):
        assert final.value("wbsrun_eta_seconds", bound=bound) == 0
    assert final.value("wbsrun_forecast_miss_plan") == 0
    # A time-boxed plan fixes its end, not its work: no progress forecast, no sample.
    reach = result["forecast"]["final_progress"]
    if reach is None:
        assert not final.samples("wbsrun_forecast_progress_ratio")
    else:
        assert final.value("wbsrun_forecast_progress_ratio") == reach
    assert final.value("wbsrun_users_active") == 0
    assert final.total("wbsrun_tasks_open") == 0
    pool = result["resources"]["ip-port-pool"]
    assert final.value("wbsrun_leases_granted_total", pool="ip-port-pool") == pool["leases"]
    assert final.value("wbsrun_leases_released_total", pool="ip-port-pool") == pool["released"]
    assert final.value("wbsrun_workbook_entries") > 0
    ledger = result["ledger"]
    assert final.value("wbsrun_workbook_closed_entries_total", fate="kept") == ledger["kept"]
    assert final.value("wbsrun_workbook_closed_entries_total", fate="dropped") == ledger["dropped"]
    milestones = result["progress"]["milestones"]
    for name, m in milestones.items():
        assert final.total("wbsrun_milestone_reached_total", milestone=name) == m["reached"]
    assert final.total("wbsrun_requests_total") == requests["total"]


# -- the loop bridge, in process ---------------------------------------------------------------


def test_scrapes_read_the_run_on_its_loop_and_the_final_reading_is_frozen(
    live_reference: Callable[[int], tuple[Path, TargetProcess]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio
    import threading

    import wbsrun.telemetry.metrics._server as server
    from wbsrun.cli.session import run_loop, wire
    from wbsrun.core.log import RunLog
    from wbsrun.core.runner import RunOptions
    from wbsrun.dsl.loader import load_plan
    from wbsrun.protocols.registry import provides
    from wbsrun.resources.pool import PoolManager
    from wbsrun.telemetry.metrics import MetricsExporter, RunSample, RunSources, take_sample

    readers: list[int] = []

    def spy(sources: RunSources) -> RunSample:
        readers.append(threading.get_ident())
        return take_sample(sources)

    monkeypatch.setattr(server, "take_sample", spy)
    bundle, _ = live_reference(2)
    plan = load_plan(bundle, provides())
    wired = wire(plan, RunOptions(users=2, duration=1.5), PoolManager(plan), RunLog(None))
    sources = RunSources(wired.runner, wired.aggregator, wired.bus, wired.poller)
    exporter = MetricsExporter(MetricsAddress("127.0.0.1", 0), sources)
    url = exporter.start().url()
    try:
        before = scrape(url)
        assert not [n for n in before.families if n.startswith("wbsrun_")]
        assert "process_resident_memory_bytes" in before.families
        during: list[Scrape] = []

        async def main() -> None:
            exporter.attach()
            run = asyncio.create_task(wired.runner.run())
            await asyncio.sleep(0.8)
            during.append(await asyncio.to_thread(scrape, url))  # the loop keeps running
            await run

        run_loop(main)
        loop_thread = threading.get_ident()
        assert readers == [loop_thread]  # read on the loop (this thread), not the server's
        assert during[0].value("wbsrun_run_finished") == 0
        assert during[0].total("wbsrun_request_outcomes_total") > 0
        final = exporter.finish()
        assert final.finished
        result = wired.result()
        after = scrape(url)
        assert len(readers) == 2  # the final reading; later scrapes serve it as it is
        assert after.value("wbsrun_run_finished") == 1
        assert after.total("wbsrun_request_outcomes_total") == result["requests"]["total"]
    finally:
        exporter.close()
    with pytest.raises(urllib.error.URLError, match="refused"):
        scrape(url, timeout=2)  # closed
