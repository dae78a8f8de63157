"""The deadline wheel: pass and action timeouts without a loop timer per action."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from types import SimpleNamespace

import pytest

import wbsrun.core.deadlines as deadlines_module
from wbsrun.core.deadlines import DeadlineWheel, _find_current_task


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

    async def main() -> tuple[str, int, str, int]:
        first = await _guarded(wheel, 0.05, 0.01)
        # Past the first deadline's slot with its object left unused (an arming would take
        # the recycled object and move its slot on, hiding the bug): a disarmed deadline
        # firing would cancel this sleep.
        await asyncio.sleep(0.1)
        fired = wheel.pending()
        second = await _guarded(wheel, 1.0, 0.01)
        return first, fired, second, wheel.pending()

    # The first slot fired and was dropped; the second is still listed (1 s away).
    assert asyncio.run(main()) == ("done", 0, "done", 1)


def test_a_deadline_claimed_after_an_outer_cancellation_never_fires_later() -> None:
    wheel = DeadlineWheel(resolution=0.005)

    async def main() -> str:
        task = asyncio.current_task()
        assert task is not None
        outer = asyncio.get_running_loop().call_later(0.01, task.cancel)
        try:
            await _guarded(wheel, 0.05, 5.0)  # claim() says: not mine
        except asyncio.CancelledError:
            task.uncancel()  # the outer code handles its cancellation and goes on
        outer.cancel()
        # Past the claimed deadline's slot: had it stayed armed, it would cancel this sleep.
        await asyncio.sleep(0.1)
        return "went on"

    assert asyncio.run(main()) == "went on"


def test_a_deadline_that_fired_on_an_await_that_finished_anyway_takes_its_cancel_back() -> None:
    wheel = DeadlineWheel(resolution=0.005)

    async def main() -> str:
        try:
            async with asyncio.timeout(0.1):
                deadline = wheel.arm(0.01)
                # The guarded code finishes anyway: it swallows the cancellation.
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(5.0)
                deadline.disarm()
                # A cancellation left pending would make the outer timeout's own
                # cancellation look like someone else's: CancelledError, not TimeoutError.
                await asyncio.sleep(5.0)
        except TimeoutError:
            return "outer timed out"
        return "slept"

    assert asyncio.run(main()) == "outer timed out"


def test_a_deadline_fires_at_the_end_of_its_slot_not_a_slot_later_nor_earlier() -> None:
    resolution, limit = 0.2, 0.05
    wheel = DeadlineWheel(resolution=resolution)

    async def main() -> tuple[float, float, float]:
        loop = asyncio.get_running_loop()
        before = loop.time()
        deadline = wheel.arm(limit)
        after = loop.time()
        try:
            await asyncio.sleep(5.0)
        except asyncio.CancelledError:
            assert deadline.claim()
        fired = loop.time()
        # The end of the slot that `now + limit` falls in, for `now` either side of arm().
        first = (int((before + limit) / resolution) + 1) * resolution
        last = (int((after + limit) / resolution) + 1) * resolution
        return first, fired, last

    first, fired, last = asyncio.run(main())
    assert first - 1e-6 <= fired < last + resolution / 2


def test_the_default_wheel_has_5_ms_slots() -> None:
    wheel = DeadlineWheel()

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        slot = int((loop.time() + 1.0) / 0.005) + 1
        deadline = wheel.arm(1.0)
        deadline.disarm()
        return slot, deadline.slot

    assert wheel.resolution == 0.005
    expected, got = asyncio.run(main())
    assert got - expected in (0, 1)  # the clock may cross a slot edge between the two reads


def test_a_wheel_rebound_to_a_new_loop_drops_the_old_slots_and_fires_on_the_new_one() -> None:
    wheel = DeadlineWheel(resolution=0.005)

    async def leave_a_listing() -> str:
        wheel.bind(asyncio.get_running_loop())
        wheel.arm(5.0).disarm()  # listed 5 s away when this loop closes
        return await _guarded(wheel, 0.02, 5.0)

    async def next_run() -> tuple[int, str]:
        wheel.bind(asyncio.get_running_loop())
        listed = wheel.pending()
        return listed, await _guarded(wheel, 0.02, 5.0)

    assert asyncio.run(leave_a_listing()) == "timed out"
    assert wheel.pending() == 1
    # The next run's deadlines go on its own loop's timers (the first loop is closed).
    assert asyncio.run(next_run()) == (0, "timed out")


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


def test_deadlines_armed_into_the_same_slot_all_fire() -> None:
    wheel = DeadlineWheel(resolution=0.1)

    async def main() -> list[str]:
        # Armed together: one slot (the slot is 100 ms wide), one loop timer.
        return list(await asyncio.gather(*(_guarded(wheel, 0.02, 5.0) for _ in range(3))))

    assert asyncio.run(main()) == ["timed out"] * 3


def test_a_deadline_listed_twice_in_one_slot_cancels_its_task_once() -> None:
    wheel = DeadlineWheel(resolution=0.1)

    async def main() -> str:
        for _ in range(5):  # until both armings fall in one slot (a 100 ms slot: at once)
            first = wheel.arm(0.02)
            slot = first.slot
            first.disarm()
            deadline = wheel.arm(0.02)  # the same object, listed again
            if deadline.slot == slot:
                break
            deadline.disarm()
        try:
            await asyncio.sleep(5.0)
        except asyncio.CancelledError:
            # A second cancel from the second listing would look like someone else's.
            return "timed out" if deadline.claim() else "cancelled twice"
        deadline.disarm()
        return "slept"

    assert asyncio.run(main()) == "timed out"


def test_a_wheel_rebound_while_its_slots_are_pending_ignores_their_timers() -> None:
    wheel = DeadlineWheel(resolution=0.005)
    errors: list[dict[str, object]] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        wheel.arm(0.01).disarm()  # its timer stays on the loop
        wheel.bind(loop)  # the slot is gone when the timer fires
        await asyncio.sleep(0.05)
        return wheel.pending()

    assert asyncio.run(main()) == 0
    assert errors == []


def test_arming_outside_a_task_says_why() -> None:
    wheel = DeadlineWheel()
    loop = asyncio.new_event_loop()
    try:
        wheel.bind(loop)
        with pytest.raises(RuntimeError, match=r"^a deadline needs a running task$"):
            wheel.arm(1.0)
    finally:
        loop.close()


def test_an_outer_cancellation_is_claimed_as_not_the_deadlines() -> None:
    wheel = DeadlineWheel()

    async def main() -> object:
        task = asyncio.current_task()
        assert task is not None
        deadline = wheel.arm(5.0)
        asyncio.get_running_loop().call_soon(task.cancel)
        try:
            await asyncio.sleep(5.0)
        except asyncio.CancelledError:
            task.uncancel()
            return deadline.claim()
        return "slept"

    assert asyncio.run(main()) is False


def test_the_current_task_lookup_is_the_fastest_one_the_interpreter_offers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import _asyncio

    # This interpreter: C `current_task` (3.12+), else the C-maintained dict's `get`.
    native = getattr(_asyncio, "current_task", None)
    current: dict[object, object] = getattr(asyncio.tasks, "_current_tasks")  # noqa: B009
    assert _find_current_task() == (native or current.get)

    async def main() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        found = _find_current_task()
        outside = asyncio.Future[bool]()
        loop.call_soon(lambda: outside.set_result(found(loop) is None))
        return found(loop) is asyncio.current_task(), await outside

    assert asyncio.run(main()) == (True, True)

    if not deadlines_module.__file__ or not deadlines_module.__file__.endswith(".py"):
        # Compiled, `import _asyncio` inside the function is bound once, by mypyc: a module
        # put in sys.modules afterwards is never seen, so the branches below are pinned on
        # the sources (`make test` runs the suite on both builds).
        return

    # Either branch, whatever this interpreter is: a C `current_task` is taken as is ...
    def c_current_task(loop: object) -> None:
        return None

    monkeypatch.setitem(sys.modules, "_asyncio", SimpleNamespace(current_task=c_current_task))
    assert _find_current_task() is c_current_task
    # ... the dict is used only when it is the one asyncio.tasks keeps current ...
    table: dict[object, object] = {}
    monkeypatch.setattr(asyncio.tasks, "_current_tasks", table)
    monkeypatch.setitem(sys.modules, "_asyncio", SimpleNamespace(_current_tasks=table))
    assert _find_current_task() == table.get
    # ... and anything else falls back to asyncio.current_task.
    monkeypatch.setitem(sys.modules, "_asyncio", SimpleNamespace(_current_tasks={}))
    assert _find_current_task() is asyncio.current_task
    monkeypatch.setitem(sys.modules, "_asyncio", SimpleNamespace(_current_tasks=[]))
    monkeypatch.setattr(asyncio.tasks, "_current_tasks", [])
    assert _find_current_task() is asyncio.current_task
    monkeypatch.setitem(sys.modules, "_asyncio", SimpleNamespace())  # neither attribute
    monkeypatch.delattr(asyncio.tasks, "_current_tasks")
    assert _find_current_task() is asyncio.current_task
