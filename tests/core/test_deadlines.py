"""The deadline wheel: pass and action timeouts without a loop timer per action."""

from __future__ import annotations

import asyncio
import time

import pytest

from wbsrun.core.deadlines import DeadlineWheel


async def _guarded(wheel: DeadlineWheel, limit: float, work: float) -> str:
    deadline = wheel.arm(limit)
    try:
        await asyncio.sleep(work)
    except asyncio.CancelledError:
        if not deadline.claim():
            raise
        return "timed out"
    except BaseException:
        deadline.disarm()
        raise
    deadline.disarm()
    return "done"


def test_an_await_past_its_limit_times_out_never_early_and_at_most_a_slot_late() -> None:
    wheel = DeadlineWheel(resolution=0.01)

    async def main() -> tuple[str, float]:
        t0 = time.monotonic()
        got = await _guarded(wheel, 0.05, 5.0)
        return got, time.monotonic() - t0

    got, took = asyncio.run(main())
    assert got == "timed out"
    assert 0.05 <= took < 0.05 + 0.01 + 0.05  # one slot, plus loop scheduling slack


def test_an_await_within_its_limit_finishes_and_the_disarmed_deadline_never_fires() -> None:
    wheel = DeadlineWheel(resolution=0.005)

    async def main() -> tuple[str, str, int]:
        first = await _guarded(wheel, 0.05, 0.01)
        # Past the first deadline: a disarmed entry firing would cancel this sleep.
        second = await _guarded(wheel, 1.0, 0.1)
        return first, second, wheel.pending()

    # The first slot fired and was dropped; the second is still listed (1 s away).
    assert asyncio.run(main()) == ("done", "done", 1)


def test_an_outer_cancellation_is_not_taken_for_the_deadline() -> None:
    wheel = DeadlineWheel()

    async def main() -> None:
        inner = asyncio.create_task(_guarded(wheel, 5.0, 5.0))
        await asyncio.sleep(0.02)
        inner.cancel()
        await inner

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())


def test_nested_deadlines_the_outer_one_firing_passes_through_the_inner() -> None:
    wheel = DeadlineWheel(resolution=0.005)

    async def main() -> str:
        outer = wheel.arm(0.03)
        try:
            return await _guarded(wheel, 5.0, 5.0)  # inner limit far away
        except asyncio.CancelledError:
            if not outer.claim():
                raise
            return "outer timed out"

    assert asyncio.run(main()) == "outer timed out"


def test_arming_outside_a_task_is_refused() -> None:
    wheel = DeadlineWheel()
    with pytest.raises(RuntimeError):
        wheel.arm(1.0)


def test_a_recycled_deadline_does_not_fire_from_the_slot_of_its_earlier_arming() -> None:
    wheel = DeadlineWheel(resolution=0.005)

    async def main() -> tuple[bool, str]:
        first = wheel.arm(0.02)
        first.disarm()
        # The same object, armed again far away, is still listed in the first slot too.
        second = wheel.arm(1.0)
        same = second is first
        try:
            await asyncio.sleep(0.1)  # the first slot fires meanwhile
        except asyncio.CancelledError:
            return same, "cancelled by the earlier slot"
        second.disarm()
        return same, "done"

    assert asyncio.run(main()) == (True, "done")


def test_a_deadline_rearmed_with_a_shorter_limit_fires_at_its_new_slot() -> None:
    wheel = DeadlineWheel(resolution=0.005)

    async def main() -> tuple[str, float]:
        wheel.arm(5.0).disarm()  # listed 5 s away, then recycled
        t0 = time.monotonic()
        got = await _guarded(wheel, 0.03, 5.0)
        return got, time.monotonic() - t0

    got, took = asyncio.run(main())
    assert got == "timed out"
    assert 0.03 <= took < 0.03 + 0.005 + 0.05


def test_a_deadline_handed_back_twice_goes_to_one_owner_only() -> None:
    wheel = DeadlineWheel()

    async def main() -> bool:
        d = wheel.arm(1.0)
        d.disarm()
        d.disarm()  # a second hand-back is ignored
        a, b = wheel.arm(1.0), wheel.arm(1.0)
        a.disarm()
        b.disarm()
        return a is not b

    assert asyncio.run(main())
