"""The poller: progress checks fed by the progress bus, ordered by `progress.poller.priorities`."""

from wbsrun.poller._health import RISK_LADDER, deviation, error_rate, health_score
from wbsrun.poller._poller import (
    CHECK_KINDS,
    Book,
    Poller,
    PollerGauges,
    PollerStatistics,
    Priority,
)
from wbsrun.poller._queue import MIN_WEIGHT, CheckClass, StrideQueue
from wbsrun.poller._wiring import attach_progress_bus

__all__ = [
    "CHECK_KINDS",
    "MIN_WEIGHT",
    "RISK_LADDER",
    "Book",
    "CheckClass",
    "Poller",
    "PollerGauges",
    "PollerStatistics",
    "Priority",
    "StrideQueue",
    "attach_progress_bus",
    "deviation",
    "error_rate",
    "health_score",
]
