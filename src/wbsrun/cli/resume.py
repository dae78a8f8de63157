"""`wbsrun resume DIR`: a second life for a run that checkpointed (cli/checkpoint.py).

The second life loads the bundle the manifest names (refused when its source hash changed,
unless forced), restores the figures so that the result covers both lives (statistics, the
progress sums of the closed passes, the time series with the gap marked, the save-as files
written, the log's counts), and runs only the remaining work: `RunOptions.resume` gives the
schedulers each scenario's position and the feeds their cursors, on a clock that continues
from the checkpoint's elapsed time. Passes in flight at the checkpoint are lost: counted as
interrupted there, and run again."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wbsrun.cli.checkpoint import Saved
from wbsrun.cluster.delta import merge_delta
from wbsrun.core.resume import RunResume
from wbsrun.core.runner import RunOptions
from wbsrun.errors import RunError

if TYPE_CHECKING:
    from wbsrun.cli.session import WiredRun

__all__ = [
    "check_source",
    "nothing_left",
    "require_dir",
    "restore",
    "resume_options",
    "resumed_line",
    "resumed_section",
    "write_kept",
]


def check_source(saved: Saved, source_hash: str, *, force: bool) -> None:
    """The bundle must be the one the checkpoint was taken of (positions refer to its plan)."""
    was = saved.manifest.get("source_hash")
    if was != source_hash and not force:
        raise RunError(
            f"{saved.directory}: the bundle {saved.manifest.get('bundle')} changed since the "
            f"checkpoint (source hash {str(was)[:12]}…, now {source_hash[:12]}…): its "
            "schedule position may not fit the plan; restore the bundle, or resume with "
            "--force to continue anyway"
        )


def resume_options(saved: Saved) -> RunOptions:
    """The first life's options, with where it stood."""
    state = saved.state
    options = state["options"]
    if not isinstance(options, RunOptions):
        raise RunError(f"{saved.directory}: the checkpoint's options cannot be read")
    point = RunResume(
        elapsed=float(state["elapsed"]),
        started_wall=float(state["started_wall"]),
        scenarios=dict(state["positions"]),
        feeds=dict(state["feeds"]),
        progress_done=float(state["progress_done"]),
        global_vars=dict(state["global_vars"]),
    )
    return replace(options, resume=point)


def restore(wired: WiredRun, saved: Saved) -> dict[str, Any]:
    """The first lives' figures into this wired run, before it starts; the entry this life
    adds to the history (completed by `resumed_section`)."""
    state = saved.state
    runner = wired.runner
    merge_delta(runner.ctx.stats, state["stats"])
    wired.aggregator.load_settled(state["progress"])
    series = state["series"]
    down = max(0.0, time.time() - float(state["written_at"]))
    series.mark_gap(float(state["elapsed"]), down)
    wired.ticker.series = series
    runner.ctx.persist.restore(state["persist"])
    counts = wired.log.counts
    for level, n in state["log_counts"].items():
        counts[level] = counts.get(level, 0) + int(n)
    entry = {
        "from_checkpoint_at": round(float(state["elapsed"]), 3),
        "checkpoint_time": _iso(float(state["written_at"])),
        "down_s": round(down, 3),
        "lost_tasks": int(state["lost_tasks"]),
        "ledger_before": state["ledger"]["summary"],
    }
    state["history"].append(entry)
    return entry


def resumed_section(saved: Saved) -> dict[str, Any]:
    """The result's `resumed` object (docs/result.md): the last resume, what every resume
    lost, and the lives."""
    history = saved.state["history"]
    last = history[-1]
    return {
        "from_checkpoint_at": last["from_checkpoint_at"],
        "checkpoint_time": last["checkpoint_time"],
        "down_s": round(sum(h["down_s"] for h in history), 3),
        "lives": len(history) + 1,
        # Requests in flight, or sent after the checkpoint, are not known to any checkpoint:
        # the target may have served them, the result does not count them.
        "lost_in_flight": {"tasks": sum(h["lost_tasks"] for h in history), "requests": None},
        "ledger_before": last["ledger_before"],
        "checkpoint_dir": str(saved.directory),
    }


def write_kept(saved: Saved) -> Path | None:
    """The first life's kept ledger entries, as JSON lines, beside the checkpoint."""
    kept = saved.state["ledger"]["kept"]
    if not kept:
        return None
    life = len(saved.state["history"]) + 1  # the life that kept them (before `restore`)
    path = saved.directory / f"kept-entries-life{life}.jsonl"
    path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    return path


def resumed_line(resumed: dict[str, Any]) -> str:
    """The summary's line about the resume."""
    lost = resumed["lost_in_flight"]["tasks"]
    return (
        f"resumed from the checkpoint at {resumed['from_checkpoint_at']:g}s "
        f"({resumed['lives']} lives, down {resumed['down_s']:g}s): {lost} pass(es) in flight "
        "lost and run again; requests after the checkpoint are not counted"
    )


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))


def nothing_left(saved: Saved) -> str:
    return (
        f"{saved.directory}: the run completed (checkpoint at "
        f"{saved.manifest.get('elapsed_s')}s, {saved.manifest.get('written_at')}): "
        "nothing left to resume"
    )


def require_dir(directory: Path) -> None:
    if not directory.is_dir():
        raise RunError(f"{directory}: not a checkpoint directory")
