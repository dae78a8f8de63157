"""A real demo run with its HTML report, and a headless Chromium, shared by the report tests."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from browser_kit import Chromium, chromium_binary, launch
from report_kit import DemoReport, demo_run


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
    if chromium_binary() is None:
        pytest.skip("chromium is not installed (make test installs it: make chromium)")
    browser = launch()
    try:
        yield browser
    finally:
        browser.close()
