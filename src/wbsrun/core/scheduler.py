"""Spawns a scenario's users per its load plan and runs each user's passes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

from wbsrun.core.executor import Executor
from wbsrun.core.pacing import Pacer, user_seed
from wbsrun.core.ports import UserHandle
from wbsrun.core.task import RunContext, UserState
from wbsrun.dsl.plan import ProfileSpec, ScenarioSpec

__all__ = ["Scheduler", "SpawnPlan", "spawn_plan"]


@dataclass(frozen=True, slots=True)
class SpawnPlan:
    """When each user starts (seconds after the scenario starts) and when users must stop."""

    starts: tuple[float, ...]
    stop_after: float | None

    @property
    def users(self) -> int:
        return len(self.starts)


def _even(count: int, rate: float | None, offset: float = 0.0) -> Iterator[float]:
    step = 1.0 / rate if rate else 0.0
    for i in range(count):
        yield offset + i * step


def _profile_starts(p: ProfileSpec, rate: float | None) -> tuple[tuple[float, ...], float | None]:
    if p.kind == "constant":
        return tuple(_even(p.users, rate)), p.duration or None
    if p.kind == "ramp":
        starts = list(_even(p.start_users, rate))
        extra = p.end_users - p.start_users
        # Linear ramp: user k (from 0) of the extra ones starts at k/extra of the duration, so
        # the population is the linear level rounded up. (k+1)/extra would start the last user
        # exactly when the profile's window closes: planned, but never running a pass.
        starts.extend(p.duration * k / extra for k in range(max(extra, 0)))
        return tuple(sorted(starts)), p.duration or None
    starts = []
    for at, count in p.phases:
        starts.extend(_even(count, rate, at))
    return tuple(sorted(starts)), None


def spawn_plan(s: ScenarioSpec, users: int | None = None) -> SpawnPlan:
    """The scenario's spawn times; `users` (a --users override) rescales the plan.
    No users (an override of 0 or less) is an empty plan, never a division by zero."""
    if users is not None and users <= 0:
        stop = _profile_starts(s.profile, s.spawn_rate)[1] if s.profile is not None else None
        return SpawnPlan((), stop)
    if s.profile is None:
        count = users if users is not None else s.user_count
        return SpawnPlan(tuple(_even(count, s.spawn_rate)), None)
    starts, stop = _profile_starts(s.profile, s.spawn_rate)
    if users is not None and starts and users != len(starts):
        # Keep the profile's shape, scale its population.
        factor = len(starts) / users
        starts = tuple(starts[min(int(i * factor), len(starts) - 1)] for i in range(users))
    return SpawnPlan(starts, stop)


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
    ) -> None:
        self.run = run
        self.scenario = scenario
        self.index = index
        self.plan = plan
        self.executor = Executor(run, scenario)
        self.prefix = prefix
        self.started_at = 0.0
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

    def stop_time(self) -> float | None:
        if self._stop_known:
            return self._stop_at
        times = [t for t in (self.deadline,) if t is not None]
        if self.plan.stop_after is not None:
            times.append(self.started_at + self.plan.stop_after)
        if self.scenario.max_duration is not None:
            times.append(self.started_at + self.scenario.max_duration)
        return min(times) if times else None

    async def run_users(self) -> None:
        # The components are initialised now: their request timeouts are known.
        self.executor.bind_limits()
        clock = self.run.clock
        self.started_at = clock()
        self._stop_known = False
        self._stop_at = self.stop_time()
        self._stop_known = True  # fixed from here on, and read twice a pass
        async with asyncio.TaskGroup() as outer:
            guard = outer.create_task(self._guard())
            try:
                async with asyncio.TaskGroup() as tg:
                    for i, offset in enumerate(self.plan.starts):
                        at = self.started_at + offset
                        stop = self._stop_at
                        if self.run.draining or (stop is not None and at >= stop):
                            break
                        delay = at - clock()
                        if delay > 0 and not await self._sleep(delay):
                            break
                        user = tg.create_task(self.user_loop(i))
                        self._users.add(user)
                        user.add_done_callback(self._users.discard)
            finally:
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
        run.stats.users_started += 1
        self.active += 1
        start = run.clock()
        iteration = 0
        pacer = Pacer(self.scenario, user_seed(run.plan.name, self.scenario.name, index))
        try:
            while self._more(start, iteration):
                began = run.clock()
                await self.executor.run_task(user, iteration)
                iteration += 1
                if not self._more(start, iteration):
                    break
                think = pacer.wait(began, run.clock())
                if think:
                    stop = self._stop_at
                    if stop is not None:
                        # A think time never carries a user past the window.
                        think = min(think, max(0.0, stop - run.clock()))
                    if not await self._sleep(think):
                        break
        finally:
            if pacer.missed:
                missed = run.stats.pacing_missed
                missed[self.scenario.name] = missed.get(self.scenario.name, 0) + pacer.missed
            self.active -= 1
            run.stats.users_finished += 1
            for component in run.components.values():
                await component.release_user(handle)
