"""What a user waits between two passes: a think time drawn from the scenario's distribution,
or what is left of its pacing interval (dsl/think.py reads both).

Draws come from one generator per user, seeded from the plan's name, the scenario's name and
the user's index: the same bundle gives every user the same sequence of think times on every
run (reproducible tests and comparisons), and two users never share a sequence."""

from __future__ import annotations

import random

from wbsrun.dsl.plan import ScenarioSpec, ThinkSpec

__all__ = ["Pacer", "draw", "user_seed"]


def user_seed(plan: str, scenario: str, index: int) -> str:
    # A str seed is hashed by SHA-512 (random.seed version 2): stable across processes,
    # unlike hash(), which PYTHONHASHSEED randomizes.
    return f"{plan}\x00{scenario}\x00{index}"


def draw(spec: ThinkSpec, rng: random.Random) -> float:
    """One think time of `spec`, in seconds."""
    if spec.kind == "uniform":
        return rng.uniform(spec.low, spec.high)
    if spec.kind == "exponential":
        return rng.expovariate(1.0 / spec.low)
    return spec.low


class Pacer:
    """One user's waits. `wait(started, now)` is the pause before its next pass, given when the
    last one started and the time now (one clock). With pacing, passes are due `pacing` apart
    from the first one's start (planned times, so sleep overshoot does not drift the rate); a
    pass that ends after the next one was due counts in `missed`, and the next starts at once,
    due times counting on from then (no burst to catch up)."""

    __slots__ = ("_due", "_rng", "_think", "missed", "pacing")

    def __init__(self, scenario: ScenarioSpec, seed: str) -> None:
        think = scenario.think
        if think is None and scenario.think_time > 0:
            think = ThinkSpec("fixed", scenario.think_time, scenario.think_time)
        self._think = think
        self.pacing = scenario.pacing
        self._rng: random.Random | None = (
            random.Random(seed) if think is not None and think.kind != "fixed" else None
        )
        self._due: float | None = None
        self.missed = 0

    def wait(self, started: float, now: float) -> float:
        pacing = self.pacing
        if pacing is not None:
            due = (started if self._due is None else self._due) + pacing
            if now > due:
                self.missed += 1
                self._due = now
                return 0.0
            self._due = due
            return due - now
        think = self._think
        if think is None:
            return 0.0
        if self._rng is None:
            return think.low
        return draw(think, self._rng)
