"""Live control of a run split over workers: the coordinator's `RunControl` forwards.

The endpoint (wbsrun.control) steers the coordinator's `RunControl` as it steers a local run's;
this one keeps the coordinator's own state (paused, the paused seconds, a scale's target) so
the live line, the ETA and the rates read it unchanged, and forwards each call to every worker
still running: `Pause`, `Resume`, `Scale` (the whole run's figure: each worker takes its
segment's share), and stop as the `Drain` the coordinator already sends.

Fire-and-forget, acknowledged: a call answers at once from the coordinator's state; each
worker applies the message on its own loop and acknowledges it (the message's number) in its
next report, within `REPORT_INTERVAL`. The status lists, per worker, whether it is paused,
its users and how many control messages it has not acknowledged yet (`pending`). A worker that
is gone is never waited on (the coordinator fails it by its silence or its exit, as always);
a worker that refuses a message (its part of the scenario is over) says why in its report,
and the coordinator writes that to the run log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wbsrun.cluster.merge import ClusterState
from wbsrun.cluster.protocol import Pause, Resume, Scale
from wbsrun.core.control import RunControl

if TYPE_CHECKING:
    from wbsrun.core.runner import Runner
    from wbsrun.core.scheduler import Scheduler

__all__ = ["ClusterControl"]


class ClusterControl(RunControl):
    """`RunControl` of a coordinator: its own state, and every call sent to the workers
    (`send`: to every worker starting or running)."""

    def __init__(self, runner: Runner, state: ClusterState, send: Callable[[object], None]) -> None:
        super().__init__(runner)
        self._state = state
        self._send = send
        self.seq = 0  # the last control message sent

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def pause(self) -> None:
        was = self.paused
        super().pause()
        if not was:
            self._send(Pause(self._next()))

    def resume(self) -> None:
        was = self.paused
        super().resume()
        if was:
            self._send(Resume(self._next()))

    def _scale(self, scheduler: Scheduler, users: int) -> None:
        # The mirror runs no users: it records the target the workers' shares add up to.
        scheduler.record_scale(users)
        self._send(Scale(self._next(), scheduler.scenario.name, users))

    def before_start(self) -> list[object]:
        """What a worker is sent before its `Go`: a pause made before the run started."""
        return [Pause(self.seq)] if self.paused else []

    def status(self) -> dict[str, Any]:
        answer = super().status()
        workers = []
        for w in self._state.workers:
            # Only a worker still running has users and owes acknowledgements.
            live = w.status in ("starting", "running")
            last = w.last if live else None
            workers.append(
                {
                    "index": w.index,
                    "status": w.status,
                    "paused": bool(last and last.paused),
                    "users": sum(last.active.values()) if last else 0,
                    "pending": self.seq - (last.control if last else 0) if live else 0,
                }
            )
        answer["workers"] = workers
        return answer
