"""Progress: where a run stands against its plan, and the result built from it."""

from wbsrun.progress.aggregate import AggregatingSink, Aggregator, ProgressUpdate, TaskUpdate
from wbsrun.progress.baseline import ScenarioBaseline, baselines
from wbsrun.progress.health import RunHealth, run_health
from wbsrun.progress.report import ProgressSnapshot, build_result, progress_snapshot
from wbsrun.progress.views import (
    MilestoneProgress,
    ProgramProgress,
    ScenarioProgress,
    UserProgress,
)

__all__ = [
    "AggregatingSink",
    "Aggregator",
    "MilestoneProgress",
    "ProgramProgress",
    "ProgressSnapshot",
    "ProgressUpdate",
    "RunHealth",
    "ScenarioBaseline",
    "ScenarioProgress",
    "TaskUpdate",
    "UserProgress",
    "baselines",
    "build_result",
    "progress_snapshot",
    "run_health",
]
