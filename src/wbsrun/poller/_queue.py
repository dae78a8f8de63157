"""The check queue: one FIFO per `progress.poller.priorities` class, served by stride scheduling
so each waiting class gets at least its weight's share of the checks (no class starves)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, final

__all__ = ["MIN_WEIGHT", "CheckClass", "StrideQueue"]

# A weight of 0 (or less) still gets this share: the minimum service rate of a class.
MIN_WEIGHT: Final = 0.01


@dataclass(frozen=True, slots=True)
class CheckClass:
    """One `priorities` entry: `match` maps a workbook path to the values that select it
    (a value also selects its sub-states: `monitoring` matches `monitoring.timeout`)."""

    name: str
    match: Mapping[str, tuple[str, ...]]
    weight: float

    def matches(self, read: Callable[[str], Any]) -> bool:
        for path, values in self.match.items():
            value = read(path)
            if value is None:
                return False
            text = str(value)
            if not any(text == v or text.startswith(v + ".") for v in values):
                return False
        return True


@final
class StrideQueue:
    """Items queued per class; `pop()` serves the waiting class with the smallest pass value
    and advances it by 1/weight. A class that waits alone is served at once; classes that
    compete share service in proportion to their weights."""

    __slots__ = ("_fifos", "_pass", "_size", "_stride", "_vtime", "served")

    def __init__(self, weights: Sequence[float]) -> None:
        self._fifos: list[deque[Any]] = [deque() for _ in weights]
        self._stride = [1.0 / max(w, MIN_WEIGHT) for w in weights]
        self._pass = [0.0] * len(weights)
        self._vtime = 0.0
        self._size = 0
        self.served = [0] * len(weights)

    def __len__(self) -> int:
        return self._size

    def push(self, cls: int, item: Any) -> None:
        fifo = self._fifos[cls]
        if not fifo:
            # A class that was idle joins at the current virtual time: no burst of catch-up.
            self._pass[cls] = max(self._pass[cls], self._vtime)
        fifo.append(item)
        self._size += 1

    def pop(self) -> tuple[int, Any]:
        best = -1
        best_pass = 0.0
        for i, fifo in enumerate(self._fifos):
            if fifo and (best < 0 or self._pass[i] < best_pass):
                best, best_pass = i, self._pass[i]
        if best < 0:
            raise IndexError("pop from an empty StrideQueue")
        self._vtime = best_pass
        self._pass[best] = best_pass + self._stride[best]
        self._size -= 1
        self.served[best] += 1
        return best, self._fifos[best].popleft()

    def depths(self) -> list[int]:
        return [len(f) for f in self._fifos]
