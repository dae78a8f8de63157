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

    def pop_many(self, limit: int | None = None) -> list[Any]:
        """The next `limit` items (all when None), in exactly the order successive `pop()`s
        would give them, with the same pass values afterwards; without the classes."""
        k = self._size if limit is None else min(limit, self._size)
        out: list[Any] = []
        if k <= 0:
            return out
        fifos, passes, strides, served = self._fifos, self._pass, self._stride, self.served
        # Waiting classes in index order: the first of equal pass values wins, as in pop().
        waiting = [i for i, fifo in enumerate(fifos) if fifo]
        vtime = self._vtime
        taken = 0
        while taken < k:
            if len(waiting) == 1:
                # One class left: its items in FIFO order, its pass advancing item by item.
                best = waiting[0]
                fifo, p, stride = fifos[best], passes[best], strides[best]
                m = min(k - taken, len(fifo))
                for _ in range(m):
                    vtime = p
                    p += stride
                    out.append(fifo.popleft())
                passes[best] = p
                served[best] += m
                taken += m
                break
            best = waiting[0]
            best_pass = passes[best]
            for i in waiting:
                if passes[i] < best_pass:
                    best, best_pass = i, passes[i]
            vtime = best_pass
            passes[best] = best_pass + strides[best]
            served[best] += 1
            fifo = fifos[best]
            out.append(fifo.popleft())
            taken += 1
            if not fifo:
                waiting.remove(best)
        self._vtime = vtime
        self._size -= taken
        return out

    def depths(self) -> list[int]:
        return [len(f) for f in self._fifos]
