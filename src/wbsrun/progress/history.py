"""Earlier runs' results as the forecast's prior (`wbsrun run --history DIR`).

A result in DIR counts for a scenario when it is a completed run of the same plan (its
`scenario`), no older than `MAX_AGE_S` (7 days, by its `started_at`), and its scenario planned
the same passes. From each: its duration, and (a one-scenario plan) the pace profile over the
fraction done, from its time series (`work`, `users`). Bounded: the newest `MAX_FILES` files
are read, each at most `MAX_BYTES`; unreadable or foreign files are skipped and counted.
"""

from __future__ import annotations

import calendar
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from wbsrun.progress.forecast import Prior, Season

__all__ = ["BINS", "History", "load_history", "pace_profile"]

MAX_AGE_S: Final = 7 * 86_400.0
MAX_FILES: Final = 200
MAX_BYTES: Final = 32 * 1024 * 1024
BINS: Final = 10


@dataclass(frozen=True, slots=True)
class History:
    """The priors per scenario, and what was read: files used, and skipped with a reason."""

    priors: dict[str, Prior]
    used: int
    skipped: dict[str, int]


def load_history(
    directory: Path,
    plan_name: str,
    planned: Mapping[str, int | None],
    *,
    now: float | None = None,
) -> History:
    """The priors of the count-bounded scenarios in `planned` (name → planned passes) from the
    results in `directory` (`*.json`, and `*/result.json` of `--out` directories)."""
    now = time.time() if now is None else now
    files = [*directory.glob("*.json"), *directory.glob("*/result.json")]
    files = [f for f in files if f.is_file()]
    files.sort(key=lambda f: f.stat().st_mtime, reverse=True)
    skipped: dict[str, int] = {}
    durations: dict[str, list[float]] = {n: [] for n, p in planned.items() if p is not None}
    profiles: list[tuple[float, ...]] = []
    used = 0
    for path in files[:MAX_FILES]:
        result, why = _read(path)
        if result is None:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        why = _mismatch(result, plan_name, planned, now)
        if why:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        used += 1
        for name in durations:
            durations[name].append(float(result["duration_s"]))
        if len(planned) == 1:
            total = next(iter(planned.values())) or 0
            profile = pace_profile(result.get("timeseries") or {}, float(total))
            if profile is not None:
                profiles.append(profile)
    season = Season(_mean_profile(profiles)) if profiles else None
    priors = {name: Prior(tuple(ds), season) for name, ds in durations.items() if ds}
    return History(priors, used, skipped)


def _read(path: Path) -> tuple[dict[str, Any] | None, str]:
    try:
        if path.stat().st_size > MAX_BYTES:
            return None, "too large"
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None, "not a JSON result"
    if not isinstance(data, dict) or not isinstance(data.get("duration_s"), int | float):
        return None, "not a JSON result"
    return data, ""


def _mismatch(
    result: Mapping[str, Any], plan_name: str, planned: Mapping[str, int | None], now: float
) -> str:
    if result.get("scenario") != plan_name:
        return "another plan"
    if result.get("status") != "completed":
        return "not completed"
    started = result.get("started_at")
    try:
        at = calendar.timegm(time.strptime(str(started), "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return "not a JSON result"
    if now - at > MAX_AGE_S:
        return "older than 7 days"
    scenarios = (result.get("progress") or {}).get("scenarios") or {}
    for name, passes in planned.items():
        if passes is not None and (scenarios.get(name) or {}).get("planned_tasks") != passes:
            return "another plan size"
    return ""


def pace_profile(series: Mapping[str, Any], planned: float) -> tuple[float, ...] | None:
    """The pace (passes per active user-second) in BINS bins of the fraction done, over the
    run's mean pace; bins the run did not sample are 1. None without a usable series."""
    ts, work, users = series.get("t"), series.get("work"), series.get("users")
    if not (isinstance(ts, list) and isinstance(work, list) and isinstance(users, list)):
        return None
    sums = [0.0] * BINS
    spans = [0.0] * BINS
    prev_t, prev_w = 0.0, 0.0
    for t, w, u in zip(ts, work, users, strict=False):
        if not all(isinstance(x, int | float) for x in (t, w, u)):
            continue
        dt = float(t) - prev_t
        if dt > 0 and u > 0 and float(w) >= prev_w:
            pace = (float(w) - prev_w) * planned / (float(u) * dt)
            i = min(BINS - 1, int((prev_w + float(w)) / 2.0 * BINS))
            sums[i] += pace * dt
            spans[i] += dt
        prev_t, prev_w = float(t), float(w)
    total = sum(spans)
    if total <= 0:
        return None
    mean = sum(sums) / total
    if not mean > 0 or not math.isfinite(mean):
        return None
    return tuple((sums[i] / spans[i]) / mean if spans[i] > 0 else 1.0 for i in range(BINS))


def _mean_profile(profiles: Sequence[tuple[float, ...]]) -> tuple[float, ...]:
    return tuple(sum(p[i] for p in profiles) / len(profiles) for i in range(BINS))
