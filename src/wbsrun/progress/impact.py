"""Error impact analysis: for each error code that ended passes, the progress and the time it
cost the run (the result's `impact` key, the report's "Error impact" section)."""

from __future__ import annotations

from typing import Any

from wbsrun.core.stats import RunStats

__all__ = ["impact_figures"]


def _share(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole > 0 else 0.0


def impact_figures(stats: RunStats) -> dict[str, Any]:
    """`impact`: per code, the failed passes, the progress they did not deliver (Σ 1 −
    progress reached, in passes), the share of the run's work that is (over the passes
    started), the seconds spent in them and their share of all pass time; codes costliest
    (in seconds) first. Passes interrupted by the end of the run are no one's error."""
    started = stats.tasks_started
    total_s = stats.pass_seconds
    codes = {
        code: {
            "passes": imp.passes,
            "progress_lost": round(imp.progress_lost, 4),
            "work_share": _share(imp.progress_lost, started),
            "mean_progress_at_failure": round(1.0 - imp.progress_lost / imp.passes, 4)
            if imp.passes
            else 0.0,
            "seconds": round(imp.seconds, 3),
            "time_share": _share(imp.seconds, total_s),
        }
        for code, imp in sorted(stats.impact.items(), key=lambda kv: (-kv[1].seconds, kv[0]))
    }
    lost = sum(imp.progress_lost for imp in stats.impact.values())
    seconds = sum(imp.seconds for imp in stats.impact.values())
    return {
        "passes_failed": sum(imp.passes for imp in stats.impact.values()),
        "progress_lost": round(lost, 4),
        "work_share": _share(lost, started),
        "seconds": round(seconds, 3),
        "pass_seconds": round(total_s, 3),
        "time_share": _share(seconds, total_s),
        "codes": codes,
    }
