"""The report's charts: which ones a result can draw, and the columns they draw from.

The result's `timeseries` is columnar (docs/result.md); each chart names the columns it
plots, and the page's script hands them to uPlot unchanged. A chart is offered only when at
least one of its columns has a value: a result written before a series existed (or a run
without leases) simply has fewer charts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MAX_ERROR_SERIES", "chart_data"]

# Error codes drawn one line each; the rest are summed under "(other codes)".
MAX_ERROR_SERIES = 8
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")

Column = list[float | None]


def _column(values: Any, n: int) -> Column | None:
    """A numeric column of length n (non-numbers and non-finite values become gaps)."""
    if not isinstance(values, Sequence) or isinstance(values, str | bytes):
        return None
    out: Column = []
    for v in list(values)[:n]:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        out.append(float(v) if ok else None)
    out.extend([None] * (n - len(out)))
    return out if any(v is not None for v in out) else None


def _series(label: str, col: str, scale: str, i: int, dash: bool = False) -> dict[str, Any]:
    return {
        "label": label,
        "col": col,
        "scale": scale,
        "color": PALETTE[i % len(PALETTE)],
        "dash": dash,
    }


def _axis(scale: str, label: str, fmt: str, rng: list[float] | None = None) -> dict[str, Any]:
    return {"scale": scale, "label": label, "format": fmt, "range": rng}


def _error_columns(errors: Any, n: int, columns: dict[str, Column]) -> list[dict[str, Any]]:
    if not isinstance(errors, Mapping):
        return []
    cols = {str(code): col for code, v in errors.items() if (col := _column(v, n)) is not None}
    ranked = sorted(cols, key=lambda code: (-sum(v or 0.0 for v in cols[code]), code))
    shown, rest = ranked[:MAX_ERROR_SERIES], ranked[MAX_ERROR_SERIES:]
    series = []
    for i, code in enumerate(shown):
        columns[f"errors.{code}"] = cols[code]
        series.append(_series(code, f"errors.{code}", "count", i))
    if rest:
        other = [sum(cols[c][k] or 0.0 for c in rest) for k in range(n)]
        columns["errors.(other)"] = list[float | None](other)
        series.append(_series(f"(other codes: {len(rest)})", "errors.(other)", "count", len(shown)))
    return series


def _per_second(failed: Column | None, interval: float) -> Column | None:
    if failed is None or interval <= 0:
        return None
    return [None if v is None else round(v / interval, 3) for v in failed]


def _items(resources: Any) -> float:
    """Items of the pools that lease (the ceiling of `leases held`)."""
    if not isinstance(resources, Mapping):
        return 0.0
    total = 0
    for r in resources.values():
        if isinstance(r, Mapping) and r.get("leases", 0):
            total += int(r.get("items", 0) or 0)
    return float(total)


def _charts(cols: dict[str, Column], errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def present(*names: str) -> list[str]:
        return [c for c in names if c in cols]

    share = [0.0, 1.0]
    specs: list[dict[str, Any]] = []
    shares = present("work", "planned", "time", "milestones")
    if shares or "eta_s" in cols:
        labels = {
            "work": "work (actual)",
            "planned": "planned",
            "time": "time",
            "milestones": "milestones",
        }
        series = [
            _series(labels[c], c, "share", i, dash=c == "planned") for i, c in enumerate(shares)
        ]
        axes = [_axis("share", "share of plan", "percent", share)] if shares else []
        if "eta_s" in cols:
            series.append(_series("ETA (s)", "eta_s", "eta", 4))
            # The forecast's band, dashed in the ETA's colour.
            series += [
                _series(label, c, "eta", 4, dash=True)
                for label, c in (("ETA low (s)", "eta_low_s"), ("ETA high (s)", "eta_high_s"))
                if c in cols
            ]
            axes.append(_axis("eta", "ETA (s)", "seconds"))
        specs.append(
            {
                "id": "progress",
                "title": "Progress: actual vs planned, and the ETA",
                "series": series,
                "axes": axes,
            }
        )
    if rps := present("rps", "failed_per_s"):
        labels = {"rps": "requests/s", "failed_per_s": "failed/s"}
        series = [_series(labels[c], c, "rate", i) for i, c in enumerate(rps)]
        specs.append(
            {
                "id": "rps",
                "title": "Requests per second",
                "series": series,
                "axes": [_axis("rate", "per second", "number")],
            }
        )
    if lat := present("p50", "p95", "p99"):
        series = [_series(c, c, "ms", i) for i, c in enumerate(lat)]
        specs.append(
            {
                "id": "latency",
                "title": "Latency p50 / p95 / p99 (ms)",
                "series": series,
                "axes": [_axis("ms", "ms", "number")],
            }
        )
    if errors:
        specs.append(
            {
                "id": "errors",
                "title": "Errors by code (per interval)",
                "series": errors,
                "axes": [_axis("count", "errors", "number")],
            }
        )
    scenario_health = [c for c in cols if c.startswith("health.")]
    if "health" in cols or scenario_health:
        series = [_series("health score", "health", "share", 2)] if "health" in cols else []
        # Each scenario's own (`timeseries.health_scenarios`), dashed.
        series += [
            _series(c.removeprefix("health."), c, "share", i + 3, dash=True)
            for i, c in enumerate(scenario_health)
        ]
        specs.append(
            {
                "id": "health",
                "title": "Health score",
                "series": series,
                "axes": [_axis("share", "score", "number", share)],
            }
        )
    if "users" in cols:
        series = [_series("active users", "users", "users", 0)]
        specs.append(
            {
                "id": "users",
                "title": "Active users",
                "series": series,
                "axes": [_axis("users", "users", "number")],
            }
        )
    if leases := present("leases", "items"):
        labels = {"leases": "leases held", "items": "items in leasing pools"}
        series = [
            _series(labels[c], c, "leases", i, dash=c == "items") for i, c in enumerate(leases)
        ]
        specs.append(
            {
                "id": "leases",
                "title": "Leases held (all pools)",
                "series": series,
                "axes": [_axis("leases", "leases", "number")],
            }
        )
    return specs


def chart_data(result: Mapping[str, Any]) -> dict[str, Any]:
    """`{"t": [...], "columns": {name: [...]}, "charts": [spec, ...]}` for the page's script;
    no charts when the result has no usable `timeseries`."""
    ts = result.get("timeseries")
    raw_t = ts.get("t") if isinstance(ts, Mapping) else None
    t = _column(raw_t, len(raw_t)) if isinstance(raw_t, list) else None
    # uPlot's x values must all be numbers: a series without a usable clock draws nothing.
    if not isinstance(ts, Mapping) or t is None or None in t:
        return {"t": [], "columns": {}, "charts": []}
    n = len(t)
    names = (
        "work",
        "planned",
        "time",
        "milestones",
        "eta_s",
        "eta_low_s",
        "eta_high_s",
        "rps",
        "p50",
        "p95",
        "p99",
        "health",
        "users",
        "leases",
    )
    cols = {name: c for name in names if (c := _column(ts.get(name), n)) is not None}
    interval = ts.get("interval_s")
    failed = _per_second(
        _column(ts.get("failed"), n), float(interval) if isinstance(interval, int | float) else 0.0
    )
    if failed is not None:
        cols["failed_per_s"] = failed
    if "leases" in cols and (items := _items(result.get("resources"))):
        cols["items"] = [items] * n
    errors = _error_columns(ts.get("errors"), n, cols)
    per = ts.get("health_scenarios")
    if isinstance(per, Mapping):
        for name, values in per.items():
            if (col := _column(values, n)) is not None:
                cols[f"health.{name}"] = col
    return {"t": t, "columns": cols, "charts": _charts(cols, errors)}
