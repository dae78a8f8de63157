"""The sparse workbook: defaults once per scenario, per entry only what differs, hot fields in
slots, cold sections as copy-on-write overlays, closed entries packed into compressed bytes.

It reads exactly like the plain model (`core/workbook.py`); the property tests in
`tests/core/test_workbook_models.py` hold the two to that. An entry is either live (`Hot`) or
packed (`bytes`); every write unpacks it first, reads of a packed entry decode without
unpacking it, so exporting a finished run does not bring it back to life.
"""

from __future__ import annotations

import sys
import time
from array import array
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, final

from wbsrun.core._packing import Unpackable
from wbsrun.core._sparse_parts import (
    COUNTER_SLOTS,
    Hot,
    copy_hot,
    hot_state,
    trace_of,
)
from wbsrun.core._sparse_store import SparseEntry, SparseStore
from wbsrun.core._state import (
    GROUP_DONE,
    MISSING,
    descend,
    export_state,
    owned_copy,
    owned_list,
    restored_vars,
    section_state,
    thaw,
    trace_dicts,
)
from wbsrun.core.ledger import HOT_FIELDS, FieldBits, Snapshot
from wbsrun.dsl.plan import WorkbookSpec

__all__ = ["SparseEntry", "SparseWorkbook"]

_PHASE = "timeline.phase"
_TRACE = "timeline.transition_trace"
_COUNTERS = "telemetry.counters"
_LATENCY = "telemetry.latency_ms"
_LOG = "execution.action_log"
_MILESTONES = "telemetry.milestones"
_GROUPS = "timeline.process_groups"
_BEGIN = ("execution.current_action", "execution.current_action_started_at")
_END = (_COUNTERS, _LATENCY, _LOG, "execution.current_action", "execution.last_action")
_END_ALL = (*_END, "execution.last_action_at")
_NOTHING: Mapping[str, Any] = MappingProxyType({})


@final
class SparseWorkbook(SparseStore):
    """The `Ledger` over sparse entries."""

    def __init__(self, spec: WorkbookSpec) -> None:
        super().__init__(spec)
        self.entries: list[SparseEntry] = []
        # Entries that reached closing.* since the last `compact()`.
        self._closing: list[SparseEntry] = []
        bits = self._bits = FieldBits(HOT_FIELDS)
        self._transition_mask = bits.mask((_PHASE, "timeline.last_transition_at", _TRACE))
        self._group_mask = bits.bit(_GROUPS)
        self._begin_mask = bits.mask(_BEGIN)
        self._end_mask = bits.mask(_END_ALL)
        self._milestone_mask = bits.bit(_MILESTONES)
        self._counters_bit = bits.bit(_COUNTERS)
        counters = self._default(_COUNTERS)
        base = counters if isinstance(counters, Mapping) else {}
        # Where a counter starts when the entry has not counted yet: the plain model's
        # `(counters.get(key) or 0) + 1` over its copy of the default.
        self._counter_base = {key: base.get(key) or 0 for key in COUNTER_SLOTS}

    def open(self, user_id: str, task_id: str, scenario: str) -> SparseEntry:
        entry = SparseEntry(self, user_id, task_id, scenario)
        self.entries.append(entry)
        return entry

    def _closed(self, entry: SparseEntry, phase: Any) -> None:
        if isinstance(phase, str) and phase.startswith("closing"):
            self._closing.append(entry)

    # -- reads ----------------------------------------------------------------------------------
    def get(self, entry: SparseEntry, path: str, default: Any = None) -> Any:
        path = self.spec.expose.get(path, path)
        section, key, sub, top = self._parse(path)
        if top == _TRACE and not sub:
            return trace_dicts(self.trace_of(entry))
        value = self._raw(self._peek(entry), top)
        if value is MISSING:
            value = self._defaults.get(section, {}).get(key, default)
        for part in sub:
            if not isinstance(value, Mapping):
                return default
            value = value.get(part, default)
        return value

    def section(self, entry: SparseEntry, name: str) -> dict[str, Any]:
        fields, trace = self._state(entry)
        return section_state(self._defaults, fields, name, trace)

    def export(self, entry: SparseEntry) -> dict[str, Any]:
        fields, trace = self._state(entry)
        ids = (entry.user_id, entry.task_id)
        return export_state(self._defaults, ids, fields, trace, entry.vars)

    # -- cold writes: the plain model's rules over `_for_write` / `_store` -------------------------
    def set(self, entry: SparseEntry, path: str, value: Any) -> None:
        section, key, sub, top = self._parse(path)
        h = self._live(entry)
        entry.dirty |= self._bits.bit(top)
        if not sub:
            self._store(h, top, value)
            if top == _PHASE:
                self._closed(entry, value)
            return
        current = self._for_write(h, top)
        if not isinstance(current, dict):
            if current is MISSING:
                current = self._defaults.get(section, {}).get(key)
            # Shared values (defaults, user.context) are never written in place.
            current = thaw(current) if isinstance(current, Mapping) else {}
            self._store(h, top, current)
        descend(current, sub[:-1])[sub[-1]] = value

    def append(self, entry: SparseEntry, path: str, item: Any) -> None:
        self.list_at(entry, path).append(item)

    def list_at(self, entry: SparseEntry, path: str) -> list[Any]:
        _, _, sub, top = self._parse(path)
        if not sub:
            found: list[Any] = self.mutable(entry, top, list)
            return found
        container: dict[str, Any] = self.mutable(entry, top, dict)
        return owned_list(descend(container, sub[:-1]), sub[-1])

    def mutable(
        self, entry: SparseEntry, key: str, kind: type[dict[str, Any] | list[Any]] = dict
    ) -> Any:
        h = self._live(entry)
        entry.dirty |= self._bits.bit(key)
        return self._own(h, sys.intern(key), kind)

    def bump(self, entry: SparseEntry, path: str, by: int = 1) -> None:
        self.set(entry, path, (self.get(entry, path, 0) or 0) + by)

    # -- hot path ---------------------------------------------------------------------------------
    def put(self, entry: SparseEntry, key: str, value: Any) -> None:
        h = entry._h
        if type(h) is not Hot:
            h = self._live(entry)
        # Interned: one shared key string in every entry's overlay, not one per entry.
        self._store(h, sys.intern(key), value)
        entry.dirty |= self._bits.bit(key)
        if key == _PHASE:
            self._closed(entry, value)

    def transition(self, entry: SparseEntry, frm: str, to: str, at: float, trigger: str) -> None:
        h = entry._h
        if type(h) is not Hot:
            h = self._live(entry)
        flat, times = h.trace, h.times
        if flat is None or times is None:
            flat = h.trace = []
            times = h.times = array("d")
        flat += (frm, to, trigger)
        if type(at) is not float and type(times) is array:
            # An int or None from a fake clock: keep it as given, like the plain model.
            times = h.times = list(times)
        times.append(at)
        h.phase = to
        h.moved_at = at
        mask = self._transition_mask
        group = frm.partition(".")[0]
        if group != to.partition(".")[0]:
            over = h.over
            if over is not None and type(over.get(_GROUPS, _NOTHING)) is not MappingProxyType:
                self._own(h, _GROUPS, dict)[group] = GROUP_DONE
            elif h.groups is None:
                h.groups = [group]
            else:
                h.groups.append(group)
            mask |= self._group_mask
        entry.dirty |= mask
        if to.startswith("closing"):
            self._closing.append(entry)

    def begin_action(self, entry: SparseEntry, action: str, started_at: float) -> None:
        h = entry._h
        if type(h) is not Hot:
            h = self._live(entry)
        h.cur = action
        h.cur_at = started_at
        entry.dirty |= self._begin_mask

    def end_action(
        self,
        entry: SparseEntry,
        action: str,
        owner: str,
        started_at: float,
        result: str,
        duration_ms: float,
        counter: str,
    ) -> None:
        h = entry._h
        if type(h) is not Hot:
            h = self._live(entry)
        # Marked first, as the plain model's `mutable` does: a counter that is not a number
        # raises below, after the plain model has already marked it.
        entry.dirty |= self._counters_bit
        over = h.over or _NOTHING
        slot = COUNTER_SLOTS.get(counter)
        if _COUNTERS in over or slot is None:
            counters = self._own(h, _COUNTERS, dict)
            counters[counter] = (counters.get(counter) or 0) + 1
            counters["workload_units"] = (counters.get("workload_units") or 0) + 1
        else:
            value = getattr(h, slot)
            base = self._counter_base
            setattr(h, slot, ((base[counter] if value is MISSING else value) or 0) + 1)
            units = h.units
            h.units = ((base["workload_units"] if units is MISSING else units) or 0) + 1
        if _LATENCY in over:
            self._own(h, _LATENCY, dict)["last"] = duration_ms
        else:
            h.lat = duration_ms
        h.cur = "none"
        h.last = action
        h.last_at = started_at
        record = {"action": action, "result": result, "duration": duration_ms, "owner": owner}
        if _LOG in over:
            self._own(h, _LOG, list).append(record)
        elif h.log is None:
            h.log = [(action, result, duration_ms, owner)]
        else:
            h.log.append((action, result, duration_ms, owner))
        entry.dirty |= self._end_mask

    def reach_milestone(self, entry: SparseEntry, name: str) -> None:
        h = entry._h
        if type(h) is not Hot:
            h = self._live(entry)
        if h.over is not None and _MILESTONES in h.over:
            self.append(entry, "telemetry.milestones.achieved", name)
            pending = self.list_at(entry, "telemetry.milestones.pending")
            if name in pending:
                pending.remove(name)
            return
        if h.milestones is None:
            h.milestones = [name]
        else:
            h.milestones.append(name)
        entry.dirty |= self._milestone_mask

    # -- change tracking, snapshots, storage ------------------------------------------------------
    def take_dirty(self, entry: SparseEntry) -> frozenset[str]:
        mask, entry.dirty = entry.dirty, 0
        return self._bits.names(mask) if mask else frozenset()

    def snapshot(self, entry: SparseEntry) -> Snapshot:
        h = self._peek(entry)
        kept = copy_hot(h)
        ids = (entry.user_id, entry.task_id)
        trace = tuple(trace_of(h))
        return Snapshot(
            self._defaults, ids, lambda: self._flat(kept), trace, owned_copy(entry.vars), kept
        )

    def restore(
        self,
        entry: SparseEntry,
        snapshot: Snapshot,
        keep: Iterable[str] = (),
        *,
        variables: bool = False,
    ) -> None:
        old = self._live(entry)
        before = self._flat(old)
        kept = snapshot.payload
        if isinstance(kept, Hot):
            new = copy_hot(kept)  # a copy again: the snapshot may be restored more than once
        else:  # a snapshot taken by the dense model: its flat form
            new = Hot()
            for top, value in owned_copy(snapshot.fields).items():
                self._store(new, top, value)
        new.trace, new.times = old.trace, old.times
        for top in keep:
            value = self._raw(old, top)
            if value is MISSING:
                self._drop(new, top)
            else:
                self._store(new, top, value)
        entry._h = new
        entry.dirty |= self._bits.mask((*before, *snapshot.fields))
        if variables:
            entry.vars = restored_vars(snapshot, entry.vars)

    def compact(
        self, entries: Iterable[SparseEntry] | None = None, budget: float | None = None
    ) -> int:
        closed_only = entries is None
        if entries is None:
            entries, self._closing = self._closing, []
        packed = 0
        # ~24 µs an entry: a budget keeps one call from stalling the loop; the rest waits.
        until = time.perf_counter() + budget if budget is not None else None
        todo = list(entries)
        for i, entry in enumerate(todo):
            if until is not None and not i % 32 and time.perf_counter() > until:
                if closed_only:
                    self._closing[:0] = todo[i:]
                break
            h = entry._h
            if type(h) is not Hot:
                continue
            phase = h.phase
            if closed_only and not (isinstance(phase, str) and phase.startswith("closing")):
                continue
            try:
                entry._h = self._packer.pack(entry.scenario, hot_state(h))
            except Unpackable:
                continue
            packed += 1
        return packed
