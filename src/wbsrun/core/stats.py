"""Run statistics: counters and log-bucketed latency histograms, cheap enough for the hot path."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "MAX_MESSAGES",
    "MAX_MESSAGES_PER_CODE",
    "MESSAGE_CHARS",
    "ActionStats",
    "ArrivalStats",
    "ErrorImpact",
    "ErrorSample",
    "Histogram",
    "RunStats",
    "merged",
    "rank",
    "round_to",
]

# Buckets grow by 1% so a percentile is exact to ~1% whatever the latency range.
_GROWTH = 1.01
_LOG_GROWTH = math.log(_GROWTH)
# Error messages kept per (action, code) and in all; further distinct messages are counted in
# the (action, code)'s `other` sample (message None), so sample counts add up to the codes'.
MAX_MESSAGES_PER_CODE = 20
MAX_MESSAGES = 1_000
# A message is kept (and told apart) by its first MESSAGE_CHARS characters.
MESSAGE_CHARS = 500


class Histogram:
    """Latency histogram in milliseconds: 1 %-wide log buckets, exact count, total, min and max.

    A value of `ms` lands in bucket ⌊log(1 + 1000·ms) / log 1.01⌋, which holds the values
    [lo, hi) = [(1.01^i − 1) / 1000, (1.01^(i+1) − 1) / 1000). A percentile is the nearest-rank
    one (`rank`): the value of the bucket where the running count reaches the rank, estimated
    by the point of [lo, hi) with the least relative error to any value in it (2·lo·hi / (lo +
    hi)), clamped to [min, max]; rank 1 is the exact min, rank `count` the exact max. Its
    relative error is at most (hi − lo) / (hi + lo) = (0.01 + 10⁻⁵/lo) / (2.01 + 10⁻⁵/lo):
    0.5 % from 0.2 ms up, 0.55 % at 10 µs, 1 % at 1 µs (the 1 µs offset widens the buckets
    of tiny values; the summary rounds to 1 µs anyway). Merging adds bucket counts: exact
    (tests/core/test_histogram_accuracy.py, docs/dependencies.md).
    """

    __slots__ = ("buckets", "count", "max", "min", "total")

    def __init__(self) -> None:
        # Count per bucket index, grown on demand: a list, not a dict, because `record` runs
        # ~11 times a pass (actions, bus and poller latencies) and an index beats a hash probe
        # and an int box. 1 ms is bucket ~694, 1 s ~1,389, an hour ~2,200.
        self.buckets: list[int] = []
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        # math.inf while empty (one comparison a record, no emptiness test); summary says 0.
        self.min = math.inf

    def record(self, ms: float) -> None:
        # log(1 + µs) keeps sub-microsecond values in bucket 0 instead of -inf; `math.log` is
        # a C primitive for mypyc where `math.log1p` is a Python-level call (same buckets but
        # for the last bits of a value exactly on an edge).
        idx = int(math.log(1.0 + ms * 1000.0) / _LOG_GROWTH) if ms > 0.0 else 0
        b = self.buckets
        if idx >= len(b):
            b.extend([0] * (idx + 64 - len(b)))
        b[idx] += 1
        self.count += 1
        self.total += ms
        if ms > self.max:
            self.max = ms
        if ms < self.min:
            self.min = ms

    def merge(self, other: Histogram) -> None:
        b = self.buckets
        theirs = other.buckets
        if len(theirs) > len(b):
            b.extend([0] * (len(theirs) - len(b)))
        for idx, n in enumerate(theirs):
            if n:
                b[idx] += n
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)
        self.min = min(self.min, other.min)

    def copy(self) -> Histogram:
        out = Histogram()
        out.buckets = self.buckets[:]
        out.count = self.count
        out.total = self.total
        out.max = self.max
        out.min = self.min
        return out

    def diff(self, older: Histogram) -> Histogram:
        """The values recorded since `older`, an earlier copy of this histogram. Its min and
        max are the bounds of its lowest and highest buckets (within this one's min and max):
        the exact ones of the interval are not kept."""
        out = Histogram()
        b = self.buckets[:]
        for idx, n in enumerate(older.buckets):
            if n:
                b[idx] -= n
        out.buckets = b
        out.count = self.count - older.count
        out.total = self.total - older.total
        lowest = highest = -1
        for idx, n in enumerate(b):
            if n:
                if lowest < 0:
                    lowest = idx
                highest = idx
        if lowest >= 0:
            out.max = min(_lower_edge(highest + 1), self.max)
            # Never above the max: a value exactly on an edge may sit a bit below its bucket.
            out.min = min(max(_lower_edge(lowest), self.min), out.max)
        return out

    def quantile(self, q: float) -> float:
        return self.quantiles((q,))[0]

    def quantiles(self, qs: tuple[float, ...]) -> list[float]:
        """The nearest-rank percentiles for `qs` (ascending), in one pass over the buckets."""
        n = self.count
        out: list[float] = []
        if not n:
            return [0.0 for _ in qs]
        lo, hi = self.min, self.max
        seen = 0
        i = 0
        want = rank(qs[0], n)
        for idx, k in enumerate(self.buckets):
            if not k:
                continue
            seen += k
            while seen >= want:
                # The first and the last value are known exactly.
                out.append(hi if want == n else lo if want == 1 else _estimate(idx, lo, hi))
                i += 1
                if i == len(qs):
                    return out
                want = rank(qs[i], n)
        while len(out) < len(qs):  # pragma: no cover - counts add up to `count`
            out.append(hi)
        return out

    def summary(self) -> dict[str, int | float]:
        """count, min, mean, p50, p90, p95, p99, p99.9, max: ms rounded to 1 µs. (`int | float`:
        compiled, a `dict[str, float]` would turn the count into a float.)"""
        n = self.count
        p = self.quantiles(_SUMMARY_QS)
        return {
            "count": n,
            "min": round(self.min, 3) if n else 0.0,
            "mean": round(self.total / n, 3) if n else 0.0,
            "p50": round(p[0], 3),
            "p90": round(p[1], 3),
            "p95": round(p[2], 3),
            "p99": round(p[3], 3),
            "p99.9": round(p[4], 3),
            "max": round(self.max, 3),
        }


_SUMMARY_QS = (0.50, 0.90, 0.95, 0.99, 0.999)


def rank(q: float, n: int) -> int:
    """The nearest rank of percentile `q` among `n` values (1-based): the smallest r with
    r ≥ q·n, between 1 and n. The `1e-9` keeps q·n computed a hair above an integer (0.29 ·
    100 = 29.000000000000004) at that integer."""
    r = math.ceil(q * n - 1e-9)
    return 1 if r < 1 else n if r > n else r


def _lower_edge(idx: int) -> float:
    return math.expm1(idx * _LOG_GROWTH) / 1000.0


def _estimate(idx: int, lo: float, hi: float) -> float:
    """The value of bucket `idx` with the least worst relative error, within [lo, hi]."""
    a = _lower_edge(idx)
    b = _lower_edge(idx + 1)
    v = 2.0 * a * b / (a + b) if a > 0.0 else 0.0
    return lo if v < lo else hi if v > hi else v


def round_to(x: float, digits: int) -> float:
    """`round(x, digits)` (0 <= digits <= 6), the same float, without its decimal conversion
    (~230 ns; a few times a request). x·10^digits is rounded to an integer r, and r / 10^digits
    is then the double nearest to the decimal, as `round` gives; where the product's own
    rounding could have moved it across a half (near .5, or large), `round` decides. Float
    operations only: compiled, an int or a tuple of floats here would box every step."""
    scale = 1.0
    for _ in range(digits):
        scale *= 10.0  # exact up to 10^22
    y = x * scale
    if -1e9 < y < 1e9:
        t = float(int(y))  # toward zero, then down for negatives: floor without an int result
        f = t - 1.0 if t > y else t
        frac = y - f
        if frac - 0.5 > 1e-6 or 0.5 - frac > 1e-6:
            r = f + 1.0 if frac > 0.5 else f
            if r == 0.0:
                return math.copysign(0.0, x)
            return r / scale
    return round(x, digits)


@dataclass(slots=True)
class ActionStats:
    count: int = 0
    ok: int = 0
    failed: int = 0
    # Calls cancelled in flight when their pass was interrupted (no latency recorded).
    interrupted: int = 0
    latency: Histogram = field(default_factory=Histogram)
    # Requests its calls sent, their answers by HTTP status (0: none, e.g. a connection error
    # or a timeout), and the bytes on the wire (request line, headers and body; status line,
    # headers and body as received).
    requests: int = 0
    # Of them: failed (transport errors, timeouts, 4xx/5xx) and interrupted (unanswered).
    requests_failed: int = 0
    requests_interrupted: int = 0
    status: dict[int, int] = field(default_factory=dict)
    bytes_sent: int = 0
    bytes_received: int = 0
    # Per check of the action (`checks:`): [passes, fails]; fed on the all-scenarios figures.
    checks: dict[str, list[int]] = field(default_factory=dict)

    def merge(self, other: ActionStats) -> None:
        self.count += other.count
        self.ok += other.ok
        self.failed += other.failed
        self.interrupted += other.interrupted
        self.latency.merge(other.latency)
        self.requests += other.requests
        self.requests_failed += other.requests_failed
        self.requests_interrupted += other.requests_interrupted
        status = self.status
        for code, n in other.status.items():
            status[code] = status.get(code, 0) + n
        self.bytes_sent += other.bytes_sent
        self.bytes_received += other.bytes_received
        for name, (passes, fails) in other.checks.items():
            counts = self.checks.setdefault(name, [0, 0])
            counts[0] += passes
            counts[1] += fails


@dataclass(slots=True)
class ArrivalStats:
    """An arrival-rate scenario: iterations planned, started and dropped (no user free), and
    where they started against their schedule. `delay` is scheduled start → actual start;
    `from_schedule` scheduled start → end of the pass (the pass time an open-model client
    sees, coordinated omission included), both in ms."""

    asked_per_second: float = 0.0
    planned: int = 0
    started: int = 0
    dropped: int = 0
    # Due while the run was paused (core/control.py): not started, and not dropped either.
    paused: int = 0
    duration: float = 0.0
    delay: Histogram = field(default_factory=Histogram)
    from_schedule: Histogram = field(default_factory=Histogram)


class ErrorSample:
    """One distinct error message of an (action, code): how often, first and last seen (wall
    clock). `message` None is the (action, code)'s other messages, beyond the caps."""

    __slots__ = ("action", "code", "count", "first_at", "last_at", "message")

    def __init__(self, action: str | None, code: str, message: str | None, at: float) -> None:
        self.action = action
        self.code = code
        self.message = message
        self.count = 0
        self.first_at = at
        self.last_at = at


_SampleKey = tuple[str | None, str, str | None]


@dataclass(slots=True)
class ErrorImpact:
    """What the passes that ended on one error code cost: how many, the progress they did not
    deliver (Σ 1 − progress reached), and the seconds spent in them."""

    passes: int = 0
    progress_lost: float = 0.0
    seconds: float = 0.0


@dataclass(slots=True)
class RunStats:
    """Everything counted during a run; the JSON result is built from this."""

    requests_total: int = 0
    requests_ok: int = 0
    requests_failed: int = 0
    # Sent, then cancelled unanswered when their pass was interrupted (part of the total).
    requests_interrupted: int = 0
    tasks_started: int = 0
    tasks_succeeded: int = 0
    tasks_failed: int = 0
    tasks_timed_out: int = 0
    tasks_rolled_back: int = 0
    # Passes in flight cancelled after the graceful stop, or by an abort.
    tasks_interrupted: int = 0
    users_started: int = 0
    users_finished: int = 0
    # Rollbacks to a last stable point (each, not per task), and health probes sent.
    rollbacks: int = 0
    health_probes: int = 0
    actions: dict[str, ActionStats] = field(default_factory=dict)
    # The same per scenario: scenario → action → figures (both fed for every call).
    scenarios: dict[str, dict[str, ActionStats]] = field(default_factory=dict)
    exits: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    # Per (action, code, message): a bounded sample of the messages behind `errors`.
    error_samples: dict[_SampleKey, ErrorSample] = field(default_factory=dict)
    # Distinct messages kept per (action, code) and in all, for the caps.
    kept_messages: dict[tuple[str | None, str], int] = field(default_factory=dict)
    messages_kept: int = 0
    milestones: dict[str, int] = field(default_factory=dict)
    # Per resource: probes, failures, items_failed, items_recovered (the health checks').
    resource_health: dict[str, dict[str, int]] = field(default_factory=dict)
    # Per scenario: passes that ran past their pacing interval (core/pacing.py).
    pacing_missed: dict[str, int] = field(default_factory=dict)
    # Arrival-rate scenarios: iterations dropped (all users busy), in all and per scenario.
    dropped_iterations: int = 0
    arrivals: dict[str, ArrivalStats] = field(default_factory=dict)
    # Warnings for the console (the run log has them too), in the order raised.
    notices: list[str] = field(default_factory=list)
    # Error impact (`impact` in the result): per code of a failed pass, and every pass's time.
    impact: dict[str, ErrorImpact] = field(default_factory=dict)
    pass_seconds: float = 0.0

    def action(self, name: str) -> ActionStats:
        st = self.actions.get(name)
        if st is None:
            st = self.actions[name] = ActionStats()
        return st

    def scenario_action(self, scenario: str, name: str) -> ActionStats:
        per = self.scenarios.get(scenario)
        if per is None:
            per = self.scenarios[scenario] = {}
        st = per.get(name)
        if st is None:
            st = per[name] = ActionStats()
        return st

    def count_error(self, code: str, action: str | None, message: str, at: float) -> None:
        """One error of `code` in `action` (None: the pass itself) at wall time `at`. A message
        seen before costs a key tuple and a dict probe; a new one its sample (under the caps)."""
        self.errors[code] = self.errors.get(code, 0) + 1
        if len(message) > MESSAGE_CHARS:
            message = message[:MESSAGE_CHARS]
        sample = self.error_samples.get((action, code, message))
        if sample is None:
            sample = self._new_sample(action, code, message, at)
        sample.count += 1
        sample.last_at = at

    def _new_sample(self, action: str | None, code: str, message: str, at: float) -> ErrorSample:
        """A sample for a message not seen before, or the (action, code)'s `other` one when
        its cap or the run's is reached."""
        samples = self.error_samples
        pair = (action, code)
        kept = self.kept_messages.get(pair, 0)
        if kept < MAX_MESSAGES_PER_CODE and self.messages_kept < MAX_MESSAGES:
            self.kept_messages[pair] = kept + 1
            self.messages_kept += 1
            sample = samples[(action, code, message)] = ErrorSample(action, code, message, at)
            return sample
        other = samples.get((action, code, None))
        if other is None:
            other = samples[(action, code, None)] = ErrorSample(action, code, None, at)
        return other

    def count_impact(self, code: str, progress: float, seconds: float) -> None:
        """A pass that ended failed on `code`, having reached `progress`, after `seconds`."""
        imp = self.impact.get(code)
        if imp is None:
            imp = self.impact[code] = ErrorImpact()
        imp.passes += 1
        imp.progress_lost += 1.0 - min(1.0, max(0.0, progress))
        imp.seconds += seconds

    def count_exit(self, name: str) -> None:
        self.exits[name] = self.exits.get(name, 0) + 1

    def all_requests(self) -> ActionStats:
        """The actions that sent requests, merged: latency, status and bytes of all requests
        (health probes are not actions: `health_probes`)."""
        return merged(self.actions.values())

    def latency_all(self, names: Iterable[str] | None = None) -> Histogram:
        out = Histogram()
        for name, st in self.actions.items():
            if names is None or name in names:
                out.merge(st.latency)
        return out


def merged(stats: Iterable[ActionStats]) -> ActionStats:
    """The figures of the actions (of the ones that sent requests) added up."""
    out = ActionStats()
    for st in stats:
        if st.requests:
            out.merge(st)
    return out
