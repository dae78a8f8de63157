"""The progress-event port: what the runner publishes when a task's progress state changes.

The runner calls `ProgressSink.publish` synchronously on its hot path (several times per pass),
so a sink must only note the change and return; coalescing, batching and delivery to
subscribers are the sink's business (`wbsrun.core.bus`). The subject is the live task: a
sink reads its current values when it materialises an event, which is what makes coalescing
per entry free. The runner holds its sink as a `wbsrun.core.sinks.Sink` (wrapping any other).
"""

from __future__ import annotations

from collections.abc import Set
from typing import Final, Protocol

__all__ = [
    "PRIORITY_HIGH",
    "PRIORITY_NORMAL",
    "ProgressSink",
    "ProgressSubject",
    "Service",
]

# Phase changes into monitoring / closing, errors, rollbacks and lease loss: flushed at once
# under the default `priority-threshold` (0.7). Everything else is batched.
PRIORITY_HIGH: Final = 1.0
PRIORITY_NORMAL: Final = 0.5


class ProgressSubject(Protocol):
    """The live state of one user × task, as a sink reads it."""

    @property
    def task_id(self) -> str: ...

    @property
    def user_id(self) -> str: ...

    @property
    def scenario_name(self) -> str: ...

    @property
    def phase(self) -> str: ...

    @property
    def progress(self) -> float: ...

    @property
    def error_class(self) -> str | None: ...

    @property
    def milestones(self) -> Set[str]: ...


class ProgressSink(Protocol):
    """Receives `publish(subject, field, priority)` for every change of a watched field:
    `timeline.phase`, `progress`, `milestone`, `error`, `rollback`, `lease`, `closed`.
    The subject is only valid during the call and until its `closed` event is delivered."""

    def publish(self, subject: ProgressSubject, field: str, priority: float) -> None: ...


class Service(Protocol):
    """A background job that lives as long as the run (bus flusher, health checks, renewals).
    `serve` runs in the run's task group and is cancelled when the last user is done."""

    async def serve(self) -> None: ...
