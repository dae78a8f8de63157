"""Frozen progress snapshots: per milestone, per user, per scenario, for the program."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wbsrun.progress.forecast import Forecast

__all__ = ["MilestoneProgress", "ProgramProgress", "ScenarioProgress", "UserProgress"]


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True, slots=True)
class MilestoneProgress:
    """One milestone: passes that reached it, and their share of the planned passes."""

    name: str
    weight: float
    reached: int
    share: float

    def to_json(self) -> dict[str, Any]:
        return {"reached": self.reached, "weight": self.weight, "share": round(self.share, 4)}


@dataclass(frozen=True, slots=True)
class UserProgress:
    """One user: the mean progress of its planned passes (of its passes so far, time-boxed)."""

    user_id: str
    scenario: str
    progress: float
    tasks_started: int
    tasks_closed: int


@dataclass(frozen=True, slots=True)
class ScenarioProgress:
    """One scenario's dimensions. `expected_tasks` is the denominator used: the planned passes,
    or (time-boxed) the passes the elapsed share of the profile projects; None before any."""

    name: str
    time: float | None
    work: float
    milestones_weighted: float | None
    eta_s: float | None
    planned_tasks: int | None
    expected_tasks: float | None
    tasks_started: int
    tasks_closed: int
    users_planned: int
    users_seen: int
    mean_pass_s: float | None
    milestones: tuple[MilestoneProgress, ...]
    # The prediction (progress/forecast.py): ETA band, progress at the plan's end, the miss.
    forecast: Forecast | None = None

    @property
    def tasks_open(self) -> int:
        return self.tasks_started - self.tasks_closed

    def to_json(self) -> dict[str, Any]:
        return {
            "work": round(self.work, 4),
            "time": _r(self.time),
            "milestones_weighted": _r(self.milestones_weighted),
            "eta_s": _r(self.eta_s, 1),
            "planned_tasks": self.planned_tasks,
            "expected_tasks": _r(self.expected_tasks, 1),
            "tasks": {
                "started": self.tasks_started,
                "closed": self.tasks_closed,
                "open": self.tasks_open,
            },
            "users": {"planned": self.users_planned, "seen": self.users_seen},
            "mean_pass_s": _r(self.mean_pass_s, 4),
            "milestones": {m.name: m.to_json() for m in self.milestones},
        }


@dataclass(frozen=True, slots=True)
class ProgramProgress:
    """The program: scenarios rolled up by a weighted average (weight: expected passes)."""

    elapsed: float
    time: float | None
    work: float
    milestones_weighted: float | None
    eta_s: float | None
    planned_tasks: int | None
    expected_tasks: float | None
    tasks_started: int
    tasks_closed: int
    scenarios: tuple[ScenarioProgress, ...]
    milestones: tuple[MilestoneProgress, ...]
    forecast: Forecast | None = None

    @property
    def tasks_open(self) -> int:
        return self.tasks_started - self.tasks_closed

    def scenario(self, name: str) -> ScenarioProgress:
        for s in self.scenarios:
            if s.name == name:
                return s
        raise KeyError(name)

    def milestone(self, name: str) -> MilestoneProgress | None:
        return next((m for m in self.milestones if m.name == name), None)

    def milestone_json(self, name: str) -> dict[str, Any]:
        """What the aggregator adds to `progress.milestones.NAME` of the result."""
        m = self.milestone(name)
        return {} if m is None else {"share": round(m.share, 4)}

    def forecast_json(self) -> dict[str, Any] | None:
        """The result's `forecast`: the program's, and each scenario's under `scenarios`."""
        if self.forecast is None:
            return None
        return {
            **self.forecast.to_json(),
            "scenarios": {
                s.name: s.forecast.to_json() for s in self.scenarios if s.forecast is not None
            },
        }

    def to_json(self) -> dict[str, Any]:
        """The keys the aggregator adds to the result's `progress` (result-schema.json)."""
        return {
            "milestones_weighted": _r(self.milestones_weighted),
            "eta_s": _r(self.eta_s, 1),
            "expected_tasks": _r(self.expected_tasks, 1),
            "tasks": {
                "started": self.tasks_started,
                "closed": self.tasks_closed,
                "open": self.tasks_open,
            },
            "scenarios": {s.name: s.to_json() for s in self.scenarios},
        }
