"""The HTML report in headless Chromium: offline, no console error, every chart drawn, and the
numbers shown are the JSON result's (tests/browser_kit.py drives the browser)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from browser_kit import Chromium, Loaded
from report_kit import HOSTILE, DemoReport, complete, figures_match, hostile
from wbsrun.telemetry.html import write_report

FIGURES = (
    "Array.from(document.querySelectorAll('[data-path]'))"
    ".map(e => [e.getAttribute('data-path'), e.textContent])"
)
# Per chart: its canvas size, and per series the pixels painted in exactly its colour (the
# line itself, not the grid or the axes).
CHARTS = """(() => {
  const spec = JSON.parse(document.getElementById('wbsrun-charts').textContent);
  const rgb = c => [1, 3, 5].map(i => parseInt(c.slice(i, i + 2), 16));
  return spec.charts.map(ch => {
    const canvas = document.querySelector('#chart-' + ch.id + ' canvas');
    if (!canvas) return {id: ch.id, width: 0, height: 0, ink: {}};
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const ink = {};
    for (const s of ch.series) {
      const [r, g, b] = rgb(s.color);
      let n = 0;
      for (let i = 0; i < d.length; i += 4)
        if (d[i] === r && d[i + 1] === g && d[i + 2] === b && d[i + 3] === 255) n++;
      ink[s.label] = n;
    }
    return {id: ch.id, width: canvas.width, height: canvas.height, ink};
  });
})()"""
ALL_CHARTS = {"progress", "rps", "latency", "errors", "health", "users", "leases"}


def load(chromium: Chromium, page: Path) -> Loaded:
    return chromium.load(page, {"figures": FIGURES, "charts": CHARTS})


def assert_offline_and_clean(loaded: Loaded) -> None:
    assert loaded.requests == [loaded.url], f"requests beyond the page: {loaded.requests}"
    assert loaded.errors == []


def assert_every_chart_drawn(charts: list[dict[str, Any]]) -> None:
    for chart in charts:
        assert chart["width"] > 300, chart
        assert chart["height"] > 100, chart
        assert all(n > 20 for n in chart["ink"].values()), f"a series not drawn: {chart}"


def test_demo_report_loads_offline_clean_and_shows_the_results_numbers(
    chromium: Chromium, demo_report: DemoReport
) -> None:
    loaded = load(chromium, demo_report.report)
    assert_offline_and_clean(loaded)
    shown = [tuple(f) for f in loaded.values["figures"]]
    assert figures_match(demo_report.result, shown) == []
    paths = {p for p, _ in shown}
    assert '["requests", "total"]' in paths
    assert '["requests", "per_second"]' in paths
    for name in demo_report.result["actions"]:
        assert f'["actions", "{name}", "latency_ms", "p99"]' in paths
    assert_every_chart_drawn(loaded.values["charts"])
    if "timeseries" in demo_report.result:  # once the run writes its series (SPEC-19)
        assert {c["id"] for c in loaded.values["charts"]} >= {"rps", "latency", "users"}


def test_a_full_result_draws_every_chart_and_matches_every_figure(
    chromium: Chromium, demo_report: DemoReport, tmp_path: Path
) -> None:
    result = complete(demo_report.result)
    page = write_report(result, tmp_path / "full.html")
    loaded = load(chromium, page)
    assert_offline_and_clean(loaded)
    charts = loaded.values["charts"]
    assert {c["id"] for c in charts} == ALL_CHARTS
    assert_every_chart_drawn(charts)
    shown = [tuple(f) for f in loaded.values["figures"]]
    assert figures_match(result, shown) == []
    paths = {p for p, _ in shown}
    for stat in ("count", "min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"):
        assert f'["requests", "latency_ms", "{stat}"]' in paths
    assert '["thresholds", 0, "observed"]' in paths
    assert '["health", "score"]' in paths


def test_untrusted_text_is_shown_as_text_and_never_runs(
    chromium: Chromium, demo_report: DemoReport, tmp_path: Path
) -> None:
    page = write_report(hostile(complete(demo_report.result)), tmp_path / "hostile.html")
    probes = {
        "pwned": "window.__pwned === undefined ? null : window.__pwned",
        "images": "document.querySelectorAll('img').length",
        "scripts": "document.querySelectorAll('script').length",
        "messages": "Array.from(document.querySelectorAll('td.message')).map(e => e.textContent)",
        "title": "document.querySelector('h1').textContent",
        "legend": "Array.from(document.querySelectorAll('#chart-errors .u-label'))"
        ".map(e => e.textContent)",
    }
    loaded = chromium.load(page, probes)
    assert_offline_and_clean(loaded)
    assert loaded.values["pwned"] is None
    assert loaded.values["images"] == 0
    assert loaded.values["scripts"] == 3  # the data, uPlot, the page's script: nothing else
    assert HOSTILE in loaded.values["messages"]
    assert loaded.values["title"].endswith(HOSTILE)
    assert HOSTILE in loaded.values["legend"]


def test_the_request_recorder_sees_a_request_the_page_makes(
    chromium: Chromium, tmp_path: Path
) -> None:
    """The 'no request' assertions above can fail: a page that fetches is caught."""
    page = tmp_path / "fetches.html"
    page.write_text('<!DOCTYPE html><img src="http://127.0.0.1:9/pixel.png">', encoding="utf-8")
    loaded = chromium.load(page, {})
    assert "http://127.0.0.1:9/pixel.png" in loaded.requests
