"""ETA and final-progress forecast of a count-bounded scenario: damped-trend Holt smoothing of
its pace, projected over the spawn plan, with a confidence band (docs/progress-model.md,
"Prediction").

1. The observed series is the *pace*: passes (closed passes plus the progress of open ones) per
   active user-second, taken between snapshots at least `STEP` seconds apart.
2. A damped-trend Holt filter smooths it into a level and a trend (pace change per second). Its
   time constants grow with the run (`tau_level = clamp(t / 6, 1, 10)` s, the trend's twice
   that), and the trend is extrapolated with damping `exp(-h / max(5, t))`: a trend seen for
   t seconds is not trusted far beyond t. The projected pace never falls below a tenth of the
   level: the model may slow a run, not stop it.
3. With earlier runs (`--history`), the pace is deseasonalised by a multiplicative profile over
   the fraction done (Holt-Winters whose season is the run itself): what slowed or sped up the
   earlier runs at that point of their work is expected again.
4. The time left is found by stepping forward: the pace at each future step times the users
   then active (today's plus those the spawn plan still starts) until the remaining passes are
   covered; never less than `floor` (the last user's passes, from the aggregator). The same
   walk gives the progress expected at the plan's end (`deadline`).
5. The band: the pace's relative uncertainty is the smoothed one-step error of the level plus
   a counting term `1 / sqrt(passes seen)`, times `Z`; the low and high ETAs are the walks at
   the pace raised and lowered by it (at most 90 %). Early (few passes) the band is wide, later
   it narrows to the noise the pace shows.
6. No evidence yet (no progress, no user-time): the earlier runs' durations give the estimate,
   their spread the band; without history, no estimate (None). A stall (no progress for
   `STALL` seconds) has no ETA either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Forecast", "Forecaster", "Holt", "Season"]

STEP: Final = 0.5
STALL: Final = 3.0
Z: Final = 1.64  # ~90 % two-sided, for a normal error
MAX_REL: Final = 0.9
PACE_FLOOR: Final = 0.1
MAX_WALK: Final = 400
HORIZON: Final = 7 * 86_400.0
# The miss warning: the plan's end is forecast to be overrun by this share of it, on WARN_AFTER
# consecutive updates (one noisy update never warns).
TAU: Final = 3.0
MISS_MARGIN: Final = 0.05
WARN_AFTER: Final = 3


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
        "_done",
        "_finish",
        "_finish_t",
        "_last_move",
        "_over",
        "_t",
        "_user_time",
        "_users_t",
        "_warned",
        "holt",
        "prior",
    )

    def __init__(self, prior: Prior | None = None) -> None:
        self.holt = Holt()
        self.prior = prior
        self._t: float | None = None  # the last Holt update: time, passes, user-seconds
        self._done = 0.0
        self._user_time = 0.0
        self._users_t: float | None = None  # the last observation (user-seconds integrate)
        self._last_move = 0.0
        self._over = 0
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
    ) -> Forecast:
        """The forecast at elapsed `t`: `done` of `planned` passes, `active` users running,
        `future_starts` (sorted, > t) still to spawn, at least `floor` seconds left; `deadline`:
        when the plan ends (elapsed seconds; None: no plan end)."""
        runs = self.prior.runs if self.prior is not None else 0
        deadline = self._plan_end(deadline)
        if done >= planned:
            return self.final(t, 1.0, deadline)
        self._learn(t, done, planned, active)
        now = done / planned if planned > 0 else 1.0
        holt = self.holt
        if holt.n == 0 or holt.level <= 0.0 or t - self._last_move >= STALL:
            stalled = holt.n > 0 and t - self._last_move >= STALL
            fc = self._from_prior(t, now, runs, "stalled" if stalled else "none")
            return self._verdict(fc, t, deadline, now)
        tau = max(5.0, t)
        noise = math.sqrt(holt.var) / holt.level  # level > 0: finite or inf, never NaN
        rel = Z * math.hypot(noise, 1.0 / math.sqrt(max(1.0, done)))
        rel = rel if rel < MAX_REL else MAX_REL
        walks = [
            _walk(t, done, planned, active, future_starts, self._pace(tau, k), deadline)
            for k in (1.0, 1.0 + rel, 1.0 - rel)
        ]
        (mid, at_end), (low, end_hi), (high, end_lo) = walks
        mid, low, high = self._smooth(t, [w[0] for w in walks], floor)
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
        return self._verdict(fc, t, deadline, now)

    # -- learning -------------------------------------------------------------------------------
    def _learn(self, t: float, done: float, planned: float, active: int) -> None:
        if self._users_t is not None:
            self._user_time += max(0.0, t - self._users_t) * active
        self._users_t = t
        if self._t is None:
            self._t, self._done, self._last_move = t, done, t
            self._user_time = 0.0
            if done > 0.0 and t > 0.0 and active > 0:
                # Passes before the first look: their pace over the users' time so far.
                fraction = done / planned if planned > 0 else 0.0
                pace = self._season_adjusted(done / (t * active), fraction)
                self.holt.update(pace, t, 1.0, 0.0, 1.0)
            return
        if done > self._done:
            self._last_move = t
        dt = t - self._t
        if dt < STEP:
            return
        spent = self._user_time
        if spent > 0.0:
            pace = (done - self._done) / spent
            tau_level = min(10.0, max(1.0, t / 6.0))
            alpha = 1.0 - math.exp(-dt / tau_level)
            beta = 1.0 - math.exp(-dt / (2.0 * tau_level))
            phi = math.exp(-dt / max(5.0, t))
            fraction = done / planned if planned > 0 else 0.0
            self.holt.update(self._season_adjusted(pace, fraction), dt, alpha, beta, phi)
        self._t, self._done, self._user_time = t, done, 0.0

    def _season(self) -> Season | None:
        return self.prior.season if self.prior is not None else None

    def _season_adjusted(self, pace: float, fraction: float) -> float:
        season = self._season()
        return pace / max(0.05, season.at(fraction)) if season is not None else pace

    def _pace(self, tau: float, scale: float) -> _Pace:
        return _Pace(self.holt, tau, scale, self._season())

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
            return max(self.prior.durations)
        return deadline

    def _verdict(self, fc: Forecast, t: float, deadline: float | None, now: float) -> Forecast:
        """`will_miss_plan`: the forecast end overruns the plan's end (or the progress at its end
        falls short) on WARN_AFTER consecutive looks; once warned, it stays."""
        miss = False
        if deadline is not None and fc.eta_s is not None and fc.method not in ("done", "none"):
            span = max(deadline, 1e-9)
            miss = t + fc.eta_s > deadline + MISS_MARGIN * span
        elif deadline is not None and fc.method == "stalled":
            miss = t < deadline  # nothing moves, and the plan still has work to do
        self._over = self._over + 1 if miss else 0
        if self._over >= WARN_AFTER and self._warned is None:
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
        )

    @property
    def warned_at(self) -> float | None:
        return self._warned


class _Pace:
    """The projected pace `h` seconds ahead at fraction done `f`: the damped Holt forecast times
    the season, scaled by `scale` (the band), at least PACE_FLOOR of the level."""

    __slots__ = ("floor", "holt", "scale", "season", "tau")

    def __init__(self, holt: Holt, tau: float, scale: float, season: Season | None) -> None:
        self.holt, self.tau, self.scale, self.season = holt, tau, scale, season
        self.floor = PACE_FLOOR * holt.level

    def __call__(self, h: float, fraction: float) -> float:
        base = max(self.floor, self.holt.forecast(h, self.tau)) * self.scale
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
    return None, at_end if deadline is not None else min(1.0, d / planned)


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else max(a, b)
