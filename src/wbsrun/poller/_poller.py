"""The poller: turns bus events into progress checks (phase, health, timeout), queued by
`progress.poller.priorities` and run by weight without starving any class. It never scans the
workbook: it reads and writes only the entry of the event it is checking."""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, final

from wbsrun.core.bus import FIELD_CLOSED, EndOfStream, ProgressBus, ProgressEvent, Subscription
from wbsrun.core.ledger import Ledger
from wbsrun.core.stats import Histogram, round_to
from wbsrun.dsl.plan import HealthThreshold, Plan
from wbsrun.poller._health import counts_rate, next_flag, rated_health, task_health
from wbsrun.poller._queue import CheckClass, StrideQueue

__all__ = ["CHECK_KINDS", "Book", "Poller", "PollerGauges", "PollerStatistics", "Priority"]

# One `progress.poller.priorities` entry as the plan holds it: (name, match, weight).
Priority = tuple[str, Mapping[str, tuple[str, ...]], float]


# What the poller needs of the run's workbook, either model (dense `Workbook`, sparse
# `SparseWorkbook`): path reads and cold writes on one entry, `error_counts`, `compact`. The
# compiled base both subclass, so that these calls are native (see core/ledger/_base.Ledger).
Book = Ledger[Any]


PHASE: Final = 1
HEALTH: Final = 2
TIMEOUT: Final = 4
CLOSE: Final = 8
CHECK_KINDS: Final = {"phase": PHASE, "health": HEALTH, "timeout": TIMEOUT, "close": CLOSE}
# Fields whose change moves a health input (progress, error rate, deviation at close).
_HEALTH_FIELDS: Final = frozenset({"progress", "milestone", "error", "rollback", "closed"})
_PHASE_PATHS: Final = frozenset({"timeline.phase"})
# Closed task ids remembered so that a late update does not reopen a record (bounded memory).
REMEMBER_CLOSED: Final = 4096
# Phases in which a passed deadline is being handled by the executor already.
_TIMEOUT_HANDLED: Final = ("monitoring.timeout", "closing")
# A tuple, not `int | float`: the union is built anew at every evaluation.
_NUMBER: Final = (int, float)
# Deadlines are kept in buckets of 1/_BUCKETS_PER_S seconds (wall clock). Registering one is
# an append; nearly every pass closes long before its deadline, and its entry is dropped in
# passing when the bucket comes due. A heap cost a push and a pop per pass over all the
# passes started within one timeout (~12,000 at 1,000 users and a 5 s timeout).
_BUCKETS_PER_S: Final = 4.0


def _kinds(dirty: frozenset[str]) -> int:
    """The checks a set of dirty fields asks for (HEALTH only where a rule exists)."""
    kinds = PHASE if not _PHASE_PATHS.isdisjoint(dirty) else 0
    if not _HEALTH_FIELDS.isdisjoint(dirty):
        kinds |= HEALTH
    if FIELD_CLOSED in dirty:
        kinds |= CLOSE
    return kinds or PHASE


# The queued check of one task: [latest event, kinds to check, oldest publish time (None for
# a deadline check), class index]. A list rather than an object: one is built per task and
# poller turn, and a list costs a fraction of an object whose __init__ runs in Python; the
# hot paths index it with literals 0..3.
_Check = list[Any]


@final
class _Live:
    """What the poller keeps per running task (dropped at its close check)."""

    __slots__ = ("check", "deadline", "entry", "event", "score", "window")

    def __init__(self, event: ProgressEvent, entry: object | None) -> None:
        self.event = event
        self.entry = entry
        self.deadline: float | None = None
        self.check: _Check | None = None
        # (start_at, timeout_at) once both are known; the last score written.
        self.window: tuple[float, float] | None = None
        self.score: float | None = None


@dataclass(frozen=True, slots=True)
class PollerStatistics:
    events: int
    checks: Mapping[str, int]
    served: Mapping[str, int]
    latency_ms: Mapping[str, float]
    queue_max: int
    live: int
    breaches: int
    identified: int
    escalations: int
    deadlines_passed: int
    overdue: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "checks": dict(self.checks),
            "served": dict(self.served),
            "latency_ms": dict(self.latency_ms),
            "queue_max": self.queue_max,
            "live": self.live,
            "breaches": self.breaches,
            "identified": self.identified,
            "escalations": self.escalations,
            "deadlines_passed": self.deadlines_passed,
            "overdue": self.overdue,
        }


@dataclass(frozen=True, slots=True)
class PollerGauges:
    """`queue`: checks waiting to run; `inbox`: bus events delivered, not yet taken in."""

    queue: int
    inbox: int


@final
class Poller:
    """`Service`: subscribes to the bus at construction, runs checks in `serve()`. `bind()`
    the run's workbook before the run starts (the runner creates it)."""

    def __init__(
        self,
        bus: ProgressBus,
        *,
        priorities: Iterable[Priority] = (),
        health: Mapping[str, HealthThreshold] | None = None,
        aliases: Mapping[str, str] | None = None,
        workbook: Book | None = None,
        # Checks per turn of the loop: with 1,000 users a turn takes ~20 ms, so 256 a turn
        # (~13k checks/s) fell behind the reference's ~10k events/s (p99 0.6 s, bench/stress.py);
        # 1,024 costs one ~5 ms stall a turn.
        slice_size: int = 1024,
        tick: float = 0.05,
        timeout_grace: float | None = None,
        wall: Callable[[], float] = time.time,
        bound: int = 100_000,
    ) -> None:
        """`priorities`: `progress.poller.priorities` as (name, match, weight); `health`:
        scenario name → its `health_threshold`; `aliases`: the workbook's `expose` table."""
        self._bus = bus
        self._clock = bus.clock
        self._wall = wall
        self._book = workbook
        # Workbook entries whose close check ran this turn: packed at the end of the turn,
        # while the check has them in cache (the runner's own compaction would take them
        # ~0.5 s later, cold: ~8-10 µs an entry).
        self._done: list[Any] = []
        self._aliases: Mapping[str, str] = aliases or {}
        self.slice_size = slice_size
        # Shortest time between two wake-ups: bounds the poller's own cost whatever the event
        # rate, and adds at most this much to the publish → check latency.
        self.tick = tick
        # A deadline is checked this long after it passed: the executor's own timeout fires
        # at the deadline, and its phase change is flushed at once (high priority).
        self.timeout_grace = (
            timeout_grace if timeout_grace is not None else max(0.25, 2 * bus.flush_interval)
        )
        self._rules: dict[str, HealthThreshold] = dict(health or {})
        self._classes = self._build_classes(priorities)
        self._default = next(
            (i for i, c in enumerate(self._classes) if not c.match), len(self._classes) - 1
        )
        self._weights = [c.weight for c in self._classes]
        self._queue = StrideQueue(self._weights)
        phase_only = all(
            self._aliases.get(path, path) in _PHASE_PATHS for c in self._classes for path in c.match
        )
        self._by_phase: dict[str, int] | None = {} if phase_only else None
        self._kinds_of: dict[frozenset[str], int] = {}
        self._served = [0] * len(self._classes)
        self._live: dict[str, _Live] = {}
        # Recently closed task ids (bounded): late updates are ignored. A ring and a set: a dict
        # trimmed from its front with next(iter()) scans the deleted slots, ~1.6 µs a close.
        self._closed: set[str] = set()
        self._closed_ring: deque[str] = deque()
        # Bucket b holds (deadline, task id) with floor(deadline × _BUCKETS_PER_S) == b; the
        # heap orders the bucket numbers.
        self._buckets: dict[int, list[tuple[float, str]]] = {}
        self._bucket_heap: list[int] = []
        self._streak: dict[str, int] = {}
        self._latency = Histogram()
        self._events = 0
        # Checks run, by kind (`statistics()` names them as CHECK_KINDS does).
        self._n_phase = self._n_health = self._n_timeout = self._n_close = 0
        self._queue_max = 0
        self._breaches = 0
        self._identified = 0
        self._escalations = 0
        self._deadlines_passed = 0
        self._overdue = 0
        self._risk_seq = 0
        self._sub: Subscription = bus.subscribe(None, bound=bound)

    @classmethod
    def for_plan(cls, bus: ProgressBus, plan: Plan, workbook: Book | None = None) -> Poller:
        """The poller a plan asks for: its priorities, health thresholds and aliases."""
        return cls(
            bus,
            priorities=plan.progress.poller_priorities,
            health={s.name: s.health_threshold for s in plan.scenarios if s.health_threshold},
            aliases=plan.workbook.expose,
            workbook=workbook,
        )

    @staticmethod
    def _build_classes(priorities: Iterable[Priority]) -> list[CheckClass]:
        classes = [
            CheckClass(name or f"class-{i}", match, w)
            for i, (name, match, w) in enumerate(priorities)
        ]
        if not any(not c.match for c in classes):
            # Checks nothing matches still need a class: the lowest declared weight.
            weight = min((c.weight for c in classes), default=1.0)
            classes.append(CheckClass("unmatched", {}, weight))
        return classes

    def bind(self, workbook: Book) -> None:
        self._book = workbook

    # -- Service ------------------------------------------------------------------------------
    async def serve(self) -> None:
        """Check what the bus delivers until its stream ends (the bus stopped), then check the
        rest. Wakes at most once per `tick`: events gather meanwhile (one wake-up per flush
        would cost more than the checks), a task's updates merge into one check."""
        sub = self._sub
        try:
            while True:
                # What the bus delivered first: a deadline is judged on the latest state.
                self.ingest(sub.recv_nowait())
                self._due_deadlines()
                self.run_checks(self.slice_size)
                if len(self._queue):
                    await asyncio.sleep(0)  # a slice at a time: the runner keeps the loop
                    continue
                if self.tick > 0:
                    await asyncio.sleep(self.tick)
                if sub.ready():
                    continue
                try:
                    async with asyncio.timeout(self._next_wake()):
                        events = await sub.recv()
                except TimeoutError:
                    continue
                except EndOfStream:
                    break
                self.ingest(events)
        finally:
            # The run is over: check what the bus still holds, synchronously.
            self._bus.flush()
            self.ingest(self._sub.recv_nowait())
            self._due_deadlines()
            self.run_checks(None)

    def _next_wake(self) -> float | None:
        heap, buckets, live = self._bucket_heap, self._buckets, self._live
        while heap:
            b = heap[0]
            # Tasks closed before their deadlines give no reason to wake.
            first = min((d for d in buckets[b] if d[1] in live), default=None)
            if first is not None:
                return max(0.0, first[0] + self.timeout_grace - self._wall())
            heapq.heappop(heap)
            del buckets[b]
        return None

    # -- intake -------------------------------------------------------------------------------
    def ingest(self, events: Iterable[ProgressEvent]) -> None:
        """Queue (or merge into the task's queued check) one check per event."""
        live_of, closed, kinds_of, rules = self._live, self._closed, self._kinds_of, self._rules
        by_phase, weights = self._by_phase, self._weights
        queue = self._queue
        # `_enqueue` written out (with the phase classification): this runs once per event.
        push = queue.push
        n = 0
        ev: ProgressEvent | None = None
        for ev in events:
            n += 1
            tid = ev.task_id
            live = live_of.get(tid)
            if live is None:
                if tid in closed:
                    continue  # a late update of a closed task: nothing left to check
                # The workbook entry of the task (any workbook model's), through the subject.
                live = live_of[tid] = _Live(ev, getattr(ev.subject, "entry", None))
            live.event = ev
            dirty = ev.dirty
            kinds = kinds_of.get(dirty)
            if kinds is None:
                kinds = kinds_of[dirty] = _kinds(dirty)
            if kinds & HEALTH and ev.scenario not in rules:
                kinds &= ~HEALTH
            if by_phase is None:
                cls = self._match(live)
            else:
                # Every `match` reads only the phase: classify each phase once.
                found = by_phase.get(ev.phase)
                if found is None:
                    found = by_phase[ev.phase] = self._match(live)
                cls = found
            published_at = ev.published_at
            check = live.check
            if check is not None:
                check[0] = ev
                check[1] |= kinds
                if check[2] is None or published_at < check[2]:
                    check[2] = published_at
                if weights[cls] <= weights[check[3]]:
                    continue
                # The task moved into a more urgent class (e.g. into monitoring): the queued
                # check is left behind as stale and a merged one joins the urgent queue.
                kinds, published_at = check[1], check[2]
            check = live.check = [ev, kinds, published_at, cls]
            push(cls, check)
        self._events += n
        depth = len(queue)
        if depth > self._queue_max:
            self._queue_max = depth
        if ev is not None and ev.update_id:
            self._sub.ack(ev.update_id)

    def _enqueue(self, live: _Live, kinds: int, published_at: float | None) -> None:
        """`ingest`'s merge for one check not caused by a publish (a deadline): no latency."""
        by_phase = self._by_phase
        if by_phase is not None:
            phase = live.event.phase
            cls = by_phase.get(phase)
            if cls is None:
                cls = by_phase[phase] = self._match(live)
        else:
            cls = self._match(live)
        check = live.check
        if check is not None:
            check[0] = live.event
            check[1] |= kinds
            if published_at is not None and (check[2] is None or published_at < check[2]):
                check[2] = published_at
            if self._weights[cls] <= self._weights[check[3]]:
                return
            kinds, published_at = check[1], check[2]
        check = live.check = [live.event, kinds, published_at, cls]
        queue = self._queue
        queue.push(cls, check)
        depth = len(queue)
        if depth > self._queue_max:
            self._queue_max = depth

    def _match(self, live: _Live) -> int:
        ev, entry, book = live.event, live.entry, self._book

        def read(path: str) -> Any:
            path = self._aliases.get(path, path)
            if path in _PHASE_PATHS:
                return ev.phase
            return book.get(entry, path) if book is not None and entry is not None else None

        for i, cls in enumerate(self._classes):
            if cls.match and cls.matches(read):
                return i
        return self._default

    def class_of(self, ev: ProgressEvent) -> tuple[int, float]:
        """The `priorities` class the poller puts the task of `ev` in, and its weight (the
        progress pollable orders its changes by it). Not on the poller's own path."""
        by_phase = self._by_phase
        if by_phase is not None:
            cls = by_phase.get(ev.phase)
            if cls is None:
                cls = by_phase[ev.phase] = self._match(_Live(ev, None))
        else:
            live = self._live.get(ev.task_id)
            if live is None:
                live = _Live(ev, getattr(ev.subject, "entry", None))
            cls = self._match(_Live(ev, live.entry))
        return cls, self._weights[cls]

    @property
    def class_weights(self) -> list[float]:
        """The weight of every class, in class order (`class_of`'s first number indexes it)."""
        return list(self._weights)

    def _due_deadlines(self) -> None:
        heap = self._bucket_heap
        if not heap:
            return
        now = self._wall() - self.timeout_grace
        scaled = now * _BUCKETS_PER_S
        if scaled < heap[0]:
            return  # the earliest bucket holds nothing due yet (the usual case)
        buckets = self._buckets
        due: list[tuple[float, str]] = []
        while heap and heap[0] <= scaled:
            b = heap[0]
            bucket = buckets[b]
            later = [d for d in bucket if d[0] > now]
            if later:
                due.extend(d for d in bucket if d[0] <= now)
                buckets[b] = later
                break
            due.extend(bucket)
            heapq.heappop(heap)
            del buckets[b]
        # Nearly every pass closed long before its deadline: those are dropped before the
        # sort (a bucket holds ~1,500 at 1,000 users; sorting them all was ~1% of the CPU).
        live_of = self._live
        open_ = [d for d in due if d[1] in live_of]
        # In deadline order (then task id), as a heap of all of them would give them.
        open_.sort()
        for _, task_id in open_:
            live = live_of.get(task_id)
            if live is not None:
                self._enqueue(live, TIMEOUT, None)

    # -- checks -------------------------------------------------------------------------------
    def run_checks(self, limit: int | None = None) -> int:
        """Run up to `limit` queued checks (all when None) in weighted order; how many ran."""
        queue = self._queue
        n = 0
        while len(queue) and (limit is None or n < limit):
            # Taken in the order pop() gives, as many at a time as may run: a check never
            # queues another, and a stale one (see below) does not count, hence the loop.
            n += self._run(queue.pop_many(None if limit is None else limit - n))
        done = self._done
        if done:
            if self._book is not None:
                self._book.compact(done)
            done.clear()
        return n

    def _run(self, checks: Sequence[_Check]) -> int:
        live_of, served, book = self._live, self._served, self._book
        clock, record = self._clock, self._latency.record
        ran = 0
        for check in checks:
            ev, kinds, published_at, cls = check
            live = live_of.get(ev.task_id)
            if live is None or live.check is not check:
                continue  # closed meanwhile, or superseded by a check in a more urgent class
            live.check = None
            served[cls] += 1
            if published_at is not None:
                ms = (clock() - published_at) * 1000.0
                record(ms if ms > 0.0 else 0.0)
            if kinds & PHASE:
                self._n_phase += 1
                if live.deadline is None and live.entry is not None and book is not None:
                    self._phase(live, book)
            if kinds & TIMEOUT:
                self._timeout(live)
            if kinds & HEALTH:
                self._health(live, ev)
            if kinds & CLOSE:
                self._n_close += 1
                del live_of[ev.task_id]
                self._forget(ev.task_id)
                if live.entry is not None:
                    self._done.append(live.entry)
            ran += 1
        return ran

    def _forget(self, task_id: str) -> None:
        """Remember `task_id` as closed, forgetting the oldest past REMEMBER_CLOSED."""
        ring = self._closed_ring
        ring.append(task_id)
        self._closed.add(task_id)
        if len(ring) > REMEMBER_CLOSED:
            self._closed.discard(ring.popleft())

    def _phase(self, live: _Live, book: Book) -> None:
        at = book.get(live.entry, "execution.timeout_at")
        if isinstance(at, _NUMBER) and not isinstance(at, bool):
            deadline = live.deadline = float(at)
            if not math.isfinite(deadline):
                return  # never due
            b = math.floor(deadline * _BUCKETS_PER_S)
            bucket = self._buckets.get(b)
            if bucket is None:
                bucket = self._buckets[b] = []
                heapq.heappush(self._bucket_heap, b)
            bucket.append((deadline, live.event.task_id))

    def _timeout(self, live: _Live) -> None:
        """A deadline passed while the task was still open: the executor should have moved
        it to monitoring.timeout (or closed it); if not, it is overdue."""
        self._n_timeout += 1
        self._deadlines_passed += 1
        ev = live.event
        if ev.closed or ev.phase.startswith(_TIMEOUT_HANDLED):
            return
        self._overdue += 1
        rule = self._rules.get(ev.scenario)
        if rule is not None:
            self._breach(live, ev, rule, 0.0, f"{ev.phase}: past timeout_at")
        elif live.entry is not None and self._book is not None:
            self._book.append(
                live.entry,
                "registers.issue.entries",
                {
                    "id": f"overdue-{ev.task_id}",
                    "description": f"still {ev.phase} after timeout_at",
                    "owner": "poller",
                    "status": "open",
                },
            )

    def _health(self, live: _Live, ev: ProgressEvent) -> None:
        self._n_health += 1
        rule = self._rules[ev.scenario]
        entry, book = live.entry, self._book
        if entry is None or book is None:
            return
        has_error = ev.error_class is not None
        # The sparse ledger hands the three counters the rate needs without building the
        # `telemetry.counters` dict (None: read it as any workbook does).
        counts = book.error_counts(entry)
        if counts is None:
            rate = -1.0
            counters = book.get(entry, "telemetry.counters")
        else:
            rate = counts_rate(counts[0], counts[1], counts[2], has_error)
            counters = None
        closed = FIELD_CLOSED in ev.dirty
        window = live.window
        if window is None and not closed:
            start = book.get(entry, "timeline.start_at")
            end = book.get(entry, "execution.timeout_at")
            if isinstance(start, _NUMBER) and isinstance(end, _NUMBER):
                window = live.window = (float(start), float(end))  # both set once per pass
        # Only a running task with a window needs the clock.
        now, start_at, end_at = (
            (0.0, None, None) if closed or window is None else (self._wall(), window[0], window[1])
        )
        if rate < 0.0:
            health = task_health(ev.progress, counters, has_error, closed, now, start_at, end_at)
        else:
            health = rated_health(ev.progress, rate, closed, now, start_at, end_at)
        score = round_to(health, 4)
        if score != live.score:
            live.score = score
            book.set(entry, rule.telemetry_field, score)
        if not closed:
            return  # a running task's score is live; its final score decides a breach
        if score < rule.min_score:
            self._breach(live, ev, rule, score, f"health {score} < {rule.min_score}")
        else:
            self._streak[ev.scenario] = 0

    def _breach(
        self, live: _Live, ev: ProgressEvent, rule: HealthThreshold, score: float, why: str
    ) -> None:
        self._breaches += 1
        streak = self._streak[ev.scenario] = self._streak.get(ev.scenario, 0) + 1
        entry, book = live.entry, self._book
        if entry is None or book is None:
            return
        current = book.get(entry, "registers.risk.flag", "none")
        flag = next_flag(current, streak, rule.consecutive_breach)
        if flag == current:
            return
        book.set(entry, "registers.risk.flag", flag)
        if flag == "identified":
            self._identified += 1
            return
        self._escalations += 1
        self._risk_seq += 1
        book.append(
            entry,
            "registers.risk.entries",
            {
                "id": f"health-{self._risk_seq}",
                "severity": "high",
                "response_plan": f"investigate {ev.scenario}: {why}",
                "owner": "poller",
                "status": "open",
                "score": score,
                "streak": streak,
            },
        )

    # -- statistics ---------------------------------------------------------------------------
    def gauges(self) -> PollerGauges:
        """What is queued now, for a metrics scrape."""
        inbox = self._sub.statistics()
        return PollerGauges(len(self._queue), inbox.queued + inbox.backlog)

    def statistics(self) -> PollerStatistics:
        h = self._latency
        return PollerStatistics(
            events=self._events,
            checks={
                "phase": self._n_phase,
                "health": self._n_health,
                "timeout": self._n_timeout,
                "close": self._n_close,
            },
            served={c.name: n for c, n in zip(self._classes, self._served, strict=True)},
            latency_ms={
                "p50": round(h.quantile(0.50), 3),
                "p99": round(h.quantile(0.99), 3),
                "max": round(h.max, 3),
                "count": h.count,
            },
            queue_max=self._queue_max,
            live=len(self._live),
            breaches=self._breaches,
            identified=self._identified,
            escalations=self._escalations,
            deadlines_passed=self._deadlines_passed,
            overdue=self._overdue,
        )
