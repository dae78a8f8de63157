"""The sparse workbook's storage layer: entries that are live (`Hot`) or packed, and the
primitives that read and write one top-level field wherever it lives (slot, hot parts,
overlay). `core/ledger/sparse.py` builds the `Ledger` on top of these.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final, final

from wbsrun.core.ledger._base import Ledger
from wbsrun.core.ledger._packing import Block, Packer
from wbsrun.core.ledger._sparse_parts import (
    COLD_BITS,
    COMPOSITES,
    SCALAR_TYPES,
    SCALARS,
    Hot,
    cold_bit,
    thaw_hot,
    trace_of,
)
from wbsrun.core.ledger._state import MISSING, Transition, owned_copy, thaw
from wbsrun.dsl.plan import WorkbookSpec

__all__ = ["DROPPED", "KEPT", "OPEN", "SparseEntry", "SparseStore"]

OPEN: Final = 0
KEPT: Final = 1
DROPPED: Final = 2

# Paths come from the plan and the executor (a few dozen); the cap only guards odd callers.
_PATH_CACHE = 4096


@final
class SparseEntry:
    """One user × task. `_h` is the live state or, once compacted, the block it is packed
    in (`_at`: its index there)."""

    __slots__ = ("_at", "_book", "_h", "dirty", "fate", "scenario", "task_id", "user_id", "vars")

    def __init__(self, book: SparseStore, user_id: str, task_id: str, scenario: str) -> None:
        self.user_id = user_id
        self.task_id = task_id
        self.scenario = scenario
        # Saved variables stay the caller's objects (lazily decoded HTTP results, say): they
        # are neither copied nor packed.
        self.vars: dict[str, Any] = {}
        self.dirty = 0
        self._book = book
        self._h: Hot | Block = Hot()
        self._at = 0
        # OPEN until folded at its close, then KEPT (in memory) or DROPPED (`_retention.py`).
        self.fate = OPEN

    @property
    def trace(self) -> Sequence[Transition]:
        return self._book.trace_of(self)

    @property
    def packed(self) -> bool:
        return type(self._h) is not Hot


class SparseStore(Ledger["SparseEntry"]):
    """Field storage over sparse entries; `SparseWorkbook` is the public face."""

    def __init__(self, spec: WorkbookSpec) -> None:
        self.spec = spec
        self._defaults = spec.defaults
        self._packer = Packer()
        self._paths: dict[str, tuple[str, str, tuple[str, ...], str]] = {}
        # Entries that reached closing.* and wait to be packed (`SparseWorkbook.compact`).
        self._closing: list[SparseEntry] = []

    # -- storage primitives -------------------------------------------------------------------
    def _parse(self, path: str) -> tuple[str, str, tuple[str, ...], str]:
        """(section, key, sub-path, "section.key") of a path or alias, parsed once per path: the
        top-level name is then one shared string, not a new one in every entry's overlay."""
        found = self._paths.get(path)
        if found is None:
            full = self.spec.expose.get(path, path)
            section, _, rest = full.partition(".")
            key, _, tail = rest.partition(".")
            top = sys.intern(f"{section}.{key}")
            found = (section, key, tuple(tail.split(".")) if tail else (), top)
            if len(self._paths) < _PATH_CACHE:
                self._paths[path] = found
        return found

    def _default(self, top: str) -> Any:
        section, _, key = top.partition(".")
        return self._defaults.get(section, {}).get(key, MISSING)

    def _live(self, entry: SparseEntry) -> Hot:
        h = entry._h
        if type(h) is Hot:
            return h
        assert isinstance(h, Block)
        live = entry._h = thaw_hot(self._packer.unpack(h, entry._at))
        phase = live.phase
        if isinstance(phase, str) and phase.startswith("closing"):
            # Written to after it was packed (the poller's late score, say): back in line to
            # be packed again, or it would stay live for the rest of the run.
            self._closing.append(entry)
        return live

    def _raw(self, h: Hot, top: str) -> Any:
        """The entry's own value of a top-level field, or MISSING."""
        slot = SCALARS.get(top)
        if slot is not None:
            return getattr(h, slot)
        comp = COMPOSITES.get(top)
        if comp is not None and comp.has(h):
            return comp.build(h, self._base(h, top))
        over = h.over
        if over is not None and top in over:
            return over[top]
        return MISSING

    def _base(self, h: Hot, top: str) -> Any:
        # Hot parts apply over the default, or over a frozen value the entry was given
        # (user.context's process_groups): shared, never copied until read.
        over = h.over
        if over is not None and top in over:
            return over[top]
        return self._default(top)

    def _store(self, h: Hot, top: str, value: Any) -> None:
        slot = SCALARS.get(top)
        if slot is not None:
            setattr(h, slot, value)
            if type(value) not in SCALAR_TYPES:
                h.boxed = True
            return
        self._store_cold(h, top, value)

    @staticmethod
    def _unshare(h: Hot) -> dict[str, Any] | None:
        """The overlay, the entry's own (copied from a snapshot's first), for changing."""
        over = h.over
        if h.shared:
            over = h.over = owned_copy(over) if over is not None else None
            h.shared = False
        return over

    def _overlay(self, h: Hot) -> dict[str, Any]:
        """The overlay for writing: the entry's own, created on first use."""
        over = self._unshare(h)
        if over is None:
            over = h.over = {}
        return over

    def _store_cold(self, h: Hot, top: str, value: Any) -> None:
        """`_store` for a field without a slot of its own."""
        comp = COMPOSITES.get(top)
        if comp is not None:
            comp.clear(h)
            h.cold = h.cold & ~COLD_BITS[top] | cold_bit(top, value)
        over = h.over
        if over is None or h.shared:
            over = self._overlay(h)
        over[top] = value

    def _drop(self, h: Hot, top: str) -> None:
        slot = SCALARS.get(top)
        if slot is not None:
            setattr(h, slot, MISSING)
            return
        comp = COMPOSITES.get(top)
        if comp is not None:
            comp.clear(h)
            h.cold &= ~COLD_BITS[top]
        over = self._unshare(h)
        if over is not None:
            over.pop(top, None)

    def _for_write(self, h: Hot, top: str) -> Any:
        """Like `_raw`, but a composite read back from its hot parts is adopted into the
        overlay: the caller is about to change it in place."""
        self._unshare(h)
        comp = COMPOSITES.get(top)
        if comp is not None and comp.has(h):
            value = comp.build(h, self._base(h, top))
            self._store(h, top, value)
            return value
        return self._raw(h, top)

    def _flat(self, h: Hot) -> dict[str, Any]:
        out = dict(h.over) if h.over else {}
        for top, slot in SCALARS.items():
            value = getattr(h, slot)
            if value is not MISSING:
                out[top] = value
        for top, comp in COMPOSITES.items():
            if comp.has(h):
                out[top] = comp.build(h, self._base(h, top))
        return out

    def _peek(self, entry: SparseEntry) -> Hot:
        """The entry's state for reading: a packed entry is read through a throwaway copy of
        its live state and stays packed."""
        h = entry._h
        if type(h) is Hot:
            return h
        assert isinstance(h, Block)
        return thaw_hot(self._packer.unpack(h, entry._at))

    def _state(self, entry: SparseEntry) -> tuple[dict[str, Any], list[Transition]]:
        h = self._peek(entry)
        return self._flat(h), trace_of(h)

    def trace_of(self, entry: SparseEntry) -> list[Transition]:
        return trace_of(self._peek(entry))

    def _own(self, h: Hot, key: str, kind: type[dict[str, Any] | list[Any]]) -> Any:
        current = self._for_write(h, key)
        if type(current) is kind:
            return current
        if current is MISSING:
            current = self._default(key)
            current = None if current is MISSING else current
        if kind is dict and isinstance(current, Mapping):
            current = thaw(current)
        elif kind is list and isinstance(current, list | tuple):
            current = list(current)
        else:
            current = kind()
        self._store(h, key, current)
        return current
