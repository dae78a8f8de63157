"""Runner core: workbook, scheduler, executor, ports. Imports no I/O library."""

from wbsrun.core.executor import Executor
from wbsrun.core.ledger import (
    Entry,
    Ledger,
    LedgerEntry,
    Snapshot,
    SparseEntry,
    SparseWorkbook,
    Workbook,
    open_workbook,
)
from wbsrun.core.log import RunLog
from wbsrun.core.ports import (
    ActionOutcome,
    Component,
    ImmediateComponent,
    Lease,
    LeaseProvider,
    LogSink,
    Runtime,
    UserHandle,
)
from wbsrun.core.runner import Runner, RunOptions
from wbsrun.core.stats import Histogram, RunStats

__all__ = [
    "ActionOutcome",
    "Component",
    "Entry",
    "Executor",
    "Histogram",
    "ImmediateComponent",
    "Lease",
    "LeaseProvider",
    "Ledger",
    "LedgerEntry",
    "LogSink",
    "RunLog",
    "RunOptions",
    "RunStats",
    "Runner",
    "Runtime",
    "Snapshot",
    "SparseEntry",
    "SparseWorkbook",
    "UserHandle",
    "Workbook",
    "open_workbook",
]
