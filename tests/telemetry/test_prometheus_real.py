"""A real Prometheus (Debian's package) scrapes a running `wbsrun run --metrics` every second;
what it stored is read back through its HTTP query API."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from metrics_kit import Prometheus, free_port, wait_for, wbsrun_with_metrics
from wbsrun.target import TargetProcess


def test_prometheus_scrapes_a_running_wbsrun_and_sees_requests_rise_and_work_reach_one(
    live_reference: Callable[[int], tuple[Path, TargetProcess]], tmp_path: Path
) -> None:
    bundle, target = live_reference(4)
    port = free_port()
    out = tmp_path / "result.json"
    (tmp_path / "prom").mkdir()
    prom = Prometheus(tmp_path / "prom", port)
    try:
        # Prometheus applies its targets ~5 s after it starts: wbsrun starts once the target
        # has been tried (up 0: nothing listens yet), so that the whole run is scraped.
        wait_for(lambda: prom.query('up{job="wbsrun"}') or None, 30, "a first scrape attempt")
        with wbsrun_with_metrics(
            "run",
            str(bundle),
            "--users",
            "4",
            "--duration",
            "7s",
            "--json",
            str(out),
            port=port,
            linger="6s",
        ) as run:
            # Series stored while the run goes, and the request count moving between queries.
            total = "sum(wbsrun_request_outcomes_total)"
            first = wait_for(
                lambda: v if (v := prom.scalar(total)) else None,
                20,
                "a first scrape with requests",
                run,
            )
            assert prom.scalar("wbsrun_run_finished") == 0
            second = wait_for(
                lambda: v if (v := prom.scalar(total)) and v > first else None,
                10,
                "the request count to rise",
            )
            assert second > first
            assert prom.scalar('up{job="wbsrun"}') == 1
            # The run's end, as scraped during the linger: finished, every figure final.
            wait_for(lambda: out.is_file() or None, 30, "the result file", run)
            wait_for(
                lambda: prom.scalar("wbsrun_run_finished") == 1 or None, 10, "the final scrape"
            )
            result = json.loads(out.read_text())
            assert prom.scalar("wbsrun_progress_work_ratio") == 1.0
            assert prom.scalar(total) == result["requests"]["total"] == target.stats()["received"]
            assert prom.scalar('wbsrun_request_outcomes_total{outcome="failed"}') == 0
            assert prom.scalar("wbsrun_tasks_started_total") == result["tasks"]["started"]
            assert prom.value('wbsrun_workbook_bytes{store="packed"}') > 0
            assert prom.value("wbsrun_workbook_entries") > 0
            assert prom.value("process_resident_memory_bytes") > 0
            granted = prom.scalar('wbsrun_leases_granted_total{pool="ip-port-pool"}')
            assert granted == result["resources"]["ip-port-pool"]["leases"]
            # The latency histogram answers histogram_quantile, in seconds.
            p95 = prom.query(
                "histogram_quantile(0.95, sum by (le, action) "
                '(wbsrun_action_duration_seconds_bucket{action="probe-get"}))'
            )
            assert len(p95) == 1
            assert 0 < float(p95[0]["value"][1]) < 5
            # One sample a second or so over the whole run, not one late scrape.
            assert prom.value("count_over_time(wbsrun_run_elapsed_seconds[1m])") >= 6
            assert run.poll() is None  # still lingering: the figures came from the live endpoint
        assert run.returncode == 0
    finally:
        prom.stop()
