"""Console output: the live progress line while a run goes, the summary table after it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from wbsrun.core.runner import Runner
from wbsrun.progress.report import ProgressSnapshot, progress_snapshot

__all__ = ["LiveLine", "format_live", "print_summary"]


def _pct(value: float | None) -> str:
    return "  -  " if value is None else f"{value * 100:5.1f}%"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    m, s = divmod(int(seconds + 0.5), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def format_live(runner: Runner, snap: ProgressSnapshot, rps: float) -> str:
    st = runner.ctx.stats
    errors = sum(st.errors.values())
    return (
        f"{snap.elapsed:6.1f}s  users {snap.active_users}/{snap.planned_users}  "
        f"req {st.requests_total} ({rps:,.0f}/s)  failed {st.requests_failed}  "
        f"tasks ok {st.tasks_succeeded} err {st.tasks_failed + st.tasks_timed_out}  "
        f"errors {errors}  work {_pct(snap.work)} time {_pct(snap.time)}  ETA {_eta(snap.eta_s)}"
    )


class LiveLine:
    """Redraws one status line on a terminal; prints a line every few seconds otherwise."""

    def __init__(self, runner: Runner, console: Console, interval: float = 0.5) -> None:
        self.runner = runner
        self.console = console
        self.interval = interval if console.is_terminal else 5.0

    async def run(self) -> None:
        last_total, last_t = 0, 0.0
        while True:
            await asyncio.sleep(self.interval)
            snap = progress_snapshot(self.runner)
            total = self.runner.ctx.stats.requests_total
            dt = snap.elapsed - last_t
            rps = (total - last_total) / dt if dt > 0 else 0.0
            last_total, last_t = total, snap.elapsed
            line = format_live(self.runner, snap, rps)
            if self.console.is_terminal:
                self.console.file.write("\r\x1b[2K" + line)
                self.console.file.flush()
            else:
                self.console.print(line, highlight=False)

    def clear(self) -> None:
        if self.console.is_terminal:
            self.console.file.write("\r\x1b[2K")
            self.console.file.flush()


def print_summary(console: Console, result: Mapping[str, Any]) -> None:
    req = result["requests"]
    tasks = result["tasks"]
    prog = result["progress"]
    console.print(
        f"[bold]{result['scenario']}[/bold] {result['status']} in {result['duration_s']}s — "
        f"{req['total']} requests ({req['per_second']}/s), {req['failed']} failed; "
        f"tasks {tasks['succeeded']} ok / {tasks['failed']} failed / "
        f"{tasks['timed_out']} timed out / {tasks['rolled_back']} rolled back; "
        f"work {prog['work'] * 100:.1f}%"
    )
    table = Table(title="actions", title_justify="left")
    for col in ("action", "count", "ok", "failed", "p50 ms", "p90 ms", "p99 ms", "max ms"):
        table.add_column(col, justify="left" if col == "action" else "right")
    for name, a in result["actions"].items():
        lat = a["latency_ms"]
        table.add_row(
            name,
            str(a["count"]),
            str(a["ok"]),
            str(a["failed"]),
            f"{lat['p50']:.2f}",
            f"{lat['p90']:.2f}",
            f"{lat['p99']:.2f}",
            f"{lat['max']:.2f}",
        )
    console.print(table)
    extra = Table(
        show_header=True, title="exits, errors, milestones, resources", title_justify="left"
    )
    extra.add_column("kind")
    extra.add_column("name")
    extra.add_column("value", justify="right")
    for kind in ("exits", "errors"):
        for name, n in result[kind].items():
            extra.add_row(kind[:-1], name, str(n))
    for name, m in prog["milestones"].items():
        extra.add_row("milestone", name, f"{m['reached']} (weight {m['weight']})")
    for name, r in result["resources"].items():
        extra.add_row(
            "resource",
            name,
            f"{r['leases']} leases, {r['released']} released, {r['items']} items",
        )
    for level, n in result["logs"].items():
        extra.add_row("log", level, str(n))
    if extra.row_count:
        console.print(extra)
