"""Priority scheduling of a pool's waiters (resources/sched.py): business value and health set
the order, a waiter that blocks a higher-priority task inherits its priority, predicted demand
re-divides the capacity, and no waiter is overtaken more than `MAX_BYPASS` times.

Pools are built directly and driven on a real event loop: each waiter is a task awaiting
`PairPool.wait`, and the test records which one each freed item went to."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wbsrun.dsl.plan import ResourceSpec
from wbsrun.progress.aggregate import ScenarioSums
from wbsrun.progress.baseline import ScenarioBaseline
from wbsrun.resources.pool import PairPool
from wbsrun.resources.priority import scenario_health
from wbsrun.resources.sched import MAX_BYPASS, Scheduling, priority_of


def _pool(name: str, n: int, sched: Scheduling | None) -> PairPool:
    spec = ResourceSpec(
        name=name,
        type="pair_pool",
        provider_component="resource-manager",
        provider_calls={},
        ttl=None,
        auto_renew=False,
        strategy="round-robin",
        read_only=False,
        manifest=None,
        parser_format="csv",
        parser_fields=("ip", "port"),
        file=None,
        checksum=None,
        capacity=None,
        exclusive=True,
        health_check=None,
        metadata={},
        scheduling="priority" if sched is not None else "fcfs",
    )
    pool = PairPool(spec, [{"ip": "127.0.0.1", "port": 1000 + i} for i in range(n)], True, 0)
    if sched is not None:
        pool.sched = sched.queue(name, n)
    return pool


def _clock() -> float:
    return 0.0


def _hold(pool: PairPool, sched: Scheduling | None, holder: str, scenario: str) -> int:
    idx = pool.try_acquire(holder)
    assert idx is not None
    if sched is not None:
        sched.held(holder, pool.spec.name, scenario, 1)
    return idx


async def _queue(pool: PairPool, order: list[str], holder: str, scenario: str) -> None:
    """As PoolManager.acquire: granted at once when nobody waits and an item is free."""
    if pool.try_acquire(holder) is not None:
        if pool.sched is not None:
            pool.sched.run.held(holder, pool.spec.name, scenario, 1)
    else:
        await pool.wait(holder, holder, scenario)
    order.append(holder)


def test_priority_of_is_the_business_value_raised_up_to_twice_as_health_falls() -> None:
    assert priority_of(10.0, 1.0) == 10.0
    assert priority_of(10.0, 0.0) == 20.0
    assert priority_of(1.0, 0.5) == 1.5
    assert priority_of(3.0, 7.0) == 3.0  # health is clamped to [0, 1]


async def _served(sched: Scheduling | None) -> list[str]:
    pool = _pool("p", 1, sched)
    _hold(pool, sched, "owner", "bulk")
    order: list[str] = []
    tasks = []
    for holder, scenario in (("b1", "bulk"), ("v1", "value"), ("b2", "bulk"), ("v2", "value")):
        tasks.append(asyncio.create_task(_queue(pool, order, holder, scenario)))
        await asyncio.sleep(0)
    for _ in range(len(tasks) + 1):
        pool.release(0)
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    return order


def test_fcfs_pool_serves_waiters_in_arrival_order() -> None:
    assert asyncio.run(_served(None)) == ["b1", "v1", "b2", "v2"]


def test_priority_pool_serves_the_higher_business_value_first() -> None:
    sched = Scheduling({"bulk": 1.0, "value": 10.0}, _clock)
    assert asyncio.run(_served(sched)) == ["v1", "v2", "b1", "b2"]
    assert sched.queues["p"].reordered >= 1


def test_lower_health_raises_a_scenarios_priority_over_an_equal_value() -> None:
    sched = Scheduling({"bulk": 1.0, "value": 1.0}, _clock)
    sched.set_health("bulk", 0.2)  # lagging: 1.8
    sched.set_health("value", 0.9)  # on track: 1.1
    assert asyncio.run(_served(sched)) == ["b1", "b2", "v1", "v2"]


async def _inheritance(sched: Scheduling | None) -> list[str]:
    """`low` holds Q's only item and waits for P's; `high` waits for Q behind it; `older`
    (same priority as `low`) queued for P first. P's item frees first."""
    p = _pool("P", 1, sched)
    q = _pool("Q", 1, sched)
    _hold(p, sched, "x", "bulk")
    _hold(q, sched, "low", "bulk")
    order: list[str] = []
    older = asyncio.create_task(_queue(p, order, "older", "bulk"))
    await asyncio.sleep(0)
    low = asyncio.create_task(_queue(p, order, "low", "bulk"))
    high = asyncio.create_task(_queue(q, order, "high", "value"))
    await asyncio.sleep(0)
    p.release(0)  # x is done with P
    await asyncio.sleep(0)
    first = list(order)
    for t in (older, low, high):
        t.cancel()
    await asyncio.gather(older, low, high, return_exceptions=True)
    return first


def test_a_waiter_that_blocks_a_high_priority_task_is_served_first() -> None:
    sched = Scheduling({"bulk": 1.0, "value": 10.0}, _clock)
    assert asyncio.run(_inheritance(sched)) == ["low"]
    assert sched.queues["P"].inherited == 1


def test_without_priority_scheduling_the_blocker_waits_its_turn() -> None:
    assert asyncio.run(_inheritance(None)) == ["older"]


def test_predicted_demand_gives_a_waiting_scenario_its_share_of_the_capacity() -> None:
    """Equal priorities; `a` holds all 4 items and one of its users waits first, `b` asks for
    2. When an item frees, the capacity divides by demand (a: 3 held + 1 waiting, b: 2
    waiting): b's share is 4 × 2/6, so the item goes to `b` though `a`'s waiter came first."""

    async def main() -> list[str]:
        sched = Scheduling({"a": 1.0, "b": 1.0}, _clock)
        pool = _pool("p", 4, sched)
        for h in ("a1", "a2", "a3", "a4"):
            _hold(pool, sched, h, "a")
        order: list[str] = []
        tasks = []
        for h, s in (("a5", "a"), ("b1", "b"), ("b2", "b")):
            tasks.append(asyncio.create_task(_queue(pool, order, h, s)))
            await asyncio.sleep(0)
        sched.held("a1", "p", None, -1)  # as PoolManager.release does, before the pool serves
        pool.release(0)
        await asyncio.sleep(0)
        got = list(order)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert {k: round(v, 3) for k, v in sched.queues["p"].shares.items()} == {
            "a": 2.667,
            "b": 1.333,
        }
        return got

    assert asyncio.run(main()) == ["b1"]


# Rounds: `arrive` users of one scenario join, then `release` holders give their item back.
_rounds = st.lists(
    st.tuples(
        st.sampled_from(["bulk", "mid", "value"]),
        st.integers(min_value=0, max_value=12),
        st.integers(min_value=0, max_value=6),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=80, deadline=None)
@given(rounds=_rounds, items=st.integers(min_value=1, max_value=3))
# A bulk user queued behind a stream of high-value ones: the case the bound exists for.
@example(rounds=[("bulk", 1, 0), ("value", 12, 3), ("value", 12, 40)], items=2)
def test_no_waiter_is_overtaken_more_than_the_bound(
    rounds: list[tuple[str, int, int]], items: int
) -> None:
    """Whatever the arrivals, priorities and releases, a waiter sees at most MAX_BYPASS later
    arrivals served before it (counted here, independently of the queue's own count)."""

    async def main() -> None:
        sched = Scheduling({"bulk": 1.0, "mid": 5.0, "value": 1000.0}, _clock)
        pool = _pool("p", items, sched)
        names = (f"w{i}" for i in itertools.count())
        arrival: dict[str, int] = {}
        held: list[str] = []
        for i in range(items):
            held.append(f"h{i}")
            _hold(pool, sched, f"h{i}", "bulk")
        order: list[str] = []
        tasks = []
        overtaken: dict[str, int] = {}
        seen = 0
        ops = [
            op
            for scenario, arrive, release in rounds
            for op in [("arrive", scenario)] * arrive + [("release", "")] * release
        ]
        for op, scenario in [*ops, *[("release", "")] * (len(ops) + items)]:
            if op == "arrive":
                name = next(names)
                arrival[name] = len(arrival)
                tasks.append(asyncio.create_task(_queue(pool, order, name, scenario)))
            elif held:
                holder = held.pop(0)
                sched.held(holder, "p", None, -1)
                pool.release(pool.last_item[holder])
            await asyncio.sleep(0)
            for served in order[seen:]:
                held.append(served)
                for n in arrival:
                    if n not in order and arrival[n] < arrival[served]:
                        overtaken[n] = overtaken.get(n, 0) + 1
            seen = len(order)
        assert max(overtaken.values(), default=0) <= MAX_BYPASS
        assert sorted(order) == sorted(arrival)  # everyone was served in the end
        await asyncio.gather(*tasks)

    asyncio.run(main())


def test_scenario_health_is_the_run_formula_over_the_scenarios_own_figures() -> None:
    base = ScenarioBaseline(
        "s", users=2, planned_tasks=10, passes_per_user=5, duration=10.0, last_start=0.0
    )
    sums = ScenarioSums(5.0, 5.0, 6, 5, 2, 0, 1.0, {})
    # work 0.5, 8 s of 10 elapsed: deviation 0.3; 10 % of requests failed.
    health = scenario_health(base, sums, 8.0, 100, 10)
    assert health == pytest.approx(0.5 * 0.6 + 0.9 * 0.3 + 0.7 * 0.1)
    assert scenario_health(base, None, 0.0, 0, 0) == pytest.approx(0.4)  # nothing done yet
