"""What the progress pollable's feed hands out and reports: a `Change`, the `ChangeFilter` of a
subscription, the feed's `PollableStatistics` (docs/wasi.md "The progress pollable")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from wbsrun.core.stats import Histogram

__all__ = ["Change", "ChangeFilter", "PollableStatistics", "by_sequence"]


class Change(NamedTuple):
    """One changed field of one task. `priority`: the weight of the task's poller class;
    `at`: the feed clock when it was taken in (its age counts from there)."""

    sequence: int
    task: str
    field: str
    progress: float
    phase: str
    priority: float
    cls: int
    at: float


@dataclass(frozen=True, slots=True)
class ChangeFilter:
    """`tasks` / `fields` empty: all; `min_priority`: the least class weight reported."""

    tasks: frozenset[str] = frozenset()
    fields: frozenset[str] = frozenset()
    min_priority: float = 0.0

    def accepts(self, ch: Change) -> bool:
        if self.tasks and ch.task not in self.tasks:
            return False
        if self.fields and ch.field not in self.fields:
            return False
        return ch.priority >= self.min_priority


def by_sequence(ch: Change) -> int:
    return ch.sequence


@dataclass(frozen=True, slots=True)
class PollableStatistics:
    subscriptions: int
    changes: int
    acked: int
    dropped: int
    queue_depth: int
    queue_max: int
    polls: dict[str, int]
    polls_per_s: float
    latency: dict[str, Histogram]
    max_wait_s: float
    backlog_cap: int
    rebuild: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "subscriptions": self.subscriptions,
            "changes": self.changes,
            "acked": self.acked,
            "dropped": self.dropped,
            "queue_depth": self.queue_depth,
            "queue_max": self.queue_max,
            "polls": dict(self.polls),
            "polls_per_s": self.polls_per_s,
            "latency_ms": {
                call: {
                    "p50": round(h.quantile(0.50), 4),
                    "p99": round(h.quantile(0.99), 4),
                    "max": round(h.max, 4),
                    "count": h.count,
                }
                for call, h in self.latency.items()
            },
            "max_wait_s": self.max_wait_s,
            "backlog_cap": self.backlog_cap,
            "rebuild_future_each_iteration": self.rebuild,
        }
