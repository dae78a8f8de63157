"""The self-contained report page: every style, script and datum inlined, nothing fetched.

uPlot (the charting library, MIT) comes from the npm registry at build time (`vendor.py`,
`make assets`) into `assets/`; the page's own script and styles are in `static/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

from wbsrun.errors import WbsrunError
from wbsrun.telemetry.html import charts, pmp_section, sched_sections, sections
from wbsrun.telemetry.html.fmt import esc, script_json

__all__ = ["AssetsMissing", "check_assets", "render_report", "write_report"]


class AssetsMissing(WbsrunError):
    """The charting library was not fetched into the package at build time."""


def _read(folder: str, name: str) -> str:
    path = files("wbsrun.telemetry.html").joinpath(folder, name)
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError) as exc:
        if folder != "assets":
            raise
        raise AssetsMissing(
            f"the HTML report's charting library is missing ({folder}/{name} in "
            f"{files('wbsrun.telemetry.html')}): run `make assets` (or "
            "`python src/wbsrun/telemetry/html/vendor.py`) in the source tree, then reinstall"
        ) from exc


def check_assets() -> None:
    """Raise AssetsMissing now rather than after a long run whose report cannot be drawn."""
    for name in ("uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE"):
        _read("assets", name)


def _charts(data: Mapping[str, Any]) -> str:
    specs = data["charts"]
    if not specs:
        return (
            '<section id="charts"><h2>Over time</h2><p class="note">This result has no time '
            "series (<code>timeseries</code>): only its final figures are shown.</p></section>"
        )
    figs = "".join(
        f'<figure class="chart" id="chart-{esc(s["id"])}"><figcaption>{esc(s["title"])}'
        '</figcaption><div class="plot"></div></figure>'
        for s in specs
    )
    return f'<section id="charts"><h2>Over time</h2><div class="charts">{figs}</div></section>'


def render_report(result: Mapping[str, Any]) -> str:
    """One HTML document showing the JSON result (docs/observability.md, "HTML report")."""
    uplot_js, uplot_css = _read("assets", "uPlot.iife.min.js"), _read("assets", "uPlot.min.css")
    license_ = _read("assets", "uPlot.LICENSE")
    data = charts.chart_data(result)
    body = "".join(
        [
            sections.header(result),
            sections.thresholds(result),
            _charts(data),
            sections.requests(result),
            sections.actions(result),
            sections.scenarios(result),
            sections.errors(result),
            sched_sections.impact(result),
            sections.progress(result),
            sections.health(result),
            sections.forecast(result),
            sections.resources(result),
            pmp_section.pmp(result),
            sched_sections.scheduling(result),
        ]
    )
    footer = (
        f"<footer>Written by wbsrun from the JSON result ({esc(result.get('$schema', ''))})."
        " Charts: uPlot, MIT license:<details><summary>license</summary>"
        f"<pre>{esc(license_)}</pre></details></footer>"
    )
    title = f"wbsrun: {result.get('scenario', 'run')} ({result.get('status', '')})"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        # No request may leave the page: the policy refuses any that a change let slip in.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title>"
        f"<style>{uplot_css}</style><style>{_read('static', 'report.css')}</style></head>"
        f"<body><main>{body}{footer}</main>"
        f'<script type="application/json" id="wbsrun-charts">{script_json(data)}</script>'
        f"<script>{uplot_js}</script><script>{_read('static', 'report.js')}</script>"
        "</body></html>\n"
    )


def write_report(result: Mapping[str, Any], path: Path) -> Path:
    """Render and write the report (parent directories made); returns the path."""
    text = render_report(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
