"""The workbook interface both storage models implement (`dense` and `sparse`), hot path included.

The executor talks to `Ledger` only: it never learns which model runs. Reads and cold writes go
through section paths or `expose` aliases (`get`, `set`, `set_many`, `append`, `list_at`,
`mutable`, `bump`); the writes every pass makes go through dedicated methods (`transition`,
`begin_action`, `end_action`, `reach_milestone`, `put`) so the sparse model can keep those
fields in slots instead of dicts. `snapshot`/`restore` serve rollback; `take_dirty` tells a
progress batcher what changed; `compact` folds closed entries into packed bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar, final

from wbsrun.core.ledger._disk import DiskWriter
from wbsrun.core.ledger._retention import Retention
from wbsrun.core.ledger._state import Transition, export_state
from wbsrun.dsl.plan import SamplingSpec, WorkbookSpec

__all__ = [
    "HOT_FIELDS",
    "FieldBits",
    "Ledger",
    "LedgerEntry",
    "LedgerModel",
    "Snapshot",
    "Transition",
]

LedgerModel = Literal["dense", "sparse"]

# Top-level fields written on every pass; the sparse model keeps them out of dicts. Any other
# field is "cold": a copy-on-write overlay over the shared defaults.
HOT_FIELDS: tuple[str, ...] = (
    "timeline.phase",
    "timeline.last_transition_at",
    "timeline.transition_trace",
    "timeline.start_at",
    "timeline.progress",
    "timeline.process_groups",
    "execution.current_action",
    "execution.current_action_started_at",
    "execution.last_action",
    "execution.last_action_at",
    "execution.timeout_at",
    "execution.resource_lease",
    "execution.action_log",
    "telemetry.counters",
    "telemetry.latency_ms",
    "telemetry.milestones",
)


class LedgerEntry(Protocol):
    """One user × task, as the executor and the expression scope see it."""

    @property
    def user_id(self) -> str: ...

    @property
    def task_id(self) -> str: ...

    @property
    def scenario(self) -> str: ...

    @property
    def vars(self) -> dict[str, Any]:
        """Workbook-scoped saved variables (mutable: `save-as` writes here)."""
        ...

    @property
    def trace(self) -> Sequence[Transition]:
        """The transition trace as (from, to, at, trigger) tuples; read-only."""
        ...


E = TypeVar("E", bound=LedgerEntry)


class Ledger(Generic[E]):
    """A workbook: entries over shared section defaults. Paths are "section.key[.sub…]" or
    `expose` aliases; `key` arguments of the hot methods are top-level "section.key" paths.

    The interface both models implement, as a compiled base class they subclass rather than a
    Protocol: the runner holds its workbook as a `Ledger` (`RunContext.workbook`), and a call on
    a Protocol-typed value is a method looked up by name, its arguments boxed and parsed again
    by the callee's Python-level wrapper, ~30 times a pass; on this base it is a native call
    through the class's method table."""

    spec: WorkbookSpec
    # What closed entries leave behind (totals, the kept ones) and, in `full` mode, where
    # they go (`core/ledger/_retention.py`, `_disk.py`).
    retention: Retention
    disk: DiskWriter | None
    # Live entries and the closed ones kept, in the order they were opened (a dict: an
    # entry dropped or pushed out of a cap leaves in O(1)).
    _all: dict[E, None]

    def _retain(self, sampling: SamplingSpec | None, out: Path | None) -> None:
        """Sets up the sampling mode; `full` streams to `out`/ledger (required)."""
        sampling = sampling or SamplingSpec()
        self._all = {}
        self.retention = Retention(sampling)
        self.disk = None
        if sampling.mode == "full":
            if out is None:
                raise ValueError(
                    "progress.sampling 'full' writes every closed entry to the run's output "
                    "directory: give one (wbsrun run --out DIR)"
                )
            spec = self.spec
            self.disk = DiskWriter(
                out / "ledger",
                {
                    "defaults": spec.defaults,
                    "process_groups": spec.process_groups,
                    "descriptions": spec.descriptions,
                    "expose": spec.expose,
                },
            )

    @property
    def entries(self) -> list[E]:
        """The live entries and the closed ones kept (`progress.sampling`), in open order."""
        return list(self._all)

    def _forget_evicted(self) -> None:
        evicted = self.retention.evicted
        for entry in evicted:
            self._all.pop(entry, None)  # type: ignore[call-overload]
        evicted.clear()

    def finish(self) -> None:
        """The run is over: fold every closed entry not folded yet, complete the on-disk
        ledger. Once, after the last write."""
        self.compact()
        disk = self.disk
        if disk is not None:
            disk.close()

    def footprint(self) -> tuple[int, int, dict[str, int]]:
        """(entries held in memory: live and kept, bytes of their packed form, open entries by
        phase). O(entries held): for a metrics scrape, never on the hot path. A model that
        packs nothing reports 0 bytes."""
        phases: dict[str, int] = {}
        for entry in self._all:
            phase = self.get(entry, "timeline.phase")
            if isinstance(phase, str) and not phase.startswith("closing"):
                phases[phase] = phases.get(phase, 0) + 1
        return len(self._all), 0, phases

    def summary(self) -> dict[str, Any]:
        """The result's `ledger` object: the mode, what was kept, dropped and written, and the
        exact totals per scenario (docs/result.md)."""
        out = self.retention.figures()
        disk = self.disk
        if disk is not None:
            out["written"] = disk.written
            out["path"] = str(disk.directory)
            out["error"] = disk.error
        out["scenarios"] = self.retention.totals_json()
        return out

    def open(self, user_id: str, task_id: str, scenario: str) -> E:
        raise NotImplementedError

    # -- reads ------------------------------------------------------------------------------
    def get(self, entry: E, path: str, default: Any = None) -> Any:
        raise NotImplementedError

    def section(self, entry: E, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def export(self, entry: E) -> dict[str, Any]:
        raise NotImplementedError

    def error_counts(self, entry: E) -> tuple[Any, Any, Any] | None:
        """The counters a health rate needs (success, failure, timeout), or None where the
        model has no cheaper way than reading `telemetry.counters`."""
        return None

    # -- cold writes --------------------------------------------------------------------------
    def set(self, entry: E, path: str, value: Any, owned: bool = False) -> None:
        """Write `value` at `path`: the entry keeps its own copy of a dict, list or tuple
        (`_state.written`), unless `owned` says the caller made it for this write alone."""
        raise NotImplementedError

    def append(self, entry: E, path: str, item: Any) -> None:
        raise NotImplementedError

    def list_at(self, entry: E, path: str) -> list[Any]:
        raise NotImplementedError

    def mutable(self, entry: E, key: str, kind: type[dict[str, Any] | list[Any]] = dict) -> Any:
        raise NotImplementedError

    def bump(self, entry: E, path: str, by: int = 1) -> None:
        raise NotImplementedError

    def set_many(self, entry: E, items: Sequence[tuple[str, Any]]) -> None:
        """`set` of each (path, value) in order: a pass's user.context. Given the same tuple
        every pass, the sparse model lays all of it into a fresh entry at once."""
        raise NotImplementedError

    # -- hot path -----------------------------------------------------------------------------
    def put(self, entry: E, key: str, value: Any) -> None:
        """Replace the top-level field `key` ("section.key", no alias) with `value` as is."""
        raise NotImplementedError

    def transition(self, entry: E, frm: str, to: str, at: float, trigger: str) -> None:
        """Record a phase change: trace, phase, last_transition_at, process-group completion."""
        raise NotImplementedError

    def begin_action(self, entry: E, action: str, started_at: float) -> None:
        raise NotImplementedError

    def end_action(
        self,
        entry: E,
        action: str,
        owner: str,
        started_at: float,
        result: str,
        duration_ms: float,
        counter: str,
    ) -> None:
        """Counters (`counter` and workload_units), latency last, last action, action_log."""
        raise NotImplementedError

    def reach_milestone(self, entry: E, name: str) -> None:
        """`name` moves from telemetry.milestones.pending to achieved."""
        raise NotImplementedError

    # -- change tracking, snapshots, storage ----------------------------------------------------
    def take_dirty(self, entry: E) -> frozenset[str]:
        """Top-level fields changed since the last call (and resets the set)."""
        raise NotImplementedError

    def snapshot(self, entry: E) -> Snapshot:
        raise NotImplementedError

    def restore(
        self, entry: E, snapshot: Snapshot, keep: Iterable[str] = (), *, variables: bool = False
    ) -> None:
        """Back to `snapshot`'s fields, except the top-level fields in `keep`; with `variables`,
        the saved variables too (internal `__` ones, the last result per component, stay as
        they are). The transition trace, an audit log that records the rollback itself, stays."""
        raise NotImplementedError

    def compact(
        self, entries: Iterable[E] | None = None, budget: float | None = None, settle: float = 0.0
    ) -> int:
        """Fold closed entries (or exactly `entries`) into packed form; how many were packed.
        With a `budget` (seconds), stop once it is spent and keep the rest for the next call.
        With `settle` (seconds), only entries closed at least that long before this call (as
        far as calls tell: an entry closed between two calls counts as closed at the later)."""
        raise NotImplementedError


@final
class Snapshot(Mapping[str, Any]):
    """One entry frozen at one moment. Reads as `export()` did then (each read builds fresh
    containers, so nothing handed out can change it); `Ledger.restore` brings it back.

    `fields` (the flat form) and `trace` may be given as functions: the sparse model keeps a
    copy of its own compact state in `payload` and builds the rest only if someone reads it,
    since most checkpoints are never rolled back to nor read."""

    __slots__ = ("_defaults", "_fields", "_trace", "ids", "payload", "variables")

    def __init__(
        self,
        defaults: Mapping[str, Mapping[str, Any]],
        ids: tuple[str, str],
        fields: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
        trace: tuple[Transition, ...] | Callable[[], tuple[Transition, ...]],
        variables: Mapping[str, Any],
        payload: object = None,
    ) -> None:
        # Owned copies made by the model; never handed out, only read.
        self._defaults = defaults
        self.ids = ids
        self._fields = fields
        self._trace = trace
        self.variables = variables
        self.payload = payload

    @property
    def fields(self) -> Mapping[str, Any]:
        fields = self._fields
        if callable(fields):
            fields = self._fields = fields()
        return fields

    @property
    def trace(self) -> tuple[Transition, ...]:
        trace = self._trace
        if callable(trace):
            trace = self._trace = trace()
        return trace

    def export(self) -> dict[str, Any]:
        return export_state(self._defaults, self.ids, self.fields, self.trace, self.variables)

    def __getitem__(self, key: str) -> Any:
        return self.export()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.export())

    def __len__(self) -> int:
        return len(self.export())


class FieldBits:
    """Top-level field paths ↔ bit positions of dirty masks; one table per book, growing as new
    fields are written (an int mask per entry is cheaper than a set)."""

    __slots__ = ("_bits", "_names")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._bits: dict[str, int] = {}
        self._names: list[str] = []
        for name in names:
            self.bit(name)

    def bit(self, key: str) -> int:
        found = self._bits.get(key)
        if found is None:
            found = self._bits[key] = 1 << len(self._names)
            self._names.append(key)
        return found

    def mask(self, keys: Iterable[str]) -> int:
        out = 0
        for key in keys:
            out |= self.bit(key)
        return out

    def names(self, mask: int) -> frozenset[str]:
        return frozenset(name for i, name in enumerate(self._names) if mask >> i & 1)
