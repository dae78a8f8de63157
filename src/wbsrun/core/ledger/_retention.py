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
    return round(seconds * 1_000_000.0)


@final
class ActionTotals:
    """One action node's records across the closed entries of a scenario."""

    __slots__ = ("count", "duration_us", "results")

    def __init__(self) -> None:
        self.count = 0
        self.duration_us = 0
        self.results: dict[str, int] = {}

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "results": dict(sorted(self.results.items())),
            "duration_ms": self.duration_us / 1000.0,
        }


@final
class ScenarioTotals:
    """The exact aggregates of one scenario's closed entries."""

    __slots__ = (
        "actions",
        "closed",
        "counters",
        "errors",
        "milestones",
        "outcomes",
        "phase_time_us",
        "phases",
    )

    def __init__(self) -> None:
        self.closed = 0
        self.outcomes: dict[str, int] = {}
        # success, failure, timeout, workload_units: each entry's own value (or its default)
        self.counters: dict[str, Any] = {}
        self.milestones: dict[str, int] = {}
        # Phase → times entered; phase → whole microseconds spent (up to the next transition).
        self.phases: dict[str, int] = {}
        self.phase_time_us: dict[str, int] = {}
        # The last error code of every entry that did not succeed.
        self.errors: dict[str, int] = {}
        self.actions: dict[str, ActionTotals] = {}

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
        _bump(self.outcomes, phase)
        table = self.counters
        for name, value in zip(_COUNTER_NAMES, counters, strict=True):
            if type(value) is int or type(value) is float:
                table[name] = table.get(name, 0) + value
        if milestones:
            reached = self.milestones
            for name in dict.fromkeys(milestones):
                _bump(reached, name)
        if log:
            actions = self.actions
            for i in range(0, len(log) - 3, 4):
                name = str(log[i])
                found = actions.get(name)
                if found is None:
                    if len(actions) >= NAME_CAP:
                        name = OTHER
                        found = actions.get(name)
                    if found is None:
                        found = actions[name] = ActionTotals()
                found.count += 1
                _bump(found.results, str(log[i + 1]))
                duration = log[i + 2]
                if type(duration) is float or type(duration) is int:
                    found.duration_us += _us(duration / 1000.0)
        n = len(trace) - 3
        phases, spent = self.phases, self.phase_time_us
        for i in range(0, n, 4):
            name = str(trace[i + 1])
            _bump(phases, name)
            if i + 4 < n:
                # The phase lasted until the next transition (the last phase has no end).
                _bump(spent, name, _us(float(trace[i + 6]) - float(trace[i + 2])))
        if phase != SUCCESS and error is not None:
            _bump(self.errors, str(error))

    def to_json(self) -> dict[str, Any]:
        return {
            "closed": self.closed,
            "outcomes": dict(sorted(self.outcomes.items())),
            "counters": dict(self.counters),
            "milestones": dict(sorted(self.milestones.items())),
            "phases": {
                name: {"entered": n, "seconds": self.phase_time_us.get(name, 0) / 1e6}
                for name, n in sorted(self.phases.items())
            },
            "errors": dict(sorted(self.errors.items())),
            "actions": {name: a.to_json() for name, a in sorted(self.actions.items())},
        }


_COUNTER_NAMES: Final = ("success", "failure", "timeout", "workload_units")


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
