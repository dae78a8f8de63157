"""Spawns a scenario's users per its load plan and runs each user's passes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from typing import Any

from wbsrun.core.arrivals import ArrivalSchedule
from wbsrun.core.control import ControlError
from wbsrun.core.executor import Executor
from wbsrun.core.pacing import Pacer, user_seed
from wbsrun.core.ports import UserHandle
from wbsrun.core.resume import ScenarioPosition
from wbsrun.core.spawning import SpawnPlan, spawn_plan
from wbsrun.core.stats import ArrivalStats
from wbsrun.core.task import RunContext, UserState
from wbsrun.dsl.plan import ScenarioSpec

__all__ = ["Scheduler", "SpawnPlan", "spawn_plan"]


class Scheduler:
    """Runs one scenario: users in one TaskGroup, each looping over passes."""

    def __init__(
        self,
        run: RunContext,
        scenario: ScenarioSpec,
        index: int,
        plan: SpawnPlan,
        deadline: float | None,
        prefix: str,
        grace: float = 30.0,
        *,
        resume: ScenarioPosition | None = None,
        elapsed: float = 0.0,
    ) -> None:
        self.run = run
        self.scenario = scenario
        self.index = index
        self.plan = plan
        self.executor = Executor(run, scenario)
        self.prefix = prefix
        self.started_at = 0.0
        self.zero = 0.0
        # No pass starts after this (monotonic clock): --duration, max-duration, profile end.
        self.deadline = deadline
        self.active = 0
        # Set by a drain: sleeping spawns and think times wake, the grace period starts.
        self.wake = asyncio.Event()
        # After the window ends (or a drain), passes in flight may finish for this long; then
        # the users still running are cancelled and their passes counted as interrupted.
        self.grace = grace
        # When the graceful stop began and ends (monotonic clock); None before.
        self.cut_due: float | None = None
        self._users: set[asyncio.Task[None]] = set()
        self._stop_known = False
        self._stop_at: float | None = None
        # Arrival-rate: the schedule is over, users leave after their pass.
        self._closing = False
        # Live control (core/control.py). `target`: the population a scale set (closed model;
        # None: the plan's); `max_users`: arrival-rate's cap, which a scale changes.
        self.target: int | None = None
        self.max_users = plan.arrivals.max_users if plan.arrivals is not None else 0
        self._tg: asyncio.TaskGroup | None = None
        self._starting = 0  # closed model: users spawned whose task has not begun yet
        self._added = 0  # users a scale added (their indices: `SpawnPlan.added_index`)
        self._alive = 0  # arrival-rate: users spawned and not retired
        self._idle: list[_Slot] = []
        self._scaled = False
        self._kept = False  # a scale keeps the scenario open until its window ends
        # The schedule position (a checkpoint, core/resume.py): closed-model users' completed
        # passes and start times, the users whose passes are over, arrival iterations
        # dispatched. A second life starts from `resume`, its clock `elapsed` seconds on.
        self.resume = resume
        self.elapsed = elapsed
        self.passes: dict[int, int] = dict(resume.passes) if resume is not None else {}
        self.began: dict[int, float] = {}
        self.done: set[int] = set(resume.done) if resume is not None else set()
        # Users of this life that left without being over (a stop): a next life runs them on.
        self.left: set[int] = set()
        self.dispatched = resume.dispatched if resume is not None else 0

    @property
    def planned_users(self) -> int:
        """The plan's users, or what a scale set."""
        if self.plan.arrivals is not None:
            return self.max_users
        return self.plan.users if self.target is None else self.target

    def figures(self) -> dict[str, object]:
        """This scenario for the control endpoint's status."""
        arrival = self.plan.arrivals is not None
        return {
            "model": "arrival-rate" if arrival else "closed",
            "users": self.active,
            "planned": self.plan.users,
            "target": self.planned_users,
            "scaled": self._scaled,
            "stopping": self.cut_due is not None,
        }

    def record_scale(self, users: int) -> None:
        """A coordinator's mirror (never run): the scale its workers apply, for the status,
        progress and ETA to read as a local run's."""
        self._scaled = True
        if self.plan.arrivals is not None:
            self.max_users = users
        else:
            self.target = users

    def position(self) -> ScenarioPosition:
        """Where this scenario stands now (a checkpoint): users in a pass have completed
        the passes before it; how long each user had run counts for `task-duration`."""
        now = self.run.clock()
        ran = dict(self.resume.ran) if self.resume is not None else {}
        for index, began in self.began.items():
            ran[index] = now - began
        return ScenarioPosition(dict(self.passes), ran, frozenset(self.done), self.dispatched)

    def users_carried(self) -> int:
        """For a checkpoint's `users_finished`: arrival-rate users alive now end with this
        life (+); closed-model users that left without being over (a stop) come back in the
        next life and finish there, not twice (-)."""
        if self.plan.arrivals is not None:
            return self.active
        return -len(self.left)

    def hold(self) -> None:
        """Pause: users wait before their next action (not once this scenario is stopping:
        its passes in flight then have the graceful stop to end)."""
        if self.cut_due is None:
            self.executor.held = True
            self.executor.gate.clear()

    def release(self) -> None:
        self.executor.held = False
        self.executor.gate.set()

    def scale(self, users: int) -> None:
        """Closed model: from now on the scenario runs `users` users until its window ends
        (the rest of its spawn plan, or its stages, replaced): more start at once, with ids
        after the planned ones; those above leave after their pass. Arrival-rate: max-users
        becomes `users`; idle users above it leave now, busy ones after their pass."""
        tg = self._tg
        if tg is None or self.cut_due is not None or self.run.draining:
            state = "stopping" if self.cut_due is not None else "not running"
            raise ControlError("conflict", f"scenario '{self.scenario.name}' is {state}")
        self._scaled = True
        if self.plan.arrivals is not None:
            self.max_users = users
            excess = self._alive - users
            while excess > 0 and self._idle:
                self._retire(self._idle.pop())
                excess -= 1
            return
        self.target = users
        try:
            if not self._kept and self._stop_at is not None:
                # A scaled scenario stays open until its window ends, even at 0 users, so
                # that a later scale can bring users back (k6's externally-controlled
                # executor). Without a window, the scenario ends when its users do.
                self._kept = True
                self._spawn(tg, self._keep_open(self._stop_at))
            for _ in range(users - self.active - self._starting):
                self._start_user(tg, self.plan.added_index(self._added))
                self._added += 1
        except RuntimeError:  # the task group has just finished: every user left
            raise ControlError("conflict", f"scenario '{self.scenario.name}' is over") from None

    async def _keep_open(self, stop: float) -> None:
        await self._sleep(max(0.0, stop - self.run.clock()))

    def _start_user(self, tg: asyncio.TaskGroup, index: int) -> None:
        self._spawn(tg, self.user_loop(index))
        self._starting += 1

    def _retire(self, slot: _Slot) -> None:
        """An idle arrival-rate user leaves."""
        self._alive -= 1
        slot.due = -1.0
        slot.go.set()

    def stop_time(self) -> float | None:
        if self._stop_known:
            return self._stop_at
        times = [t for t in (self.deadline,) if t is not None]
        if self.plan.stop_after is not None:
            times.append(self.started_at + self.plan.stop_after)
        if self.scenario.max_duration is not None:
            times.append(self.started_at + self.plan.offset + self.scenario.max_duration)
        return min(times) if times else None

    async def run_users(self) -> None:
        # The components are initialised now: their request timeouts are known.
        self.executor.bind_limits()
        clock = self.run.clock
        # A second life: the plan's clock as it stood at the checkpoint.
        self.started_at = clock() - self.elapsed
        # The scenario's own start (after its start-after).
        self.zero = self.started_at + self.plan.offset
        self._stop_known = False
        self._stop_at = self.stop_time()
        self._stop_known = True  # fixed from here on, and read twice a pass
        async with asyncio.TaskGroup() as outer:
            guard = outer.create_task(self._guard())
            try:
                async with asyncio.TaskGroup() as tg:
                    self._tg = tg
                    if self.plan.arrivals is not None:
                        await self._dispatch(tg, self.plan.arrivals)
                        return
                    users = zip(self.plan.user_indices(), self.plan.starts, strict=True)
                    for i, offset in users:
                        if i in self.done:
                            continue  # a second life: this user's passes were over
                        at = self.started_at + offset
                        stop = self._stop_at
                        if self.run.draining or (stop is not None and at >= stop):
                            break
                        delay = at - clock()
                        if delay > 0 and not await self._sleep(delay):
                            break
                        if self.executor.held:
                            # Paused: spawns wait (the plan's clock runs on: those due
                            # meanwhile start at the resume, inside the window).
                            await self.executor.gate.wait()
                            if self.run.draining or self.cut_due is not None:
                                break
                        if self.target is not None:
                            break  # a scale replaced the rest of the plan
                        self._start_user(tg, i)
            finally:
                self._tg = None
                guard.cancel()

    async def _guard(self) -> None:
        """The window is a hard bound: once it ends (or a drain), passes in flight get `grace`
        to finish, then the users still running are cancelled."""
        stop = self._stop_at
        wait = None if stop is None else max(0.0, stop - self.run.clock())
        try:
            async with asyncio.timeout(wait):
                await self.wake.wait()
        except TimeoutError:
            pass
        self.cut_due = self.run.clock() + self.grace
        # Paused or not, the passes in flight have the graceful stop to end (core/control.py).
        self.release()
        await asyncio.sleep(self.grace)
        for user in list(self._users):
            user.cancel()

    async def _sleep(self, delay: float) -> bool:
        """Sleep unless the run starts draining; False when woken by a drain."""
        try:
            async with asyncio.timeout(delay):
                await self.wake.wait()
        except TimeoutError:
            return True
        return False

    def _more(self, user_start: float, iteration: int) -> bool:
        s = self.scenario
        run = self.run
        now = run.clock()
        if run.draining or self.executor.data_done:
            return False
        stop = self.stop_time()
        if stop is not None and now >= stop:
            return False
        curve = self.plan.curve
        target = self.target
        if target is not None:
            if iteration and self.active > target:
                return False  # above the population a scale set: leave after this pass
        elif curve is not None and iteration and self.active > self.plan.target(now - self.zero):
            # Above the stage's target: leave after the pass just finished. (Not before the
            # first: the plan started this user at its time, and a timer may fire a hair early.)
            return False
        if s.iterations is not None:
            return iteration < s.iterations
        if s.task_duration is not None:
            return now - user_start < s.task_duration
        # Without iterations or task-duration: one pass, unless a run window is set
        # (a profile's duration or --duration), which users then fill with passes.
        windowed = self.plan.stop_after is not None or self.deadline is not None
        return iteration == 0 or (stop is not None and windowed)

    async def user_loop(self, index: int) -> None:
        run = self.run
        handle = UserHandle(
            user_id=f"{self.prefix}u{index + 1:04d}",
            scenario=self.scenario.name,
            private_session=self.scenario.session_new,
        )
        user = UserState(handle=handle, index=index)
        # A second life: a user started before the checkpoint goes on from its last
        # completed pass (started once: counted once).
        again = index in self.passes
        if not again:
            run.stats.users_started += 1
        self._starting -= 1
        self.active += 1
        resume = self.resume
        ran = resume.ran.get(index, 0.0) if again and resume is not None else 0.0
        start = run.clock() - ran
        self.began[index] = start
        iteration = self.passes.get(index, 0)
        self.passes[index] = iteration
        pacer = Pacer(self.scenario, user_seed(run.plan.name, self.scenario.name, index))
        seen_missed = 0
        executor = self.executor
        try:
            while self._more(start, iteration):
                if executor.held:
                    # Paused: no pass starts; the window may end meanwhile.
                    await executor.gate.wait()
                    if not self._more(start, iteration):
                        break
                began = run.clock()
                await self.executor.run_task(user, iteration)
                iteration += 1
                self.passes[index] = iteration
                if not iteration & 63:
                    # A pass that fails before any I/O never suspends: without this, such a
                    # user would spin and starve the guard, the ticker and the other users.
                    await asyncio.sleep(0)
                if not self._more(start, iteration):
                    break
                think = pacer.wait(began, run.clock())
                if pacer.missed != seen_missed:
                    # Counted as it happens: the live line and the metrics show it.
                    missed = run.stats.pacing_missed
                    name = self.scenario.name
                    missed[name] = missed.get(name, 0) + pacer.missed - seen_missed
                    seen_missed = pacer.missed
                if think:
                    stop = self._stop_at
                    if stop is not None:
                        # A think time never carries a user past the window.
                        think = min(think, max(0.0, stop - run.clock()))
                    if not await self._sleep(think):
                        break
            if not run.draining:
                self.done.add(index)  # over (not stopped): a second life skips it
        finally:
            self.began.pop(index, None)
            if index not in self.done:
                if self.cut_due is not None and not run.draining:
                    self.done.add(index)  # cut at the end of its window: over all the same
                else:
                    self.left.add(index)
            self.active -= 1
            run.stats.users_finished += 1
            for component in run.components.values():
                await component.release_user(handle)

    def _spawn(self, tg: asyncio.TaskGroup, loop: Coroutine[Any, Any, None]) -> None:
        user = tg.create_task(loop)
        self._users.add(user)
        user.add_done_callback(self._users.discard)

    async def _dispatch(self, tg: asyncio.TaskGroup, plan: ArrivalSchedule) -> None:
        """Open model: iteration k starts at its scheduled time on a free user (a new one while
        fewer than max-users run), whether or not earlier ones finished; with every user busy
        it is dropped and counted."""
        run, clock = self.run, self.run.clock
        stats = run.stats.arrivals.get(self.scenario.name)
        if stats is None or self.resume is None:  # (a second life counts on)
            stats = run.stats.arrivals[self.scenario.name] = ArrivalStats()
        stats.planned = self.plan.planned_iterations() or 0
        stats.duration = plan.duration
        stats.asked_per_second = stats.planned / plan.duration if plan.duration else 0.0
        idle = self._idle
        made = 0
        zero = self.zero
        for _ in range(plan.pre_allocated):
            slot = _Slot(self.plan.slot_index(made))
            made += 1
            self._alive += 1
            idle.append(slot)
            self._spawn(tg, self._arrival_user(slot, stats))
        stop = self._stop_at
        try:
            # A second life: the iterations dispatched before the checkpoint are skipped.
            offsets = itertools.islice(self.plan.iteration_offsets(), self.dispatched, None)
            for offset in offsets:
                at = zero + offset
                if run.draining or (stop is not None and at >= stop):
                    break
                delay = at - clock()
                if delay > 0 and not await self._sleep(delay):
                    break
                self.dispatched += 1
                if self.executor.held:
                    stats.paused += 1  # due while paused: not started, not dropped
                    continue
                if idle:
                    slot = idle.pop()
                elif self._alive < self.max_users:
                    slot = _Slot(self.plan.slot_index(made))
                    made += 1
                    self._alive += 1
                    self._spawn(tg, self._arrival_user(slot, stats))
                else:
                    stats.dropped += 1
                    run.stats.dropped_iterations += 1
                    if stats.dropped == 1:
                        self._warn_dropped(stats, plan, clock() - zero)
                    continue
                stats.started += 1
                slot.due = at
                slot.go.set()
        finally:
            # The schedule is over: idle users leave now, busy ones after their pass.
            self._closing = True
            while idle:
                self._retire(idle.pop())

    def _warn_dropped(self, stats: ArrivalStats, plan: ArrivalSchedule, elapsed: float) -> None:
        achieved = stats.started / elapsed if elapsed > 0 else 0.0
        message = (
            f"scenario '{self.scenario.name}': the arrival rate cannot be held: asked "
            f"{stats.asked_per_second:.4g} iterations/s, achieved {achieved:.4g}/s so far; "
            f"all {self.max_users} max-users are busy, so iterations are dropped "
            "(dropped_iterations): raise max-users or lower the rate"
        )
        self.run.log.log("warn", message)
        self.run.stats.notices.append(message)

    async def _arrival_user(self, slot: _Slot, stats: ArrivalStats) -> None:
        run = self.run
        clock = run.clock
        handle = UserHandle(
            user_id=f"{self.prefix}u{slot.index + 1:04d}",
            scenario=self.scenario.name,
            private_session=self.scenario.session_new,
        )
        user = UserState(handle=handle, index=slot.index)
        run.stats.users_started += 1
        self.active += 1
        iteration = 0
        try:
            while True:
                await slot.go.wait()
                slot.go.clear()
                due = slot.due
                if due < 0:
                    break
                # The loop's timers may fire up to its clock resolution (~1 ms) early: an
                # iteration is never counted as started before its time.
                stats.delay.record(max(0.0, (clock() - due) * 1000.0))
                await self.executor.run_task(user, iteration)
                stats.from_schedule.record(max(0.0, (clock() - due) * 1000.0))
                iteration += 1
                if self._closing or run.draining or self._alive > self.max_users:
                    break  # the schedule is over, or above the max-users a scale set
                self._idle.append(slot)
        finally:
            if slot.due >= 0:  # left by itself (a retired slot was counted out already)
                self._alive -= 1
            self.active -= 1
            run.stats.users_finished += 1
            for component in run.components.values():
                await component.release_user(handle)


class _Slot:
    """An arrival-rate user's mailbox: the dispatcher sets `due` (the scheduled start, or -1
    to leave) and wakes it."""

    __slots__ = ("due", "go", "index")

    def __init__(self, index: int) -> None:
        self.index = index
        self.due = 0.0
        self.go = asyncio.Event()
