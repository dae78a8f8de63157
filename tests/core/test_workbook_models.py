"""The dense and sparse workbooks read the same after any sequence of writes (hypothesis)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from property_kit import examples
from wbsrun.core.ledger import Ledger, Snapshot
from wbsrun.core.ledger._state import owned_copy, plain
from wbsrun.core.ledger.dense import Entry, SectionView, Workbook, WorkbookView
from wbsrun.core.ledger.sparse import SparseEntry, SparseWorkbook
from wbsrun.dsl._build import freeze
from wbsrun.dsl.plan import WorkbookSpec

# The reference scenario's defaults, plus the awkward cases: a non-dict default under a
# composite hot field's neighbour, a section with a scalar default only.
DEFAULTS = freeze(
    {
        "timeline": {
            "phase": "initiating.idle",
            "process_groups": {"initiating": 0, "planning": 0, "executing": 0},
            "start_at": None,
            "last_transition_at": None,
            "transition_trace": [],
        },
        "execution": {
            "owner": "scheduler",
            "current_action": "none",
            "current_action_started_at": None,
            "last_action": "none",
            "retry_budget": 2,
            "evidence": {"snapshot": None, "last_event": None, "reason": None},
            "action_log": [],
            "resource_lease": None,
        },
        "telemetry": {
            "counters": {"success": 0, "failure": 0, "workload_units": 0},
            "latency_ms": {"last": 0, "p90": 0},
            "milestones": {"achieved": [], "pending": ["probe", "push", "purge"]},
            "health": {"score": 1.0, "trend": "stable"},
        },
        "registers": {"risk": {"flag": "none", "entries": []}, "issue": {"entries": []}},
        "communications": {"log": [], "last_synced_at": None},
    }
)
EXPOSE = {
    "state": "timeline.phase",
    "retry_left": "execution.retry_budget",
    "evidence": "execution.evidence",
    "metrics": "telemetry.counters",
    "risk_flag": "registers.risk.flag",
    "action_log": "execution.action_log",
    "transition_trace": "timeline.transition_trace",
}
SPEC = WorkbookSpec(
    defaults=DEFAULTS,
    process_groups=MappingProxyType({}),
    descriptions=MappingProxyType({}),
    expose=MappingProxyType(EXPOSE),
)
TOPS = sorted(
    {f"{s}.{k}" for s, d in DEFAULTS.items() for k in d}
    | {"timeline.progress", "execution.last_action_at", "execution.timeout_at", "extra.notes"}
)
PATHS = [
    *TOPS,
    *EXPOSE,
    "execution.evidence.snapshot",
    "execution.evidence.snapshot.metrics",
    "telemetry.counters.success",
    "telemetry.counters.timeout",
    "telemetry.latency_ms.last",
    "telemetry.milestones.achieved",
    "telemetry.milestones.pending",
    # The poller's score: a slot of the sparse model while nothing else wrote the health.
    "telemetry.health.score",
    "telemetry.health.trend",
    "telemetry.health.score.deep",
    "timeline.process_groups.planning",
    "timeline.phase.sub",
    "timeline.transition_trace.x",
    "registers.risk.entries",
    "extra.notes.deep.er",
]
PHASES = [
    "planning.ready",
    "executing.waiting_resource",
    "executing.running_action",
    "executing.throttled",
    "monitoring.error_detected",
    "monitoring.timeout",
    "closing.success",
    "closing.error",
]
SECTIONS = [*DEFAULTS, "extra"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 300),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from(["ok", "none", "probe", "closing.success", ""]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from(["a", "b", "last", "success"]), inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2).map(freeze),
    ),
    max_leaves=6,
)

# One step: (operation, arguments). Arguments are drawn once and applied to both models.
steps = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(PATHS), values),
    st.tuples(st.just("put"), st.sampled_from(TOPS), values),
    st.tuples(st.just("append"), st.sampled_from(PATHS), values),
    st.tuples(st.just("mutable"), st.sampled_from(TOPS), st.sampled_from(["dict", "list"]), values),
    st.tuples(st.just("bump"), st.sampled_from(PATHS), st.integers(1, 3)),
    st.tuples(
        st.just("transition"),
        st.sampled_from(PHASES),
        st.one_of(st.floats(0, 1e10), st.integers(0, 100)),
        st.sampled_from(["plan", "lease", "n1", "close"]),
    ),
    st.tuples(st.just("begin"), st.sampled_from(["probe-get", "push-post"]), st.floats(0, 1e10)),
    st.tuples(
        st.just("end"),
        st.sampled_from(["probe-get", "push-post"]),
        st.sampled_from(["success", "failure", "timeout", "odd"]),
        st.floats(0, 1e4),
    ),
    st.tuples(st.just("milestone"), st.sampled_from(["probe", "push", "purge", "other"])),
    st.tuples(st.just("snapshot")),
    st.tuples(st.just("restore"), st.lists(st.sampled_from(TOPS), max_size=3)),
    st.tuples(st.just("compact")),
    st.tuples(st.just("var"), st.sampled_from(["asset", "__last_http"]), values),
)


@dataclass
class Model:
    """One workbook under test with the state the executor would keep beside it."""

    book: Ledger[Any]
    entry: Any
    other: Any
    phase: str = "initiating.idle"
    snapshot: Snapshot | None = None
    snapshot_export: dict[str, Any] = field(default_factory=dict)


def apply(m: Model, step: tuple[Any, ...], compact: Callable[[Any], object]) -> None:
    book, entry = m.book, m.entry
    op, *args = step
    if op == "set":
        book.set(entry, args[0], owned_copy(args[1]))
    elif op == "put":
        book.put(entry, args[0], owned_copy(args[1]))
    elif op == "append":
        book.append(entry, args[0], owned_copy(args[1]))
    elif op == "mutable":
        container = book.mutable(entry, args[0], dict if args[1] == "dict" else list)
        if isinstance(container, dict):
            container["k"] = owned_copy(args[2])
        else:
            container.append(owned_copy(args[2]))
    elif op == "bump":
        # A non-number there: both models refuse the same way.
        with contextlib.suppress(TypeError):
            book.bump(entry, args[0], args[1])
    elif op == "transition":
        if args[0] != m.phase:  # the executor skips a transition to the same phase
            book.transition(entry, m.phase, args[0], args[1], args[2])
            m.phase = args[0]
    elif op == "begin":
        book.begin_action(entry, args[0], args[1])
    elif op == "end":
        result = "ok" if args[1] == "success" else "boom"
        # Counters replaced by a non-number by an earlier step: both refuse the same way.
        with contextlib.suppress(TypeError):
            book.end_action(entry, args[0], "http", 12.5, result, args[2], args[1])
    elif op == "milestone":
        book.reach_milestone(entry, args[0])
    elif op == "snapshot":
        m.snapshot = book.snapshot(entry)
        m.snapshot_export = book.export(entry)
        assert dict(m.snapshot) == m.snapshot_export
    elif op == "restore" and m.snapshot is not None:
        book.restore(entry, m.snapshot, keep=args[0])
    elif op == "compact":
        compact(entry)
    elif op == "var":
        entry.vars[args[0]] = owned_copy(args[1])


def visible(book: Ledger[Any], entry: Any) -> dict[str, Any]:
    """Everything a reader can see: get on every path, sections, export, views, trace."""
    view = WorkbookView(book, entry)
    return {
        "get": {p: book.get(entry, p, "<absent>") for p in PATHS},
        "sections": {s: book.section(entry, s) for s in SECTIONS},
        "export": book.export(entry),
        "view": {
            k: dict(v) if isinstance(v, SectionView) else v for k, v in ((k, view[k]) for k in view)
        },
        "trace": list(entry.trace),
    }


def pair() -> tuple[Model, Model]:
    dense, sparse = Workbook(SPEC), SparseWorkbook(SPEC)
    return (
        Model(dense, dense.open("u1", "u1-t0", "s"), dense.open("u2", "u2-t0", "s")),
        Model(sparse, sparse.open("u1", "u1-t0", "s"), sparse.open("u2", "u2-t0", "s")),
    )


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, max_size=25))
def test_any_update_sequence_reads_the_same_in_both_models(sequence: list[Any]) -> None:
    dense, sparse = pair()
    assert isinstance(sparse.book, SparseWorkbook)
    sbook = sparse.book
    untouched = visible(dense.book, dense.other)
    for step in sequence:
        apply(dense, step, lambda e: None)
        apply(sparse, step, lambda e: sbook.compact([e]))
        assert dense.book.take_dirty(dense.entry) == sparse.book.take_dirty(sparse.entry), step
    assert visible(sparse.book, sparse.entry) == visible(dense.book, dense.entry)
    # Writes never leak into another entry or into the shared defaults.
    assert visible(dense.book, dense.other) == untouched
    assert visible(sparse.book, sparse.other) == untouched
    assert plain(DEFAULTS) == plain(freeze(plain(DEFAULTS)))
    # A snapshot keeps reading as the entry did when it was taken.
    for m in (dense, sparse):
        if m.snapshot is not None:
            assert dict(m.snapshot) == m.snapshot_export


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(steps, max_size=25))
def test_a_compacted_entry_reads_back_exactly_and_thaws_on_write(sequence: list[Any]) -> None:
    _, sparse = pair()
    book = sparse.book
    assert isinstance(book, SparseWorkbook)
    for step in sequence:
        apply(sparse, step, lambda e: None)
    entry: SparseEntry = sparse.entry
    before = visible(book, entry)
    book.compact([entry])
    assert visible(book, entry) == before
    # Reading did not unpack it; a write does, and the entry still reads the same around it.
    if entry.packed:
        book.put(entry, "extra.notes", "after")
        assert not entry.packed
        assert book.get(entry, "extra.notes") == "after"
        assert visible(book, entry)["trace"] == before["trace"]


# Found by hypothesis: a field kept across a restore was the very object the later
# snapshot held (the overlay it shares), so the next count went into the snapshot too.
KEPT_COUNTERS_ALIAS: tuple[list[Any], list[Any], Any] = (
    [("snapshot",), ("set", "telemetry.counters", None), ("end", "probe-get", "success", 0.0)],
    [("restore", ["telemetry.counters"]), ("end", "probe-get", "success", 0.0)],
    (),
)


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(steps, max_size=20), st.lists(steps, max_size=10), st.sampled_from([(), TOPS]))
@example(*KEPT_COUNTERS_ALIAS)
def test_restore_returns_to_the_snapshot_except_what_it_keeps(
    before: list[Any], after: list[Any], keep: Any
) -> None:
    for m in pair():
        for step in before:
            apply(m, step, lambda e: None)
        snap = m.book.snapshot(m.entry)
        taken = sections_only(m.book.export(m.entry))
        for step in after:
            apply(m, step, lambda e: None)
        kept = {top: m.book.get(m.entry, top, "<absent>") for top in keep}
        m.book.restore(m.entry, snap, keep=keep, variables=True)
        assert {k: v for k, v in m.entry.vars.items() if not k.startswith("__")} == {
            k: v for k, v in snap.variables.items() if not k.startswith("__")
        }
        if keep:
            assert {top: m.book.get(m.entry, top, "<absent>") for top in keep} == kept
        else:
            assert sections_only(m.book.export(m.entry)) == taken


@settings(max_examples=examples(100), deadline=None)
@given(
    st.lists(steps, max_size=15),
    st.lists(steps, max_size=10),
    st.lists(st.sampled_from(TOPS), max_size=4),
    st.lists(steps, max_size=10),
)
# The restore's aliasing again, shrunk from a longer run: the counters kept across a restore
# were the snapshot's (taken just before), so a later write changed the snapshot.
@example(
    [("end", "probe-get", "odd", 0.0)],
    [],
    ["telemetry.counters"],
    [("set", "telemetry.counters.success", None)],
)
def test_a_snapshot_reads_as_taken_after_a_restore_keeping_any_fields_and_later_writes(
    before: list[Any], after: list[Any], keep: list[str], later: list[Any]
) -> None:
    for m in pair():
        for step in before:
            apply(m, step, lambda e: None)
        snap = m.book.snapshot(m.entry)
        taken = sections_only(m.book.export(m.entry))
        for step in after:
            apply(m, step, lambda e: None)
        kept = {top: m.book.get(m.entry, top, "<absent>") for top in keep}
        m.book.restore(m.entry, snap, keep=keep)
        assert {top: m.book.get(m.entry, top, "<absent>") for top in keep} == kept
        for step in later:
            apply(m, step, lambda e: None)
        assert sections_only(dict(snap)) == taken
        m.book.restore(m.entry, snap)
        assert sections_only(m.book.export(m.entry)) == taken


def test_a_field_kept_by_a_restore_is_not_shared_with_a_later_snapshot() -> None:
    before, after, _ = KEPT_COUNTERS_ALIAS
    for m in pair():
        for step in before:
            apply(m, step, lambda e: None)
        # The cold counters (set over with None, then counted into a dict of the entry's own).
        assert m.book.get(m.entry, "telemetry.counters") == {"success": 1, "workload_units": 1}
        snap = m.book.snapshot(m.entry)
        for step in after:  # restore the first snapshot keeping the counters, count again
            apply(m, step, lambda e: None)
        assert m.book.get(m.entry, "telemetry.counters.success") == 2
        assert snap["telemetry"]["counters"] == {"success": 1, "workload_units": 1}
        m.book.restore(m.entry, snap)
        assert m.book.get(m.entry, "telemetry.counters") == {"success": 1, "workload_units": 1}


def sections_only(export: dict[str, Any]) -> dict[str, Any]:
    """What a rollback restores: the sections, not the trace (an audit log) nor saved vars."""
    out = {k: v for k, v in export.items() if k != "vars"}
    out["timeline"] = {k: v for k, v in out["timeline"].items() if k != "transition_trace"}
    return out


def test_the_dense_book_is_a_ledger_of_entries() -> None:
    # Static check through mypy: both models satisfy the one interface.
    dense: Ledger[Entry] = Workbook(SPEC)
    sparse: Ledger[SparseEntry] = SparseWorkbook(SPEC)
    assert dense.compact() == 0
    assert sparse.compact() == 0
    # ...and both are the compiled base the runner calls natively (RunContext.workbook).
    assert isinstance(dense, Ledger)
    assert isinstance(sparse, Ledger)
