"""ETA and final-progress forecast of a count-bounded scenario: damped-trend Holt smoothing of
its pace, projected over the spawn plan, with a confidence band (docs/progress-model.md,
"Prediction", has the formulas).

1. Observations, every STEP seconds: the pace (passes — closed plus the open ones' progress —
   per active user-second) and the throughput (passes per second) over the recent window
   (a third of the run, 1 to WINDOW_MAX s, at least two pass cycles), so that waves of users
   ending together, and paced passes, average out.
2. Each goes through a damped-trend Holt filter (level, trend per second, one-step error). The
   projected trend is damped with time constant max(2, t/2) s and shrunk by its significance;
   the projected pace never falls below PACE_FLOOR of the level: a trend may slow a run, not
   stop it.
3. With earlier runs (`--history`), a multiplicative season over the fraction done
   (Holt-Winters whose period is the run itself): observations are divided by it, projections
   multiplied.
4. The time left: a walk forward — the pace times the users then active while the plan still
   spawns users, the throughput once all have — until the planned passes are covered; at least
   `floor` (the last user's passes), through an exponential filter of the finish time (TAU), at
   most the plan's end plus a pass. The walk also gives the progress at the plan's end.
5. The band: the walks at the pace × (1 ± r), r = Z·√(σ²/ℓ² + 1/passes), at most MAX_REL.
6. No progress yet: the earlier runs' durations (else no estimate); no progress for STALL s
   (or two pass cycles): no ETA. The plan is missed when the forecast end overruns its end
   by MISS_MARGIN on looks spanning WARN_HOLD s in a row; the warning then stays.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Forecast", "Forecaster", "Holt", "Season"]

STEP: Final = 0.5
WINDOW_MAX: Final = 30.0
WINDOW_SHARE: Final = 1 / 3
TAU_LEVEL: Final = 0.5
STALL: Final = 3.0
Z: Final = 1.64  # ~90 % two-sided, for a normal error
MAX_REL: Final = 0.9
PACE_FLOOR: Final = 0.1
# The shortest span (s) a pace is measured over: below it a division makes a pace no clock
# could show (a span of 1e-250 s gave 1e250 passes a second, and the trend overflowed).
MIN_SPAN: Final = 1e-3
MAX_WALK: Final = 400
HORIZON: Final = 7 * 86_400.0
TAU: Final = 3.0
# Without a plan end of its own, a run misses its plan when slower than its slowest earlier run
# by more than this share.
HISTORY_SLACK: Final = 0.10
# The miss warning: the plan's end is forecast to be overrun by this share of it on every look
# for WARN_HOLD seconds (a noisy look or two never warns).
MISS_MARGIN: Final = 0.05
WARN_HOLD: Final = 2.0


class Holt:
    """Damped-trend Holt smoothing of an irregularly sampled series (time in seconds).

    `update(y, dt, alpha, beta, phi)`: the value `y` observed `dt` seconds after the previous
    one; `alpha`, `beta`, `phi` are the smoothing weights and the damping for that step."""

    __slots__ = ("level", "n", "trend", "var")

    def __init__(self) -> None:
        self.level = 0.0
        self.trend = 0.0  # change of the level per second
        self.var = 0.0  # smoothed squared one-step error
        self.n = 0

    def update(self, y: float, dt: float, alpha: float, beta: float, phi: float) -> None:
        if not math.isfinite(y):
            return  # no observation: an infinite pace would poison every later figure
        if self.n == 0:
            self.level, self.n = y, 1
            return
        damped = phi * self.trend
        predicted = self.level + damped * dt
        error = y - predicted
        level = predicted + alpha * error
        if dt > 0:
            self.trend = damped + beta * ((level - self.level) / dt - damped)
        self.var += alpha * (error * error - self.var)
        self.level = level
        self.n += 1

    def forecast(self, h: float, tau: float) -> float:
        """The level `h` seconds ahead, the trend damped with time constant `tau`:
        level + trend × tau × (1 − e^(−h/tau)) (tau = inf: level + trend × h)."""
        if math.isinf(tau):
            return self.level + self.trend * h
        return self.level + self.trend * tau * (1.0 - math.exp(-h / tau))


@dataclass(frozen=True, slots=True)
class Season:
    """A multiplicative pace profile over the fraction done (earlier runs): `index[i]` covers
    fractions [i/n, (i+1)/n); 1.0 = the run's mean pace."""

    index: tuple[float, ...]

    def at(self, fraction: float) -> float:
        n = len(self.index)
        if not n:
            return 1.0
        i = min(n - 1, max(0, int(fraction * n)))
        return self.index[i]


@dataclass(frozen=True, slots=True)
class Prior:
    """What earlier runs say about a scenario: their durations (seconds) and pace profile."""

    durations: tuple[float, ...]
    season: Season | None = None

    @property
    def runs(self) -> int:
        return len(self.durations)


@dataclass(frozen=True, slots=True)
class Forecast:
    """Where a scenario (or the program) is going: seconds left with a band, the progress at
    the plan's end with a band, and whether the plan will be missed."""

    eta_s: float | None
    eta_low_s: float | None
    eta_high_s: float | None
    final_progress: float | None
    final_progress_low: float | None
    final_progress_high: float | None
    method: str
    history_runs: int = 0
    will_miss_plan: bool = False
    warned_at_s: float | None = None
    # Not in the result: the plan's end (elapsed s) and the time left were it not to cut the
    # run (the miss warning says both).
    plan_end_s: float | None = None
    uncut_eta_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        def r(x: float | None, digits: int) -> float | None:
            return None if x is None else round(x, digits)

        return {
            "eta_s": r(self.eta_s, 1),
            "eta_low_s": r(self.eta_low_s, 1),
            "eta_high_s": r(self.eta_high_s, 1),
            "final_progress": r(self.final_progress, 4),
            "final_progress_low": r(self.final_progress_low, 4),
            "final_progress_high": r(self.final_progress_high, 4),
            "method": self.method,
            "history_runs": self.history_runs,
            "will_miss_plan": self.will_miss_plan,
            "warned_at_s": r(self.warned_at_s, 1),
        }


def known(eta: float | None, progress: float | None, method: str, runs: int = 0) -> Forecast:
    """A forecast without a band: an end the plan fixes (or none known)."""
    return Forecast(eta, eta, eta, progress, progress, progress, method, runs)


class Forecaster:
    """One per count-bounded scenario; fed by the aggregator's snapshots (`observe`)."""

    __slots__ = (
        "_cycle",
        "_done",
        "_finish",
        "_finish_t",
        "_last_move",
        "_over",
        "_samples",
        "_user_time",
        "_users_t",
        "_warned",
        "holt",
        "prior",
        "rate",
    )

    def __init__(self, prior: Prior | None = None) -> None:
        self.holt = Holt()  # passes per active user-second
        self.rate = Holt()  # passes per second
        self.prior = prior
        # (elapsed, passes done, user-seconds so far) every STEP s over the last WINDOW_MAX s
        # (two pass cycles, if longer)
        self._samples: deque[tuple[float, float, float]] = deque()
        self._done = 0.0
        self._cycle = 0.0
        self._user_time = 0.0
        self._users_t: float | None = None  # the last observation (user-seconds integrate)
        self._last_move = 0.0
        self._over: float | None = None  # since when the plan's end is forecast overrun
        self._warned: float | None = None
        self._finish = [math.nan, math.nan, math.nan]  # predicted finish: point, early, late
        self._finish_t = 0.0

    def observe(
        self,
        t: float,
        done: float,
        planned: float,
        active: int,
        future_starts: Sequence[float] = (),
        floor: float = 0.0,
        deadline: float | None = None,
        tail: float = 0.0,
        cycle: float = 0.0,
    ) -> Forecast:
        """The forecast at elapsed `t`: `done` of `planned` passes, `active` users running,
        `future_starts` (sorted, > t) still to spawn, at least `floor` seconds left; `deadline`:
        when the plan ends (elapsed seconds; None: no plan end), where no pass starts any more,
        so the run ends by then plus `tail` (a pass) at the latest; `cycle`: the seconds
        between a user's pass starts (a pass and its think time, or the pacing)."""
        self._cycle = cycle
        runs = self.prior.runs if self.prior is not None else 0
        cut = None if deadline is None else max(0.0, deadline - t) + tail
        deadline = self._plan_end(deadline)
        if done >= planned:
            return self.final(t, 1.0, deadline)
        self._learn(t, done, planned, active)
        now = done / planned if planned > 0 else 1.0
        # While the plan still spawns users, the pace per user-second times the users then
        # active; once all have spawned, the throughput (right also when users take turns on
        # a few exclusive items, where the pace per user rises as users finish).
        holt = self.holt if future_starts else self.rate
        workers = active if future_starts else 1
        # No progress for STALL s, or two pass cycles if longer (paced passes come in waves).
        still = t - self._last_move >= max(STALL, 2.0 * cycle)
        if holt.n == 0 or holt.level <= 0.0 or still:
            stalled = holt.n > 0 and still
            fc = self._from_prior(t, now, runs, "stalled" if stalled else "none")
            return self._verdict(fc, t, deadline, fc.eta_s)
        noise = math.sqrt(holt.var) / holt.level  # level > 0: finite or inf, never NaN
        rel = Z * math.hypot(noise, 1.0 / math.sqrt(max(1.0, done)))
        rel = rel if rel < MAX_REL else MAX_REL
        walks = [
            _walk(t, done, planned, workers, future_starts, self._pace(holt, t, k), deadline)
            for k in (1.0, 1.0 + rel, 1.0 - rel)
        ]
        (mid, at_end), (low, end_hi), (high, end_lo) = walks
        lefts = [w[0] for w in walks]
        if None in lefts:  # no user left to run the passes: nothing known
            lefts = [None, None, None]
        mid, low, high = self._smooth(t, lefts, floor)
        # The verdict reads the estimate before the display filter (it has its own hold).
        uncut = None if lefts[0] is None else max(lefts[0], floor)
        if cut is not None:  # the plan's end stops the run: it ends by then
            mid, low, high = _cap(mid, cut), _cap(low, cut), _cap(high, cut)
        method = "holt-winters" if self._season() is not None else "holt"
        fc = Forecast(
            mid,
            low,
            high,
            at_end,
            min(end_lo, at_end) if end_lo is not None and at_end is not None else at_end,
            max(end_hi, at_end) if end_hi is not None and at_end is not None else at_end,
            method,
            runs,
        )
        return self._verdict(fc, t, deadline, uncut)

    # -- learning -------------------------------------------------------------------------------
    def _learn(self, t: float, done: float, planned: float, active: int) -> None:
        """One look: the user-seconds integrate; every STEP seconds the pace and the throughput
        over the recent window (`_window`) are one observation for each Holt filter."""
        samples = self._samples
        if self._users_t is None:
            # Users ran before the first look: as many as now, since the start.
            self._user_time = max(0.0, t) * active
            samples.append((0.0, 0.0, 0.0))
        else:
            self._user_time += max(0.0, t - self._users_t) * active
        self._users_t = t
        if done > self._done:
            self._done, self._last_move = done, t
        last = samples[-1][0]
        if t - last < STEP and len(samples) > 1:
            return
        samples.append((t, done, self._user_time))
        while len(samples) > 2 and samples[1][0] <= t - max(WINDOW_MAX, 2.0 * self._cycle):
            samples.popleft()
        since = t - self._window(t)
        base = samples[0]
        for sample in samples:
            if sample[0] > since:
                break
            base = sample
        spent = self._user_time - base[2]
        if spent < MIN_SPAN or t - base[0] < MIN_SPAN:
            return
        pace = (done - base[1]) / spent
        fraction = done / planned if planned > 0 else 0.0
        dt = t - last if len(samples) > 2 else t
        alpha = 1.0 - math.exp(-dt / TAU_LEVEL)
        # While the window still holds the run's start, an observation is the average since
        # the start, whose drift is no trend of the pace: the trend learns once it slides.
        sliding = base is not samples[0] or base[0] > 0.0
        beta = 1.0 - math.exp(-dt / max(2.0, t - base[0])) if sliding else 0.0
        phi = math.exp(-dt / max(5.0, t))
        self.holt.update(self._season_adjusted(pace, fraction), dt, alpha, beta, phi)
        rate = (done - base[1]) / (t - base[0])
        self.rate.update(self._season_adjusted(rate, fraction), dt, alpha, beta, phi)

    def _window(self, t: float) -> float:
        """The observation window: a third of the run, 1 to WINDOW_MAX s, and at least two
        pass cycles (a user's pass and its wait), so that passes ending together average out."""
        return max(2.0 * self._cycle, min(WINDOW_MAX, max(1.0, t * WINDOW_SHARE)))

    def _season(self) -> Season | None:
        return self.prior.season if self.prior is not None else None

    def _season_adjusted(self, pace: float, fraction: float) -> float:
        season = self._season()
        return pace / max(0.05, season.at(fraction)) if season is not None else pace

    def _pace(self, holt: Holt, t: float, scale: float) -> _Pace:
        span = self._window(t)
        return _Pace(holt, max(2.0, t / 2.0), scale, self._season(), span)

    def _smooth(
        self, t: float, lefts: list[float | None], floor: float
    ) -> tuple[float | None, float | None, float | None]:
        """The predicted finish times (point, early, late) through an exponential filter of time
        constant TAU: one noisy look moves them little, a steady run counts down 1 s per s."""
        finish = self._finish
        alpha = 1.0 - math.exp(-max(0.0, t - self._finish_t) / TAU)
        out: list[float | None] = []
        for i, left in enumerate(lefts):
            if left is None:
                finish[i] = math.nan
                out.append(None)
                continue
            target = t + max(left, floor)
            finish[i] = (
                target if math.isnan(finish[i]) else finish[i] + alpha * (target - finish[i])
            )
            out.append(max(0.0, finish[i] - t))
        self._finish_t = t
        mid, low, high = out
        return mid, _min(low, mid), _max(high, mid)

    # -- answers --------------------------------------------------------------------------------
    def _from_prior(self, t: float, now: float, runs: int, method: str) -> Forecast:
        """No pace to project: the earlier runs' durations, else nothing known."""
        prior = self.prior
        if prior is None or not prior.durations or method == "stalled":
            return known(None, now, method, runs)
        ds = sorted(prior.durations)
        mid = ds[len(ds) // 2]
        return Forecast(
            max(0.0, mid - t),
            max(0.0, ds[0] - t),
            max(0.0, ds[-1] - t),
            None,
            None,
            None,
            "history",
            runs,
        )

    def final(self, t: float, progress: float, deadline: float | None) -> Forecast:
        """At the end (`progress` reached at `t`): the plan was missed if the work fell short
        of it or the end overran the plan's end by more than the margin."""
        deadline = self._plan_end(deadline)
        runs = self.prior.runs if self.prior is not None else 0
        missed = self._warned is not None
        if deadline is not None:
            missed = missed or progress < 1.0 or t > deadline * (1.0 + MISS_MARGIN)
        return Forecast(
            0.0, 0.0, 0.0, progress, progress, progress, "done", runs, missed, self._warned
        )

    def _plan_end(self, deadline: float | None) -> float | None:
        """The plan's end: the run's own (a window, max-duration), else the longest earlier
        run (slower than every earlier run misses the plan), else none."""
        if deadline is None and self.prior is not None and self.prior.durations:
            return max(self.prior.durations) * (1.0 + HISTORY_SLACK)
        return deadline

    def _verdict(
        self, fc: Forecast, t: float, deadline: float | None, left: float | None
    ) -> Forecast:
        """`will_miss_plan`: the forecast end (`left` seconds from `t`, before the plan's end
        cuts it) overruns the plan's end by more than MISS_MARGIN of it, on every look for
        WARN_HOLD seconds; once warned, it stays."""
        miss = False
        if deadline is not None and fc.method in ("holt", "holt-winters", "history"):
            miss = left is None or t + left > deadline * (1.0 + MISS_MARGIN)
        elif deadline is not None and fc.method == "stalled":
            miss = t < deadline  # nothing moves, and the plan still has work to do
        if not miss:
            self._over = None
        elif self._over is None:
            self._over = t
        if self._over is not None and t - self._over >= WARN_HOLD and self._warned is None:
            self._warned = t
        return Forecast(
            fc.eta_s,
            fc.eta_low_s,
            fc.eta_high_s,
            fc.final_progress,
            fc.final_progress_low,
            fc.final_progress_high,
            fc.method,
            fc.history_runs,
            self._warned is not None,
            self._warned,
            deadline,
            left,
        )

    @property
    def warned_at(self) -> float | None:
        return self._warned


class _Pace:
    """The projected pace `h` seconds ahead at fraction done `f`: the damped Holt forecast times
    the season, scaled by `scale` (the band), at least PACE_FLOOR of the level."""

    __slots__ = ("floor", "holt", "scale", "season", "tau", "trend")

    def __init__(
        self, holt: Holt, tau: float, scale: float, season: Season | None, span: float
    ) -> None:
        self.holt, self.tau, self.scale, self.season = holt, tau, scale, season
        self.floor = PACE_FLOOR * holt.level
        # The trend, shrunk by its significance: its change over the window it was seen in
        # against the one-step noise (a trend within the noise counts for little).
        change = holt.trend * span
        seen = change * change  # inf rather than OverflowError (`**` raises) for a huge trend
        if seen > 0.0 and math.isfinite(seen) and math.isfinite(holt.var):
            self.trend = holt.trend * seen / (seen + 4.0 * holt.var)
        else:
            self.trend = holt.trend if math.isfinite(holt.trend) and seen > 0.0 else 0.0

    def __call__(self, h: float, fraction: float) -> float:
        base = max(self.floor, self.holt.level + self.trend * _damped(h, self.tau)) * self.scale
        return base * self.season.at(fraction) if self.season is not None else base


def _walk(
    t: float,
    done: float,
    planned: float,
    active: int,
    future: Sequence[float],
    pace: _Pace,
    deadline: float | None,
) -> tuple[float | None, float | None]:
    """Step forward until `planned` passes are covered: (seconds left, progress at
    `deadline`). The step is a 200th of a first guess at the level, at least STEP; at most
    MAX_WALK steps (then the time left is unknown, beyond the horizon)."""
    users = active
    rate0 = pace(0.0, done / planned) * max(1, users + len(future))
    guess = (planned - done) / rate0 if rate0 > 0 else HORIZON
    dt = max(STEP, min(guess, HORIZON) / 200.0)
    h, d, i = 0.0, done, 0
    at_end: float | None = None
    if deadline is not None and deadline <= t:
        at_end = done / planned
    for _ in range(MAX_WALK):
        while i < len(future) and future[i] <= t + h:
            users += 1
            i += 1
        rate = pace(h, d / planned) * users
        step = dt
        if i < len(future):
            step = min(dt, max(1e-3, future[i] - (t + h)))
        if at_end is None and deadline is not None and t + h + step >= deadline:
            at_end = min(1.0, (d + rate * (deadline - t - h)) / planned)
        if rate > 0 and d + rate * step >= planned:
            left = h + (planned - d) / rate
            if at_end is None and deadline is not None:
                at_end = 1.0
            return left, at_end if deadline is not None else 1.0
        d += rate * step
        h += step
    rate = pace(h, d / planned) * users
    # Past the walk's horizon: the rest at the last pace (unknown if that never ends).
    left = h + (planned - d) / rate if rate > 0 else math.inf
    if not math.isfinite(left):
        return None, at_end if deadline is not None else min(1.0, d / planned)
    return left, at_end if deadline is not None else 1.0


def _damped(h: float, tau: float) -> float:
    """∫₀ʰ e^(−s/tau) ds: how far a trend damped with time constant tau carries in h s."""
    return tau * (1.0 - math.exp(-h / tau))


def _cap(x: float | None, cap: float) -> float | None:
    return None if x is None else min(x, cap)


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else max(a, b)
