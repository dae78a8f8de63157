"""Our latency Histogram against PyPI's `hdrhistogram` and `ddsketch`: cost and accuracy.

    python3 -m venv /tmp/hbench && /tmp/hbench/bin/pip install hdrhistogram ddsketch
    PYTHONPATH=src:.venv/lib/python3.11/site-packages /tmp/hbench/bin/python bench/histograms.py

(the libraries are not wbsrun dependencies: a throwaway venv, with the project's own packages
behind it on the path). `WBSRUN_BUILD=pure` or a compiled build (`make compiled`) decide which
Histogram runs: the script prints which. Per candidate, on one seeded sample per shape
(lognormal, median 20 ms; bimodal, 1 ms and 200 ms modes; 10⁶ values each, as
tests/core/test_histogram_accuracy.py):

- `record ns`: per value recorded (a loop over a list of floats; the empty loop's time
  subtracted; hdrhistogram records integers, so the conversion to µs is part of its cost);
- `merge µs`: one merge of a histogram of the sample into an empty one;
- `quantiles µs`: p50, p90, p95, p99, p99.9 of the full histogram;
- `memory KiB`: what building it allocated (tracemalloc), the sample itself excluded;
- `max err`: the largest relative error over those percentiles against the exact nearest-rank
  ones of the sorted sample.

Medians of `--reps` runs. Single-threaded; run it on a quiet core (`taskset -c 1`).
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from wbsrun.core import stats as wstats
from wbsrun.core.stats import Histogram, rank

QS = (0.50, 0.90, 0.95, 0.99, 0.999)


def _lognormal(rng: random.Random) -> float:
    return rng.lognormvariate(math.log(20.0), 1.0)


def _bimodal(rng: random.Random) -> float:
    return rng.lognormvariate(math.log(1.0 if rng.random() < 0.8 else 200.0), 0.25)


SHAPES: dict[str, Callable[[random.Random], float]] = {
    "lognormal": _lognormal,
    "bimodal": _bimodal,
}


class Candidate:
    """One histogram implementation behind the same four operations."""

    name = ""

    def new(self) -> Any:
        raise NotImplementedError

    def fill(self, h: Any, values: list[float]) -> None:
        raise NotImplementedError

    def merge(self, into: Any, other: Any) -> None:
        raise NotImplementedError

    def quantiles(self, h: Any) -> list[float]:
        raise NotImplementedError


class Ours(Candidate):
    name = "wbsrun Histogram"

    def new(self) -> Any:
        return Histogram()

    def fill(self, h: Any, values: list[float]) -> None:
        record = h.record
        for v in values:
            record(v)

    def merge(self, into: Any, other: Any) -> None:
        into.merge(other)

    def quantiles(self, h: Any) -> list[float]:
        return list(h.quantiles(QS))


class Hdr(Candidate):
    """Integer microseconds, 1 µs to 1 hour."""

    def __init__(self, digits: int) -> None:
        from hdrh.histogram import HdrHistogram  # type: ignore[import-not-found, unused-ignore]

        self._cls = HdrHistogram
        self.digits = digits
        self.name = f"hdrhistogram {digits} digits"

    def new(self) -> Any:
        return self._cls(1, 3_600_000_000, self.digits)

    def fill(self, h: Any, values: list[float]) -> None:
        record = h.record_value
        for v in values:
            record(int(v * 1000.0))

    def merge(self, into: Any, other: Any) -> None:
        into.add(other)

    def quantiles(self, h: Any) -> list[float]:
        return [h.get_value_at_percentile(q * 100.0) / 1000.0 for q in QS]


class Sketch(Candidate):
    def __init__(self, accuracy: float) -> None:
        from ddsketch import DDSketch  # type: ignore[import-not-found, unused-ignore]

        self._cls = DDSketch
        self.accuracy = accuracy
        self.name = f"ddsketch {accuracy:g}"

    def new(self) -> Any:
        return self._cls(relative_accuracy=self.accuracy)

    def fill(self, h: Any, values: list[float]) -> None:
        add = h.add
        for v in values:
            add(v)

    def merge(self, into: Any, other: Any) -> None:
        into.merge(other)

    def quantiles(self, h: Any) -> list[float]:
        return [h.get_quantile_value(q) for q in QS]


def _empty_loop(values: list[float]) -> float:
    t0 = time.perf_counter()
    for _ in values:
        pass
    return time.perf_counter() - t0


def _measure(c: Candidate, values: list[float], exact: list[float]) -> dict[str, float]:
    gc.collect()
    h = c.new()
    t0 = time.perf_counter()
    c.fill(h, values)
    fill = time.perf_counter() - t0 - _empty_loop(values)
    t0 = time.perf_counter()
    got = c.quantiles(h)
    quantiles = time.perf_counter() - t0
    into = c.new()
    t0 = time.perf_counter()
    c.merge(into, h)
    merge = time.perf_counter() - t0
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    probe = c.new()
    c.fill(probe, values)
    memory = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    err = max(abs(g - e) / e for g, e in zip(got, exact, strict=True))
    return {
        "record ns": fill / len(values) * 1e9,
        "merge µs": merge * 1e6,
        "quantiles µs": quantiles * 1e6,
        "memory KiB": memory / 1024.0,
        "max err %": err * 100.0,
    }


def _candidates() -> list[Candidate]:
    found: list[Candidate] = [Ours()]
    for make in (lambda: Hdr(2), lambda: Hdr(3), lambda: Sketch(0.01), lambda: Sketch(0.005)):
        try:
            found.append(make())
        except ImportError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=1_000_000, help="values per sample")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    compiled = wstats.__file__.endswith((".so", ".pyd"))
    print(f"wbsrun.core.stats: {'compiled' if compiled else 'pure Python'} ({wstats.__file__})")
    candidates = _candidates()
    for shape, draw in SHAPES.items():
        rng = random.Random(19)
        values = [draw(rng) for _ in range(args.n)]
        ordered = sorted(values)
        exact = [ordered[rank(q, args.n) - 1] for q in QS]
        print(
            f"\n{shape}, {args.n:,} values; exact p50..p99.9 (ms): "
            + ", ".join(f"{e:.3f}" for e in exact)
        )
        runs: dict[str, list[dict[str, float]]] = {c.name: [] for c in candidates}
        for _ in range(args.reps):
            for c in candidates:  # interleaved: a slow spell of the host hits all alike
                runs[c.name].append(_measure(c, values, exact))
        keys = list(next(iter(runs.values()))[0])
        print(f"{'':26}" + "".join(f"{k:>14}" for k in keys))
        for name, rows in runs.items():
            cells = [statistics.median(r[k] for r in rows) for k in keys]
            print(f"{name:26}" + "".join(f"{v:14.2f}" for v in cells))


if __name__ == "__main__":
    main()
