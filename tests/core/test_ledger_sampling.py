"""Sampling modes (`progress.sampling`): every closed entry is folded into exact totals, the
same whichever entries the mode keeps; the caps bound what stays in memory; `full` writes every
closed entry to disk and reads them back (hypothesis over random write/close sequences)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wbsrun.core.ledger import Ledger, open_workbook, read_ledger
from wbsrun.core.ledger._retention import SHAPE_CAP
from wbsrun.dsl._build import freeze
from wbsrun.dsl.plan import SamplingMode, SamplingSpec, WorkbookSpec

# The reference scenario's defaults that the totals read (the counters without `timeout`:
# a counter the default lacks is counted only where an entry has it).
SPEC = WorkbookSpec(
    defaults=freeze(
        {
            "timeline": {"phase": "initiating.idle", "process_groups": {"initiating": 0}},
            "execution": {
                "current_action": "none",
                "evidence": {"snapshot": None, "last_event": None, "reason": None},
                "action_log": [],
            },
            "telemetry": {
                "counters": {"success": 0, "failure": 0, "workload_units": 0},
                "latency_ms": {"last": 0},
                "milestones": {"achieved": [], "pending": ["probe", "push", "purge"]},
                "health": {"score": 1.0},
            },
        }
    ),
    process_groups=MappingProxyType({}),
    descriptions=MappingProxyType({}),
    expose=MappingProxyType({"evidence": "execution.evidence"}),
)

ACTIONS = ("probe", "push", "purge")
RESULTS = ("ok", "E_HTTP_500", "E_NET_TIMEOUT")
CLOSES = ("closing.success", "closing.error", "closing.timeout", "closing.rollback")
PHASES = ("planning.ready", "executing.running_action", "monitoring.error_detected")


@dataclass
class Pass:
    """One entry's writes, in order, and how it closes."""

    user: str
    scenario: str
    steps: list[tuple[str, Any]] = field(default_factory=list)
    close: str = "closing.success"
    late_write: bool = False


step = st.one_of(
    st.tuples(
        st.just("action"),
        st.tuples(
            st.sampled_from(ACTIONS),
            st.sampled_from(RESULTS),
            st.integers(0, 5000).map(lambda n: n / 1000),
        ),
    ),
    st.tuples(st.just("milestone"), st.sampled_from(("probe", "push", "purge"))),
    st.tuples(st.just("phase"), st.sampled_from(PHASES)),
    st.tuples(st.just("error"), st.sampled_from(("E_HTTP_500", "E_NET_TIMEOUT", "E_X"))),
)
passes = st.lists(
    st.builds(
        Pass,
        user=st.sampled_from(("u1", "u2", "u3")),
        scenario=st.sampled_from(("alpha", "beta")),
        steps=st.lists(step, max_size=6),
        close=st.sampled_from(CLOSES),
        late_write=st.booleans(),
    ),
    max_size=40,
)
# After which pass a compaction runs: the poller's (exact entries) or the runner's (closed).
compactions = st.lists(st.tuples(st.integers(0, 40), st.booleans()), max_size=8)


def play(book: Ledger[Any], plan: list[Pass], compact_at: list[tuple[int, bool]]) -> None:
    clock = 1000.0
    when = dict(compact_at)
    for i, p in enumerate(plan):
        entry = book.open(p.user, f"{p.user}-t{i}", p.scenario)
        phase = "initiating.idle"
        for kind, arg in p.steps:
            clock += 0.25
            if kind == "action":
                name, result, ms = arg
                book.begin_action(entry, name, clock)
                counter = "success" if result == "ok" else "failure"
                book.end_action(entry, name, "http", clock, result, ms, counter)
            elif kind == "milestone":
                book.reach_milestone(entry, arg)
            elif kind == "phase" and arg != phase:
                book.transition(entry, phase, arg, clock, "test")
                phase = arg
            elif kind == "error":
                book.set(entry, "execution.evidence.last_event", arg)
        clock += 0.5
        book.transition(entry, phase, p.close, clock, "close")
        if i in when:
            book.compact([entry] if when[i] else None)
        if p.late_write:
            book.set(entry, "telemetry.health.score", 0.5)  # the poller's late score
    book.finish()


def reference(plan: list[Pass]) -> dict[str, Any]:
    """The totals, computed from the plan itself (not through the ledger)."""
    out: dict[str, Any] = {}
    clock = 1000.0
    for p in plan:
        t = out.setdefault(
            p.scenario,
            {
                "closed": 0,
                "outcomes": Counter(),
                "milestones": Counter(),
                "errors": Counter(),
                "entered": Counter(),
                "actions": {},
                "success": 0,
                "failure": 0,
                "units": 0,
            },
        )
        t["closed"] += 1
        t["outcomes"][p.close] += 1
        phase, error, reached = "initiating.idle", None, []
        for kind, arg in p.steps:
            clock += 0.25
            if kind == "action":
                name, result, _ms = arg
                a = t["actions"].setdefault(name, {"count": 0, "results": Counter()})
                a["count"] += 1
                a["results"][result] += 1
                t["success" if result == "ok" else "failure"] += 1
                t["units"] += 1
            elif kind == "milestone":
                reached.append(arg)
            elif kind == "phase" and arg != phase:
                t["entered"][arg] += 1
                phase = arg
            elif kind == "error":
                error = arg
        clock += 0.5
        t["entered"][p.close] += 1
        t["milestones"].update(set(reached))
        if p.close != "closing.success" and error is not None:
            t["errors"][error] += 1
    return out


def comparable(totals: dict[str, Any]) -> dict[str, Any]:
    """What the reference computes: everything but durations (exact too, compared across
    modes below)."""
    out = {}
    for name, t in totals.items():
        out[name] = {
            "closed": t["closed"],
            "outcomes": dict(t["outcomes"]),
            "milestones": dict(t["milestones"]),
            "errors": dict(t["errors"]),
            "entered": {k: v["entered"] for k, v in t["phases"].items()},
            "actions": {
                k: {"count": v["count"], "results": dict(v["results"])}
                for k, v in t["actions"].items()
            },
            "success": t["counters"].get("success", 0),
            "failure": t["counters"].get("failure", 0),
            "units": t["counters"].get("workload_units", 0),
        }
    return out


def expected(plan: list[Pass]) -> dict[str, Any]:
    return {
        name: {
            "closed": t["closed"],
            "outcomes": dict(t["outcomes"]),
            "milestones": dict(t["milestones"]),
            "errors": dict(t["errors"]),
            "entered": dict(t["entered"]),
            "actions": {
                k: {"count": v["count"], "results": dict(v["results"])}
                for k, v in t["actions"].items()
            },
            "success": t["success"],
            "failure": t["failure"],
            "units": t["units"],
        }
        for name, t in reference(plan).items()
    }


CAPS = {"keep_failed": 2, "keep_succeeded": 3, "every": 4}
MODES: tuple[SamplingMode, ...] = ("aggregated", "sampled", "full")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=passes, compact_at=compactions)
def test_totals_are_exact_and_the_same_in_every_mode_and_model(
    tmp_path_factory: pytest.TempPathFactory, plan: list[Pass], compact_at: list[tuple[int, bool]]
) -> None:
    summaries = {}
    for model in ("sparse", "dense"):
        for mode in MODES:
            out = tmp_path_factory.mktemp(f"{model}-{mode}")
            book = open_workbook(SPEC, model, SamplingSpec(mode=mode, **CAPS), out)
            play(book, plan, compact_at)
            summary = summaries[model, mode] = book.summary()
            assert summary["closed"] == len(plan)
            kept = list(book.entries)
            assert len(kept) == summary["kept"]
            by_scenario = Counter(e.scenario for e in kept)
            cap = CAPS["keep_failed"] + CAPS["keep_succeeded"]
            if mode == "aggregated":
                assert all(n <= cap for n in by_scenario.values())
            if mode == "full":
                assert kept == []
                read = list(read_ledger(out))
                assert summary["written"] == len(read) == len(plan)
                # In the order they were folded: by compaction, then the rest at the end.
                assert sorted(r["task_id"] for r in read) == sorted(
                    f"{p.user}-t{i}" for i, p in enumerate(plan)
                )
    first = summaries["sparse", "aggregated"]["scenarios"]
    for key, summary in summaries.items():
        assert summary["scenarios"] == first, key
    assert comparable(first) == expected(plan)


def test_aggregated_keeps_the_newest_failures_and_a_bounded_sample_of_successes() -> None:
    book = open_workbook(SPEC, "sparse", SamplingSpec(keep_failed=5, keep_succeeded=10))
    for i in range(300):
        entry = book.open("u1", f"t{i}", "alpha")
        close = "closing.error" if i % 3 == 0 else "closing.success"
        book.transition(entry, "initiating.idle", close, float(i), "close")
        if i % 50 == 49:
            book.compact()
    book.finish()
    failed = [e.task_id for e in book.entries if book.get(e, "timeline.phase") != "closing.success"]
    assert failed == [f"t{i}" for i in range(285, 300, 3)]
    succeeded = [e for e in book.entries if book.get(e, "timeline.phase") == "closing.success"]
    assert len(succeeded) == 10
    # A reservoir, not the first ten: later successes were admitted.
    assert max(int(e.task_id[1:]) for e in succeeded) > 50
    summary = book.summary()
    assert summary["closed"] == 300
    assert summary["dropped"] == 300 - 15
    assert summary["failed_seen"] == 100
    assert summary["failed_kept"] == 5


def test_full_mode_needs_an_output_directory() -> None:
    with pytest.raises(ValueError, match="--out"):
        open_workbook(SPEC, "sparse", SamplingSpec(mode="full"))


def test_a_ledger_read_filters_by_user_task_and_phase(tmp_path: Path) -> None:
    book = open_workbook(SPEC, "sparse", SamplingSpec(mode="full"), tmp_path)
    for i in range(600):
        entry = book.open(f"u{i % 3}", f"u{i % 3}-t{i}", "alpha")
        book.end_action(entry, "probe", "http", 1.0, "ok", 2.5, "success")
        close = "closing.error" if i % 5 == 0 else "closing.success"
        book.transition(entry, "initiating.idle", close, float(i), "close")
        if i % 100 == 0:
            book.compact()
    book.finish()
    everything = list(read_ledger(tmp_path))
    assert len(everything) == 600
    assert everything[7]["execution"]["action_log"] == [
        {"action": "probe", "result": "ok", "duration": 2.5, "owner": "http"}
    ]
    assert {r["user_id"] for r in read_ledger(tmp_path, user="u1")} == {"u1"}
    assert len(list(read_ledger(tmp_path, user="u1"))) == 200
    assert [r["task_id"] for r in read_ledger(tmp_path, task="u2-t5")] == ["u2-t5"]
    errors = list(read_ledger(tmp_path / "ledger", phase="closing.error"))
    assert len(errors) == 120
    assert {r["phase"] for r in errors} == {"closing.error"}
    assert len(list(read_ledger(tmp_path, phase="closing"))) == 600


@settings(max_examples=40, deadline=None)
@given(plan=passes)
def test_totals_folded_by_sequence_equal_totals_folded_name_by_name(plan: list[Pass]) -> None:
    """Past the cap on distinct sequences entries fold name by name: the same totals."""
    out = []
    for cap in (SHAPE_CAP, 1, 0):
        book = open_workbook(SPEC, "sparse", SamplingSpec())
        for p in plan:
            book.retention.scenario(p.scenario).shape_cap = cap
        play(book, plan, [])
        out.append(book.summary()["scenarios"])
    assert out[0] == out[1] == out[2]
