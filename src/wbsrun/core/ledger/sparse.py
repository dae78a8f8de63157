"""The sparse workbook: defaults once per scenario, per entry only what differs, hot fields in
slots, cold sections as copy-on-write overlays, closed entries packed into compressed blocks.

It reads exactly like the plain model (`core/ledger/dense.py`); the property tests in
`tests/core/test_workbook_models.py` hold the two to that. An entry is either live (`Hot`) or
packed (a `Block` and its index there); every write unpacks it first, reads of a packed entry
decode without unpacking it, so exporting a finished run does not bring it back to life.

Everything a path or a phase name implies (its slot, its dirty bit, its default, its process
group) is worked out on first use and kept per name: the writers then do a lookup, not a parse.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, final

from wbsrun.core.ledger._base import HOT_FIELDS, FieldBits, Snapshot
from wbsrun.core.ledger._disk import saved_form
from wbsrun.core.ledger._packing import BLOCK_ENTRIES, Block, BlockWriter, Packer, Unpackable
from wbsrun.core.ledger._retention import SUCCESS, generic_fold
from wbsrun.core.ledger._sparse_parts import (
    COLD_BITS,
    COMPOSITES,
    COUNTER_SLOTS,
    COUNTERS_BASE,
    LEAF_SLOTS,
    SCALAR_TYPES,
    SCALARS,
    Composite,
    Hot,
    cold_bit,
    copy_hot,
    hot_state,
    trace_list,
    trace_of,
)
from wbsrun.core.ledger._sparse_store import DROPPED, KEPT, OPEN, SparseEntry, SparseStore
from wbsrun.core.ledger._state import (
    GROUP_DONE,
    MISSING,
    Transition,
    descend,
    export_state,
    owned_copy,
    owned_list,
    restored_vars,
    section_state,
    thaw,
    trace_dicts,
    written,
)
from wbsrun.dsl.plan import SamplingSpec, WorkbookSpec

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
_COLD_COUNTERS: Final = COLD_BITS[_COUNTERS]
_COLD_LATENCY: Final = COLD_BITS[_LATENCY]
_COLD_LOG: Final = COLD_BITS[_LOG]
_COLD_MILESTONES: Final = COLD_BITS[_MILESTONES]
_COLD_GROUPS: Final = COLD_BITS[_GROUPS]
# The composites `end_action` writes: any of them in the overlay takes its general path.
_COLD_END: Final = _COLD_COUNTERS | _COLD_LATENCY | _COLD_LOG
# Composites the fold reads from their slots: any of them in the overlay takes the general path.
_COLD_FOLD: Final = _COLD_COUNTERS | _COLD_LOG | _COLD_MILESTONES
# Phase names, paths and keys come from the plan (a few dozen); the cap guards odd callers.
_NAME_CACHE: Final = 4096
_NUMBERS: Final = frozenset({int, float, bool})

# What a path means for a read: (top, sub-path, slot, composite, default, is the trace, and
# for the counters their default thawed once if it is flat: a copy of that thaws it again).
_Read = tuple[str, tuple[str, ...], str | None, Composite | None, Any, bool, dict[str, Any] | None]
# ... for a write: (top, parents of the last part, last part or "", dirty bit, slot,
# composite, default, default copies as a flat dict).
_Write = tuple[str, tuple[str, ...], str, int, str | None, Composite | None, Any, bool]
# What `set_many` of one tuple does to an entry with no overlay: (the tuple, the overlay or
# None if it writes more than overlay fields, cold bits, dirty mask, composites it replaces).
_Batch = tuple[Sequence[tuple[str, Any]], dict[str, Any] | None, int, int, tuple[Composite, ...]]


@final
class _TracePrefix:
    """A snapshot's trace: the trace is only ever appended to, so its first n items stay."""

    __slots__ = ("_flat", "_n")

    def __init__(self, flat: list[Any], n: int) -> None:
        self._flat = flat
        self._n = n

    def __call__(self) -> tuple[Transition, ...]:
        return tuple(trace_list(self._flat, self._n))


@final
class _FlatOf:
    """A snapshot's flat fields, built from its kept copy of the hot state when read."""

    __slots__ = ("_book", "_kept")

    def __init__(self, book: SparseStore, kept: Hot) -> None:
        self._book = book
        self._kept = kept

    def __call__(self) -> dict[str, Any]:
        return self._book._flat(self._kept)


@final
class SparseWorkbook(SparseStore):
    """The `Ledger` over sparse entries."""

    def __init__(
        self, spec: WorkbookSpec, sampling: SamplingSpec | None = None, out: Path | None = None
    ) -> None:
        super().__init__(spec)
        self._retain(sampling, out)
        # The on-disk ledger's packer: no references to this process's frozen objects.
        self._disk_packer = Packer(refs=False)
        # Closed entries set aside by `compact(settle=...)`, oldest first: (when they were set
        # aside, the entries), waiting to be `settle` seconds old.
        self._settling: deque[tuple[float, list[SparseEntry]]] = deque()
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
        self._ok_base = self._counter_base["success"]
        self._units_base = self._counter_base["workload_units"]
        # With number bases nothing in `end_action`'s fast path can raise, so it may mark
        # the fields dirty at the end; otherwise the general path keeps the plain model's order.
        self._counts_fast = all(type(v) in _NUMBERS for v in self._counter_base.values())
        # Phase name → (process group, is a closing phase).
        self._phases: dict[str, tuple[str, bool]] = {}
        self._reads: dict[str, _Read] = {}
        self._writes: dict[str, _Write] = {}
        # Hot-path key → (slot, dirty bit, interned key, is the phase).
        self._keys: dict[str, tuple[str | None, int, str, bool]] = {}
        # id of a `set_many` tuple → what it does to a fresh entry (the tuple is held).
        self._batches: dict[int, _Batch] = {}
        # The fold reads milestones from their slot when the default achieved none.
        milestones = self._default(_MILESTONES)
        achieved = milestones.get("achieved") if isinstance(milestones, Mapping) else None
        self._fold_fast = self._counts_fast and not achieved
        # The counters as `get` shows an entry that has not counted: the default's values.
        self._fold_base: tuple[Any, Any, Any, Any] = (
            base.get("success"),
            base.get("failure"),
            base.get("timeout"),
            base.get("workload_units"),
        )

    def open(self, user_id: str, task_id: str, scenario: str) -> SparseEntry:
        entry = SparseEntry(self, user_id, task_id, scenario)
        self._all[entry] = None
        return entry

    def footprint(self) -> tuple[int, int, dict[str, int]]:
        """Entries held (live and kept), the compressed bytes of the blocks they are packed
        into (each block once), and the open entries by phase: O(entries held), for a metrics
        scrape (bounded by the sampling caps once the run's entries close)."""
        seen: set[int] = set()
        packed = 0
        phases: dict[str, int] = {}
        for entry in self._all:
            h = entry._h
            if type(h) is Hot:
                phase = h.phase
                if isinstance(phase, str) and not phase.startswith("closing"):
                    phases[phase] = phases.get(phase, 0) + 1
            elif type(h) is Block and id(h) not in seen:
                seen.add(id(h))
                packed += len(h.data)
        return len(self._all), packed, phases

    def _retire(self, entry: SparseEntry, h: Hot, phase: str) -> bool:
        """Folds a closed entry into the totals, streams it to disk (`full`); whether it
        stays in memory (packed)."""
        retention = self.retention
        totals = retention.scenario(entry.scenario)
        if h.cold & _COLD_FOLD or not self._fold_fast:
            generic_fold(self, entry, totals, phase)
        else:
            base = self._fold_base
            ok, failed, timed_out, units = h.ok, h.failed, h.timed_out, h.units
            totals.fold(
                phase,
                (
                    base[0] if ok is MISSING else ok,
                    base[1] if failed is MISSING else failed,
                    base[2] if timed_out is MISSING else timed_out,
                    base[3] if units is MISSING else units,
                ),
                h.log,
                h.milestones,
                h.trace,
                self.get(entry, "execution.evidence.last_event") if phase != SUCCESS else None,
            )
        disk = self.disk
        if disk is not None:
            state: Any
            try:
                kind, state = "h", hot_state(h, self._disk_packer)
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

    def _closed(self, entry: SparseEntry, phase: Any) -> None:
        if isinstance(phase, str) and phase.startswith("closing"):
            self._closing.append(entry)

    # -- what names mean, worked out once ---------------------------------------------------------
    def _read_path(self, path: str) -> _Read:
        # Resolved twice, as the plain model's `get` does (an alias may name an alias).
        section, key, sub, top = self._parse(self.spec.expose.get(path, path))
        default = self._defaults.get(section, {}).get(key, MISSING)
        template = None
        if top == _COUNTERS:
            base = COUNTERS_BASE(default)
            if SCALAR_TYPES.issuperset(map(type, base.values())):
                template = base
        found = (
            top,
            sub,
            SCALARS.get(top),
            COMPOSITES.get(top),
            default,
            top == _TRACE,
            template,
        )
        if len(self._reads) < _NAME_CACHE:
            self._reads[path] = found
        return found

    def _write_path(self, path: str) -> _Write:
        section, key, sub, top = self._parse(path)
        default = self._defaults.get(section, {}).get(key)
        # A default of scalars only is thawed by a C-level copy (a MappingProxy's copies
        # the dict it wraps).
        flat = (
            isinstance(default, dict | MappingProxyType)
            and SCALAR_TYPES.issuperset(map(type, default.values()))
            and type(default.copy()) is dict
        )
        slot = SCALARS.get(top)
        leaf = LEAF_SLOTS.get(top)
        if leaf is not None and sub == (leaf[0],):
            slot = leaf[1]  # a composite's part in a slot: `set` writes it there (see there)
        found = (
            top,
            sub[:-1],
            sub[-1] if sub else "",
            self._bits.bit(top),
            slot,
            COMPOSITES.get(top),
            default,
            flat,
        )
        if len(self._writes) < _NAME_CACHE:
            self._writes[path] = found
        return found

    def _key(self, key: str) -> tuple[str | None, int, str, bool]:
        # Interned: one shared key string in every entry's overlay, not one per entry.
        top = sys.intern(key)
        found = (SCALARS.get(top), self._bits.bit(top), top, top == _PHASE)
        if len(self._keys) < _NAME_CACHE:
            self._keys[key] = found
        return found

    def _phase(self, name: str) -> tuple[str, bool]:
        found = (name.partition(".")[0], name.startswith("closing"))
        if len(self._phases) < _NAME_CACHE:
            self._phases[name] = found
        return found

    # -- reads ----------------------------------------------------------------------------------
    def get(self, entry: SparseEntry, path: str, default: Any = None) -> Any:
        found = self._reads.get(path)
        if found is None:
            found = self._read_path(path)
        top, sub, slot, comp, fallback, trace, template = found
        h = entry._h
        if type(h) is not Hot:
            h = self._peek(entry)
        if slot is not None:
            value = getattr(h, slot)
        elif trace and not sub:
            return trace_dicts(trace_of(h))
        else:
            over = h.over
            value = over.get(top, MISSING) if over is not None else MISSING
            if template is not None and value is MISSING:
                # The counters over their default, which the poller reads on every health
                # check: `_build_counters` inline.
                ok, failed, timed_out, units = h.ok, h.failed, h.timed_out, h.units
                if not ok is failed is timed_out is units is MISSING:
                    value = template.copy()
                    if ok is not MISSING:
                        value["success"] = ok
                    if failed is not MISSING:
                        value["failure"] = failed
                    if timed_out is not MISSING:
                        value["timeout"] = timed_out
                    if units is not MISSING:
                        value["workload_units"] = units
            elif comp is not None and comp.has(h):
                # Hot parts over the overlay's frozen value or the default (`_raw`).
                value = comp.build(h, fallback if value is MISSING else value)
        if value is MISSING:
            value = default if fallback is MISSING else fallback
        for part in sub:
            if not isinstance(value, Mapping):
                return default
            value = value.get(part, default)
        return value

    def error_counts(self, entry: SparseEntry) -> tuple[Any, Any, Any] | None:
        """`telemetry.counters`' workload_units, failure and timeout, as `get` would read
        them, without building the dict: the poller's health input, about twice a pass. None
        unless the counters are in their hot form (then read them through `get`)."""
        found = self._reads.get(_COUNTERS)
        if found is None:
            found = self._read_path(_COUNTERS)
        template = found[6]
        if template is None or found[0] != _COUNTERS:
            return None
        h = entry._h
        if type(h) is not Hot:
            h = self._peek(entry)
        over = h.over
        if over is not None and _COUNTERS in over:
            return None
        units, failed, timed_out = h.units, h.failed, h.timed_out
        if units is MISSING and failed is MISSING and timed_out is MISSING and h.ok is MISSING:
            return None  # nothing counted yet: `get` reads the default as it stands
        return (
            template.get("workload_units") if units is MISSING else units,
            template.get("failure") if failed is MISSING else failed,
            template.get("timeout") if timed_out is MISSING else timed_out,
        )

    def section(self, entry: SparseEntry, name: str) -> dict[str, Any]:
        fields, trace = self._state(entry)
        return section_state(self._defaults, fields, name, trace)

    def export(self, entry: SparseEntry) -> dict[str, Any]:
        fields, trace = self._state(entry)
        ids = (entry.user_id, entry.task_id)
        return export_state(self._defaults, ids, fields, trace, entry.vars)

    # -- cold writes: the plain model's rules over `_for_write` / `_store` -------------------------
    def set(self, entry: SparseEntry, path: str, value: Any, owned: bool = False) -> None:
        if not owned:
            value = written(value)
        found = self._writes.get(path)
        if found is None:
            found = self._write_path(path)
        top, parents, leaf, bit, slot, comp, default, flat = found
        h = entry._h
        if type(h) is not Hot:
            h = self._live(entry)
        entry.dirty |= bit
        if slot is None and comp is None:
            # A plain cold field: its one home is the overlay.
            over = h.over
            if over is None or h.shared:
                over = self._overlay(h)
            if not leaf:
                over[top] = value
                return
            current = over.get(top, MISSING)
            if not isinstance(current, dict):
                if current is MISSING:
                    current = default
                # Shared values (defaults, user.context) are never written in place.
                if flat and current is default:
                    current = default.copy()
                else:
                    current = thaw(current) if isinstance(current, Mapping) else {}
                over[top] = current
        elif not leaf:
            if slot is None:
                self._store_cold(h, top, value)
                return
            setattr(h, slot, value)
            if type(value) not in SCALAR_TYPES:
                h.boxed = True
            if top == _PHASE:
                self._closed(entry, value)
            return
        else:
            if slot is not None and comp is not None and not h.cold & COLD_BITS[top]:
                # A leaf slot (`LEAF_SLOTS`; a scalar's slot has no composite) while its
                # composite is hot: no overlay touched.
                setattr(h, slot, value)
                if type(value) not in SCALAR_TYPES:
                    h.boxed = True
                return
            current = self._for_write(h, top)
            if not isinstance(current, dict):
                if current is MISSING:
                    current = default
                current = thaw(current) if isinstance(current, Mapping) else {}
                self._store(h, top, current)
        if parents:
            current = descend(current, parents)
        current[leaf] = value

    def append(self, entry: SparseEntry, path: str, item: Any) -> None:
        self.list_at(entry, path).append(written(item))

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

    def set_many(self, entry: SparseEntry, items: Sequence[tuple[str, Any]]) -> None:
        found = self._batches.get(id(items))
        if found is None or found[0] is not items:
            found = self._batch(items)
        _, template, cold, dirty, composites = found
        h = entry._h
        # An entry with no overlay and none of the composites' hot parts (a fresh one: the
        # executor sets user.context first thing) gets the whole overlay in one copy.
        if template is not None and type(h) is Hot and h.over is None:
            for comp in composites:
                if comp.has(h):
                    break
            else:
                h.over = template.copy()
                h.cold |= cold
                entry.dirty |= dirty
                return
        for path, value in items:
            self.set(entry, path, value)

    def _batch(self, items: Sequence[tuple[str, Any]]) -> _Batch:
        """What `set` of every item does to an entry with no overlay, if that is only
        overlay fields (no slot, no sub-path): the overlay, its cold bits, the dirty mask."""
        template: dict[str, Any] | None = {}
        cold = dirty = 0
        composites: list[Composite] = []
        for path, value in items:
            top, _, leaf, bit, slot, comp, _, _ = self._writes.get(path) or self._write_path(path)
            if leaf or slot is not None or template is None:
                template = None
                continue
            template[top] = value
            dirty |= bit
            if comp is not None:
                composites.append(comp)
                cold = cold & ~COLD_BITS[top] | cold_bit(top, value)
        # Only a tuple is known not to change under the same id.
        found = (items, template, cold, dirty, tuple(composites))
        if type(items) is tuple and len(self._batches) < _NAME_CACHE:
            self._batches[id(items)] = found
        return found

    # -- hot path ---------------------------------------------------------------------------------
    def put(self, entry: SparseEntry, key: str, value: Any) -> None:
        h = entry._h
        if type(h) is not Hot:
            h = self._live(entry)
        found = self._keys.get(key)
        if found is None:
            found = self._key(key)
        slot, bit, top, phase = found
        if slot is None:
            if top in COLD_BITS:
                self._store_cold(h, top, value)
            else:
                over = h.over
                if over is None or h.shared:
                    over = self._overlay(h)
                over[top] = value
        else:
            setattr(h, slot, value)
            if type(value) not in SCALAR_TYPES:
                h.boxed = True
            if phase:
                self._closed(entry, value)
        entry.dirty |= bit

    def transition(self, entry: SparseEntry, frm: str, to: str, at: float, trigger: str) -> None:
        h = entry._h
        if type(h) is not Hot:
            h = self._live(entry)
        h.trace.extend((frm, to, at, trigger))
        h.phase = to
        h.moved_at = at
        phases = self._phases
        old = phases.get(frm)
        if old is None:
            old = self._phase(frm)
        new = phases.get(to)
        if new is None:
            new = self._phase(to)
        group = old[0]
        if group != new[0]:
            if h.cold & _COLD_GROUPS:
                self._own(h, _GROUPS, dict)[group] = GROUP_DONE
            elif h.groups is None:
                h.groups = [group]
            else:
                h.groups.append(group)
            entry.dirty |= self._transition_mask | self._group_mask
        else:
            entry.dirty |= self._transition_mask
        if new[1]:
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
        if h.cold & _COLD_END or not self._counts_fast:
            self._end_cold(entry, h, action, owner, started_at, result, duration_ms, counter)
            return
        if counter == "success":
            value = h.ok
            h.ok = (self._ok_base if value is MISSING else value) + 1
        else:
            slot = COUNTER_SLOTS.get(counter)
            if slot is None:
                self._end_cold(entry, h, action, owner, started_at, result, duration_ms, counter)
                return
            value = getattr(h, slot)
            setattr(h, slot, (self._counter_base[counter] if value is MISSING else value) + 1)
        units = h.units
        h.units = (self._units_base if units is MISSING else units) + 1
        h.lat = duration_ms
        h.cur = "none"
        h.last = action
        h.last_at = started_at
        log = h.log
        if log is None:
            h.log = [action, result, duration_ms, owner]
        else:
            log.extend((action, result, duration_ms, owner))
        entry.dirty |= self._end_mask

    def _end_cold(
        self,
        entry: SparseEntry,
        h: Hot,
        action: str,
        owner: str,
        started_at: float,
        result: str,
        duration_ms: float,
        counter: str,
    ) -> None:
        """`end_action` with some composite in the overlay, an unknown counter or counters
        that may not be numbers: each part goes where it lives, in the plain model's order."""
        # Marked first, as the plain model's `mutable` does: a counter that is not a number
        # raises below, after the plain model has already marked it.
        entry.dirty |= self._counters_bit
        slot = COUNTER_SLOTS.get(counter)
        if h.cold & _COLD_COUNTERS or slot is None:
            counters = self._own(h, _COUNTERS, dict)
            counters[counter] = (counters.get(counter) or 0) + 1
            counters["workload_units"] = (counters.get("workload_units") or 0) + 1
        else:
            value = getattr(h, slot)
            base = self._counter_base
            setattr(h, slot, ((base[counter] if value is MISSING else value) or 0) + 1)
            units = h.units
            h.units = ((base["workload_units"] if units is MISSING else units) or 0) + 1
        if h.cold & _COLD_LATENCY:
            self._own(h, _LATENCY, dict)["last"] = duration_ms
        else:
            h.lat = duration_ms
        h.cur = "none"
        h.last = action
        h.last_at = started_at
        if h.cold & _COLD_LOG:
            record = {"action": action, "result": result, "duration": duration_ms, "owner": owner}
            self._own(h, _LOG, list).append(record)
        elif h.log is None:
            h.log = [action, result, duration_ms, owner]
        else:
            h.log.extend((action, result, duration_ms, owner))
        entry.dirty |= self._end_mask

    def reach_milestone(self, entry: SparseEntry, name: str) -> None:
        h = entry._h
        if type(h) is not Hot:
            h = self._live(entry)
        if h.cold & _COLD_MILESTONES:
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
        h = entry._h
        if type(h) is not Hot:
            h = self._peek(entry)
        kept = copy_hot(h)
        flat = h.trace
        # Small compiled callables, not closures: compiled (mypyc), two closures of one
        # function share an environment that refers back to them, a cycle per checkpoint that
        # only the cyclic collector frees (and, frozen, never: core/runner.py). Nor partials:
        # `functools.partial` is built through a generic type call, twice a checkpoint.
        return Snapshot(
            self._defaults,
            (entry.user_id, entry.task_id),
            _FlatOf(self, kept),
            _TracePrefix(flat, len(flat)),
            owned_copy(entry.vars),
            kept,
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
        new.trace = old.trace
        # The old state is dropped, so its values move over as they are, unless its overlay
        # is shared with a snapshot: then a kept value is the snapshot's too, and the next
        # write in place (a counter, a log record) would change what the snapshot reads.
        shared = old.shared
        for top in keep:
            value = self._raw(old, top)
            if value is MISSING:
                self._drop(new, top)
            else:
                self._store(new, top, owned_copy(value) if shared else value)
        entry._h = new
        entry.dirty |= self._bits.mask((*before, *snapshot.fields))
        if variables:
            entry.vars = restored_vars(snapshot, entry.vars)

    @property
    def backlog(self) -> int:
        """Closed entries waiting to be packed (an upper bound: an entry closed twice, or
        packed through `compact(entries)`, may be counted)."""
        return len(self._closing) + sum(len(waiting) for _, waiting in self._settling)

    def compact(
        self,
        entries: Iterable[SparseEntry] | None = None,
        budget: float | None = None,
        settle: float = 0.0,
    ) -> int:
        closed_only = entries is None
        if entries is None:
            todo, self._closing = self._closing, []
            settling = self._settling
            if settle > 0.0:
                # Entries wait `settle` seconds before they are packed: the poller's close
                # check still reads and writes them (~50-100 ms after the close), and
                # unpacking one for that decompresses its whole block.
                now = time.monotonic()
                if todo:
                    settling.append((now, todo))
                todo = []
                while settling and settling[0][0] <= now - settle:
                    todo.extend(settling.popleft()[1])
            elif settling:
                todo = [e for _, waiting in settling for e in waiting] + todo
                settling.clear()
        else:
            todo = list(entries)
        packed = 0
        # A budget keeps one call from stalling the loop; the rest waits for the next call.
        until = time.perf_counter() + budget if budget is not None else None
        packer = self._packer
        last = BLOCK_ENTRIES - 1
        # One open block per scenario: a block holds entries of one dictionary.
        writers: dict[str, BlockWriter] = {}
        try:
            for i, entry in enumerate(todo):
                if until is not None and not i % 32 and time.perf_counter() > until:
                    if closed_only:
                        # Settled already: first in line at the next call.
                        self._settling.appendleft((-math.inf, todo[i:]))
                    break
                h = entry._h
                if type(h) is not Hot:
                    continue  # packed already (an entry may reach closing more than once)
                phase = h.phase
                closing = isinstance(phase, str) and phase.startswith("closing")
                if closed_only and not closing:
                    continue
                fate = entry.fate
                if fate == OPEN and closing:
                    # Folded once, at its first compaction after the close; then kept or not.
                    entry.fate = KEPT
                    if not self._retire(entry, h, str(phase)):
                        entry.fate = DROPPED
                        continue
                elif fate == DROPPED:
                    continue  # written to after it was dropped: nobody reads it any more
                scenario = entry.scenario
                writer = writers.get(scenario)
                if writer is None:
                    writer = writers[scenario] = packer.writer(scenario)
                try:
                    at = writer.add(hot_state(h, packer))
                except Unpackable:
                    continue
                if at is None:
                    continue
                # Its block is compressed before this call returns (below, or once full).
                entry._h = writer.block
                entry._at = at
                packed += 1
                if at == last:
                    writer.close()
                    del writers[scenario]
        finally:
            for writer in writers.values():
                writer.close()
        return packed
