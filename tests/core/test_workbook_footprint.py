"""`Ledger.footprint()`, what the metrics exporter reads of the workbook: entries held, packed
bytes (each block once), open entries by phase; the same counts in both models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wbsrun.core.ledger import Ledger
from wbsrun.core.ledger.dense import Workbook
from wbsrun.core.ledger.sparse import SparseWorkbook
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import Plan
from wbsrun.protocols.registry import provides

EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "examples" / "http_tri_phase"


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan(EXAMPLE, provides())


def _fill(book: Ledger[Any]) -> list[Any]:
    entries = [book.open(f"u{i}", f"u{i}-t0", "sc") for i in range(5)]
    book.transition(entries[0], "initiating.idle", "executing.running_action", 1.0, "go")
    book.transition(entries[1], "initiating.idle", "executing.running_action", 1.0, "go")
    book.transition(entries[2], "initiating.idle", "executing.waiting_resource", 1.0, "go")
    for done in entries[3:]:
        book.transition(done, "initiating.idle", "closing.success", 2.0, "end")
    return entries


@pytest.mark.parametrize("model", [Workbook, SparseWorkbook])
def test_footprint_counts_held_entries_and_open_ones_by_phase(
    plan: Plan, model: type[Ledger[Any]]
) -> None:
    book = model(plan.workbook)  # type: ignore[call-arg]
    _fill(book)
    held, _, phases = book.footprint()
    assert held == 5
    assert phases == {"executing.running_action": 2, "executing.waiting_resource": 1}


def test_sparse_footprint_counts_each_packed_block_once(plan: Plan) -> None:
    book = SparseWorkbook(plan.workbook)
    entries = _fill(book)
    assert book.footprint()[1] == 0  # nothing packed yet
    assert book.compact() == 2
    held, packed, phases = book.footprint()
    block = entries[3]._h
    assert entries[4]._h is block  # both closed entries went into one block
    assert packed == len(block.data) > 0
    assert held == 5
    assert phases == {"executing.running_action": 2, "executing.waiting_resource": 1}


def test_dense_footprint_has_no_packed_bytes(plan: Plan) -> None:
    book = Workbook(plan.workbook)
    _fill(book)
    book.compact()
    assert book.footprint()[1] == 0
