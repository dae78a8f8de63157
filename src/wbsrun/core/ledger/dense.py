"""The workbook: one ledger entry per user × task over shared section defaults (plain model)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, final

from wbsrun.core.ledger._base import FieldBits, Ledger, LedgerEntry, Snapshot
from wbsrun.core.ledger._disk import saved_form
from wbsrun.core.ledger._packing import Packer, Unpackable
from wbsrun.core.ledger._retention import SUCCESS, generic_fold
from wbsrun.core.ledger._state import (
    GROUP_DONE,
    descend,
    owned_copy,
    owned_list,
    plain,
    read_out,
    restored_vars,
    written,
)
from wbsrun.core.ledger._state import thaw as _thaw
from wbsrun.dsl.plan import SamplingSpec, WorkbookSpec

__all__ = ["Entry", "SectionView", "Workbook", "WorkbookView", "plain"]

_MISSING: Final = object()
IDS = ("user_id", "task_id")
_TRANSITION_FIELDS = ("timeline.phase", "timeline.last_transition_at", "timeline.transition_trace")
_END_FIELDS = (
    "telemetry.counters",
    "telemetry.latency_ms",
    "execution.current_action",
    "execution.last_action",
    "execution.last_action_at",
    "execution.action_log",
)


@final
class Entry:
    """One user × task. `fields` holds only what differs from the defaults, keyed 'section.key'."""

    __slots__ = ("dirty", "fate", "fields", "scenario", "task_id", "trace", "user_id", "vars")

    def __init__(self, user_id: str, task_id: str, scenario: str) -> None:
        self.user_id = user_id
        self.task_id = task_id
        self.scenario = scenario
        self.fields: dict[str, Any] = {}
        # Transitions as tuples (from, to, at, trigger): cheaper than dicts on the hot path.
        self.trace: list[tuple[str, str, float, str]] = []
        self.vars: dict[str, Any] = {}
        # Bit mask of the top-level fields changed since the last `Workbook.take_dirty`.
        self.dirty = 0
        # 0 until folded at its close, then 1 (kept) or 2 (dropped): `_retention.py`.
        self.fate = 0


@final
class Workbook(Ledger[Entry]):
    """Reads and writes entries through section paths or `expose` aliases."""

    def __init__(
        self, spec: WorkbookSpec, sampling: SamplingSpec | None = None, out: Path | None = None
    ) -> None:
        self.spec = spec
        self._retain(sampling, out)
        # Entries that reached closing.* and wait to be folded (`compact`).
        self._closing: list[Entry] = []
        self._disk_packer = Packer(refs=False)
        self._defaults = spec.defaults
        self._bits = FieldBits()
        self._transition_mask = self._bits.mask(_TRANSITION_FIELDS)
        self._begin_mask = self._bits.mask(
            ("execution.current_action", "execution.current_action_started_at")
        )
        self._end_mask = self._bits.mask(_END_FIELDS)

    def open(self, user_id: str, task_id: str, scenario: str) -> Entry:
        entry = Entry(user_id, task_id, scenario)
        self._all[entry] = None
        return entry

    @staticmethod
    def split(path: str) -> tuple[str, str, tuple[str, ...]]:
        section, _, rest = path.partition(".")
        key, _, sub = rest.partition(".")
        return section, key, tuple(sub.split(".")) if sub else ()

    def get(self, entry: Entry, path: str, default: Any = None) -> Any:
        path = self.spec.expose.get(path, path)
        section, key, sub = self.split(path)
        if section == "timeline" and key == "transition_trace" and not sub:
            return [
                {"from": f, "to": t, "at": at, "trigger": trig} for f, t, at, trig in entry.trace
            ]
        value = entry.fields.get(f"{section}.{key}", _MISSING)
        if value is _MISSING:
            value = self._defaults.get(section, {}).get(key, default)
        for part in sub:
            if not isinstance(value, Mapping):
                return default
            value = value.get(part, default)
        return value

    def set(self, entry: Entry, path: str, value: Any, owned: bool = False) -> None:
        if not owned:
            value = written(value)
        path = self.spec.expose.get(path, path)
        section, key, sub = self.split(path)
        top = f"{section}.{key}"
        entry.dirty |= self._bits.bit(top)
        if not sub:
            entry.fields[top] = value
            return
        current = entry.fields.get(top, _MISSING)
        if not isinstance(current, dict):
            if current is _MISSING:
                current = self._defaults.get(section, {}).get(key)
            # Shared values (defaults, user.context) are never written in place: copy them
            # into the entry before the first write (a fresh {} when there is no default).
            current = _thaw(current) if isinstance(current, Mapping) else {}
            entry.fields[top] = current
        descend(current, sub[:-1])[sub[-1]] = value

    def append(self, entry: Entry, path: str, item: Any) -> None:
        self.list_at(entry, path).append(written(item))

    def list_at(self, entry: Entry, path: str) -> list[Any]:
        """The entry's own list at a section path (`execution.action_log`,
        `telemetry.milestones.achieved`), created or copied from the default on first use."""
        path = self.spec.expose.get(path, path)
        section, key, sub = self.split(path)
        top = f"{section}.{key}"
        if not sub:
            found: list[Any] = self.mutable(entry, top, list)
            return found
        container: dict[str, Any] = self.mutable(entry, top, dict)
        return owned_list(descend(container, sub[:-1]), sub[-1])

    def mutable(self, entry: Entry, key: str, kind: type[dict[str, Any] | list[Any]] = dict) -> Any:
        """The entry's own dict or list for the top-level field `section.key`, copying the
        shared default on first use. For the hot path: no path parsing after the first call."""
        # Handing out the container is the write: the caller changes it right away.
        entry.dirty |= self._bits.bit(key)
        current = entry.fields.get(key, _MISSING)
        if type(current) is kind:
            return current
        if current is _MISSING:
            section, _, name = key.partition(".")
            current = self._defaults.get(section, {}).get(name)
        if kind is dict and isinstance(current, Mapping):
            current = _thaw(current)
        elif kind is list and isinstance(current, list | tuple):
            current = list(current)
        else:
            current = kind()
        entry.fields[key] = current
        return current

    def bump(self, entry: Entry, path: str, by: int = 1) -> None:
        self.set(entry, path, (self.get(entry, path, 0) or 0) + by)

    def set_many(self, entry: Entry, items: Sequence[tuple[str, Any]]) -> None:
        for path, value in items:
            self.set(entry, path, value)

    def section(self, entry: Entry, name: str) -> dict[str, Any]:
        """The visible content of one section (defaults merged with the entry's fields)."""
        out = {k: plain(v) for k, v in self._defaults.get(name, {}).items()}
        prefix = name + "."
        for key, value in entry.fields.items():
            if key.startswith(prefix):
                out[key[len(prefix) :]] = plain(value)
        if name == "timeline":
            out["transition_trace"] = self.get(entry, "timeline.transition_trace")
        return out

    def export(self, entry: Entry) -> dict[str, Any]:
        out: dict[str, Any] = {"user_id": entry.user_id, "task_id": entry.task_id}
        # Sections without defaults in the scenario still hold what the run wrote to them.
        written = (key.partition(".")[0] for key in entry.fields)
        for name in dict.fromkeys((*self._defaults, *written)):
            out[name] = self.section(entry, name)
        if entry.vars:
            out["vars"] = {k: plain(v) for k, v in entry.vars.items() if not k.startswith("__")}
        return out

    # -- the Ledger hot path: what the executor wrote into `entry.fields` directly ------------
    def put(self, entry: Entry, key: str, value: Any) -> None:
        entry.fields[key] = value
        entry.dirty |= self._bits.bit(key)
        if key == "timeline.phase" and isinstance(value, str) and value.startswith("closing"):
            self._closing.append(entry)

    def transition(self, entry: Entry, frm: str, to: str, at: float, trigger: str) -> None:
        entry.trace.append((frm, to, at, trigger))
        fields = entry.fields
        fields["timeline.phase"] = to
        fields["timeline.last_transition_at"] = at
        entry.dirty |= self._transition_mask
        group = frm.partition(".")[0]
        if group != to.partition(".")[0]:
            self.mutable(entry, "timeline.process_groups")[group] = GROUP_DONE
        if to.startswith("closing"):
            self._closing.append(entry)

    def begin_action(self, entry: Entry, action: str, started_at: float) -> None:
        fields = entry.fields
        fields["execution.current_action"] = action
        fields["execution.current_action_started_at"] = started_at
        entry.dirty |= self._begin_mask

    def end_action(
        self,
        entry: Entry,
        action: str,
        owner: str,
        started_at: float,
        result: str,
        duration_ms: float,
        counter: str,
    ) -> None:
        counters = self.mutable(entry, "telemetry.counters")
        counters[counter] = (counters.get(counter) or 0) + 1
        counters["workload_units"] = (counters.get("workload_units") or 0) + 1
        self.mutable(entry, "telemetry.latency_ms")["last"] = duration_ms
        fields = entry.fields
        fields["execution.current_action"] = "none"
        fields["execution.last_action"] = action
        fields["execution.last_action_at"] = started_at
        self.mutable(entry, "execution.action_log", list).append(
            {"action": action, "result": result, "duration": duration_ms, "owner": owner}
        )
        entry.dirty |= self._end_mask

    def reach_milestone(self, entry: Entry, name: str) -> None:
        self.append(entry, "telemetry.milestones.achieved", name)
        pending = self.list_at(entry, "telemetry.milestones.pending")
        if name in pending:
            pending.remove(name)

    # -- change tracking, snapshots, storage (the plain model keeps everything live) -----------
    def take_dirty(self, entry: Entry) -> frozenset[str]:
        mask, entry.dirty = entry.dirty, 0
        return self._bits.names(mask) if mask else frozenset()

    def snapshot(self, entry: Entry) -> Snapshot:
        return Snapshot(
            self._defaults,
            (entry.user_id, entry.task_id),
            owned_copy(entry.fields),
            tuple(entry.trace),
            owned_copy(entry.vars),
        )

    def restore(
        self, entry: Entry, snapshot: Snapshot, keep: Iterable[str] = (), *, variables: bool = False
    ) -> None:
        fields: dict[str, Any] = owned_copy(snapshot.fields)
        for key in keep:
            if key in entry.fields:
                fields[key] = entry.fields[key]
            else:
                fields.pop(key, None)
        entry.dirty |= self._bits.mask((*entry.fields, *fields))
        entry.fields = fields
        if variables:
            entry.vars = restored_vars(snapshot, entry.vars)

    def compact(
        self,
        entries: Iterable[Entry] | None = None,
        budget: float | None = None,
        settle: float = 0.0,
    ) -> int:
        """Folds closed entries into the totals and drops those the sampling mode does not
        keep; nothing is packed (the plain model keeps what it keeps live), so 0."""
        if entries is None:
            todo, self._closing = self._closing, []
        else:
            todo = list(entries)
        for entry in todo:
            phase = entry.fields.get("timeline.phase")
            if entry.fate or not (isinstance(phase, str) and phase.startswith("closing")):
                continue
            entry.fate = 1
            if not self._retire(entry, phase):
                entry.fate = 2
        return 0

    def _retire(self, entry: Entry, phase: str) -> bool:
        retention = self.retention
        generic_fold(self, entry, retention.scenario(entry.scenario), phase)
        disk = self.disk
        if disk is not None:
            try:
                kind = "f"
                state: Any = [self._disk_packer.prep_fields(entry.fields), list(entry.trace)]
            except Unpackable:
                kind, state = "x", self.export(entry)
            saved = saved_form(entry.vars)
            disk.add([kind, entry.user_id, entry.task_id, entry.scenario, phase, state, saved])
        keep = retention.admit(entry, entry.scenario, phase == SUCCESS)
        if retention.evicted:
            self._forget_evicted()
        if not keep:
            del self._all[entry]
        return keep


@final
class SectionView(Mapping[str, Any]):
    """`workbook.<section>` in expressions."""

    __slots__ = ("_book", "_entry", "_name")

    def __init__(self, book: Ledger[Any], entry: LedgerEntry, name: str) -> None:
        self._book, self._entry, self._name = book, entry, name

    def __getitem__(self, key: str) -> Any:
        value = self._book.get(self._entry, f"{self._name}.{key}", _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return read_out(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._book.section(self._entry, self._name))

    def __len__(self) -> int:
        return len(self._book.section(self._entry, self._name))


@final
class WorkbookView(Mapping[str, Any]):
    """`workbook` in expressions: aliases, sections, ids and workbook-scoped saved variables."""

    __slots__ = ("_book", "_entry")

    def __init__(self, book: Ledger[Any], entry: LedgerEntry) -> None:
        self._book, self._entry = book, entry

    def __getitem__(self, key: str) -> Any:
        book, entry = self._book, self._entry
        if key in book.spec.expose:
            return read_out(book.get(entry, key))
        if key in book.spec.defaults:
            return SectionView(book, entry, key)
        if key == "user_id":
            return entry.user_id
        if key == "task_id":
            return entry.task_id
        value = entry.vars.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        spec = self._book.spec
        yield from spec.expose
        yield from spec.defaults
        yield from IDS
        yield from self._entry.vars

    def __len__(self) -> int:
        spec = self._book.spec
        return len(spec.expose) + len(spec.defaults) + len(IDS) + len(self._entry.vars)
