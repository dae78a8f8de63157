"""Scenario pieces for the resource tests: a pool with health checks, a recording sink."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from scenario_kit import Doc, act, document, edge, end, graph, http
from wbsrun.core.events import ProgressSubject

__all__ = ["Recorded", "RecordingSink", "health_doc", "lease_of", "slow_flow"]


@dataclass(frozen=True)
class Recorded:
    task_id: str
    field: str
    progress: float
    phase: str


@dataclass
class RecordingSink:
    """A progress sink that keeps every publish (a real sink: the run calls it as the bus)."""

    seen: list[Recorded] = field(default_factory=list)

    def publish(self, subject: ProgressSubject, field: str, priority: float) -> None:
        self.seen.append(Recorded(subject.task_id, field, subject.progress, subject.phase))

    def of(self, task_id: str) -> list[Recorded]:
        return [r for r in self.seen if r.task_id == task_id]


def slow_flow() -> Doc:
    """get → checkpoint → post → post → done; the server's latency makes each step last."""
    return graph(
        act("get", "get", edge("cp")),
        {"id": "cp", "type": "checkpoint", "controls": {"flow": {"transitions": [edge("push")]}}},
        act("push", "post", edge("push2")),
        act("push2", "post", edge("done")),
        end(),
        timeout="5s",
        on_error=[{"goto": "error_out"}],
    )


def health_doc(
    users: int,
    *,
    interval: str = "100ms",
    timeout: str = "400ms",
    exclusive: bool = True,
    on_failure: list[Doc] | None = None,
    leasing: dict[str, Any] | None = None,
    flow: Doc | None = None,
    **scenario: Any,
) -> Doc:
    actions = {"get": http("get"), "post": http("post")}
    doc = document(actions, flow or slow_flow(), users=users, **scenario)
    pool = doc["resources"]["pool"]
    if exclusive:
        pool["capacity"]["guard"] = "exclusive"
    pool["provider"] = {
        "component": "resource-manager",
        "calls": {"acquire": "allocate_pair", "release": "release_pair"},
        "leasing": leasing or {"strategy": "round-robin"},
    }
    pool["health-check"] = {
        "interval": interval,
        "timeout": timeout,
        "probe": {"action": "http.health", "with": {"target": "{{resource.ip}}:{{resource.port}}"}},
        "on-failure": on_failure
        if on_failure is not None
        else [
            {"action": "progress.rollback", "to": "last-stable-point"},
            {"action": "resource.release", "handles": ["{{resource.ip}}:{{resource.port}}"]},
        ],
    }
    doc["components"].append(
        {
            "name": "resource-manager",
            "version": "1.0.0",
            "kind": "native",
            "capabilities": ["allocate_pair", "release_pair", "mount_file", "track_lease"],
        }
    )
    doc["components"][0]["capabilities"] = ["get", "post", "delete", "health"]
    doc["components"][1]["capabilities"] = ["info", "warn", "error"]
    workbook = copy.deepcopy(doc["workbook"])
    workbook["sections"]["execution"]["defaults"]["resource_lease"] = None
    doc["workbook"] = workbook
    return doc


def lease_of(book: Any, entry: Any) -> str:
    value = book.get(entry, "execution.resource_lease")
    return str(value)
