"""The live line fits the terminal: whole fields, most important first (elapsed, progress,
ETA, health), at any width; piped, complete lines that nothing wraps."""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from wbsrun.cli.options import resolve_options
from wbsrun.cli.session import execute, wire
from wbsrun.core.log import RunLog
from wbsrun.dsl.loader import load_plan
from wbsrun.progress.forecast import Forecast
from wbsrun.progress.report import ProgressSnapshot, progress_snapshot
from wbsrun.progress.views import ProgramProgress
from wbsrun.protocols.registry import provides
from wbsrun.resources.pool import PoolManager
from wbsrun.target import TargetProcess
from wbsrun.telemetry.console import FIELD_SEP, eta_field, fit_fields, format_live, live_fields

WIDTHS = (40, 80, 120, 200)
# What each width must show at least: elapsed and progress first, then ETA and health.
MUST_SHOW = {
    40: ("s", "work", "time"),
    80: ("s", "work", "time", "milestones", "ETA", "health"),
    120: ("ETA", "health", "users", "req"),
    200: ("ETA", "health", "users", "req", "failed", "errors"),
}
ELAPSED = re.compile(r"^ *\d+\.\ds  work ")

Live = Callable[[int], tuple[Path, TargetProcess]]


fields_st = st.lists(st.text(st.characters(codec="ascii", exclude_characters="\n\r"), min_size=1))


@given(fields=fields_st, width=st.integers(1, 300))
def test_fit_keeps_the_longest_prefix_of_whole_fields(fields: list[str], width: int) -> None:
    line = fit_fields(fields, width)
    assert len(line) <= width
    if fields and len(fields[0]) > width:
        assert line == fields[0][:width]  # nothing fits whole: the first field, cut
        return
    k = next(k for k in range(len(fields), -1, -1) if FIELD_SEP.join(fields[:k]) == line)
    assert k == len(fields) or len(FIELD_SEP.join(fields[: k + 1])) > width


def test_fit_without_a_width_keeps_every_field() -> None:
    assert fit_fields(["a", "b" * 500], None) == "a" + FIELD_SEP + "b" * 500


def test_live_fields_in_a_real_run_fit_every_width_most_important_first(
    live_reference: Live, tmp_path: Path
) -> None:
    bundle, _ = live_reference(4)
    plan = load_plan(bundle, provides())
    options = resolve_options(None, {"users": 4, "duration": "1.5s"})
    wired = wire(plan, options, PoolManager(plan), RunLog())
    samples: list[list[str]] = []
    lines: dict[int, list[str]] = {w: [] for w in WIDTHS}

    async def watch() -> None:
        while wired.runner.ended_at is None:
            await asyncio.sleep(0.25)
            snap = progress_snapshot(wired.runner, wired.aggregator)
            fields = live_fields(wired.runner, snap, 123.0)
            samples.append(fields)
            for w in WIDTHS:
                lines[w].append(format_live(wired.runner, snap, 123.0, w))

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(wired.runner.run())
            tg.create_task(watch())

    asyncio.run(main())
    assert len(samples) >= 4
    for fields in samples:
        names = [f.split()[0] for f in fields]
        assert re.fullmatch(r"\d+\.\ds", names[0]), fields
        assert names[1:8] == ["work", "time", "milestones", "ETA", "health", "users", "req"]
        assert any(f.startswith("| http-bulk-refresh") for f in fields)
    for w in WIDTHS:
        for fields, line in zip(samples, lines[w], strict=True):
            assert len(line) <= w
            shown = next(k for k in range(len(fields), 0, -1) if FIELD_SEP.join(fields[:k]) == line)
            assert shown == len(fields) or len(FIELD_SEP.join(fields[: shown + 1])) > w
            for word in MUST_SHOW[w]:
                assert word in line, (w, line)


@pytest.mark.parametrize("width", WIDTHS)
def test_terminal_live_line_is_redrawn_within_its_width(
    live_reference: Live, width: int, tmp_path: Path
) -> None:
    bundle, _ = live_reference(4)
    plan = load_plan(bundle, provides())
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=width, highlight=False)
    options = resolve_options(None, {"users": 4, "duration": "1.2s"})
    execute(plan, options, json_out=None, log_file=None, console=console, summary=False)
    redraws = [s for s in out.getvalue().split("\r\x1b[2K") if s]
    assert len(redraws) >= 2, out.getvalue()
    for line in redraws:
        assert "\n" not in line
        assert len(line) <= width - 1  # the last column would wrap on some terminals
        assert ELAPSED.match(line), line
        for word in MUST_SHOW[width]:
            assert word in line, (width, line)


def test_piped_run_prints_complete_live_lines_and_wraps_nothing(
    live_reference: Live, tmp_path: Path
) -> None:
    """A real `wbsrun run`, stdout a pipe: every live line is a whole record (its fields from
    elapsed to the per-scenario detail on one line), however long; no summary line is cut."""
    bundle, _ = live_reference(4)
    out_dir = tmp_path / "out"
    cmd = [sys.executable, "-m", "wbsrun", "run", str(bundle), "--users", "4"]
    cmd += ["--duration", "5.6s", "--out", str(out_dir), "--sampling", "full"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    live = [line for line in lines if "ETA" in line]
    assert live, proc.stdout
    for line in live:
        assert ELAPSED.match(line), line
        for field in ("time", "milestones", "health", "users", "req", "tasks ok"):
            assert f"  {field} " in line, line
        assert re.search(
            r"  \| http-bulk-refresh \d+% \(probe \d+% push \d+% purge \d+%\)"
            r" health \d\.\d\d[↑↓→]?$",
            line,
        )
    assert max(len(line) for line in live) > 80  # rich's width when piped: not applied
    heads = [line for line in lines if line.startswith("  requests  ")]
    assert len(heads) == 1
    assert re.fullmatch(r"  requests  [\d,]+ \([\d,.]+/s\) · [\d,]+ failed \(\d+\.\d%\)", heads[0])
    # Where the files went, last in the summary (before the last log lines).
    result = json.loads((out_dir / "result.json").read_text(encoding="utf-8"))
    assert f"  result  {out_dir / 'result.json'}" in lines
    assert f"  ledger  {result['ledger']['path']}" in lines


def _snap(
    eta: float | None, low: float | None, high: float | None, paused: bool = False
) -> ProgressSnapshot:
    forecast = Forecast(eta, low, high, 1.0, 1.0, 1.0, "holt")
    detail = ProgramProgress(5.0, None, 0.5, None, eta, 100, 100.0, 50, 50, (), (), forecast)
    return ProgressSnapshot(5.0, None, 0.5, eta, 100, 50, 0, 1, 1, detail, paused=paused)


def test_the_eta_field_shows_the_forecast_band_when_it_has_a_width() -> None:
    assert eta_field(_snap(7.0, 6.0, 9.4)) == "ETA 7s (6s–9s)"
    assert eta_field(_snap(75.0, 61.0, 130.0)) == "ETA 1m15s (1m01s–2m10s)"
    assert eta_field(_snap(7.0, 7.2, 6.9)) == "ETA 7s"  # no width as shown
    assert eta_field(_snap(None, None, None)) == "ETA ?"
    assert eta_field(_snap(7.0, 6.0, 9.0, paused=True)) == "ETA paused"
