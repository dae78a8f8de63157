"""The sparse workbook: packing closed entries, dirty tracking, exact round trips, the switch."""

from __future__ import annotations

import itertools
import shutil
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from wbsrun.core.ledger import Ledger, open_workbook
from wbsrun.core.ledger.dense import Workbook
from wbsrun.core.ledger.sparse import SparseEntry, SparseWorkbook
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import Plan
from wbsrun.protocols.registry import provides

EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "examples" / "http_tri_phase"


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan(EXAMPLE, provides())


def reference_pass(book: Ledger[Any], entry: Any, plan: Plan, t: float) -> None:
    """The writes of one reference pass, as the executor makes them."""
    spec = plan.workbook
    for key, value in plan.scenarios[0].context.items():
        path = spec.expose.get(key) or next(
            f"{s}.{key}" for s, d in spec.defaults.items() if key in d
        )
        book.set(entry, path, value)
    phases = ["initiating.idle", "planning.ready", "executing.waiting_resource"]
    phases += ["executing.running_action", "closing.success"]
    for i, (frm, to) in enumerate(itertools.pairwise(phases)):
        book.transition(entry, frm, to, t + i, "step")
        if to == "executing.running_action":
            book.put(entry, "execution.resource_lease", "127.0.0.2:18080")
            for action, milestone in (("probe-get", "probe"), ("push-post", "push")):
                book.begin_action(entry, action, t + i)
                book.end_action(entry, action, "http", t + i, "ok", 1.5, "success")
                book.reach_milestone(entry, milestone)
            book.set(entry, "execution.evidence.snapshot", {"checkpoint": "c", "metrics": {}})


def test_the_reference_pass_exports_the_same_in_both_models_and_after_packing(plan: Plan) -> None:
    dense, sparse = Workbook(plan.workbook), SparseWorkbook(plan.workbook)
    d, s = dense.open("u1", "u1-t0", "sc"), sparse.open("u1", "u1-t0", "sc")
    reference_pass(dense, d, plan, 100.0)
    reference_pass(sparse, s, plan, 100.0)
    exported = dense.export(d)
    assert sparse.export(s) == exported
    assert exported["telemetry"]["milestones"] == {
        "achieved": ["probe", "push"],
        "pending": ["purge"],
    }
    assert sparse.compact() == 1
    assert s.packed
    assert sparse.export(s) == exported
    assert sparse.get(s, "state") == "closing.success"
    assert list(s.trace) == list(d.trace)
    # Frozen plan values come back as they went in: tuples stay tuples.
    assert sparse.get(s, "governance.scope_trace") == dense.get(d, "governance.scope_trace")
    assert type(sparse.get(s, "governance.scope_trace")) is tuple
    assert type(sparse.get(s, "registers.procurement")) is MappingProxyType
    assert s.packed, "reading a packed entry must not unpack it"


def test_compact_folds_closed_entries_only_and_each_once(plan: Plan) -> None:
    book = SparseWorkbook(plan.workbook)
    done, running = book.open("u1", "t1", "sc"), book.open("u2", "t2", "sc")
    reference_pass(book, done, plan, 1.0)
    book.transition(running, "initiating.idle", "executing.running_action", 1.0, "go")
    assert book.compact() == 1
    assert done.packed
    assert not running.packed
    assert book.compact() == 0
    book.transition(running, "executing.running_action", "closing.error", 2.0, "boom")
    assert book.compact() == 1


def test_a_spent_compaction_budget_keeps_the_rest_for_the_next_call(plan: Plan) -> None:
    book = SparseWorkbook(plan.workbook)
    entries = [book.open(f"u{i}", f"t{i}", "sc") for i in range(40)]
    for i, entry in enumerate(entries):
        reference_pass(book, entry, plan, float(i))
    assert book.compact(budget=0.0) == 0  # spent before the first entry: nothing lost
    assert book.compact(budget=60.0) == 40
    assert all(entry.packed for entry in entries)
    assert book.compact() == 0


def test_settled_compaction_packs_an_entry_only_once_it_has_been_closed_that_long(
    plan: Plan,
) -> None:
    book = SparseWorkbook(plan.workbook)
    early, late = book.open("u1", "t1", "sc"), book.open("u2", "t2", "sc")
    reference_pass(book, early, plan, 1.0)
    assert book.compact(settle=0.2) == 0  # closed just now: set aside, not packed
    assert book.backlog == 1
    time.sleep(0.1)
    reference_pass(book, late, plan, 2.0)
    assert book.compact(settle=0.2) == 0
    time.sleep(0.15)
    assert book.compact(settle=0.2) == 1  # set aside 0.25 s ago; the late one 0.15 s ago
    assert early.packed
    assert not late.packed
    time.sleep(0.1)
    assert book.compact(settle=0.2) == 1
    assert late.packed
    assert book.backlog == 0


def test_a_settled_compaction_out_of_budget_takes_the_rest_first_at_the_next_call(
    plan: Plan,
) -> None:
    book = SparseWorkbook(plan.workbook)
    entries = [book.open(f"u{i}", f"t{i}", "sc") for i in range(40)]
    for i, entry in enumerate(entries):
        reference_pass(book, entry, plan, float(i))
    assert book.compact(settle=0.05) == 0
    time.sleep(0.06)
    assert book.compact(budget=0.0, settle=0.05) == 0  # spent at once: nothing lost
    assert book.backlog == 40
    newer = book.open("u40", "t40", "sc")
    reference_pass(book, newer, plan, 40.0)
    assert book.compact(budget=60.0, settle=0.05) == 40  # the settled ones, not the new one
    assert not newer.packed
    assert book.compact() == 1  # without settle: everything closed


def test_a_packed_closed_entry_written_to_is_packed_again_by_the_next_compaction(
    plan: Plan,
) -> None:
    book = SparseWorkbook(plan.workbook)
    entry = book.open("u1", "t1", "sc")
    reference_pass(book, entry, plan, 1.0)
    assert book.compact() == 1
    book.set(entry, "telemetry.health.score", 0.5)  # the poller's score after the close
    assert not entry.packed
    assert book.compact() == 1
    assert entry.packed
    assert book.get(entry, "telemetry.health.score") == 0.5


def test_a_write_to_a_packed_entry_unpacks_it_and_keeps_everything_else(plan: Plan) -> None:
    book = SparseWorkbook(plan.workbook)
    entry = book.open("u1", "t1", "sc")
    reference_pass(book, entry, plan, 1.0)
    before = book.export(entry)
    book.compact([entry])
    book.end_action(entry, "purge-delete", "http", 9.0, "ok", 2.0, "success")
    assert not entry.packed
    after = book.export(entry)
    assert (
        after["telemetry"]["counters"]["success"] == before["telemetry"]["counters"]["success"] + 1
    )
    assert after["execution"]["action_log"][:-1] == before["execution"]["action_log"]
    assert after["timeline"] == before["timeline"]


def test_a_value_that_cannot_be_packed_exactly_keeps_the_entry_live(plan: Plan) -> None:
    book = SparseWorkbook(plan.workbook)
    entry = book.open("u1", "t1", "sc")
    marker = frozenset({"not", "msgpack"})
    book.set(entry, "execution.evidence.reason", marker)
    assert book.compact([entry]) == 0
    assert not entry.packed
    assert book.get(entry, "execution.evidence.reason") is marker


def test_saved_variables_are_never_copied_or_packed(plan: Plan) -> None:
    book = SparseWorkbook(plan.workbook)
    entry = book.open("u1", "t1", "sc")
    result = object()
    entry.vars["asset"] = result
    book.transition(entry, "initiating.idle", "closing.success", 1.0, "close")
    assert book.compact() == 1
    assert entry.vars["asset"] is result


@pytest.mark.parametrize("model", ["dense", "sparse"])
def test_take_dirty_names_the_fields_changed_since_the_last_call(model: str, plan: Plan) -> None:
    book = open_workbook(plan.workbook, "dense" if model == "dense" else "sparse")
    entry = book.open("u1", "t1", "sc")
    assert book.take_dirty(entry) == frozenset()
    book.transition(entry, "initiating.idle", "executing.running_action", 1.0, "go")
    assert book.take_dirty(entry) == {
        "timeline.phase",
        "timeline.last_transition_at",
        "timeline.transition_trace",
        "timeline.process_groups",
    }
    book.begin_action(entry, "probe-get", 2.0)
    book.set(entry, "risk_flag", "identified")
    assert book.take_dirty(entry) == {
        "execution.current_action",
        "execution.current_action_started_at",
        "registers.risk",
    }
    assert book.take_dirty(entry) == frozenset()


@pytest.mark.parametrize("model", ["dense", "sparse"])
def test_a_snapshot_is_read_only_and_restore_can_keep_the_history(model: str, plan: Plan) -> None:
    book = open_workbook(plan.workbook, "dense" if model == "dense" else "sparse")
    entry = book.open("u1", "t1", "sc")
    book.end_action(entry, "probe-get", "http", 1.0, "ok", 1.0, "success")
    book.set(entry, "execution.evidence.reason", "stable")
    snap = book.snapshot(entry)
    snap["execution"]["evidence"]["reason"] = "scribbled"  # a fresh copy per read
    assert snap["execution"]["evidence"]["reason"] == "stable"
    book.end_action(entry, "push-post", "http", 2.0, "http-5xx", 3.0, "failure")
    book.set(entry, "execution.evidence.reason", "failed")
    book.restore(entry, snap, keep=("execution.action_log", "telemetry.counters"))
    assert book.get(entry, "execution.evidence.reason") == "stable"
    assert book.get(entry, "execution.last_action") == "probe-get"
    assert [r["action"] for r in book.get(entry, "action_log")] == ["probe-get", "push-post"]
    assert book.get(entry, "metrics")["failure"] == 1


def test_the_health_score_after_a_checkpoint_leaves_the_shared_overlay_uncopied(
    plan: Plan,
) -> None:
    book = SparseWorkbook(plan.workbook)
    entry = book.open("u1", "t1", "sc")
    reference_pass(book, entry, plan, 100.0)
    snap = book.snapshot(entry)
    over = entry._h.over  # type: ignore[union-attr]
    book.set(entry, "telemetry.health.score", 0.42)
    # The poller's write went to a slot: the overlay is still the one the snapshot shares.
    assert entry._h.over is over  # type: ignore[union-attr]
    assert book.get(entry, "telemetry.health") == {"score": 0.42, "trend": "stable"}
    assert book.export(entry)["telemetry"]["health"]["score"] == 0.42
    book.restore(entry, snap)
    assert book.get(entry, "telemetry.health.score") == 1.0  # the checkpoint's (default)
    book.set(entry, "telemetry.health.score", 0.5)
    book.set(entry, "telemetry.health.trend", "falling")  # a cold write adopts the score
    book.set(entry, "telemetry.health.score", 0.75)
    assert book.get(entry, "telemetry.health") == {"score": 0.75, "trend": "falling"}
    book.transition(entry, "executing.running_action", "closing.success", 101.0, "close")
    book.compact([entry])
    assert not isinstance(entry._h, type(over))  # packed
    assert book.get(entry, "telemetry.health") == {"score": 0.75, "trend": "falling"}


def test_progress_model_selects_the_storage(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(EXAMPLE, bundle)
    script = bundle / "script.yaml"
    text = script.read_text(encoding="utf-8")
    assert "\nprogress:\n" in text
    script.write_text(text.replace("\nprogress:\n", "\nprogress:\n  model: dense\n"), "utf-8")
    dense_plan = load_plan(bundle, provides())
    assert dense_plan.progress.model == "dense"
    assert isinstance(open_workbook(dense_plan.workbook, dense_plan.progress.model), Workbook)
    sparse_plan = load_plan(EXAMPLE, provides())
    assert sparse_plan.progress.model == "sparse"
    book = open_workbook(sparse_plan.workbook, sparse_plan.progress.model)
    assert isinstance(book, SparseWorkbook)
    entry = book.open("u", "t", "s")
    assert isinstance(entry, SparseEntry)


def _rate_read(book: Ledger[Any], entry: Any) -> float:
    """The error rate the poller takes from `telemetry.counters` read through `get`."""
    from wbsrun.poller._health import task_health

    # progress 0, running without a window: health = 0.3 × (1 − rate) + 0.1.
    return (
        1.0
        - (
            task_health(0.0, book.get(entry, "telemetry.counters"), True, False, 0.0, None, None)
            - 0.1
        )
        / 0.3
    )


def test_error_counts_read_what_the_counters_dict_says_in_every_state(plan: Plan) -> None:
    from wbsrun.poller._health import counts_rate

    book = SparseWorkbook(plan.workbook)
    fresh = book.open("u0", "t0", "sc")
    assert book.error_counts(fresh) is None  # nothing counted: read the default through get
    counted = book.open("u1", "t1", "sc")
    book.begin_action(counted, "a", 1.0)
    book.end_action(counted, "a", "http", 1.0, "ok", 1.0, "success")
    book.begin_action(counted, "b", 2.0)
    book.end_action(counted, "b", "http", 2.0, "network-timeout", 1.0, "timeout")
    book.begin_action(counted, "c", 3.0)
    book.end_action(counted, "c", "http", 3.0, "http-5xx", 1.0, "failure")
    counts = book.error_counts(counted)
    assert counts == (3, 1, 1)
    assert counts_rate(*counts, True) == pytest.approx(_rate_read(book, counted))
    # A cold write moves the counters to the overlay: `get` is the one reader then.
    cold = book.open("u2", "t2", "sc")
    book.set(cold, "telemetry.counters", {"workload_units": 4, "failure": 1, "timeout": 0})
    assert book.error_counts(cold) is None
    # A packed entry reads the same as before packing.
    book.transition(counted, "executing.running_action", "closing.success", 4.0, "close")
    before = book.error_counts(counted)
    assert book.compact() == 1
    assert counted.packed
    assert book.error_counts(counted) == before
    assert counted.packed
    # The dense model has no cheaper reader (the base's answer, None): the poller falls back
    # to `get` there.
    dense = Workbook(plan.workbook)
    assert dense.error_counts(dense.open("u3", "t3", "sc")) is None
