"""The HTML report as text: self-contained, escaped, tolerant of missing keys, and its
charting library fetched and checked as `make assets` does (no browser: see
test_report_browser.py for the page as Chromium draws it)."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import io
import json
import re
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from report_kit import HOSTILE, DemoReport, complete, figures, figures_match, hostile
from wbsrun.telemetry.html import render_report, vendor
from wbsrun.telemetry.html.charts import MAX_ERROR_SERIES, chart_data
from wbsrun.telemetry.html.fmt import script_json


def test_the_demo_report_is_one_file_that_names_no_other(demo_report: DemoReport) -> None:
    page = demo_report.report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # Nothing the browser would fetch: no src/href attribute, no url(), no import.
    assert re.search(r"\b(src|href)\s*=", page) is None
    assert "url(" not in page.replace("url(\\", "")
    assert "@import" not in page
    assert f"report {demo_report.report}" in " ".join(demo_report.stdout.split())


def test_every_figure_of_the_demo_report_is_the_results_value(demo_report: DemoReport) -> None:
    shown = figures(demo_report.report.read_text(encoding="utf-8"))
    assert len(shown) > 50
    assert figures_match(demo_report.result, shown) == []


def test_the_figure_check_catches_a_wrong_number(demo_report: DemoReport) -> None:
    result = json.loads(json.dumps(demo_report.result))
    result["requests"]["total"] += 1
    shown = figures(demo_report.report.read_text(encoding="utf-8"))
    wrong = f"['requests', 'total']: shows '{demo_report.result['requests']['total']:,}' for "
    assert figures_match(result, shown) == [f"{wrong}{result['requests']['total']}"] * 2


def test_untrusted_text_is_escaped_everywhere(demo_report: DemoReport) -> None:
    page = render_report(hostile(complete(demo_report.result)))
    assert HOSTILE not in page
    assert "<img" not in page
    assert "<!--" not in page
    assert page.count("<script") == page.count("</script>") == 3
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page


def test_script_json_cannot_close_its_element() -> None:
    text = script_json({"k": "</script><!-- \u2028 & >"})
    for raw in ("<", ">", "&", "\u2028"):
        assert raw not in text
    assert json.loads(text) == {"k": "</script><!-- \u2028 & >"}


def test_a_result_without_the_newer_keys_still_renders() -> None:
    page = render_report({"scenario": "old", "status": "completed", "requests": {"total": 3}})
    assert "This result has no time series" in page
    assert figures_match({"requests": {"total": 3}}, figures(page)) == []


def test_the_health_section_shows_each_scenario_and_the_lowest_users() -> None:
    one = {"score": 0.5, "progress": 0.5, "error_rate": 0.5, "deviation": 0.5, "trend": -0.25}
    users = {"count": 2, "min": 0.35, "p10": 0.35, "p50": 0.35, "mean": 0.675}
    worst = [{"user_id": "s2-u0001", "scenario": "failing", "score": 0.35}]
    health = {**one, "scenarios": {"failing": one}, "users": {**users, "worst": worst}}
    result = {"scenario": "h", "status": "completed", "health": health}
    page = render_report(result)
    assert '<section id="health">' in page
    assert "s2-u0001" in page
    shown = figures(page)
    assert figures_match(result, shown) == []
    paths = {tuple(json.loads(raw)) for raw, _ in shown}
    assert ("health", "scenarios", "failing", "trend") in paths
    assert ("health", "users", "worst", 0, "score") in paths


# Keys the report reads below the top level, and one it does not.
NESTED = [
    "t", "p50", "p95", "rps", "errors", "x", "200", "ok", "total", "failed", "latency_ms",
    "status_codes", "message", "observed", "rule", "items", "leases", "work", "milestones",
    "scenarios", "score", "interval_s", "requests", "users", "count", "worst", "user_id",
    "final_progress", "will_miss_plan", "method", "warned_at_s",
]  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(NESTED), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = [
    "status", "requests", "actions", "scenarios", "errors", "error_messages", "progress",
    "resources", "health", "thresholds", "timeseries", "users", "duration_s", "forecast",
]  # fmt: skip


@given(st.dictionaries(st.sampled_from(KEYS), JSON, max_size=8))
def test_any_shape_under_the_known_keys_renders_without_raising(result: dict[str, Any]) -> None:
    page = render_report(result)
    assert page.endswith("</html>\n")
    assert figures_match(result, figures(page)) == []


def test_the_forecast_section_shows_the_miss_and_the_progress_band() -> None:
    one = {
        "final_progress": 0.61,
        "final_progress_low": 0.55,
        "final_progress_high": 0.7,
        "method": "holt",
        "will_miss_plan": True,
        "warned_at_s": 4.5,
    }
    result = {"forecast": {**one, "history_runs": 2, "scenarios": {"checkout": one}}}
    page = render_report(result)
    section = page[page.index('<section id="forecast">') :]
    section = section[: section.index("</section>")]
    assert section.count("<td>yes</td>") == 2
    assert section.count("61.00 %") == 2
    assert "55.00 %" in section
    assert "70.00 %" in section
    assert "4.5 s" in section
    assert "checkout" in section
    assert figures_match(result, figures(page)) == []
    assert '<section id="forecast">' not in render_report({"status": "completed"})


def test_charts_are_offered_only_for_columns_with_values() -> None:
    ts = {"t": [1.0, 2.0], "rps": [5, 6], "health": [None, None], "users": "not a column"}
    data = chart_data({"timeseries": ts})
    assert [c["id"] for c in data["charts"]] == ["rps"]
    assert data["columns"] == {"rps": [5.0, 6.0]}
    assert chart_data({"timeseries": {"rps": [1]}})["charts"] == []


def test_error_codes_beyond_the_cap_are_summed_into_one_line() -> None:
    codes = {f"code-{i:02d}": [i, i] for i in range(MAX_ERROR_SERIES + 3)}
    data = chart_data({"timeseries": {"t": [1.0, 2.0], "errors": codes}})
    (errors,) = data["charts"]
    labels = [s["label"] for s in errors["series"]]
    assert labels[:2] == ["code-10", "code-09"]  # the most errors first
    assert labels[-1] == "(other codes: 3)"
    assert data["columns"]["errors.(other)"] == [0.0 + 1 + 2, 3.0]


def _tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def test_vendor_refuses_a_tarball_whose_hash_differs() -> None:
    data = _tarball(dict.fromkeys(vendor.ASSETS, b"x"))
    vendor.verify(data, _integrity(data))
    with pytest.raises(ValueError, match="integrity mismatch"):
        vendor.verify(data + b"\0", _integrity(data))
    with pytest.raises(ValueError, match="unsupported integrity"):
        vendor.verify(data, "sha1-abc")


def test_vendor_extracts_only_the_named_files(tmp_path: Path) -> None:
    files = {member: member.encode() for member in vendor.ASSETS}
    files["../../evil.js"] = b"alert(1)"
    written = vendor.extract(_tarball(files), tmp_path / "assets")
    assert sorted(p.name for p in (tmp_path / "assets").iterdir()) == sorted(vendor.ASSETS.values())
    assert len(written) == len(vendor.ASSETS)
    assert not (tmp_path / "evil.js").exists()


def test_the_shipped_library_is_the_pinned_version() -> None:
    js = (vendor.ASSET_DIR / "uPlot.iife.min.js").read_text(encoding="utf-8")
    assert js.startswith(f"/*! https://github.com/leeoniya/uPlot (v{vendor.VERSION}) */")
    assert "</script" not in js.lower()
    assert HOSTILE not in js


def test_the_package_data_ships_the_pages_script_styles_and_library() -> None:
    """A wheel carries what `render_report` reads (pyproject's package-data patterns)."""
    config = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text("utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["wbsrun"]
    html = Path(vendor.__file__).parent
    needed = [*html.glob("static/*"), *(vendor.ASSET_DIR / n for n in vendor.ASSETS.values())]
    assert len(needed) == 5
    for path in needed:
        name = path.relative_to(html.parents[1]).as_posix()
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name
