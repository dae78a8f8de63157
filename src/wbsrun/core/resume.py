"""Where a run stood at a checkpoint, and where a resumed run starts (docs/operations.md,
"Checkpoint and resume").

Plain, picklable data. The scheduler keeps, per scenario, each closed-model user's completed
passes and how long it had run, the users whose passes were over, and (arrival-rate) how many
scheduled iterations were dispatched; `Runner` hands a `RunResume` back to the schedulers of
the second life, which start only the remaining work on a clock shifted to the checkpoint's
elapsed time (so windows, ramps and arrival offsets continue where they stood)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunResume", "ScenarioPosition"]


@dataclass(frozen=True, slots=True)
class ScenarioPosition:
    """One scenario's schedule position. Closed model: `passes` (user index → passes
    completed; a pass in flight is not completed: the resumed user runs it again) and
    `ran` (user index → seconds it had run, for `task-duration`); `done`: users whose passes
    were over (they do not come back). Arrival-rate: `dispatched` scheduled iterations
    (started, dropped or due while paused): the next one is the first to run."""

    passes: dict[int, int] = field(default_factory=dict)
    ran: dict[int, float] = field(default_factory=dict)
    done: frozenset[int] = frozenset()
    dispatched: int = 0


@dataclass(frozen=True, slots=True)
class RunResume:
    """A second life: the run's elapsed seconds at the checkpoint (the schedule's clock
    continues from there), its wall-clock start, each scenario's position by name, each
    feed's cursor (`Feed.position`), the progress of the passes closed, and `global_vars`."""

    elapsed: float
    started_wall: float
    scenarios: dict[str, ScenarioPosition] = field(default_factory=dict)
    feeds: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress_done: float = 0.0
    global_vars: dict[str, Any] = field(default_factory=dict)
