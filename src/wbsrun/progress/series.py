"""The run over time: one point per interval, bounded for any run length (pure, sync).

`Series.sample(now, ...)` takes the run's cumulative figures once per interval (the ticker in
`telemetry/ticker.py` calls it every second) and keeps per-interval deltas: requests, failed
requests, errors by code, and the interval's latency p50/p95/p99 from the difference of two
copies of the cumulative all-requests histogram; gauges (active users, progress shares, ETA,
health and its trend, leases held) as they stand at the end of the interval.

Bounded: at most `cap` points. When a new interval would make `cap + 1`, adjacent pairs merge
(counts summed, gauges of the later point, `t` of the later point) and the interval doubles;
later samples then fill each point for the doubled interval. Percentiles of a merged point
come from the count-weighted mixture of the parts' distributions, each modelled by the
piecewise-linear CDF through its knots (min, p50, p95, p99, max) — see `_mixed_quantile` for
the error this can make. Memory: `(_COLUMNS + E + S) × 8 bytes × cap` (E ≤ MAX_CODES + 1 error
columns, S ≤ MAX_HEALTH_SCENARIOS scenario health columns), ~0.6 MB at the default cap with a
few error codes and scenarios (docs/operations.md).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping
from typing import Any, Final

from wbsrun.core.stats import Histogram

__all__ = ["DEFAULT_CAP", "MAX_CODES", "MAX_HEALTH_SCENARIOS", "OTHER_CODE", "Series"]

DEFAULT_CAP: Final = 3_600
# Error codes given a column of their own; further codes are counted under OTHER_CODE, so the
# columns always add up to the run's errors.
MAX_CODES: Final = 32
OTHER_CODE: Final = "(other)"
# Scenarios whose health gets a column (`health_scenarios`), the first ones sampled: further
# ones have none (the result's `health.scenarios` has them all).
MAX_HEALTH_SCENARIOS: Final = 8
# Stored columns besides the error codes (t, requests, failed, latency count, 5 latency knots,
# 12 gauges, paused seconds), for the memory bound.
_COLUMNS: Final = 22
_NAN: Final = math.nan
_KNOTS: Final = (0.0, 0.5, 0.95, 0.99, 1.0)
# Gauges: their state at the end of each interval; a merged point keeps the later one's.
_GAUGES: Final = (
    "users",
    "work",
    "time",
    "planned",
    "milestones",
    "eta_s",
    "health",
    "health_trend",
    "leases",
    "eta_low_s",
    "eta_high_s",
    "forecast_progress",
)
_INT_GAUGES: Final = frozenset({"users", "leases"})


def _f(x: float | None) -> float:
    return _NAN if x is None else float(x)


def _mixed_quantile(a: tuple[float, ...], b: tuple[float, ...], q: float) -> float:
    """The q-quantile of two intervals merged, from their (count, min, p50, p95, p99, max).

    Each part's CDF is taken as linear between its knots (0 at min, 0.5 at p50, 0.95 at p95,
    0.99 at p99, 1 at max); the merged CDF is their count-weighted sum, solved for q. Exact
    when both parts have the same distribution; always between the two parts' own q-quantiles,
    as the true merged quantile is, so the error is at most their spread (p99 of a calm second
    merged with a spike keeps the spike's tail, unlike a mean of the two p99s). Quantiles at
    other levels than the knots are interpolated, so merged-of-merged points drift within
    that same bound."""
    parts = (a, b)
    total = a[0] + b[0]
    xs = sorted({x for p in parts for x in p[1:]})
    prev_x, prev_f = xs[0], 0.0
    for x in xs:
        # Knots may coincide (a jump of the CDF): the left limit first, then the value at x.
        left = sum(p[0] * _cdf(p[1:], x, True) for p in parts) / total
        if left >= q and left > prev_f:
            return prev_x + (x - prev_x) * (q - prev_f) / (left - prev_f)
        here = sum(p[0] * _cdf(p[1:], x, False) for p in parts) / total
        if here >= q:
            return x
        prev_x, prev_f = x, here
    return xs[-1]


def _cdf(knots: tuple[float, ...], x: float, left: bool) -> float:
    """The share of a part at or below `x` (below, `left`), linear between its knots."""
    if x < knots[0] or (left and x == knots[0]):
        return 0.0
    if x > knots[-1] or (not left and x == knots[-1]):
        return 1.0
    for i in range(len(knots) - 1):
        lo, hi = knots[i], knots[i + 1]
        if (lo < x <= hi) if left else (lo <= x < hi):
            return _KNOTS[i] + (_KNOTS[i + 1] - _KNOTS[i]) * (x - lo) / (hi - lo)
    return 1.0


def _merge_knots(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, ...]:
    """(count, min, p50, p95, p99, max) of two intervals together (either may be empty)."""
    if not b[0]:
        return a
    if not a[0]:
        return b
    mid = tuple(_mixed_quantile(a, b, q) for q in _KNOTS[1:-1])
    return (a[0] + b[0], min(a[1], b[1]), *mid, max(a[5], b[5]))


class Series:
    """Per-interval figures of a run, at most `cap` points (see the module's docstring)."""

    def __init__(self, interval: float = 1.0, cap: int = DEFAULT_CAP) -> None:
        if cap < 2:
            raise ValueError(f"cap must be at least 2, got {cap}")
        if not interval > 0.0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.cap = cap
        self.base_interval = interval
        # Samples folded into each point (doubles at each downsampling), and into the last.
        self.stride = 1
        self._last_raw = 0
        self.samples = 0
        self._t = array("d")
        self._requests = array("q")
        self._failed = array("q")
        self._errors: dict[str, array[int]] = {}
        # Latency: count, then the knots min, p50, p95, p99, max (NaN without records).
        self._n = array("q")
        self._lat = [array("d") for _ in _KNOTS]
        self._gauges: dict[str, array[float]] = {k: array("d") for k in _GAUGES}
        # Per scenario, its health score (a gauge), at most MAX_HEALTH_SCENARIOS columns.
        self._scenario_health: dict[str, array[float]] = {}
        # Seconds of each interval the run was paused (core/control.py): left out of its rps.
        self._paused = array("d")
        self._prev_paused = 0.0
        # The cumulative figures of the previous sample.
        self._prev_t = 0.0
        self._prev_requests = 0
        self._prev_failed = 0
        self._prev_errors: dict[str, int] = {}
        # The cumulative latency at the previous sample: the interval's is the difference.
        self._prev_latency = Histogram()
        self._latest: dict[str, Any] = {}
        # Resumed runs (`wbsrun resume`): (t of the checkpoint, wall seconds the run was down).
        self.gaps: list[tuple[float, float]] = []

    def mark_gap(self, at: float, down_s: float) -> None:
        """A second life continues this series from `at` (the checkpoint's seconds since the
        start): what the first life did after `at` is lost, and the run was down `down_s`
        wall-clock seconds. Listed in `gaps`; the points themselves go on from `at`."""
        self.gaps.append((at, down_s))

    @property
    def interval_s(self) -> float:
        return self.base_interval * self.stride

    @property
    def last_t(self) -> float:
        """When the last sample was taken (0 before the first)."""
        return self._prev_t

    def __len__(self) -> int:
        return len(self._t)

    def sample(
        self,
        now: float,
        *,
        requests: int,
        failed: int,
        errors: Mapping[str, int],
        latency: Histogram,
        users: int,
        work: float | None,
        time: float | None,
        planned: float | None,
        milestones: float | None,
        eta_s: float | None,
        health: float | None,
        leases: int,
        paused_s: float = 0.0,
        health_trend: float | None = None,
        health_scenarios: Mapping[str, float] | None = None,
        eta_low_s: float | None = None,
        eta_high_s: float | None = None,
        forecast_progress: float | None = None,
    ) -> None:
        """The run's cumulative figures at `now` (seconds since its start, increasing; of
        them `paused_s` paused); the interval since the previous sample becomes a point (or
        part of the last one)."""
        span = now - self._prev_t
        d_paused = max(0.0, min(span, paused_s - self._prev_paused))
        self._prev_paused = paused_s
        d_req = requests - self._prev_requests
        d_failed = failed - self._prev_failed
        d_err = self._error_deltas(errors)
        h = latency.diff(self._prev_latency)
        self._prev_t, self._prev_requests, self._prev_failed = now, requests, failed
        self._prev_latency = latency.copy()
        lat = (float(h.count), *(h.quantile(q) if h.count else _NAN for q in _KNOTS))
        gauges: tuple[float | int | None, ...] = (users, work, time, planned, milestones)
        gauges = (*gauges, eta_s, health, health_trend, leases)
        gauges = (*gauges, eta_low_s, eta_high_s, forecast_progress)
        self.samples += 1
        scenarios = self._scenario_columns(health_scenarios or {})
        self._add(
            now, d_req, d_failed, d_err, lat, tuple(_f(g) for g in gauges), d_paused, scenarios
        )
        self._latest = self._point_json(now, span, d_req, d_failed, d_err, lat, gauges, d_paused)
        if scenarios:
            self._latest["health_scenarios"] = {
                name: _gauge("health", x) for name, x in scenarios.items()
            }

    def _scenario_columns(self, health: Mapping[str, float]) -> dict[str, float]:
        """The sample's value for every scenario column, admitting new scenarios while there
        is room (their earlier points are null)."""
        columns = self._scenario_health
        for name in health:
            if name not in columns and len(columns) < MAX_HEALTH_SCENARIOS:
                columns[name] = array("d", [_NAN] * len(self._t))
        return {name: _f(health.get(name)) for name in columns}

    def _error_deltas(self, errors: Mapping[str, int]) -> dict[str, int]:
        """Per column code, the errors since the previous sample (codes past MAX_CODES under
        OTHER_CODE)."""
        prev = self._prev_errors
        known = {c for c in self._errors if c != OTHER_CODE}
        out: dict[str, int] = {}
        for code, n in errors.items():
            d = n - prev.get(code, 0)
            if not d:
                continue
            col = code
            if code not in known:
                if len(known) < MAX_CODES:
                    known.add(code)
                else:
                    col = OTHER_CODE
            out[col] = out.get(col, 0) + d
        self._prev_errors = dict(errors)
        return out

    def _add(
        self,
        now: float,
        d_req: int,
        d_failed: int,
        d_err: Mapping[str, int],
        lat: tuple[float, ...],
        gauges: tuple[float, ...],
        paused: float = 0.0,
        scenarios: Mapping[str, float] | None = None,
    ) -> None:
        for code in d_err:
            if code not in self._errors:
                self._errors[code] = array("q", bytes(8 * len(self._t)))
        if self._last_raw >= self.stride and len(self._t) >= self.cap:
            self._downsample()  # a new point would be one too many
        if self._t and self._last_raw < self.stride:
            self._fold_last(now, d_req, d_failed, d_err, lat, gauges)
            self._paused[-1] += paused
            for name, col_s in self._scenario_health.items():
                col_s[-1] = (scenarios or {}).get(name, _NAN)
            self._last_raw += 1
            return
        self._t.append(now)
        self._paused.append(paused)
        self._requests.append(d_req)
        self._failed.append(d_failed)
        for code, col in self._errors.items():
            col.append(d_err.get(code, 0))
        self._n.append(int(lat[0]))
        for i, col_d in enumerate(self._lat):
            col_d.append(lat[i + 1])
        for k, g in zip(_GAUGES, gauges, strict=True):
            self._gauges[k].append(g)
        for name, col_s in self._scenario_health.items():
            col_s.append((scenarios or {}).get(name, _NAN))
        self._last_raw = 1

    def _fold_last(
        self,
        now: float,
        d_req: int,
        d_failed: int,
        d_err: Mapping[str, int],
        lat: tuple[float, ...],
        gauges: tuple[float, ...],
    ) -> None:
        """The new interval merged into the last point (which then ends at `now`)."""
        j = len(self._t) - 1
        self._t[j] = now
        self._requests[j] += d_req
        self._failed[j] += d_failed
        for code, n in d_err.items():
            self._errors[code][j] += n
        self._merge_latency(j, lat)
        for k, g in zip(_GAUGES, gauges, strict=True):
            self._gauges[k][j] = g

    def _knots(self, j: int) -> tuple[float, ...]:
        return (float(self._n[j]), *(col[j] for col in self._lat))

    def _merge_latency(self, j: int, later: tuple[float, ...]) -> None:
        merged = _merge_knots(self._knots(j), later)
        self._n[j] = int(merged[0])
        for i, col in enumerate(self._lat):
            col[j] = merged[i + 1]

    def _downsample(self) -> None:
        """Adjacent pairs merged: half the points, each covering twice the interval."""
        size = len(self._t)
        for j in range(0, size - 1, 2):
            self._pair(j // 2, j, j + 1)
        if size % 2:
            self._pair(size // 2, size - 1, None)
        keep = (size + 1) // 2
        for col_f in (self._t, self._paused, *self._lat):
            del col_f[keep:]
        for col_e in (self._requests, self._failed, self._n, *self._errors.values()):
            del col_e[keep:]
        for col_g in (*self._gauges.values(), *self._scenario_health.values()):
            del col_g[keep:]
        self.stride *= 2
        # An odd last point carried over alone covers half the new interval.
        self._last_raw = self.stride // 2 if size % 2 else self.stride

    def _pair(self, dst: int, a: int, b: int | None) -> None:
        """Point `a` (merged with `b` when given) written at index `dst` (<= a)."""
        lat = self._knots(a) if b is None else _merge_knots(self._knots(a), self._knots(b))
        last = b if b is not None else a
        self._t[dst] = self._t[last]
        self._paused[dst] = self._paused[a] + (self._paused[b] if b is not None else 0.0)
        self._requests[dst] = self._requests[a] + (self._requests[b] if b is not None else 0)
        self._failed[dst] = self._failed[a] + (self._failed[b] if b is not None else 0)
        for col in self._errors.values():
            col[dst] = col[a] + (col[b] if b is not None else 0)
        self._n[dst] = int(lat[0])
        for i, col_d in enumerate(self._lat):
            col_d[dst] = lat[i + 1]
        for col_g in (*self._gauges.values(), *self._scenario_health.values()):
            col_g[dst] = col_g[last]

    # -- reading ---------------------------------------------------------------------------------
    def latest(self) -> dict[str, Any]:
        """The last sample's interval (not downsampled), the keys of `to_json()` with one value
        each, plus `interval_s` (its own length); {} before the first sample."""
        return dict(self._latest)

    def _point_json(
        self,
        now: float,
        span: float,
        d_req: int,
        d_failed: int,
        d_err: Mapping[str, int],
        lat: tuple[float, ...],
        gauges: tuple[float | int | None, ...],
        paused: float = 0.0,
    ) -> dict[str, Any]:
        active = span - paused
        out: dict[str, Any] = {
            "t": round(now, 3),
            "interval_s": round(span, 3),
            "requests": d_req,
            "failed": d_failed,
            "rps": round(d_req / active, 2) if active > 1e-9 else 0.0,
            "errors": dict(sorted(d_err.items())),
            "p50": _ms(lat[2]),
            "p95": _ms(lat[3]),
            "p99": _ms(lat[4]),
        }
        for k, g in zip(_GAUGES, gauges, strict=True):
            out[k] = _gauge(k, _f(g))
        if paused:
            out["paused_s"] = round(paused, 3)
        return out

    def to_json(self) -> dict[str, Any]:
        """Columnar: arrays of equal length, one value per point (result-schema.json)."""
        t = list(self._t)
        starts = [0.0, *t][: len(t)]
        rps = [
            round(n / (end - start - p), 2) if end - start - p > 1e-9 else 0.0
            for n, start, end, p in zip(self._requests, starts, t, self._paused, strict=True)
        ]
        out: dict[str, Any] = {
            "interval_s": self.interval_s,
            "cap": self.cap,
            "t": [round(x, 3) for x in t],
            "requests": list(self._requests),
            "failed": list(self._failed),
            "rps": rps,
            "errors": {code: list(col) for code, col in sorted(self._errors.items())},
            "p50": [_ms(x) for x in self._lat[1]],
            "p95": [_ms(x) for x in self._lat[2]],
            "p99": [_ms(x) for x in self._lat[3]],
        }
        for k, col in self._gauges.items():
            out[k] = [_gauge(k, x) for x in col]
        if self._scenario_health:
            out["health_scenarios"] = {
                name: [_gauge("health", x) for x in col]
                for name, col in self._scenario_health.items()
            }
        if any(self._paused):  # only a run that was paused has the column
            out["paused_s"] = [round(x, 3) for x in self._paused]
        gaps = getattr(self, "gaps", [])
        if gaps:  # only a resumed run has them
            out["gaps"] = [{"at": round(at, 3), "down_s": round(d, 3)} for at, d in gaps]
        return out


def _ms(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 3)


def _gauge(name: str, x: float) -> float | int | None:
    if math.isnan(x):
        return None
    if name in _INT_GAUGES:
        return int(x)
    return round(x, 1) if name.endswith("_s") else round(x, 4)
