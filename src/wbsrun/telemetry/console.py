"""Console output: the live progress line while a run goes (the end summary: summary.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from rich.console import Console

from wbsrun.core.runner import Runner
from wbsrun.progress.aggregate import Aggregator
from wbsrun.progress.health import HealthFigures
from wbsrun.progress.report import ProgressSnapshot, progress_snapshot, snap_health
from wbsrun.progress.views import ProgramProgress
from wbsrun.telemetry.summary import print_summary

__all__ = [
    "LiveLine",
    "console_for",
    "eta_field",
    "fit_fields",
    "format_live",
    "health_text",
    "live_fields",
    "print_summary",
]

# Between the live line's fields.
FIELD_SEP = "  "
# Seconds between live lines when not on a terminal (a log, a pipe).
PIPED_INTERVAL = 5.0


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


# The trend's arrow: rising or falling by at least this much a minute; steady between.
TREND_STEADY = 0.01


def eta_field(snap: ProgressSnapshot) -> str:
    """`ETA 12s (10s–15s)`: the forecast's band in brackets when it has a width (as shown);
    `ETA ?` while unknown, `ETA paused` while paused."""
    if snap.paused:
        return "ETA paused"
    text = f"ETA {_eta(snap.eta_s)}"
    fc = snap.detail.forecast if snap.detail is not None else None
    if fc is None or snap.eta_s is None or fc.eta_low_s is None or fc.eta_high_s is None:
        return text
    low, high = _eta(fc.eta_low_s), _eta(fc.eta_high_s)
    return text if low == high else f"{text} ({low}–{high})"


def health_text(score: float, trend: float | None) -> str:
    """`0.93↑`: the score and where it heads (↑ ↓ →; nothing before the trend is known)."""
    arrow = ""
    if trend is not None:
        arrow = "↑" if trend >= TREND_STEADY else "↓" if trend <= -TREND_STEADY else "→"
    return f"{score:.2f}{arrow}"


def format_scenarios(detail: ProgramProgress, health: HealthFigures | None = None) -> str:
    """`name work% (milestone share% …) health 0.93↑` per scenario; milestones are shares of
    planned passes."""
    return " | ".join(scenario_fields(detail, health))


def scenario_fields(detail: ProgramProgress, health: HealthFigures | None = None) -> list[str]:
    trends = {name: (h.score, t) for name, h, t in health.scenarios} if health else {}
    parts = []
    for s in detail.scenarios:
        text = f"{s.name} {s.work * 100:.0f}%"
        if s.milestones:
            text += " (" + " ".join(f"{m.name} {m.share * 100:.0f}%" for m in s.milestones) + ")"
        if s.name in trends:
            text += " health " + health_text(*trends[s.name])
        parts.append(text)
    return parts


def live_fields(runner: Runner, snap: ProgressSnapshot, rps: float) -> list[str]:
    """The live line's fields, most important first: elapsed, progress (work, time,
    milestones), ETA, health, then load (users, requests), failures, the graceful stop,
    resource trouble, tasks and the per-scenario detail. `fit_fields` drops from the end."""
    st = runner.ctx.stats
    detail = snap.detail
    fields = [f"{snap.elapsed:6.1f}s"]
    if snap.paused:  # live control: said first, so that no terminal width hides it
        fields.append(f"PAUSED {snap.paused_s:.0f}s")
    fields += [f"work {_pct(snap.work)}", f"time {_pct(snap.time)}"]
    if detail is not None and detail.milestones_weighted is not None:
        fields.append(f"milestones {_pct(detail.milestones_weighted)}")
    fields.append(eta_field(snap))
    health = snap_health(snap, st)
    fields.append(f"health {health_text(health.program.score, health.trend)}")
    fields.append(f"users {snap.active_users}/{snap.planned_users}")
    fields.append(f"req {st.requests_total:,} ({rps:,.0f}/s)")
    fields.append(f"failed {st.requests_failed:,}")
    fields.append(f"errors {sum(st.errors.values()):,}")
    if st.dropped_iterations:
        fields.append(f"dropped {st.dropped_iterations:,}")
    late = sum(st.pacing_missed.values())
    if late:
        # Passes that ended after the next was due: the pacing is not held.
        fields.append(f"pacing missed {late:,}")
    stopping = runner.stopping()
    if stopping is not None:
        # Past the window: what the graceful stop still waits for, and until when.
        fields.append(f"stopping: {len(runner.ctx.inflight)} in flight, cut in {stopping:.0f}s")
    # Resource trouble, only once there is some: items out of rotation and rollbacks.
    down = sum(
        h.get("items_failed", 0) - h.get("items_recovered", 0) for h in st.resource_health.values()
    )
    if down or st.rollbacks:
        fields.append(f"items down {down} rollbacks {st.rollbacks}")
    fields.append(f"tasks ok {st.tasks_succeeded:,} err {st.tasks_failed + st.tasks_timed_out:,}")
    if detail is not None and detail.scenarios:
        fields.extend(f"| {text}" for text in scenario_fields(detail, health))
    return fields


def fit_fields(fields: Sequence[str], width: int | None, sep: str = FIELD_SEP) -> str:
    """The longest prefix of whole `fields` that fits in `width` columns (no limit: None).
    A field is never cut; only a first field wider than `width` is, as nothing else fits."""
    if width is None:
        return sep.join(fields)
    out = ""
    for field in fields:
        candidate = f"{out}{sep}{field}" if out else field
        if len(candidate) > width:
            break
        out = candidate
    if not out and fields:
        return fields[0][: max(0, width)]
    return out


def format_live(
    runner: Runner, snap: ProgressSnapshot, rps: float, width: int | None = None
) -> str:
    """One live line; at most `width` columns (whole fields only), all fields when None."""
    return fit_fields(live_fields(runner, snap, rps), width)


def console_for(*, stderr: bool = False) -> Console:
    """The console `run` and `demo` print to. Not on a terminal (piped, a CI log) lines are not
    wrapped at rich's default 80 columns: a record stays on one line, whole words intact."""
    console = Console(highlight=False, stderr=stderr)
    console.soft_wrap = not console.is_terminal
    return console


class LiveLine:
    """Redraws one status line on a terminal, fitted to its width; prints a complete line every
    few seconds otherwise (never wrapped: a log reader greps whole records)."""

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
        self.interval = interval if console.is_terminal else PIPED_INTERVAL
        # Per-scenario and milestone progress and the ETA's rate samples come from it.
        self.aggregator = aggregator
        self._noticed = 0

    async def run(self) -> None:
        last_total, last_t = 0, 0.0
        while True:
            await asyncio.sleep(self.interval)
            snap = progress_snapshot(self.runner, self.aggregator)
            total = self.runner.ctx.stats.requests_total
            # Over the time not paused: a line during a pause says 0/s, not a falling rate.
            dt = snap.active_s - last_t
            rps = (total - last_total) / dt if dt > 1e-9 else 0.0
            last_total, last_t = total, snap.active_s
            self.notices()
            self.draw(format_live(self.runner, snap, rps, self.width()))

    def notices(self) -> None:
        """The run's warnings raised since the last line (a rate that cannot be held), each
        printed once above the live line."""
        notices = self.runner.ctx.stats.notices
        for message in notices[self._noticed :]:
            self.clear()
            self.console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)
        self._noticed = len(notices)

    def width(self) -> int | None:
        # One row only on a terminal: a wrapped line would not be redrawn in place, and the
        # last column would wrap on some terminals.
        return max(1, self.console.width - 1) if self.console.is_terminal else None

    def draw(self, line: str) -> None:
        # Straight to the file: rich's print would wrap at its width (80 when piped).
        out = self.console.file
        out.write("\r\x1b[2K" + line if self.console.is_terminal else line + "\n")
        out.flush()

    def clear(self) -> None:
        if self.console.is_terminal:
            self.console.file.write("\r\x1b[2K")
            self.console.file.flush()
