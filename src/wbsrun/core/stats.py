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
    "ErrorSample",
    "Histogram",
    "RunStats",
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
    """Latency histogram in milliseconds with ~1% relative precision and an exact max."""

    __slots__ = ("buckets", "count", "max", "total")

    def __init__(self) -> None:
        # Count per bucket index, grown on demand: a list, not a dict, because `record` runs
        # ~11 times a pass (actions, bus and poller latencies) and an index beats a hash probe
        # and an int box. 1 ms is bucket ~694, 1 s ~1,389, an hour ~2,200.
        self.buckets: list[int] = []
        self.count = 0
        self.total = 0.0
        self.max = 0.0

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

    def quantile(self, q: float) -> float:
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for idx, n in enumerate(self.buckets):
            if not n:
                continue
            seen += n
            if seen >= rank:
                # Upper edge of the bucket, never above the exact maximum.
                return min(math.expm1((idx + 1) * _LOG_GROWTH) / 1000.0, self.max)
        return self.max

    def summary(self) -> dict[str, float]:
        return {
            "p50": round(self.quantile(0.50), 3),
            "p90": round(self.quantile(0.90), 3),
            "p99": round(self.quantile(0.99), 3),
            "max": round(self.max, 3),
            "mean": round(self.total / self.count, 3) if self.count else 0.0,
        }


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

    def action(self, name: str) -> ActionStats:
        st = self.actions.get(name)
        if st is None:
            st = self.actions[name] = ActionStats()
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

    def count_exit(self, name: str) -> None:
        self.exits[name] = self.exits.get(name, 0) + 1

    def latency_all(self, names: Iterable[str] | None = None) -> Histogram:
        out = Histogram()
        for name, st in self.actions.items():
            if names is None or name in names:
                out.merge(st.latency)
        return out
