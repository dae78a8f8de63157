"""Runner core: workbook, scheduler, executor, ports. Imports no I/O library."""

from wbsrun.core.executor import Executor
from wbsrun.core.log import RunLog
from wbsrun.core.ports import (
    ActionOutcome,
    Component,
    Lease,
    LeaseProvider,
    LogSink,
    Runtime,
    UserHandle,
)
from wbsrun.core.runner import Runner, RunOptions
from wbsrun.core.stats import Histogram, RunStats
from wbsrun.core.workbook import Entry, Workbook

__all__ = [
    "ActionOutcome",
    "Component",
    "Entry",
    "Executor",
    "Histogram",
    "Lease",
    "LeaseProvider",
    "LogSink",
    "RunLog",
    "RunOptions",
    "RunStats",
    "Runner",
    "Runtime",
    "UserHandle",
    "Workbook",
]
