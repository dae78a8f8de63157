"""Coarse timeouts for the hot path: one loop timer per time slot instead of one per action.

`asyncio.timeout()` builds a `Timeout`, arms a `TimerHandle` on the loop's heap and cancels it
on exit: ~7 µs per action on the reference scenario (py-spy, 1,000 users), a fifth of the
runner's budget. Here an action's deadline joins the list of its time slot (`resolution`
seconds wide); the loop holds one timer per non-empty slot, and arming is an object and a
list append. A deadline fires at the end of its slot: never early, at most `resolution` late.

The cancellation protocol is asyncio.timeout's: the owning task is cancelled, and the code
that armed the deadline converts the `CancelledError` into its timeout only when it was the
deadline's (`Deadline.claim`), so outer cancellations (Ctrl-C, a task group, an outer
deadline) still pass through.

Deadline objects are recycled: `claim`/`disarm` hand one back to the wheel, and the next `arm`
takes it, with the slot it is listed under now. A slot that fires skips the objects listed in
it for an earlier arming (their `slot` moved on). A pass arms four and nearly all of them end
long before their slot fires: a new object each time was freed only when its slot fired, 0.6
to 5 s later, by then out of cache (callgrind, bench/cachesim.py: ~30 misses a request in
`_fire`), and the allocator cycled through all of them. Now a run makes only as many as are
held at once (two per user on the reference scenario: the pass's and one action's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["Deadline", "DeadlineWheel"]


def _find_current_task() -> Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None]:
    """`asyncio.current_task` without its Python frame where possible: C from 3.12; on 3.11
    the lookup in the C-maintained dict it wraps (four arms a pass)."""
    try:
        import _asyncio
    except ImportError:  # pragma: no cover - CPython always has it
        return asyncio.current_task
    found = getattr(_asyncio, "current_task", None)
    if callable(found):
        return found  # type: ignore[no-any-return]
    tasks: object = getattr(_asyncio, "_current_tasks", None)
    wrapped: object = getattr(asyncio.tasks, "_current_tasks", None)
    if isinstance(tasks, dict) and tasks is wrapped:
        table: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] = tasks
        return table.get
    return asyncio.current_task  # pragma: no cover


_current_task = _find_current_task()


class Deadline:
    """One armed limit, held by its owner from `arm` until `claim` or `disarm` (exactly one
    of them; the object goes back to the wheel then and must not be used again)."""

    __slots__ = ("armed", "cancelling", "expired", "free", "held", "slot", "task")

    def __init__(self, task: asyncio.Task[object], slot: int, free: list[Deadline]) -> None:
        self.free = free  # the wheel's unused deadlines, where this one goes back
        self.arm(task, slot)

    def arm(self, task: asyncio.Task[object], slot: int) -> None:
        self.task = task
        self.cancelling = task.cancelling()
        self.slot = slot
        self.armed = True
        self.expired = False
        self.held = True

    def claim(self) -> bool:
        """After the guarded await ended with CancelledError: was it this deadline's?

        Mirrors `asyncio.Timeout.__aexit__`: an expired deadline takes its cancellation back,
        and converts it only when no other cancellation is pending."""
        self.armed = False
        taken = self.expired and self.task.uncancel() <= self.cancelling
        self._release()
        return taken

    def disarm(self) -> None:
        """The guarded await ended otherwise (result or another exception)."""
        self.armed = False
        if self.expired:
            # Fired, but the await finished anyway: take the cancellation back.
            self.task.uncancel()
        self._release()

    def _release(self) -> None:
        if self.held:  # twice would hand one object to two owners
            self.held = False
            self.free.append(self)


class DeadlineWheel:
    """Deadlines bucketed by time slot; one instance per run, bound to the running loop."""

    __slots__ = ("_buckets", "_free", "_loop", "_per_second", "resolution")

    def __init__(self, resolution: float = 0.005) -> None:
        self.resolution = resolution
        self._per_second = 1.0 / resolution
        self._buckets: dict[int, list[Deadline]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._free: list[Deadline] = []

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve `loop` from now on (the run's); slots of an earlier loop are dropped."""
        self._loop = loop
        self._buckets.clear()

    def arm(self, limit: float) -> Deadline:
        """A deadline `limit` seconds from now for the current task."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        task = _current_task(loop)
        if task is None:
            raise RuntimeError("a deadline needs a running task")
        # The slot after the one the deadline falls in: never early.
        slot = int((loop.time() + limit) * self._per_second) + 1
        free = self._free
        if free:
            deadline = free.pop()
            deadline.arm(task, slot)
        else:
            deadline = Deadline(task, slot, free)
        bucket = self._buckets.get(slot)
        if bucket is None:
            self._buckets[slot] = [deadline]
            loop.call_at(slot * self.resolution, self._fire, slot)
        else:
            bucket.append(deadline)
        return deadline

    def _fire(self, slot: int) -> None:
        for deadline in self._buckets.pop(slot, ()):
            # Listed here for an earlier arming when its slot has moved on since.
            if deadline.armed and deadline.slot == slot:
                deadline.armed = False
                deadline.expired = True
                deadline.task.cancel()

    def pending(self) -> int:
        """Listings still in slots (armed or not, an object once per arming)."""
        return sum(len(b) for b in self._buckets.values())
