"""No nested mutable aliasing (issue 22 item 6): every path a value takes into or out of a
workbook entry hands over a version of its own. A value written in, then changed by the writer,
does not change the entry; a value read out (the expression view, exports, sections,
snapshots, events), then changed by the reader or left lying while the entry moves on, neither
changes the entry nor moves with it; two entries never share a container; restoring a snapshot
twice gives the same state. Both workbook models, every alias path, one test each."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from wbsrun.core.bus import ProgressBus
from wbsrun.core.ledger import Ledger, open_workbook
from wbsrun.core.ledger.dense import WorkbookView
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import Plan, ProgressSpec
from wbsrun.protocols.registry import provides

EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "examples" / "http_tri_phase"
MODELS = ["dense", "sparse"]

Book = Ledger[Any]


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan(EXAMPLE, provides())


def _opened(plan: Plan, model: str) -> tuple[Book, Any, Any]:
    book = open_workbook(plan.workbook, "dense" if model == "dense" else "sparse")
    a, b = book.open("u1", "t1", "sc"), book.open("u2", "t2", "sc")
    for entry in (a, b):
        book.transition(entry, "initiating.idle", "executing.running_action", 1.0, "go")
        book.end_action(entry, "probe-get", "http", 1.0, "ok", 1.5, "success")
        book.reach_milestone(entry, "probe")
        book.set(entry, "execution.evidence.reason", "stable")
    return book, a, b


def _scribble(value: Any) -> bool:
    """Change a container read out of the workbook in place; False when it cannot be changed
    (a read-only version is isolation too)."""
    try:
        if isinstance(value, dict):
            value["scribbled"] = True
            for v in list(value.values()):
                _scribble(v)
            return True
        if isinstance(value, list):
            value.append("scribbled")
            for v in list(value):
                _scribble(v)
            return True
    except TypeError:
        return False
    return False


def _both(book: Book, a: Any, b: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return copy.deepcopy(book.export(a)), copy.deepcopy(book.export(b))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    "path", ["execution.evidence", "telemetry.counters", "registers.risk", "extra.notes"]
)
def test_a_container_written_in_is_the_entrys_own_version(
    plan: Plan, model: str, path: str
) -> None:
    book, a, b = _opened(plan, model)
    given = {"reason": "given", "detail": {"items": [1, 2]}}
    book.set(a, path, given)
    book.set(b, path, given)  # the same object into two entries
    before = _both(book, a, b)
    given["reason"] = "changed by the writer afterwards"
    given["detail"]["items"].append(3)  # type: ignore[index]
    assert _both(book, a, b) == before
    # A write through one entry's own handles never reaches the other entry or the writer's.
    book.list_at(a, f"{path}.detail.items").append(4)
    book.mutable(a, path.split(".")[0] + "." + path.split(".")[1], dict)["more"] = 1
    assert book.get(b, f"{path}.detail.items") == [1, 2]
    assert "more" not in book.export(b)[path.split(".")[0]].get(path.split(".")[1], {})
    assert given["detail"]["items"] == [1, 2, 3]  # type: ignore[index]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("alias", ["metrics", "evidence", "action_log", "transition_trace"])
def test_a_value_the_expression_view_reads_is_a_version_that_never_moves(
    plan: Plan, model: str, alias: str
) -> None:
    assert alias in plan.workbook.expose
    book, a, b = _opened(plan, model)
    read = WorkbookView(book, a)[alias]
    held = copy.deepcopy(read)
    before = _both(book, a, b)
    _scribble(read)  # a template that got hold of it (save-as, update-workbook, a plugin)
    assert _both(book, a, b) == before
    read = WorkbookView(book, a)[alias]
    # The entry moves on: what was read stays as it was when read.
    book.end_action(a, "push-post", "http", 2.0, "http-5xx", 3.0, "failure")
    book.set(a, "execution.evidence.reason", "failed")
    book.transition(a, "executing.running_action", "closing.error", 3.0, "fail")
    assert _plain(read) == _plain(held)
    assert _plain(WorkbookView(book, a)[alias]) != _plain(held)  # the entry did move


@pytest.mark.parametrize("model", MODELS)
def test_a_section_read_through_the_expression_view_is_a_version_too(
    plan: Plan, model: str
) -> None:
    book, a, b = _opened(plan, model)
    counters = WorkbookView(book, a)["telemetry"]["counters"]
    held = copy.deepcopy(counters)
    before = _both(book, a, b)
    _scribble(counters)
    assert _both(book, a, b) == before
    counters = WorkbookView(book, a)["telemetry"]["counters"]
    book.end_action(a, "push-post", "http", 2.0, "http-5xx", 3.0, "failure")
    assert _plain(counters) == _plain(held)


def _plain(value: Any) -> Any:
    """A value as JSON would show it, without what `_scribble` added."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items() if k != "scribbled"}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value if v != "scribbled"]
    return value


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("section", ["timeline", "execution", "telemetry", "registers"])
def test_a_section_or_export_read_out_is_a_copy(plan: Plan, model: str, section: str) -> None:
    book, a, b = _opened(plan, model)
    before = _both(book, a, b)
    _scribble(book.section(a, section))
    _scribble(book.export(a))
    assert _both(book, a, b) == before


@pytest.mark.parametrize("model", MODELS)
def test_a_snapshot_is_one_version_whatever_happens_to_the_entry_or_to_what_it_gave(
    plan: Plan, model: str
) -> None:
    book, a, b = _opened(plan, model)
    snap = book.snapshot(a)
    taken = copy.deepcopy(dict(snap))
    _scribble(snap["execution"])  # a reader of the snapshot
    _scribble(dict(snap.variables))
    book.end_action(a, "push-post", "http", 2.0, "http-5xx", 3.0, "failure")
    book.append(a, "execution.action_log", {"action": "extra"})
    book.mutable(a, "telemetry.counters", dict)["failure"] = 99
    assert copy.deepcopy(dict(snap)) == taken
    # Restored twice, with writes between: the second restore finds the snapshot unchanged.
    book.restore(a, snap)
    first = copy.deepcopy(book.export(a))
    book.mutable(a, "telemetry.counters", dict)["success"] = 42
    book.list_at(a, "execution.action_log").append({"action": "after-restore"})
    book.restore(a, snap)
    assert book.export(a) == first
    assert copy.deepcopy(dict(snap)) == taken
    assert book.export(b)["telemetry"]["counters"]["failure"] == 0


@pytest.mark.parametrize("model", MODELS)
def test_two_entries_never_share_a_container_written_through_their_handles(
    plan: Plan, model: str
) -> None:
    book, a, b = _opened(plan, model)
    for key in ("execution.action_log", "telemetry.counters", "registers.risk"):
        kind: Any = list if key.endswith("log") else dict
        mine = book.mutable(a, key, kind)
        theirs = book.mutable(b, key, kind)
        assert mine is not theirs
    before_b = copy.deepcopy(book.export(b))
    book.append(a, "registers.risk.entries", {"risk": "a only"})
    book.list_at(a, "telemetry.milestones.achieved").append("a-only")
    assert book.export(b) == before_b


def test_a_progress_event_is_the_version_its_flush_read() -> None:
    """The bus materialises an event from the live task at its flush; what it carries
    (phase, progress, milestones) stays as flushed while the task moves on."""

    class Subject:
        def __init__(self) -> None:
            self.task_id, self.user_id, self.scenario_name = "t1", "u1", "sc"
            self.phase, self.progress = "executing.running_action", 0.25
            self.milestones: frozenset[str] = frozenset({"probe"})
            self.error_class: str | None = None

    async def go() -> None:
        bus = ProgressBus(ProgressSpec())
        sub = bus.subscribe(None)
        subject = Subject()
        bus.publish(subject, "progress", 0.5)
        bus.flush()
        (event,) = sub.recv_nowait()
        subject.phase, subject.progress = "closing.success", 1.0
        subject.milestones = subject.milestones | {"push"}
        assert (event.phase, event.progress, event.milestones) == (
            "executing.running_action",
            0.25,
            frozenset({"probe"}),
        )
        with pytest.raises(AttributeError):
            event.phase = "scribbled"  # type: ignore[misc]

    asyncio.run(go())
