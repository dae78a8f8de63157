"""The histogram's percentiles against the exact ones of a generated sample of 10⁶ values.

The exact percentile is the nearest-rank one: the value at rank ⌈q·n⌉ of the sorted sample
(`wbsrun.core.stats.rank`, which the histogram uses too). Issue 19 asks for ≤ 1 % relative
error at every reported percentile; the histogram documents a bound that depends on the
value v (ms): (0.01 + 10⁻⁵/v) / (2.01 + 10⁻⁵/v), i.e. 0.5 % from 0.2 ms up, 0.55 % at 10 µs,
1 % at 1 µs (core/stats.py), so both are checked. Seeded: the same samples every run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from wbsrun.core.stats import Histogram, rank

N = 1_000_000
REPORTED = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p99.9": 0.999}
# Beyond the reported ones: a grid of percentiles, so that no bucket position escapes.
GRID = [k / 100 for k in range(1, 100)] + [0.995, 0.999, 0.9999]


def _lognormal(rng: random.Random) -> float:
    return rng.lognormvariate(math.log(20.0), 1.0)  # median 20 ms, p99.9 ~ 440 ms


def _bimodal(rng: random.Random) -> float:
    # 80 % fast answers around 1 ms, 20 % slow ones around 200 ms.
    mode = 1.0 if rng.random() < 0.8 else 200.0
    return rng.lognormvariate(math.log(mode), 0.25)


def _sub_millisecond(rng: random.Random) -> float:
    return rng.lognormvariate(math.log(0.05), 0.6)  # median 50 µs, from ~3 µs


def _microseconds(rng: random.Random) -> float:
    return rng.uniform(0.001, 0.01)  # 1 µs to 10 µs: the widest buckets relative to a value


SAMPLES: dict[str, Callable[[random.Random], float]] = {
    "lognormal": _lognormal,
    "bimodal": _bimodal,
    "sub-millisecond": _sub_millisecond,
    "microseconds": _microseconds,
}


def _errors(name: str) -> tuple[Histogram, list[float], dict[float, float]]:
    rng = random.Random(19)
    draw = SAMPLES[name]
    values = [draw(rng) for _ in range(N)]
    h = Histogram()
    for v in values:
        h.record(v)
    values.sort()
    qs = sorted({*REPORTED.values(), *GRID})
    got = h.quantiles(tuple(qs))
    errors = {}
    for q, estimate in zip(qs, got, strict=True):
        exact = values[rank(q, N) - 1]
        errors[q] = abs(estimate - exact) / exact
    return h, values, errors


def _bound(v: float) -> float:
    """The relative error bound of a percentile whose bucket starts at v ms (core/stats.py):
    (hi − lo) / (hi + lo) for the bucket [lo, hi) with hi / lo = 1.01 + 10⁻⁵ / lo."""
    widen = 0.01 + 1e-5 / v
    return widen / (2.0 + widen) * (1.0 + 1e-9)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_percentile_of_a_million_values_is_within_one_percent(name: str) -> None:
    h, values, errors = _errors(name)
    for label, q in REPORTED.items():
        assert errors[q] <= 0.01, f"{name} {label}: {errors[q]:.4%} off"
    assert max(errors.values()) <= 0.01, f"{name}: {max(errors.values()):.4%} off"
    # The documented bound, for the lower edge of the value's bucket (at most 1 % below it).
    for q, err in errors.items():
        assert err <= _bound(values[rank(q, N) - 1] / 1.0101), f"{name} q={q}: {err:.4%} off"
    # Count, min and max are exact; the mean is the exact sum over the count.
    assert (h.count, h.min, h.max) == (N, values[0], values[-1])
    assert h.total / h.count == pytest.approx(math.fsum(values) / N, rel=1e-9)
    summary = h.summary()
    assert summary["count"] == N
    assert (summary["min"], summary["max"]) == (round(values[0], 3), round(values[-1], 3))
    for label, q in REPORTED.items():
        exact = values[rank(q, N) - 1]
        # Rounded to 1 µs: within 1 % of the exact value, or within the rounding.
        assert abs(summary[label] - exact) <= max(0.01 * exact, 0.0005 + 0.005 * exact)


def test_the_nearest_rank_is_the_smallest_rank_at_or_above_q_times_n() -> None:
    assert [rank(q, 100) for q in (0.0, 0.01, 0.29, 0.5, 0.501, 0.999, 1.0)] == [
        1,
        1,
        29,
        50,
        51,
        100,
        100,
    ]
    assert rank(0.999, N) == 999_000
    assert rank(0.5, 1) == 1
