"""Steering a live run: pause, resume, re-size a scenario, stop (docs/operations.md, "Live
control").

`RunControl` is the one entry point: the control endpoint (wbsrun.control) calls only its
methods, and a coordinator of several processes implements the same ones by forwarding them.

The rules, in short:
- pause: every user finishes the action it is in (never cut mid-request) and waits before its
  next one; no user spawns, no pass starts, an arrival-rate scenario starts no iteration (those
  due while paused are skipped and counted as `paused`, not as dropped: no user was short).
  A pause does not extend the run window (as k6): the window and the graceful stop still bound
  the run. When a scenario's window ends (or the run is stopped) while paused, its passes in
  flight are let go, to finish within the graceful stop as they would unpaused.
- paused seconds are left out of every rate (requests/s, the ETA's pace, the series' rates).
- scale: see `Scheduler.scale` (closed model: the population; arrival-rate: max-users).
- stop: the graceful stop, the same as a first Ctrl-C (`Runner.drain`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from wbsrun.core.runner import Runner
    from wbsrun.core.scheduler import Scheduler

__all__ = ["MAX_USERS", "ControlError", "RunControl"]

# The most users a scale may ask for: a scale up starts them all at once (bounded).
MAX_USERS = 100_000

# What went wrong, for the endpoint to map: a bad value, an unknown scenario, or a request the
# run's state refuses (over, stopping).
ControlProblem = Literal["invalid", "not-found", "conflict"]


def _short(value: object) -> str:
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge number"
    return text if len(text) <= 60 else text[:57] + "..."


class ControlError(Exception):
    """A control request refused; `kind` says why (see `ControlProblem`)."""

    def __init__(self, kind: ControlProblem, message: str) -> None:
        super().__init__(message)
        self.kind: ControlProblem = kind
        self.message = message


class RunControl:
    """Pause, resume, scale and stop one run. Every method is called on the run's loop."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._paused = False
        self._since = 0.0  # clock time the current pause began
        self._total = 0.0  # seconds of the pauses that ended

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def paused_seconds(self) -> float:
        """Seconds the run has spent paused so far (the current pause included, up to the
        run's end)."""
        if not self._paused:
            return self._total
        runner = self._runner
        now = runner.ended_at if runner.ended_at is not None else runner.ctx.clock()
        return self._total + max(0.0, now - self._since)

    @property
    def state(self) -> str:
        """`starting` (before the run), `running`, `paused`, `stopping` (drained) or `ended`."""
        runner = self._runner
        if runner.ended_at is not None:
            return "ended"
        if not runner.ctx.t0:
            return "starting"
        if runner.ctx.draining:
            return "stopping"
        return "paused" if self._paused else "running"

    def _live(self, what: str) -> None:
        state = self.state
        if state in ("ended", "stopping"):
            raise ControlError("conflict", f"cannot {what}: the run is {state}")

    def pause(self) -> None:
        """Users wait before their next action, spawns and arrivals hold (no-op when paused)."""
        self._live("pause")
        if self._paused:
            return
        self._paused = True
        self._since = self._runner.ctx.clock()
        for scheduler in self._runner.schedulers:
            scheduler.hold()
        self._note("paused")

    def resume(self) -> None:
        """Users go on where they waited (no-op when not paused)."""
        if not self._paused:
            self._live("resume")
            return
        self.release()
        self._note(f"resumed ({self._total:.1f}s paused in all)")

    def release(self) -> None:
        """End the pause, in any state (the runner calls it at a stop and at the run's end)."""
        if not self._paused:
            return
        self._total += max(0.0, self._runner.ctx.clock() - self._since)
        self._paused = False
        for scheduler in self._runner.schedulers:
            scheduler.release()

    def scale(self, scenario: str, users: int) -> None:
        """Scenario `scenario` to `users` users (arrival-rate: max-users), live."""
        if isinstance(users, bool) or not isinstance(users, int) or not 0 <= users <= MAX_USERS:
            raise ControlError(
                "invalid",
                f"users must be a whole number from 0 to {MAX_USERS:,}, got {_short(users)}",
            )
        self._live("scale")
        if not self._runner.schedulers:
            raise ControlError("conflict", "cannot scale: the run has not started yet")
        for scheduler in self._runner.schedulers:
            if scheduler.scenario.name == scenario:
                self._scale(scheduler, users)
                self._note(f"scenario '{scenario}' scaled to {users} users")
                return
        known = ", ".join(s.name for s in self._runner.plan.scenarios)
        raise ControlError("not-found", f"no scenario '{scenario}' (the run has: {known})")

    def _scale(self, scheduler: Scheduler, users: int) -> None:
        """Apply a checked scale (a coordinator forwards it to its workers instead)."""
        scheduler.scale(users)

    def stop(self) -> None:
        """The graceful stop: no pass starts, passes in flight get the graceful stop to end."""
        if self._runner.ended_at is not None:
            raise ControlError("conflict", "cannot stop: the run is ended")
        self._note("stop: finishing in-flight tasks")
        self._runner.drain()

    def _note(self, what: str) -> None:
        """Every control action in the run log, stamped by it."""
        self._runner.ctx.log.log("info", f"control: {what}")

    def status(self) -> dict[str, Any]:
        """The run's state, paused seconds and per-scenario users (the endpoint's GET)."""
        runner = self._runner
        return {
            "state": self.state,
            "paused": self._paused,
            "paused_s": round(self.paused_seconds, 3),
            "elapsed_s": round(runner.elapsed, 3),
            "scenarios": {s.scenario.name: s.figures() for s in runner.schedulers},
        }
