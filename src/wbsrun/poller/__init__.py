"""The poller: progress checks fed by the progress bus, ordered by `progress.poller.priorities`;
and the change feed behind the progress pollable (`ProgressFeed`)."""

from wbsrun.poller._changes import Change, ChangeFilter, PollableStatistics
from wbsrun.poller._feed import AGING_S, BACKLOG_CAP, PollSubscription, ProgressFeed
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
from wbsrun.poller._wiring import attach_progress_bus, progress_feed

__all__ = [
    "AGING_S",
    "BACKLOG_CAP",
    "CHECK_KINDS",
    "MIN_WEIGHT",
    "RISK_LADDER",
    "Book",
    "Change",
    "ChangeFilter",
    "CheckClass",
    "PollSubscription",
    "PollableStatistics",
    "Poller",
    "PollerGauges",
    "PollerStatistics",
    "Priority",
    "ProgressFeed",
    "StrideQueue",
    "attach_progress_bus",
    "deviation",
    "error_rate",
    "health_score",
    "progress_feed",
]
