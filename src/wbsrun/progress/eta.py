"""The ETA of a count-bounded scenario: a per-user pace projected over the spawn plan, smoothed.

The estimator, in words (docs/progress-model.md has the longer version):

1. Progress toward the end is counted in passes, since a failed pass takes time too: closed
   passes plus the progress of open ones (so the pace exists before the first pass closes).
2. Rates come from samples taken at each snapshot, over the recent half of the run (at least
   `WINDOW_MIN`, at most `WINDOW_MAX` seconds; since the start while that spans under 1 s).
3. While the spawn plan still starts users, their number grows and so does the throughput: the
   time left is the remaining passes at the *pace* (passes per active user-second, waiting and
   think time included) of today's active users plus those the plan still starts. Once every
   user has spawned, it is the remaining passes over the recent *throughput* (which stays right
   when users share a few exclusive items and so wait their turn).
4. Never less than the plan itself needs (`floor`, from the aggregator): the last user spawns at
   the plan's last start and owes all its passes at the mean pass time (plus think times); a
   throughput that falls as users finish is covered by this bound.
5. No estimate before there is evidence: `MIN_ELAPSED` seconds and `min(1% of the plan,
   EVIDENCE_TASKS)` passes' worth of progress; and none while the pace is zero (a stall). Until
   then the ETA is unknown (None), never 0 or a huge number.
6. The predicted finish time follows the raw estimate through an exponential filter with time
   constant `TAU` seconds, so one noisy sample moves it a little and a steady run counts down
   1 s per s.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Final

__all__ = ["EtaEstimator"]

WINDOW_MIN: Final = 5.0
WINDOW_MAX: Final = 60.0
MIN_SPACING: Final = 0.25
MIN_ELAPSED: Final = 1.0
EVIDENCE_TASKS: Final = 10.0
TAU: Final = 3.0


class EtaEstimator:
    """One per count-bounded scenario; fed by the aggregator's snapshots."""

    __slots__ = ("_finish", "_last_t", "_observed", "_samples", "_user_time")

    def __init__(self) -> None:
        # (elapsed, passes done, active user-seconds so far)
        self._samples: deque[tuple[float, float, float]] = deque()
        self._user_time = 0.0
        self._observed: float | None = None
        self._finish: float | None = None
        self._last_t = 0.0

    def _observe(self, t: float, done: float, active: int) -> None:
        samples = self._samples
        if self._observed is not None:
            self._user_time += max(0.0, t - self._observed) * active
        self._observed = t
        if not samples or t - samples[-1][0] >= MIN_SPACING:
            samples.append((t, done, self._user_time))
        horizon = t - WINDOW_MAX
        while len(samples) > 2 and samples[1][0] <= horizon:
            samples.popleft()

    def _base(self, t: float) -> tuple[float, float, float]:
        """The oldest sample of the recent window; the first sample while that is under 1 s."""
        since = t - min(WINDOW_MAX, max(WINDOW_MIN, t / 2.0))
        base = self._samples[0] if self._samples else (0.0, 0.0, 0.0)
        for sample in self._samples:
            if sample[0] >= since:
                if t - sample[0] >= 1.0:
                    base = sample
                break
        return base

    def rate(self, t: float, done: float) -> float:
        """Passes per second over the recent window."""
        base = self._base(t)
        return (done - base[1]) / (t - base[0]) if t > base[0] else 0.0

    def pace(self, t: float, done: float) -> float:
        """Passes per active user-second over the recent window."""
        base = self._base(t)
        spent = self._user_time - base[2]
        return (done - base[1]) / spent if spent > 0 else 0.0

    def estimate(
        self,
        t: float,
        done: float,
        planned: float,
        active: int,
        future_starts: Sequence[float] = (),
        floor: float = 0.0,
    ) -> float | None:
        """Seconds left at elapsed `t`: `done` of `planned` passes, `active` users running,
        `future_starts` (sorted, all > t) still to spawn; at least `floor`."""
        if done >= planned:
            return 0.0
        self._observe(t, done, active)
        if t < MIN_ELAPSED or done < min(0.01 * planned, EVIDENCE_TASKS):
            return None
        left: float | None = None
        if future_starts:
            pace = self.pace(t, done)
            if pace > 0:
                left = _time_to_cover(planned - done, pace, active, t, future_starts)
        else:
            rate = self.rate(t, done)
            if rate > 0:
                left = (planned - done) / rate
        if left is None or not math.isfinite(left):
            return None
        target = t + max(left, floor)
        if self._finish is None:
            self._finish = target
        else:
            alpha = 1.0 - math.exp(-max(0.0, t - self._last_t) / TAU)
            self._finish += alpha * (target - self._finish)
        self._last_t = t
        return max(self._finish - t, 0.0)


def _time_to_cover(
    passes: float, pace: float, active: int, t: float, future: Sequence[float]
) -> float | None:
    """Seconds until `active` users, joined by one user at each of `future`, run `passes`."""
    now, users = t, active
    for start in future:
        capacity = pace * users * (start - now)
        if users and passes <= capacity:
            break
        passes -= capacity
        now, users = start, users + 1
    if users <= 0:
        return None
    return now + passes / (pace * users) - t
