"""Stand-ins the progress tests share: a task as a progress sink reads it, a manual clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Clock", "FakeTask", "Subject"]


@dataclass(eq=False)
class Subject:
    """A running task as a ProgressSink reads it."""

    task_id: str
    user_id: str = "u1"
    scenario_name: str = "s"
    phase: str = "executing.running_action"
    progress: float = 0.0
    error_class: str | None = None
    milestones: set[str] = field(default_factory=set)


@dataclass(eq=False)
class FakeTask:
    """A running task with its workbook entry, as the poller reads it."""

    task_id: str
    entry: Any
    phase: str = "executing.running_action"
    progress: float = 0.0
    error_class: str | None = None
    user_id: str = "u1"
    scenario_name: str = "s"
    milestones: set[str] = field(default_factory=set)


class Clock:
    """A clock the test moves by setting `now`."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
