"""Opens the workbook a plan asks for: `progress.model` picks the storage, the interface is one.

The executor, the expression scope and the reports see a `Ledger`; only this function knows
which class stands behind it.
"""

from __future__ import annotations

from typing import Any

from wbsrun.core.ledger._base import Ledger, LedgerModel
from wbsrun.core.ledger.dense import Workbook
from wbsrun.core.ledger.sparse import SparseWorkbook
from wbsrun.dsl.plan import WorkbookSpec

__all__ = ["open_workbook"]


def open_workbook(spec: WorkbookSpec, model: LedgerModel = "sparse") -> Ledger[Any]:
    """`sparse` (the default) or `dense` (the plain model: one dict of fields per entry)."""
    if model == "dense":
        return Workbook(spec)
    if model == "sparse":
        return SparseWorkbook(spec)
    raise ValueError(f"unknown workbook model {model!r} (expected 'dense' or 'sparse')")
