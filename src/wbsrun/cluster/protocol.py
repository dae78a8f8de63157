"""The messages between a coordinator and its workers (plain, picklable dataclasses).

Worker → coordinator: `Ready` once the plan is loaded and wired, then a `Report` every
`REPORT_INTERVAL` seconds and a last one with `final=True` (and the worker's own totals), or
`Failed` when the worker could not run. Coordinator → worker: `Go` (all start together),
`Drain` (the graceful stop), `Abort` (cancel now), and the live control the coordinator's
endpoint forwards: `Pause`, `Resume`, `Scale` (numbered; each worker acknowledges the last it
applied in its next report, fire-and-forget: the coordinator never waits on an answer, so a
worker that is gone cannot hang it). The transport (a pipe here) only moves these;
`delta.py` says how a report's figures merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wbsrun.cluster.delta import StatsDelta
from wbsrun.progress.aggregate import ScenarioSums

__all__ = [
    "REPORT_INTERVAL",
    "Abort",
    "Drain",
    "Failed",
    "Go",
    "Pause",
    "Ready",
    "Report",
    "Resume",
    "Scale",
    "ToCoordinator",
    "ToWorker",
]

# How often a worker reports (the issue asks 0.5–1 s): the live view lags by about this much.
REPORT_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class Ready:
    worker: int
    pid: int
    # Users this worker's segment plans (until its first report says it).
    users: int


@dataclass(frozen=True, slots=True)
class Failed:
    worker: int
    message: str


@dataclass(slots=True)
class Report:
    """What a worker counted since its last report (`stats`), and where it stands now
    (gauges: replaced, not added, by the next report)."""

    worker: int
    seq: int
    stats: StatsDelta
    # The worker's progress sums per scenario (`Aggregator.sums`).
    progress: dict[str, ScenarioSums]
    # Active users per scenario (by name), tasks in flight and their progress, closed progress.
    active: dict[str, int]
    inflight: int
    inflight_progress: float
    progress_done: float
    elapsed: float
    # Users this worker's segment plans (its share of the plan).
    users: int
    leases: int
    interrupted: bool
    # The per-process parts of the result (resources, ledger, persist, logs, engine), as JSON.
    sections: dict[str, Any] = field(default_factory=dict)
    final: bool = False
    # With `final`: the worker's own totals (`delta.totals`), for the end-of-run check.
    totals: dict[str, object] | None = None
    # Live control: the last control message (`seq`) applied, whether the worker is paused,
    # and the control messages it refused since its last report (why, in words).
    control: int = 0
    paused: bool = False
    refused: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Go:
    pass


@dataclass(frozen=True, slots=True)
class Drain:
    pass


@dataclass(frozen=True, slots=True)
class Abort:
    pass


@dataclass(frozen=True, slots=True)
class Pause:
    seq: int


@dataclass(frozen=True, slots=True)
class Resume:
    seq: int


@dataclass(frozen=True, slots=True)
class Scale:
    """Scenario `scenario` to `users` users in all (the whole run's figure: each worker runs
    its segment's share of it, `SpawnPlan.share`)."""

    seq: int
    scenario: str
    users: int


ToCoordinator = Ready | Failed | Report
ToWorker = Go | Drain | Abort | Pause | Resume | Scale
