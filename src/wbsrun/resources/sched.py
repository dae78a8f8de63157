"""Scheduling by progress: who gets a freed pool item when several wait (`leasing.scheduling:
priority`; `fcfs`, the default, keeps the pool's own first-come-first-served deque).

A waiter's rank, highest first:
1. starved: a waiter overtaken `MAX_BYPASS` times is served next (the bound on starvation);
2. under its share: each scenario's share of the pool's capacity is re-divided, whenever a
   waiter is chosen, in proportion to priority × predicted demand (an exponential average, over
   `DEMAND_WINDOW_S`, of that scenario's waiting plus holding leases), capped at the demand
   itself (water-filling): a scenario that one more item keeps within its share goes first;
3. effective priority: the scenario's priority (business value × (2 − health), recomputed by
   `SchedulingService`), raised to the highest priority of any waiter that the waiter's own
   task blocks (it holds a lease of a pool they wait for: priority inheritance);
4. arrival order.

Kept out of the compiled pool module: the pool only calls `push` / `best` / `granted` here, and
only in a priority pool, so the default path costs what it did.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = [
    "DEMAND_WINDOW_S",
    "MAX_BYPASS",
    "Scheduling",
    "WaitQueue",
    "Waiter",
    "priority_of",
]

# A waiter is overtaken at most this many times (grants to waiters that came after it).
MAX_BYPASS: Final = 16
# The predicted demand's averaging window (time constant of the exponential average).
DEMAND_WINDOW_S: Final = 5.0


def priority_of(business_value: float, health: float) -> float:
    """`business-value × (2 − health)`: a lagging or failing scenario (health 0) is pushed up
    to twice its value, a healthy one (health 1) keeps it; the value dominates."""
    h = 0.0 if health < 0.0 else 1.0 if health > 1.0 else health
    return business_value * (2.0 - h)


class Waiter:
    __slots__ = ("bypassed", "effective", "fut", "holder", "scenario", "seq", "user_id")

    def __init__(
        self, fut: asyncio.Future[int], user_id: str, holder: str, scenario: str, seq: int
    ) -> None:
        self.fut = fut
        self.user_id = user_id
        self.holder = holder
        self.scenario = scenario
        self.seq = seq
        self.bypassed = 0
        self.effective = 0.0  # as last ranked (`WaitQueue.best`)


class _Demand:
    """One scenario's waiting + holding leases on one pool, and their exponential average."""

    __slots__ = ("at", "average", "holding", "waiting")

    def __init__(self, now: float) -> None:
        self.waiting = 0
        self.holding = 0
        self.average = 0.0
        self.at = now

    def advance(self, now: float) -> None:
        dt = now - self.at
        if dt > 0.0:
            level = float(self.waiting + self.holding)
            self.average += (level - self.average) * (1.0 - math.exp(-dt / DEMAND_WINDOW_S))
            self.at = now

    def predicted(self) -> float:
        # Never below what is asked right now: a burst counts before the average catches up.
        return max(self.average, float(self.waiting + self.holding))


class Scheduling:
    """The run's scheduling state shared by its priority pools: scenario priorities, which
    holder holds which pools (for inheritance), and the counts the result reports."""

    def __init__(self, business_values: Mapping[str, float], clock: Callable[[], float]) -> None:
        self.business_values = dict(business_values)
        self.priorities: dict[str, float] = {
            k: priority_of(v, 0.0) for k, v in business_values.items()
        }
        self.health: dict[str, float] = {}
        self.clock = clock
        self.queues: dict[str, WaitQueue] = {}
        # holder (task id) → pool → leases held: who a waiter blocks; and its scenario.
        self.holds: dict[str, dict[str, int]] = {}
        self.scenario_of: dict[str, str] = {}

    def queue(self, pool: str, capacity: int) -> WaitQueue:
        q = self.queues[pool] = WaitQueue(self, pool, capacity)
        return q

    def set_health(self, scenario: str, health: float) -> None:
        self.health[scenario] = health
        self.priorities[scenario] = priority_of(self.business_values.get(scenario, 1.0), health)

    def priority(self, scenario: str) -> float:
        return self.priorities.get(scenario, 1.0)

    def held(self, holder: str, pool: str, scenario: str | None, delta: int) -> None:
        """A lease of `pool` granted (+1, with the holder's scenario) or given back (−1)."""
        if scenario:
            self.scenario_of[holder] = scenario
        else:
            scenario = self.scenario_of.get(holder, "")
        pools = self.holds.setdefault(holder, {})
        n = pools.get(pool, 0) + delta
        if n > 0:
            pools[pool] = n
        else:
            pools.pop(pool, None)
            if not pools:
                del self.holds[holder]
                self.scenario_of.pop(holder, None)
        q = self.queues.get(pool)
        if q is not None and scenario:
            q.holding(scenario, delta)

    def effective(self, w: Waiter, tops: dict[str, float]) -> float:
        """The waiter's priority, raised to that of the best waiter of any pool it holds (one
        level: their own priorities). `tops`: those pools' best, computed once per grant."""
        best = self.priority(w.scenario)
        for pool in self.holds.get(w.holder, ()):
            top = tops.get(pool)
            if top is None:
                q = self.queues.get(pool)
                top = tops[pool] = q.top_priority() if q is not None else 0.0
            if top > best:
                best = top
        return best

    def to_json(self) -> dict[str, Any]:
        return {
            "priorities": {k: round(v, 4) for k, v in sorted(self.priorities.items())},
            "health": {k: round(v, 4) for k, v in sorted(self.health.items())},
            "pools": {name: q.to_json() for name, q in sorted(self.queues.items())},
        }


class WaitQueue:
    """One priority pool's waiters (the pool's `sched`)."""

    def __init__(self, run: Scheduling, pool: str, capacity: int) -> None:
        self.run = run
        self.pool = pool
        self.capacity = capacity
        self.waiting: list[Waiter] = []
        self.seq = 0
        self.demand: dict[str, _Demand] = {}
        self.shares: dict[str, float] = {}
        # Grants not to the longest waiter (FCFS would have chosen another), those decided by
        # an inherited priority, by the starvation bound, and share changes (reallocations).
        self.grants = 0
        self.reordered = 0
        self.inherited = 0
        self.starved = 0
        self.reallocations = 0
        self.max_bypassed = 0

    def _demand(self, scenario: str) -> _Demand:
        d = self.demand.get(scenario)
        if d is None:
            d = self.demand[scenario] = _Demand(self.run.clock())
        else:
            d.advance(self.run.clock())
        return d

    def holding(self, scenario: str, delta: int) -> None:
        d = self._demand(scenario)
        d.holding = max(0, d.holding + delta)

    def push(self, fut: asyncio.Future[int], user_id: str, holder: str, scenario: str) -> None:
        self.seq += 1
        self.waiting.append(Waiter(fut, user_id, holder, scenario, self.seq))
        self._demand(scenario).waiting += 1

    def __len__(self) -> int:
        return len(self.waiting)

    def top_priority(self) -> float:
        """The highest own priority among this pool's waiters (0: none wait)."""
        prio = self.run.priority
        return max((prio(w.scenario) for w in self.waiting if not w.fut.done()), default=0.0)

    def _prune(self) -> None:
        live = []
        for w in self.waiting:
            if w.fut.done():  # cancelled while waiting (its pass timed out)
                self._demand(w.scenario).waiting -= 1
            else:
                live.append(w)
        self.waiting = live

    def _reshare(self) -> None:
        """Capacity divided by priority × predicted demand, no scenario above its demand."""
        want = {s: d.predicted() for s, d in self.demand.items() if d.predicted() > 0.0}
        left = float(self.capacity)
        shares: dict[str, float] = {}
        while want and left > 1e-9:
            weight = sum(self.run.priority(s) * w for s, w in want.items())
            if weight <= 0.0:
                break
            capped = {
                s: w for s, w in want.items() if left * self.run.priority(s) * w / weight >= w
            }
            if not capped:
                for s, w in want.items():
                    shares[s] = shares.get(s, 0.0) + left * self.run.priority(s) * w / weight
                break
            for s, w in capped.items():
                shares[s] = w
                left -= w
                del want[s]
        if {s: round(v) for s, v in shares.items()} != {
            s: round(v) for s, v in self.shares.items()
        }:
            self.reallocations += 1
        self.shares = shares

    def best(self) -> Waiter | None:
        """The waiter a freed item goes to (still queued: `granted` removes it)."""
        self._prune()
        if not self.waiting:
            return None
        oldest = self.waiting[0]
        if oldest.bypassed >= MAX_BYPASS:
            return oldest
        self._reshare()
        best: Waiter | None = None
        best_key: tuple[bool, float, int] | None = None
        tops: dict[str, float] = {}
        for w in self.waiting:
            d = self.demand[w.scenario]
            # Under its share: one more item keeps the scenario within it.
            under = d.holding + 1 <= self.shares.get(w.scenario, 0.0) + 1e-9
            w.effective = self.run.effective(w, tops)
            key = (under, w.effective, -w.seq)
            if best_key is None or key > best_key:
                best, best_key = w, key
        return best

    def granted(self, w: Waiter) -> None:
        """`w` got an item: dequeue it; every waiter ahead of it was overtaken once more."""
        self.grants += 1
        if w.bypassed >= MAX_BYPASS:
            self.starved += 1
        elif w.effective > self.run.priority(w.scenario):
            self.inherited += 1  # ranked with a priority inherited from a task it blocks
        i = self.waiting.index(w)
        if i > 0:
            self.reordered += 1
            for ahead in self.waiting[:i]:
                ahead.bypassed += 1
                self.max_bypassed = max(self.max_bypassed, ahead.bypassed)
        del self.waiting[i]
        self._demand(w.scenario).waiting -= 1
        # Held from now, not from when it wakes: the next share sees it.
        self.run.held(w.holder, self.pool, w.scenario, 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "grants": self.grants,
            "reordered": self.reordered,
            "inherited": self.inherited,
            "starvation_guard": self.starved,
            "max_bypassed": self.max_bypassed,
            "reallocations": self.reallocations,
            "shares": {k: round(v, 3) for k, v in sorted(self.shares.items())},
            "predicted_demand": {
                k: round(d.predicted(), 3) for k, d in sorted(self.demand.items())
            },
        }
