"""Console output: the live progress line while a run goes, the summary table after it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from wbsrun.core.runner import Runner
from wbsrun.progress.aggregate import Aggregator
from wbsrun.progress.report import ProgressSnapshot, progress_snapshot
from wbsrun.progress.views import ProgramProgress

__all__ = ["LiveLine", "format_live", "print_summary"]

# Error messages the summary shows (the JSON result has them all, see docs/result.md).
SUMMARY_MESSAGES = 10


def _pct(value: float | None) -> str:
    return "  -  " if value is None else f"{value * 100:5.1f}%"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    m, s = divmod(int(seconds + 0.5), 60)
    h, m = divmod(m, 60)
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m{s:02d}s" if m else f"{s}s"


def format_scenarios(detail: ProgramProgress) -> str:
    """`name work% (milestone share% …)` per scenario; milestones are shares of planned passes."""
    parts = []
    for s in detail.scenarios:
        text = f"{s.name} {s.work * 100:.0f}%"
        if s.milestones:
            text += " (" + " ".join(f"{m.name} {m.share * 100:.0f}%" for m in s.milestones) + ")"
        parts.append(text)
    return " | ".join(parts)


def format_live(runner: Runner, snap: ProgressSnapshot, rps: float) -> str:
    st = runner.ctx.stats
    errors = sum(st.errors.values())
    line = (
        f"{snap.elapsed:6.1f}s  users {snap.active_users}/{snap.planned_users}  "
        f"req {st.requests_total} ({rps:,.0f}/s)  failed {st.requests_failed}  "
        f"tasks ok {st.tasks_succeeded} err {st.tasks_failed + st.tasks_timed_out}  "
        f"errors {errors}  work {_pct(snap.work)} time {_pct(snap.time)}"
    )
    stopping = runner.stopping()
    if stopping is not None:
        # Past the window: what the graceful stop still waits for, and until when.
        line += f"  stopping: {len(runner.ctx.inflight)} in flight, cut in {stopping:.0f}s"
    detail = snap.detail
    if detail is not None and detail.milestones_weighted is not None:
        line += f" milestones {_pct(detail.milestones_weighted)}"
    line += f"  ETA {_eta(snap.eta_s)}"
    # Resource trouble, only once there is some: items out of rotation and rollbacks.
    failed = sum(
        h.get("items_failed", 0) - h.get("items_recovered", 0) for h in st.resource_health.values()
    )
    if failed or st.rollbacks:
        line += f"  items down {failed} rollbacks {st.rollbacks}"
    if detail is not None and detail.scenarios:
        line += "  | " + format_scenarios(detail)
    return line


class LiveLine:
    """Redraws one status line on a terminal; prints a line every few seconds otherwise."""

    def __init__(
        self,
        runner: Runner,
        console: Console,
        interval: float = 0.5,
        *,
        aggregator: Aggregator | None = None,
    ) -> None:
        self.runner = runner
        self.console = console
        self.interval = interval if console.is_terminal else 5.0
        # Per-scenario and milestone progress and the ETA's rate samples come from it.
        self.aggregator = aggregator

    async def run(self) -> None:
        last_total, last_t = 0, 0.0
        while True:
            await asyncio.sleep(self.interval)
            snap = progress_snapshot(self.runner, self.aggregator)
            total = self.runner.ctx.stats.requests_total
            dt = snap.elapsed - last_t
            rps = (total - last_total) / dt if dt > 0 else 0.0
            last_total, last_t = total, snap.elapsed
            line = format_live(self.runner, snap, rps)
            if self.console.is_terminal:
                # One row only: a wrapped line would not be redrawn in place.
                line = line[: max(20, self.console.width - 1)]
                self.console.file.write("\r\x1b[2K" + line)
                self.console.file.flush()
            else:
                self.console.print(line, highlight=False, markup=False)

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
        f"{req['total']} requests ({req['per_second']}/s), {req['failed']} failed"
        + (f", {req['interrupted']} interrupted" if req.get("interrupted") else "")
        + f"; tasks {tasks['succeeded']} ok / {tasks['failed']} failed / "
        f"{tasks['timed_out']} timed out / {tasks['rolled_back']} rolled back"
        + (f" / {tasks['interrupted']} interrupted" if tasks.get("interrupted") else "")
        + "; "
        f"work {prog['work'] * 100:.1f}%"
        + (
            f", milestones {prog['milestones_weighted'] * 100:.1f}%"
            if prog.get("milestones_weighted") is not None
            else ""
        )
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
    _print_error_messages(console, result.get("error_messages", ()))
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
        share = f"{m['share'] * 100:.1f}%, " if "share" in m else ""
        extra.add_row("milestone", name, f"{m['reached']} ({share}weight {m['weight']})")
    scenarios = prog.get("scenarios", {})
    if len(scenarios) > 1:
        for name, sc in scenarios.items():
            extra.add_row("scenario", name, f"work {sc['work'] * 100:.1f}%")
    for name, r in result["resources"].items():
        text = f"{r['leases']} leases, {r['released']} released, {r['items']} items"
        if r.get("health_checks"):
            text += (
                f"; health {r['health_checks']} checks, {r['health_failures']} failed, "
                f"{r.get('healthy', r['items'])} healthy at the end"
            )
        if r.get("expired"):
            text += f"; {r['expired']} expired"
        extra.add_row("resource", name, text)
    for level, n in result["logs"].items():
        extra.add_row("log", level, str(n))
    if extra.row_count:
        console.print(extra)


def _print_error_messages(console: Console, messages: Sequence[Mapping[str, Any]]) -> None:
    """The most frequent error messages, as Locust's failures table: count, action, code,
    message."""
    if not messages:
        return
    shown = messages[:SUMMARY_MESSAGES]
    title = "error messages"
    if len(messages) > len(shown):
        title += f" (top {len(shown)} of {len(messages)}; all in the JSON result)"
    table = Table(title=title, title_justify="left")
    table.add_column("count", justify="right")
    table.add_column("action")
    table.add_column("code")
    table.add_column("message", overflow="fold")
    for m in shown:
        message = m["message"]
        if message is None:
            message = "(other messages, beyond the cap)"
        # Text, not str: a message's brackets are not rich markup.
        table.add_row(
            f"{m['count']:,}",
            Text(m["action"] or "(pass)"),
            Text(m["code"]),
            Text(message or "(no message)"),
        )
    console.print(table)
