"""A pair pool's own rules, item by item: capacity, strategies, affinity, uses, waiter order.

The pools are built directly (no scenario, no run) so each test sees exactly which item a
grant picked and how the pool counts it.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest

from wbsrun.dsl.plan import ResourceSpec
from wbsrun.resources import NoHealthyItem
from wbsrun.resources.pool import PairPool


def _pool(
    n: int,
    *,
    exclusive: bool = False,
    capacity: int = 0,
    strategy: Literal["round-robin", "least-used"] = "round-robin",
) -> PairPool:
    spec = ResourceSpec(
        name="pool",
        type="pair_pool",
        provider_component="resource-manager",
        provider_calls={},
        ttl=None,
        auto_renew=False,
        strategy=strategy,
        read_only=False,
        manifest=None,
        parser_format="csv",
        parser_fields=("ip", "port"),
        file=None,
        checksum=None,
        capacity=capacity or None,
        exclusive=exclusive,
        health_check=None,
        metadata={},
    )
    items = [{"ip": f"127.0.0.{i + 2}", "port": 80} for i in range(n)]
    return PairPool(spec, items, exclusive, capacity)


def test_a_shared_pool_grants_no_lease_over_its_capacity() -> None:
    pool = _pool(3, capacity=2)
    assert [pool.try_acquire(u) for u in ("a", "b")] == [0, 1]
    assert pool.try_acquire("c") is None
    assert (pool.active, pool.leases) == (2, 2)
    pool.release(0)
    assert pool.try_acquire("c") == 2  # round-robin goes on from where it was
    assert pool.active == 2


def test_least_used_counts_every_grant_of_an_item_and_ignores_the_free_order() -> None:
    pool = _pool(3, exclusive=True, strategy="least-used")
    assert [pool.try_acquire(u) for u in ("a", "b", "c")] == [0, 1, 2]
    pool.release(0)
    assert pool.try_acquire("a") == 0  # its previous item, granted a second time
    for idx in (0, 1, 2):
        pool.release(idx)
    assert pool.uses == [2, 1, 1]
    # Free in the order 0, 1, 2 (round-robin would take 0 first): least-used takes 1, then 2.
    assert [pool.try_acquire(u) for u in ("d", "e", "f")] == [1, 2, 0]
    assert pool.uses == [3, 2, 2]


def test_an_exclusive_users_previous_item_held_by_another_is_not_taken_from_them() -> None:
    pool = _pool(3, exclusive=True)
    assert pool.try_acquire("a") == 0
    pool.release(0)
    assert [pool.try_acquire(u) for u in ("b", "c", "d")] == [1, 2, 0]  # d holds a's item
    pool.release(1)
    assert pool.try_acquire("a") == 1
    assert pool.holders == [1, 1, 1]


def test_acquiring_grants_at_once_or_waits_for_a_release() -> None:
    pool = _pool(1, exclusive=True)

    async def main() -> tuple[int, int]:
        first = await pool.acquire("a")
        waiting = asyncio.create_task(pool.acquire("b"))
        await asyncio.sleep(0)
        assert not waiting.done()
        pool.release(first)
        return first, await asyncio.wait_for(waiting, 1.0)

    assert asyncio.run(main()) == (0, 0)
    assert pool.last_item == {"a": 0, "b": 0}
    pool.set_health(0, False)
    with pytest.raises(NoHealthyItem):
        asyncio.run(pool.acquire("c", wait_for_health=False))

    async def for_health() -> int:
        waiting = asyncio.create_task(pool.acquire("d"))  # waits for health by default
        await asyncio.sleep(0)
        assert not waiting.done()
        pool.release(0)  # b gives it back, still out of rotation: not handed out
        await asyncio.sleep(0)
        assert not waiting.done()
        pool.set_health(0, True)
        return await asyncio.wait_for(waiting, 1.0)

    assert asyncio.run(for_health()) == 0


def test_a_shared_least_used_pool_picks_the_item_held_least_now() -> None:
    pool = _pool(3, strategy="least-used")
    assert [pool.try_acquire(u) for u in ("a", "b", "c")] == [0, 1, 2]
    pool.release(1)  # holders now 1, 0, 1
    assert pool.try_acquire("d") == 1
    assert pool.holders == [1, 1, 1]
    assert pool.try_acquire("e") == 0  # all held once: the first


def test_a_user_gets_its_previous_item_back_when_it_is_free() -> None:
    exclusive = _pool(3, exclusive=True)
    assert [exclusive.try_acquire(u) for u in ("a", "b")] == [0, 1]
    exclusive.release(0)
    exclusive.release(1)
    # Round-robin would hand out 2 next; b's previous item is 1.
    assert exclusive.try_acquire("b") == 1
    shared = _pool(3)
    assert [shared.try_acquire(u) for u in ("a", "b")] == [0, 1]
    assert shared.try_acquire("a") == 0  # held by a already: shared, so a gets it again
    assert shared.holders == [2, 1, 0]


def test_an_item_out_of_rotation_no_longer_draws_its_previous_user_back() -> None:
    pool = _pool(3)
    assert [pool.try_acquire(u) for u in ("a", "b")] == [0, 1]
    pool.release(0)
    pool.set_health(0, False)
    assert pool.last_item == {"b": 1}  # only the affinity to the item that left
    assert pool.try_acquire("a") == 2
    assert pool.set_health(0, True) is True
    assert pool.set_health(0, True) is False  # no change


def test_waiters_are_served_in_arrival_order_and_nobody_jumps_the_queue() -> None:
    pool = _pool(1, exclusive=True)

    async def main() -> list[str]:
        assert pool.try_acquire("holder") == 0
        order: list[str] = []

        async def waiter(user: str) -> None:
            idx = await pool.wait(user)
            order.append(user)
            await asyncio.sleep(0.01)
            pool.release(idx)

        tasks = [asyncio.create_task(waiter(u)) for u in ("first", "second", "third")]
        await asyncio.sleep(0)  # all three queued
        assert pool.try_acquire("late") is None  # free or not, waiters come first
        pool.release(0)
        assert pool.try_acquire("late") is None
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(main()) == ["first", "second", "third"]
    assert (pool.active, pool.leases, pool.released) == (0, 4, 4)


def test_an_item_granted_to_a_waiter_cancelled_before_it_woke_goes_back_to_the_pool() -> None:
    pool = _pool(1, exclusive=True)

    async def main() -> int | None:
        assert pool.try_acquire("holder") == 0
        waiting = asyncio.create_task(pool.wait("w"))
        await asyncio.sleep(0)
        pool.release(0)  # granted to w: its future has the item, w has not run yet
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        return pool.try_acquire("next")

    assert asyncio.run(main()) == 0
    assert pool.active == 1


def test_releasing_an_item_nobody_holds_is_refused_and_counted() -> None:
    pool = _pool(2, exclusive=True)
    assert pool.release(1) is False
    assert (pool.release_errors, pool.released, pool.active) == (1, 0, 0)
    assert pool.try_acquire("a") == 0
    assert pool.release(0) is True
    assert pool.release(0) is False
    assert (pool.release_errors, pool.released) == (2, 1)


def test_an_unhealthy_exclusive_item_is_not_handed_out_until_it_passes_again() -> None:
    pool = _pool(2, exclusive=True)
    pool.set_health(0, False)
    assert pool.try_acquire("a") == 1
    assert pool.try_acquire("b") is None
    pool.set_health(0, True)
    assert pool.try_acquire("b") == 0
    assert pool.healthy_count() == 2


def test_not_waiting_for_health_fails_only_when_every_item_is_out() -> None:
    pool = _pool(2)
    pool.set_health(0, False)
    assert pool.try_acquire("a", wait_for_health=False) == 1
    pool.set_health(1, False)
    with pytest.raises(NoHealthyItem):
        pool.try_acquire("b", wait_for_health=False)
    assert pool.try_acquire("b") is None  # waiting for health is allowed: no grant now


def test_a_held_exclusive_item_back_in_rotation_stays_with_its_holder() -> None:
    pool = _pool(1, exclusive=True)
    assert pool.try_acquire("a") == 0
    assert pool.set_health(0, False)  # held: nothing to take out of the free list
    assert pool.set_health(0, True)
    assert pool.try_acquire("b") is None
    pool.release(0)
    assert pool.try_acquire("b") == 0


def test_a_waiter_cancelled_in_the_queue_does_not_hold_up_those_behind_it() -> None:
    pool = _pool(1, exclusive=True)

    async def main() -> int:
        assert pool.try_acquire("holder") == 0
        gone = asyncio.create_task(pool.wait("gone"))
        behind = asyncio.create_task(pool.wait("behind"))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        pool.release(0)
        return await asyncio.wait_for(behind, 1.0)

    assert asyncio.run(main()) == 0
    assert pool.last_item == {"holder": 0, "behind": 0}


def test_a_waiter_is_served_its_previous_item_when_that_one_is_free() -> None:
    pool = _pool(3, capacity=1)  # shared, one lease at a time

    async def main() -> int:
        assert pool.try_acquire("a") == 0
        pool.release(0)
        assert pool.try_acquire("c") == 1  # round-robin moves on
        waiting = asyncio.create_task(pool.wait("a"))
        await asyncio.sleep(0)
        pool.release(1)
        return await asyncio.wait_for(waiting, 1.0)

    assert asyncio.run(main()) == 0  # a's previous item, not round-robin's next (2)
