"""Immutable plan objects: what parse2wbs produces and the core executes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

from wbsrun.dsl.checks import ResponseRules
from wbsrun.dsl.expr import Expr
from wbsrun.dsl.template import CompiledValue, Template
from wbsrun.dsl.thresholds import ThresholdRule
from wbsrun.errors import Diagnostic

__all__ = [
    "EMPTY",
    "LAST_STABLE_POINT",
    "RUNNER_FIELDS",
    "ActionSpec",
    "ComponentSpec",
    "DataSpec",
    "ExitSpec",
    "GotoKind",
    "Handler",
    "HandlerCall",
    "HandlerGoto",
    "HandlerRelease",
    "HandlerRollback",
    "HandlerUpdate",
    "HealthCheckSpec",
    "HealthThreshold",
    "Milestone",
    "NodeSpec",
    "Persist",
    "Plan",
    "ProfileSpec",
    "ProgressSpec",
    "ResourceSpec",
    "SamplingMode",
    "SamplingSpec",
    "SaveAs",
    "ScenarioSpec",
    "ThinkKind",
    "ThinkSpec",
    "TlsSpec",
    "Transition",
    "WbsNode",
    "WorkbookSpec",
    "WorkflowSpec",
]

EMPTY: Mapping[str, Any] = MappingProxyType({})
# The section fields the runner itself maintains (reference page, section 6), whether or not
# a scenario's workbook lists them in its defaults.
_RUNNER_FIELDS_TEXT = {
    "timeline": "phase start_at last_transition_at target_deadline_at transition_trace "
    "process_groups",
    "execution": "owner current_action last_action timeout_at retry_budget evidence action_log "
    "resource_lease",
    "governance": "scope_trace raci_matrix stakeholder_notes",
    "telemetry": "counters latency_ms milestones health",
    "registers": "risk.flag risk.entries issue.entries stakeholder.entries stakeholder.concerns "
    "procurement.plugins",
    "communications": "log last_synced_at",
}
RUNNER_FIELDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {name: frozenset(text.split()) for name, text in _RUNNER_FIELDS_TEXT.items()}
)

SaveScope = Literal["workbook", "user-local", "task-local", "global"]
NodeType = Literal["action", "parallel", "checkpoint", "terminus"]
GotoKind = Literal["node", "exit", "retry", "rollback"]


@dataclass(frozen=True, slots=True)
class TlsSpec:
    """An http component's `tls:`: files resolved inside the bundle; `verify: false` accepts
    any certificate (warned about once a run)."""

    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None
    verify: bool = True


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    name: str
    version: str
    kind: str
    entry: str | None
    wit: str | None
    capabilities: tuple[str, ...]
    metadata: Mapping[str, Any]
    transport: str | None = None  # http components: "fast" | "aiohttp" (None: the default)
    # http components: request timeout (seconds) and response body limit (bytes) of every
    # call that sets none in its `with`; None: the run's (docs/operations.md "Limits").
    timeout: float | None = None
    max_body: int | None = None
    # http components: `tls:` (CA file, client certificate, verification); None: the system's.
    tls: TlsSpec | None = None
    # wasi-components whose entry is in the bundle: "builtin" runs the built-in of the same
    # name when the entry cannot be loaded (docs/wasi.md "Fallback"); None refuses the start.
    fallback: str | None = None


@dataclass(frozen=True, slots=True)
class Persist:
    dir: str
    filename: Template


@dataclass(frozen=True, slots=True)
class SaveAs:
    var: str
    scope: SaveScope
    persist: Persist | None


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """A named component call; `component`/`call` already resolve aliases (`log.X`)."""

    name: str
    component: str
    call: str
    args: CompiledValue
    save_as: SaveAs | None
    wbs_level: str
    timeout: float | None
    rate_limit: float | None
    rate_limit_global: float | None = None
    # Its `with` has a `timeout`: the component bounds the call, not the run's request timeout.
    own_timeout: bool = False
    # `capture:` and `checks:` (dsl/checks.py); None: neither, nothing to evaluate.
    response: ResponseRules | None = None


@dataclass(frozen=True, slots=True)
class HandlerCall:
    """Call a declared action, or `component.call` inline with its own `with`."""

    action: ActionSpec
    when: str | None


@dataclass(frozen=True, slots=True)
class HandlerGoto:
    target: str
    kind: GotoKind
    when: str | None = None  # transient | permanent | any (None: any)


@dataclass(frozen=True, slots=True)
class HandlerUpdate:
    # (section path, value) pairs; aliases already expanded to section paths.
    assignments: tuple[tuple[str, CompiledValue], ...]
    when: str | None = None


# `progress.rollback`'s default target: the pass's last checkpoint (or its start).
LAST_STABLE_POINT: Final = "last-stable-point"


@dataclass(frozen=True, slots=True)
class HandlerRollback:
    # LAST_STABLE_POINT, or the id of a checkpoint node: back to that checkpoint when the
    # pass reached it, else to the last stable point.
    to: str
    when: str | None = None


@dataclass(frozen=True, slots=True)
class HandlerRelease:
    handles: CompiledValue
    when: str | None


Handler = HandlerCall | HandlerGoto | HandlerUpdate | HandlerRollback | HandlerRelease


@dataclass(frozen=True, slots=True)
class Transition:
    edge: str
    to: str
    kind: Literal["always", "otherwise", "expr"]
    condition: Expr | None
    target_kind: GotoKind = "node"


@dataclass(frozen=True, slots=True)
class NodeSpec:
    id: str
    type: NodeType
    index: int
    action: ActionSpec | None = None
    timeout: float | None = None
    rate_limit: float | None = None
    rate_limit_global: float | None = None
    on_error: tuple[Handler, ...] = ()
    on_timeout: tuple[Handler, ...] = ()
    transitions: tuple[Transition, ...] = ()
    branches: tuple[str, ...] = ()
    join_policy: Literal["wait-all", "wait-any"] = "wait-all"
    join_to: str | None = None
    metrics: tuple[str, ...] = ()
    state: str | None = None


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    name: str
    entry: str
    nodes: Mapping[str, NodeSpec]
    timeout: float | None
    on_error: tuple[Handler, ...]
    on_timeout: tuple[Handler, ...]
    wbs_level: str
    linear: bool


@dataclass(frozen=True, slots=True)
class ExitSpec:
    name: str
    owner: str
    classify_default: Literal["transient", "permanent"]
    classify_field: Template | None
    actions: tuple[Handler, ...]


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    name: str
    kind: Literal[
        "ramp", "constant", "phases", "stages", "constant-arrival-rate", "ramping-arrival-rate"
    ]
    start_users: int = 0
    end_users: int = 0
    users: int = 0
    duration: float = 0.0
    phases: tuple[tuple[float, int], ...] = ()
    # `stages` (targets in users) and `ramping-arrival-rate` (targets in iterations per
    # second): (duration, target) steps, linear from the previous level.
    stages: tuple[tuple[float, float], ...] = ()
    # Arrival-rate profiles: iterations per second (the start rate of a ramping one), users
    # created before the start, and the most users that may run at once.
    rate: float = 0.0
    pre_allocated: int = 0
    max_users: int = 0

    @property
    def arrival(self) -> bool:
        return self.kind in ("constant-arrival-rate", "ramping-arrival-rate")

    @property
    def window(self) -> float:
        """The profile's own duration: its `duration`, or its stages' total."""
        return sum(d for d, _ in self.stages) if self.stages else self.duration

    def planned_iterations(self) -> int:
        """Arrival-rate: the iterations its schedule starts, ⌈∫ rate dt⌉ (core/arrivals.py
        starts iteration k when the integral reaches k); 0 for the other kinds."""
        if self.kind == "constant-arrival-rate":
            total = self.rate * self.duration
        elif self.kind == "ramping-arrival-rate":
            total, level = 0.0, self.rate
            for duration, target in self.stages:
                total += (level + target) * duration / 2
                level = target
        else:
            return 0
        return max(0, math.ceil(total - 1e-9))

    @property
    def peak_users(self) -> int:
        """The most users the profile runs at once (arrival-rate: its max-users)."""
        if self.arrival:
            return max(self.max_users, self.pre_allocated)
        if self.kind == "stages":
            return max([self.start_users, *(round(t) for _, t in self.stages)])
        if self.kind == "phases":
            return sum(n for _, n in self.phases)
        return max(self.end_users, self.users, self.start_users)


@dataclass(frozen=True, slots=True)
class Milestone:
    name: str
    node: str
    edge: str
    weight: float


@dataclass(frozen=True, slots=True)
class HealthThreshold:
    telemetry_field: str
    min_score: float
    consecutive_breach: int


ThinkKind = Literal["fixed", "uniform", "exponential"]


@dataclass(frozen=True, slots=True)
class ThinkSpec:
    """A think-time distribution (dsl/think.py): fixed `low`; uniform in [low, high];
    exponential with mean `low` (high == low)."""

    kind: ThinkKind
    low: float
    high: float

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2 if self.kind == "uniform" else self.low


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    name: str
    workflow: str
    user_count: int
    spawn_rate: float | None
    profile: ProfileSpec | None
    task_duration: float | None
    iterations: int | None
    think_time: float
    inherit: tuple[str, ...]
    session_new: bool
    context: Mapping[str, Any]
    exits: Mapping[str, str]
    milestones: tuple[Milestone, ...]
    aggregation: tuple[tuple[str, float], ...]
    health_threshold: HealthThreshold | None
    max_duration: float | None
    wbs_level: str
    # Passes in flight when the window ends may finish for this long (None: the run's).
    graceful_stop: float | None = None
    # Think time between passes (None: `think_time` fixed; think_time is then its mean), and
    # pacing: passes start this far apart per user (None: none). See core/pacing.py.
    think: ThinkSpec | None = None
    pacing: float | None = None
    # Seconds after the run starts before this scenario starts (its own clock starts then).
    start_after: float = 0.0
    # `cookies: false`: the http component keeps no cookie jar for this scenario's users.
    cookies: bool = True
    # Weight of this scenario's passes in priority scheduling (`business-value`).
    business_value: float = 1.0


@dataclass(frozen=True, slots=True)
class HealthCheckSpec:
    interval: float
    timeout: float
    probe: ActionSpec
    on_failure: tuple[Handler, ...]


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    name: str
    type: Literal["pair_pool", "file_blob"]
    provider_component: str | None
    provider_calls: Mapping[str, str]
    ttl: float | None
    auto_renew: bool
    strategy: Literal["round-robin", "least-used"]
    read_only: bool
    manifest: Path | None
    parser_format: Literal["csv", "yaml"]
    parser_fields: tuple[str, ...]
    file: Path | None
    checksum: str | None
    capacity: int | None
    exclusive: bool
    health_check: HealthCheckSpec | None
    metadata: Mapping[str, Any]
    # Who gets a freed item: "fcfs" (the longest waiter) or "priority" (resources/sched.py).
    scheduling: Literal["fcfs", "priority"] = "fcfs"


@dataclass(frozen=True, slots=True)
class WorkbookSpec:
    """Section defaults (shared by every entry) and the alias table."""

    defaults: Mapping[str, Mapping[str, Any]]
    process_groups: Mapping[str, str]
    descriptions: Mapping[str, str]
    expose: Mapping[str, str]

    def resolve(self, name: str) -> str:
        """Alias or section path to a section path."""
        return self.expose.get(name, name)

    def context_path(self, key: str) -> str:
        """Where a `user.context` key goes: its alias, the section field of that name (in the
        defaults, else one the runner maintains), else `vars.KEY`, a workbook variable."""
        path = self.expose.get(key)
        if path is not None:
            return path
        for section, defaults in self.defaults.items():
            if key in defaults:
                return f"{section}.{key}"
        for section, fields in RUNNER_FIELDS.items():
            if key in fields or any(f.startswith(key + ".") for f in fields):
                return f"{section}.{key}"
        return f"vars.{key}"


SamplingMode = Literal["full", "sampled", "aggregated"]
SAMPLING_MODES: tuple[SamplingMode, ...] = ("aggregated", "sampled", "full")


@dataclass(frozen=True, slots=True)
class SamplingSpec:
    """`progress.sampling`: which closed workbook entries stay whole (docs/progress-model.md,
    "Sampling modes"). Every closed entry is folded into the ledger's aggregates whatever the
    mode; `aggregated` keeps the newest `keep_failed` failed entries and a reservoir sample of
    `keep_succeeded` successful ones per scenario, `sampled` also every `every`-th closed
    entry, `full` streams every closed entry to the on-disk ledger and keeps none in memory."""

    mode: SamplingMode = "aggregated"
    keep_failed: int = 1000
    keep_succeeded: int = 1000
    every: int = 100


@dataclass(frozen=True, slots=True)
class ProgressSpec:
    max_batch_size: int = 100
    flush_interval: float = 0.1
    priority_threshold: float = 0.7
    transient: frozenset[str] = frozenset()
    permanent: frozenset[str] = frozenset()
    poller_priorities: tuple[tuple[str, Mapping[str, tuple[str, ...]], float], ...] = ()
    # `progress.poller.progress_pollable`: the change feed plugins poll (wbsrun:progress);
    # `rebuild-future-each-iteration`: its ready() recomputed on every call (docs/dsl.md).
    progress_pollable: bool = False
    rebuild_future: bool = True
    # Workbook storage model (`core/ledger/_base.py`): "sparse" or "dense".
    model: Literal["dense", "sparse"] = "sparse"
    sampling: SamplingSpec = SamplingSpec()


DataMode = Literal["per-user", "sequential", "random", "shuffled", "circular", "unique"]
DATA_MODES: tuple[DataMode, ...] = (
    "per-user",
    "sequential",
    "random",
    "shuffled",
    "circular",
    "unique",
)


@dataclass(frozen=True, slots=True)
class DataSpec:
    """A `data:` source (docs/dsl.md "Data feeders"): a file inside the bundle and the way
    passes take its rows."""

    name: str
    file: Path  # resolved, inside the bundle
    display: str  # as written, for messages
    format: Literal["csv", "json", "jsonl"]
    mode: DataMode = "circular"
    on_exhausted: Literal["stop", "error"] = "stop"
    delimiter: str = ","
    quote: str = '"'
    # CSV: the header's field names (what `data.NAME.<field>` may read); None: not known.
    fields: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class WbsNode:
    """One element of the work breakdown structure (L0 program … L5 action)."""

    level: int
    kind: str
    name: str
    detail: str = ""
    children: tuple[WbsNode, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    version: str
    source: str
    res_dir: Path
    globals: Mapping[str, Any]
    components: Mapping[str, ComponentSpec]
    resources: Mapping[str, ResourceSpec]
    workbook: WorkbookSpec
    progress: ProgressSpec
    actions: Mapping[str, ActionSpec]
    workflows: Mapping[str, WorkflowSpec]
    scenarios: tuple[ScenarioSpec, ...]
    exits: Mapping[str, ExitSpec]
    wbs: WbsNode
    warnings: tuple[Diagnostic, ...] = field(default=())
    # `thresholds:` of the scenario and its config.yaml (docs/dsl.md "Thresholds").
    thresholds: tuple[ThresholdRule, ...] = field(default=())
    # `data:` sources by name (docs/dsl.md "Data feeders").
    data: Mapping[str, DataSpec] = field(default_factory=dict)
