"""What a closed entry leaves behind: exact aggregates, and whether it stays whole.

Every closed entry is folded once into per-scenario totals (outcomes, counters, milestones,
phase durations, error codes) and per-action totals (count, results, duration); then the
sampling mode (`progress.sampling`, `dsl.plan.SamplingSpec`) decides whether the entry is kept:

- `aggregated`: the newest `keep_failed` entries that did not close in `closing.success`, and a
  reservoir sample (algorithm R, seeded: a run is reproducible) of `keep_succeeded` successful
  ones, per scenario; an entry pushed out is dropped.
- `sampled`: the same, and every `every`-th closed entry of a scenario, kept for the run.
- `full`: none in memory; the model streams every closed entry to the on-disk ledger.

The totals depend only on what the entries hold, never on which are kept, so they are the same
in every mode. Durations are summed as whole microseconds (ints): exact whatever the order of
folding. The number of distinct names per table is capped (`NAME_CAP`) so that a run writing
fresh names (error codes, phases) cannot grow them without bound; the excess goes to "(other)".
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any, Final, final

from wbsrun.dsl.plan import SamplingSpec

__all__ = ["NAME_CAP", "OTHER", "SUCCESS", "Retention", "ScenarioTotals"]

SUCCESS: Final = "closing.success"
NAME_CAP: Final = 256
OTHER: Final = "(other)"
# Reservoir choices come from a seeded generator: the same run keeps the same entries.
_SEED: Final = 0x5EED


def _bump(table: dict[str, int], name: str, by: int = 1) -> None:
    if name not in table and len(table) >= NAME_CAP:
        name = OTHER
    table[name] = table.get(name, 0) + by


def _us(seconds: float) -> int:
    # Half away from zero; int(float) is a native conversion when compiled (round() is not).
    return int(seconds * 1e6 + 0.5) if seconds >= 0.0 else -int(0.5 - seconds * 1e6)


@final
class ActionTotals:
    """One action node's records across the closed entries of a scenario."""

    __slots__ = ("count", "duration_us", "results")

    def __init__(self) -> None:
        self.count = 0
        self.duration_us = 0
        self.results: dict[str, int] = {}

    def copy(self) -> ActionTotals:
        out = ActionTotals()
        out.count, out.duration_us, out.results = self.count, self.duration_us, dict(self.results)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "results": dict(sorted(self.results.items())),
            "duration_ms": self.duration_us / 1000.0,
        }


# Distinct shapes (phase sequences, action sequences, milestone sets) folded per scenario
# before further entries are folded name by name.
SHAPE_CAP: Final = 1024


@final
class _Shape:
    """Entries with one sequence of names: how many, and Σ whole µs at each position."""

    __slots__ = ("count", "spent")

    def __init__(self, n: int) -> None:
        self.count = 0
        self.spent = [0] * n


def _trace_spans(trace: list[Any]) -> list[int] | None:
    """The µs from each transition to the next (flat trace, 4 items a transition); None when
    the times are not numbers (a fake clock's)."""
    n = len(trace) // 4
    out = [0] * max(0, n - 1)
    try:
        prev = float(trace[2])
        for j in range(n - 1):
            at = float(trace[4 * j + 6])
            out[j] = _us(at - prev)
            prev = at
    except (TypeError, ValueError, IndexError):
        return None
    return out


def _log_spans(log: list[Any]) -> list[int] | None:
    """Each action record's duration (ms) in whole µs; None when one is not a number."""
    n = len(log) // 4
    out = [0] * n
    try:
        for j in range(n):
            out[j] = _us(float(log[4 * j + 2]) / 1000.0)
    except (TypeError, ValueError):
        return None
    return out


@final
class ScenarioTotals:
    """The exact aggregates of one scenario's closed entries.

    Most entries of a scenario repeat a few sequences (of phases, of actions and results, of
    milestones): an entry is folded by its sequence, a dict look-up and a sum of durations
    position by position, all in C-level slices and maps; the per-name tables are built from
    the sequences when read. Past `SHAPE_CAP` distinct sequences, entries fold name by name."""

    __slots__ = (
        "_logs",
        "_marks",
        "_traces",
        "actions",
        "closed",
        "counters",
        "errors",
        "milestones",
        "outcomes",
        "phase_time_us",
        "phases",
        "shape_cap",
    )

    def __init__(self) -> None:
        self.closed = 0
        self.outcomes: dict[str, int] = {}
        # success, failure, timeout, workload_units: each entry's own value (or its default)
        self.counters: dict[str, Any] = {}
        # The last error code of every entry that did not succeed.
        self.errors: dict[str, int] = {}
        self._traces: dict[tuple[Any, ...], _Shape] = {}
        self._logs: dict[tuple[Any, ...], _Shape] = {}
        self._marks: dict[tuple[str, ...], int] = {}
        # Folded name by name (past the shape cap): phase → times entered, µs spent; milestone
        # → entries; action → totals.
        self.phases: dict[str, int] = {}
        self.phase_time_us: dict[str, int] = {}
        self.milestones: dict[str, int] = {}
        self.actions: dict[str, ActionTotals] = {}
        self.shape_cap = SHAPE_CAP

    def fold(
        self,
        phase: str,
        counters: tuple[Any, Any, Any, Any],
        log: list[Any] | None,
        milestones: list[str] | None,
        trace: list[Any],
        error: Any,
    ) -> None:
        """One closed entry: its final phase, counters (success, failure, timeout, units), its
        action log and trace flat (4 items a record), milestones reached, last error code."""
        self.closed += 1
        outcomes = self.outcomes
        if phase in outcomes or len(outcomes) < NAME_CAP:
            outcomes[phase] = outcomes.get(phase, 0) + 1
        else:
            _bump(outcomes, phase)
        table = self.counters
        ok, failed, timed_out, units = counters
        if type(ok) is int or type(ok) is float:
            table["success"] = table.get("success", 0) + ok
        if type(failed) is int or type(failed) is float:
            table["failure"] = table.get("failure", 0) + failed
        if type(timed_out) is int or type(timed_out) is float:
            table["timeout"] = table.get("timeout", 0) + timed_out
        if type(units) is int or type(units) is float:
            table["workload_units"] = table.get("workload_units", 0) + units
        if milestones:
            key = tuple(milestones)
            marks = self._marks
            if key in marks or len(marks) < self.shape_cap:
                marks[key] = marks.get(key, 0) + 1
            else:
                for name in dict.fromkeys(milestones):
                    _bump(self.milestones, name)
        if log:
            self._fold_log(log)
        if trace:
            self._fold_trace(trace)
        if phase != SUCCESS and error is not None:
            _bump(self.errors, str(error))

    def _fold_log(self, log: list[Any]) -> None:
        key = (*log[0::4], *log[1::4])
        shapes = self._logs
        shape = shapes.get(key)
        spans = _log_spans(log)
        if shape is not None and spans is not None:
            spent = shape.spent
            for j in range(len(spent)):
                spent[j] += spans[j]
            shape.count += 1
            return
        if shape is None and spans is not None and len(shapes) < self.shape_cap:
            shape = shapes[key] = _Shape(0)
            shape.spent = spans
            shape.count = 1
            return
        half = len(key) // 2
        for i in range(half):
            _fold_action(self.actions, str(key[i]), str(key[half + i]), spans[i] if spans else 0)

    def _fold_trace(self, trace: list[Any]) -> None:
        names = tuple(trace[1::4])
        shapes = self._traces
        shape = shapes.get(names)
        spans = _trace_spans(trace)
        if shape is not None:
            if spans is not None:  # times that are not numbers (a fake clock) add no duration
                spent = shape.spent
                for j in range(len(spent)):
                    spent[j] += spans[j]
            shape.count += 1
            return
        if len(shapes) < self.shape_cap:
            shape = shapes[names] = _Shape(0)
            shape.spent = spans if spans is not None else [0] * max(0, len(names) - 1)
            shape.count = 1
            return
        for i, name in enumerate(names):
            _bump(self.phases, str(name))
            if spans is not None and i < len(spans):
                # The phase lasted until the next transition (the last phase has no end).
                _bump(self.phase_time_us, str(name), spans[i])

    def expanded(self) -> tuple[dict[str, int], dict[str, int], dict[str, int], dict[str, Any]]:
        """(phases entered, µs per phase, milestones, actions) over every entry folded."""
        phases, spent = dict(self.phases), dict(self.phase_time_us)
        for names, shape in self._traces.items():
            for i, name in enumerate(names):
                _bump(phases, str(name), shape.count)
                if i < len(shape.spent):
                    _bump(spent, str(name), shape.spent[i])
        marks = dict(self.milestones)
        for key, n in self._marks.items():
            for name in dict.fromkeys(key):
                _bump(marks, str(name), n)
        actions = {name: a.copy() for name, a in self.actions.items()}
        for key, shape in self._logs.items():
            half = len(key) // 2
            for i in range(half):
                _fold_action(actions, str(key[i]), str(key[half + i]), shape.spent[i], shape.count)
        return phases, spent, marks, {k: a.to_json() for k, a in sorted(actions.items())}

    def to_json(self) -> dict[str, Any]:
        phases, spent, marks, actions = self.expanded()
        return {
            "closed": self.closed,
            "outcomes": dict(sorted(self.outcomes.items())),
            "counters": dict(self.counters),
            "milestones": dict(sorted(marks.items())),
            "phases": {
                name: {"entered": n, "seconds": spent.get(name, 0) / 1e6}
                for name, n in sorted(phases.items())
            },
            "errors": dict(sorted(self.errors.items())),
            "actions": actions,
        }


def _fold_action(
    actions: dict[str, ActionTotals], name: str, result: str, spent_us: int, n: int = 1
) -> None:
    found = actions.get(name)
    if found is None:
        if len(actions) >= NAME_CAP:
            name = OTHER
            found = actions.get(name)
        if found is None:
            found = actions[name] = ActionTotals()
    found.count += n
    _bump(found.results, result, n)
    found.duration_us += spent_us


@final
class _Kept:
    """One scenario's kept entries."""

    __slots__ = ("closed", "failed", "failed_seen", "reservoir", "sampled", "succeeded_seen")

    def __init__(self, keep_failed: int) -> None:
        self.closed = 0
        self.failed_seen = 0
        self.succeeded_seen = 0
        self.failed: deque[object] = deque(maxlen=keep_failed)
        self.reservoir: list[object] = []
        self.sampled = 0


@final
class Retention:
    """Totals per scenario and the keep/drop decision for each closed entry (either model's
    entries: they are only held, never read here)."""

    def __init__(self, spec: SamplingSpec) -> None:
        self.spec = spec
        self.mode = spec.mode
        self.totals: dict[str, ScenarioTotals] = {}
        self._kept: dict[str, _Kept] = {}
        self._rng = random.Random(_SEED)
        # Entries pushed out of a cap by the last `admit`: the model forgets them.
        self.evicted: list[object] = []
        self.dropped = 0
        self.written = 0

    def scenario(self, name: str) -> ScenarioTotals:
        found = self.totals.get(name)
        if found is None:
            found = self.totals[name] = ScenarioTotals()
        return found

    def admit(self, entry: object, scenario: str, success: bool) -> bool:
        """Whether `entry` (folded already) stays in memory; entries it pushes out of a cap go
        to `evicted` (and count as dropped)."""
        kept = self._kept.get(scenario)
        spec = self.spec
        if kept is None:
            kept = self._kept[scenario] = _Kept(spec.keep_failed)
        kept.closed += 1
        mode = self.mode
        if mode == "full":
            return False
        if mode == "sampled" and kept.closed % spec.every == 0:
            kept.sampled += 1
            return True
        if not success:
            kept.failed_seen += 1
            failed = kept.failed
            if failed.maxlen == 0:
                self.dropped += 1
                return False
            if len(failed) == failed.maxlen:
                self.evicted.append(failed.popleft())
                self.dropped += 1
            failed.append(entry)
            return True
        kept.succeeded_seen += 1
        reservoir = kept.reservoir
        cap = spec.keep_succeeded
        if len(reservoir) < cap:
            reservoir.append(entry)
            return True
        # Algorithm R: the i-th success replaces a random kept one with probability cap / i.
        j = int(self._rng.random() * kept.succeeded_seen)
        self.dropped += 1
        if j < cap:
            self.evicted.append(reservoir[j])
            reservoir[j] = entry
            return True
        return False

    def figures(self) -> dict[str, Any]:
        kept = self._kept.values()
        closed = sum(k.closed for k in kept)
        failed_kept = sum(len(k.failed) for k in kept)
        succeeded_kept = sum(len(k.reservoir) for k in kept)
        sampled = sum(k.sampled for k in kept)
        return {
            "mode": self.mode,
            "closed": closed,
            "kept": failed_kept + succeeded_kept + sampled,
            "dropped": self.dropped,
            "failed_seen": sum(k.failed_seen for k in kept),
            "failed_kept": failed_kept,
            "succeeded_kept": succeeded_kept,
            "sampled_kept": sampled,
            "written": self.written,
            "caps": {
                "keep_failed": self.spec.keep_failed,
                "keep_succeeded": self.spec.keep_succeeded,
                "every": self.spec.every if self.mode == "sampled" else None,
            },
        }

    def totals_json(self) -> dict[str, Any]:
        return {name: t.to_json() for name, t in sorted(self.totals.items())}


def generic_fold(book: Any, entry: Any, totals: ScenarioTotals, phase: str) -> None:
    """Fold `entry` reading it through the `Ledger` interface (the plain model, and the sparse
    model's entries whose composites a cold write moved out of their slots)."""
    counters = book.get(entry, "telemetry.counters")
    if not isinstance(counters, dict):
        counters = dict(counters) if hasattr(counters, "items") else {}
    log: list[Any] = []
    for record in book.get(entry, "execution.action_log") or ():
        if isinstance(record, dict):
            log.extend(record.get(key) for key in ("action", "result", "duration", "owner"))
    achieved = book.get(entry, "telemetry.milestones.achieved")
    trace: list[Any] = []
    for item in entry.trace:
        trace.extend(item)
    error = book.get(entry, "execution.evidence.last_event") if phase != SUCCESS else None
    totals.fold(
        phase,
        (
            counters.get("success"),
            counters.get("failure"),
            counters.get("timeout"),
            counters.get("workload_units"),
        ),
        log,
        [str(m) for m in achieved] if isinstance(achieved, list | tuple) else None,
        trace,
        error,
    )
