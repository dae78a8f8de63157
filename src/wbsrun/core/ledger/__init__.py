"""The ledger: the workbook models behind one face.

`Ledger` is the interface both storage models implement: `dense` (one dict of fields per
user × task entry over shared section defaults) and `sparse` (defaults once per scenario, per
entry only what differs, closed entries packed). `open_workbook` picks one by the plan's
`progress.model`; the rest of wbsrun sees a `Ledger` only. The private modules hold the
sparse model's parts (`_sparse_parts`, `_sparse_store`), the packed form (`_packing`) and
the state helpers both models share (`_state`).
"""

from wbsrun.core.ledger._base import (
    HOT_FIELDS,
    FieldBits,
    Ledger,
    LedgerEntry,
    LedgerModel,
    Snapshot,
    Transition,
)
from wbsrun.core.ledger._book import open_workbook, read_ledger
from wbsrun.core.ledger.dense import Entry, Workbook, WorkbookView, plain
from wbsrun.core.ledger.sparse import SparseEntry, SparseWorkbook

__all__ = [
    "HOT_FIELDS",
    "Entry",
    "FieldBits",
    "Ledger",
    "LedgerEntry",
    "LedgerModel",
    "Snapshot",
    "SparseEntry",
    "SparseWorkbook",
    "Transition",
    "Workbook",
    "WorkbookView",
    "open_workbook",
    "plain",
    "read_ledger",
]
