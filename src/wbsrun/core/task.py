"""Run-time state holders: the run context shared by all users, a user, and one task (pass)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, final

from wbsrun.core.components import ComponentBase, as_component
from wbsrun.core.deadlines import DeadlineWheel
from wbsrun.core.feeds import Feed
from wbsrun.core.ledger import Ledger, LedgerEntry, Snapshot, WorkbookView
from wbsrun.core.persist import PersistBuffer
from wbsrun.core.ports import Component, LogSink, UserHandle
from wbsrun.core.rate import RateGuard
from wbsrun.core.sinks import NullSink, Sink
from wbsrun.core.stats import RunStats
from wbsrun.dsl.plan import Plan, ScenarioSpec, WorkflowSpec

if TYPE_CHECKING:
    from wbsrun.core.leases import Holding, LeaseBook, ResourceFault
    from wbsrun.core.scope import TaskScope

__all__ = ["Checkpoint", "RunContext", "Task", "UserState"]

_NO_MILESTONES: frozenset[str] = frozenset()


@dataclass(eq=False)
class RunContext:
    """References the whole run shares (the `Environment` of the run), no module globals."""

    plan: Plan
    # Either model, as the compiled base both subclass: the hot path's ~30 calls a pass are
    # native ones (see core/ledger/_base.Ledger).
    workbook: Ledger[Any]
    stats: RunStats
    components: Mapping[str, Component]
    leases: LeaseBook | None
    log: LogSink
    persist: PersistBuffer
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    t0: float = 0.0
    global_vars: dict[str, Any] = field(default_factory=dict)
    globals_view: Mapping[str, Any] = field(default_factory=dict)
    draining: bool = False
    # (dir, file name) → the resolved path's text (what `PersistBuffer.put` keys by).
    persist_paths: dict[tuple[str, str], str] = field(default_factory=dict)
    # Progress of tasks still running, by task id; read by the progress model.
    inflight: dict[str, float] = field(default_factory=dict)
    # `rate-limit: {global: …}` schedules, shared by every user; also handed to components.
    rate_guard: RateGuard = field(default_factory=RateGuard)
    progress_done: float = 0.0
    # Set when the last user is done: background services wind down.
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    # Where progress changes go (the progress bus); nobody listens by default.
    events: Sink = field(default_factory=NullSink)
    # Pass and action timeouts (see core/deadlines.py for why not asyncio.timeout).
    deadlines: DeadlineWheel = field(default_factory=DeadlineWheel)
    # `data:` sources by name, opened by the runner (core/feeds.py).
    feeds: dict[str, Feed] = field(default_factory=dict)

    # `components` as the runner calls them (native calls on the built-ins; see
    # core/components.py).
    calls: dict[str, ComponentBase] = field(init=False)

    def __post_init__(self) -> None:
        self.calls = {name: as_component(c) for name, c in self.components.items()}
        self.globals_view = MappingProxyType(
            {"name": self.plan.name, "version": self.plan.version, **self.plan.globals}
        )


@dataclass(eq=False)
class UserState:
    handle: UserHandle
    index: int
    vars: dict[str, Any] = field(default_factory=dict)
    # This user's own `rate-limit` schedules, by node id.
    rate_guard: RateGuard = field(default_factory=RateGuard)
    # The rows of `per-user` data sources, by source name: fixed for the run.
    rows: dict[str, Any] = field(default_factory=dict)


@final
class Checkpoint:
    """What a checkpoint node saw: the state a rollback returns the task to. Never changed
    once built (`Final`: mypy refuses a write). Not a frozen dataclass: compiled, its
    `__init__` would stay interpreted (the dataclasses module writes it) with a
    `object.__setattr__` per field, and one is built every pass."""

    __slots__ = ("earlier", "milestones", "node", "progress", "snapshot", "task_vars")

    def __init__(
        self,
        node: str,
        snapshot: Snapshot,
        task_vars: Mapping[str, Any],
        progress: float,
        milestones: frozenset[str],
        earlier: Checkpoint | None = None,
    ) -> None:
        self.node: Final = node
        self.snapshot: Final = snapshot
        self.task_vars: Final = task_vars
        self.progress: Final = progress
        self.milestones: Final = milestones
        # The pass's checkpoints before this one, latest first (`progress.rollback` with `to:
        # NODE` goes back to NODE's); never NODE itself, so at most one per checkpoint node.
        self.earlier: Final = earlier

    def reached(self, node: str) -> Checkpoint | None:
        """This pass's checkpoint at `node`, the latest first; None if the pass never got there."""
        cp: Checkpoint | None = self
        while cp is not None:
            if cp.node == node:
                return cp
            cp = cp.earlier
        return None

    def __repr__(self) -> str:
        return f"Checkpoint({self.node!r}, progress={self.progress})"


class Task:
    """One user × pass through a workflow."""

    __slots__ = (
        "checkpoint",
        "data",
        "deferred",
        "entry",
        "error",
        "fault",
        "holdings",
        "in_action",
        "iteration",
        "milestones",
        "phase",
        "progress",
        "resource",
        "rollbacks",
        "run",
        "scenario",
        "scope",
        "start",
        "steps",
        "task_id",
        "user",
        "user_id",
        "vars",
        "wb_view",
        "workflow",
    )

    def __init__(
        self,
        run: RunContext,
        scenario: ScenarioSpec,
        workflow: WorkflowSpec,
        user: UserState,
        entry: LedgerEntry,
        iteration: int,
    ) -> None:
        self.run = run
        self.scenario = scenario
        self.workflow = workflow
        self.user = user
        self.entry = entry
        # The entry's ids, kept here: a sink reads `task_id` ~25 times a pass, and a slot is
        # one lookup where the property was two.
        self.task_id: str = entry.task_id
        self.user_id: str = entry.user_id
        self.iteration = iteration
        self.phase = "initiating.idle"
        self.vars: dict[str, Any] = {}
        self.resource: dict[str, Any] | None = None
        self.holdings: list[Holding] = []
        self.error: dict[str, str] | None = None
        self.progress = 0.0
        # Replaced, never changed in place (a few times a pass): progress events, checkpoints
        # and the aggregator share it rather than copy it (an allocation an event).
        self.milestones: frozenset[str] = _NO_MILESTONES
        # The last stable point (`progress.rollback → last-stable-point`); None: the pass start.
        self.checkpoint: Checkpoint | None = None
        # The entry as the pass began (user.context): where a rollback without checkpoint goes.
        self.start: Snapshot | None = None
        self.rollbacks = 0
        # Resource bookkeeping the lease book reads: node visits (auto-renew vouches for a
        # holder that moves), component calls in flight (releases wait for them to end), a
        # deferred release to settle, and a fault (expiry, failed item) to handle at the next node.
        self.steps = 0
        self.in_action = 0
        self.deferred = False
        self.fault: ResourceFault | None = None
        self.wb_view = WorkbookView(run.workbook, entry)
        # The template scope, built on first use (`scope_of`) and dropped at the close: it
        # refers back to the task.
        self.scope: TaskScope | None = None
        # `data.NAME`: this pass's row of each source it reads (None: no `data:` section,
        # `data` is then an ordinary variable name).
        self.data: dict[str, Any] | None = None

    # -- ProgressSubject: what a progress sink reads ------------------------------------------

    @property
    def scenario_name(self) -> str:
        return self.scenario.name

    @property
    def error_class(self) -> str | None:
        return self.error["class"] if self.error else None
