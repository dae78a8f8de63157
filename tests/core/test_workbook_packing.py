"""The sparse workbook's packed blocks, copy-on-write snapshots and lazy snapshot traces."""

from __future__ import annotations

import random
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from wbsrun.core.ledger._packing import BLOCK_ENTRIES
from wbsrun.core.ledger.dense import Workbook
from wbsrun.core.ledger.sparse import SparseEntry, SparseWorkbook
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import Plan
from wbsrun.protocols.registry import provides

EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "examples" / "http_tri_phase"
ACTIONS = (("probe-get", "probe"), ("push-post", "push"), ("purge-delete", "purge"))


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan(EXAMPLE, provides())


def one_pass(book: Any, entry: Any, plan: Plan, t: float, *, close: bool = True) -> None:
    """The executor's writes of one reference pass, with per-entry times and latencies."""
    spec = plan.workbook
    for key, value in plan.scenarios[0].context.items():
        path = spec.expose.get(key) or next(
            f"{s}.{key}" for s, d in spec.defaults.items() if key in d
        )
        book.set(entry, path, value)
    book.transition(entry, "initiating.idle", "planning.ready", t, "plan")
    book.put(entry, "execution.timeout_at", t + 5.0)
    book.transition(entry, "planning.ready", "executing.running_action", t + 0.1, "n1")
    book.put(entry, "execution.resource_lease", f"127.0.0.{int(t) % 200}:18080")
    for i, (action, milestone) in enumerate(ACTIONS):
        book.begin_action(entry, action, t + i)
        book.end_action(entry, action, "http", t + i, "ok", t / 1000 + i, "success")
        book.reach_milestone(entry, milestone)
    book.set(entry, "execution.evidence.snapshot", {"checkpoint": "c", "metrics": {"t": t}})
    if close:
        book.transition(entry, "executing.running_action", "closing.success", t + 9, "close")


def filled(plan: Plan, n: int, scenarios: tuple[str, ...] = ("sc",)) -> tuple[Workbook, Any]:
    dense, sparse = Workbook(plan.workbook), SparseWorkbook(plan.workbook)
    for i in range(n):
        scenario = scenarios[i % len(scenarios)]
        for book in (dense, sparse):
            entry = book.open(f"u{i}", f"u{i}-t0", scenario)
            one_pass(book, entry, plan, 1000.0 + i)
    return dense, sparse


def test_entries_packed_many_to_a_block_read_back_exactly_in_any_order(plan: Plan) -> None:
    n = 2 * BLOCK_ENTRIES + 5
    dense, sparse = filled(plan, n, ("a", "b", "c"))
    assert sparse.compact() == n
    assert all(e.packed for e in sparse.entries)
    blocks = {id(e._h) for e in sparse.entries}
    assert len(blocks) < n  # entries share blocks
    order = list(range(n))
    random.Random(7).shuffle(order)
    for i in order:
        d, s = dense.entries[i], sparse.entries[i]
        assert sparse.export(s) == dense.export(d)
        assert list(s.trace) == list(d.trace)
        assert sparse.get(s, "scope_trace") == dense.get(d, "scope_trace")
        assert type(sparse.get(s, "registers.procurement")) is MappingProxyType
        assert s.packed


def test_a_write_unpacks_one_entry_of_a_block_and_leaves_its_neighbours(plan: Plan) -> None:
    dense, sparse = filled(plan, 10)
    sparse.compact()
    for book, entry in ((dense, dense.entries[4]), (sparse, sparse.entries[4])):
        book.set(entry, "execution.evidence.reason", "late")
        book.end_action(entry, "audit-warn", "logger", 2.0, "ok", 0.5, "success")
    assert not sparse.entries[4].packed
    assert all(e.packed for i, e in enumerate(sparse.entries) if i != 4)
    for d, s in zip(dense.entries, sparse.entries, strict=True):
        assert sparse.export(s) == dense.export(d)
    # Packed again, into a block of its own.
    sparse.compact([sparse.entries[4]])
    assert sparse.export(sparse.entries[4]) == dense.export(dense.entries[4])


def test_an_unpackable_entry_inside_a_block_leaves_the_others_intact(plan: Plan) -> None:
    dense, sparse = filled(plan, 6)
    odd: SparseEntry = sparse.entries[2]
    marker = frozenset({"not", "msgpack"})
    sparse.set(odd, "execution.evidence.reason", marker)
    dense.set(dense.entries[2], "execution.evidence.reason", marker)
    bad = sparse.entries[3]
    # Passes the checks, fails in the encoder half-way through the entry.
    sparse.put(bad, "execution.timeout_at", 2**70)
    dense.put(dense.entries[3], "execution.timeout_at", 2**70)
    assert sparse.compact() == 4
    assert not odd.packed
    assert not bad.packed
    for d, s in zip(dense.entries, sparse.entries, strict=True):
        assert sparse.export(s) == dense.export(d)
    assert sparse.get(odd, "execution.evidence.reason") is marker


def test_an_entry_that_closes_twice_is_packed_once(plan: Plan) -> None:
    book = SparseWorkbook(plan.workbook)
    entry = book.open("u", "t", "sc")
    one_pass(book, entry, plan, 1.0)
    book.transition(entry, "closing.success", "closing.error", 20.0, "again")
    before = book.export(entry)
    assert book.compact() == 1
    assert book.export(entry) == before


def test_a_spent_budget_keeps_the_rest_and_packs_it_later(plan: Plan) -> None:
    _, sparse = filled(plan, BLOCK_ENTRIES + 3)
    before = [sparse.export(e) for e in sparse.entries]
    assert sparse.compact(budget=0.0) == 0
    assert sparse.compact(budget=60.0) == BLOCK_ENTRIES + 3
    assert [sparse.export(e) for e in sparse.entries] == before


@pytest.mark.parametrize("model", [Workbook, SparseWorkbook])
def test_a_snapshot_does_not_see_later_writes_to_the_overlay(model: Any, plan: Plan) -> None:
    book = model(plan.workbook)
    entry = book.open("u", "t", "sc")
    one_pass(book, entry, plan, 5.0, close=False)
    snap = book.snapshot(entry)
    taken = dict(snap)
    book.set(entry, "execution.evidence.snapshot.metrics.t", -1.0)
    book.set(entry, "execution.evidence.reason", "changed")
    book.mutable(entry, "registers.risk")["flag"] = "escalated"
    book.append(entry, "registers.issue.entries", {"id": 1})
    book.put(entry, "communications.log", ["x"])
    book.transition(entry, "executing.running_action", "closing.error", 9.0, "boom")
    assert dict(snap) == taken
    # Restored twice, written in between: the snapshot still reads as it was taken.
    for _ in range(2):
        book.restore(entry, snap)
        assert book.get(entry, "execution.evidence.reason") is None
        book.set(entry, "execution.evidence.reason", "again")
        book.mutable(entry, "registers.risk")["flag"] = "mitigating"
    assert dict(snap) == taken


def test_a_snapshot_keeps_the_trace_it_was_taken_with(plan: Plan) -> None:
    book = SparseWorkbook(plan.workbook)
    entry = book.open("u", "t", "sc")
    one_pass(book, entry, plan, 5.0, close=False)
    snap = book.snapshot(entry)
    trace = list(entry.trace)
    book.transition(entry, "executing.running_action", "closing.success", 9.0, "close")
    book.compact()
    assert entry.packed
    assert list(snap.trace) == trace
    assert dict(snap)["timeline"]["transition_trace"][-1]["to"] == "executing.running_action"
    book.restore(entry, snap)
    assert len(entry.trace) == len(trace) + 1  # the trace is history: a rollback keeps it


def test_a_container_in_a_scalar_slot_is_copied_by_snapshots_and_packed_exactly(
    plan: Plan,
) -> None:
    dense, sparse = Workbook(plan.workbook), SparseWorkbook(plan.workbook)
    pair: list[tuple[Any, Any]] = [(book, book.open("u", "t", "sc")) for book in (dense, sparse)]
    snaps = []
    for book, entry in pair:
        book.put(entry, "timeline.progress", {"done": (1, 2), "left": [3]})
        snaps.append(book.snapshot(entry))
        book.set(entry, "timeline.progress.done", "changed")
        book.mutable(entry, "timeline.progress")["left"] = None
    assert dict(snaps[0]) == dict(snaps[1])
    assert snaps[1]["timeline"]["progress"] == {"done": [1, 2], "left": [3]}
    sparse.compact([pair[1][1]])
    assert pair[1][1].packed
    assert sparse.export(pair[1][1]) == dense.export(pair[0][1])
    sparse.restore(pair[1][1], snaps[1])
    assert sparse.get(pair[1][1], "timeline.progress") == {"done": (1, 2), "left": [3]}
    assert type(sparse.get(pair[1][1], "timeline.progress")["done"]) is tuple


def test_set_many_writes_what_each_set_would(plan: Plan) -> None:
    spec = plan.workbook
    context = tuple(
        (
            spec.expose.get(key)
            or next(f"{s}.{key}" for s, d in spec.defaults.items() if key in d),
            v,
        )
        for key, v in plan.scenarios[0].context.items()
    )
    assert any(path == "timeline.process_groups" for path, _ in context)  # a composite
    with_sub = (*context, ("execution.evidence.reason", "x"), ("state", "planning.ready"))
    dense, sparse = Workbook(spec), SparseWorkbook(spec)
    for items in (context, context, list(context), with_sub, with_sub):
        for moved in (False, True):
            pair = []
            for book in (dense, sparse):
                entry: Any = book.open("u", "t", "sc")
                if moved:  # hot process groups already: set_many replaces them
                    book.transition(entry, "initiating.idle", "planning.ready", 1.0, "go")
                    book.take_dirty(entry)
                book.set_many(entry, items)
                pair.append((book.take_dirty(entry), book.export(entry)))
                book.transition(entry, "planning.ready", "executing.running_action", 2.0, "n")
                book.end_action(entry, "probe-get", "http", 2.0, "ok", 1.0, "success")
                pair.append((book.take_dirty(entry), book.export(entry)))
            assert pair[:2] == pair[2:]


def test_a_packed_block_holds_only_its_compressed_length_in_memory() -> None:
    """python-zstandard leaves its output in a buffer of the input's size: a block kept as
    returned held ~48 KB for ~100 B of data, and a closed entry cost ~1.1 KB instead of ~0.4."""
    import tracemalloc

    from wbsrun.core.ledger._packing import Packer

    packer = Packer()
    raw = bytearray(b'{"phase":"closing.success","latency":12.5}' * 1200)  # ~50 KB, compressible
    packer.compress("s", raw, 64)  # primes the scenario's dictionary
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        blocks = [packer.compress("s", raw, 64) for _ in range(20)]
        held = (tracemalloc.get_traced_memory()[0] - before) / len(blocks)
    finally:
        tracemalloc.stop()
    assert len(blocks[0]) < 2_000
    assert held < len(blocks[0]) + 512, f"{held:.0f} B held for {len(blocks[0])} B of data"
