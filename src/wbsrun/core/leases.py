"""Leases bound to the tasks that hold them, both ways.

The core obtains and returns handles only through the provider calls a scenario maps on its
resource's provider component (`acquire: allocate_pair`, `release: release_pair`, `mount:
mount_file`, `track: track_lease`), so any component offering those calls can replace the
built-in `resource-manager`. This module keeps the other direction: which task holds each
handle, with that task's phase and progress, so that a lease is released when its holder
closes, on an explicit `resource.release`, on TTL expiry or when the resource fails, exactly
once, and never while the holder is mid-action unless the resource itself failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from wbsrun.core import codes
from wbsrun.core.components import ComponentBase, as_component
from wbsrun.core.events import PRIORITY_HIGH, ProgressSink
from wbsrun.core.ports import ActionOutcome, Component, LogSink, UserHandle
from wbsrun.core.sinks import Sink, as_sink

# At run time, not under TYPE_CHECKING: compiled (mypyc), `Holding.task` needs the Task class
# to exist when this module runs (task.py imports this module only for type checking).
from wbsrun.core.task import Task
from wbsrun.dsl.plan import Handler, Plan, ResourceSpec
from wbsrun.errors import RunError

__all__ = [
    "DEFAULT_CALLS",
    "RESOURCE_FAILED",
    "Binding",
    "Holding",
    "LeaseBook",
    "LeaseCounts",
    "ResourceFault",
]

# The provider calls the core makes when a scenario maps none: those of `resource-manager`.
DEFAULT_CALLS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "acquire": "allocate_pair",
        "release": "release_pair",
        "mount": "mount_file",
        "track": "track_lease",
    }
)
DEFAULT_PROVIDER: Final = "resource-manager"
# A fault code that is not an error code: the holder runs the resource's `on-failure` list.
RESOURCE_FAILED: Final = "resource-failed"
# How often TTLs are checked, at most and at least (a quarter of the shortest TTL in between).
_TICK_MAX = 1.0
_TICK_MIN = 0.02


class Holding:
    """One lease as its holder task sees it.

    A plain class, not a dataclass: compiled (mypyc), a dataclass keeps the `__init__` the
    dataclasses module writes, interpreted, and one Holding is built every pass."""

    __slots__ = (
        "acquired_at",
        "blob",
        "expired",
        "expires_at",
        "failed",
        "handle",
        "item",
        "pending",
        "pool",
        "released",
        "steps_at_renew",
        "task",
    )

    def __init__(
        self,
        pool: str,
        handle: str,
        item: Mapping[str, Any],
        task: Task,
        acquired_at: float,
        expires_at: float | None,
        steps_at_renew: int = 0,
        released: bool = False,
        expired: bool = False,
        failed: bool = False,
        pending: str | None = None,
        blob: bool = False,
    ) -> None:
        self.pool = pool
        self.handle = handle
        self.item = item
        self.task = task
        self.acquired_at = acquired_at
        self.expires_at = expires_at
        self.steps_at_renew = steps_at_renew
        self.released = released
        self.expired = expired
        self.failed = failed
        # A release asked for while the holder was mid-action: done when the action ends.
        self.pending = pending
        self.blob = blob

    def __repr__(self) -> str:
        return (
            f"Holding({self.pool!r}, {self.handle!r}, task={self.task.task_id!r}, "
            f"released={self.released}, expired={self.expired}, failed={self.failed})"
        )


@dataclass(frozen=True, slots=True)
class ResourceFault:
    """What a holder finds at its next node: its lease expired, or its item failed."""

    code: str  # codes.LEASE_EXPIRED or RESOURCE_FAILED
    pool: str
    handle: str
    reason: str
    handlers: tuple[Handler, ...] = ()


@dataclass(frozen=True, slots=True)
class Binding:
    """A lease as the manager reports it: the item and where its holder stands."""

    pool: str
    handle: str
    task_id: str
    phase: str
    progress: float
    pending_release: str | None


@dataclass(slots=True)
class LeaseCounts:
    acquired: int = 0
    released: int = 0
    expired: int = 0
    renewed: int = 0
    deferred: int = 0
    faults: int = 0
    release_failures: int = 0


@dataclass(frozen=True, slots=True)
class _Provider:
    spec: ResourceSpec
    # As the runner calls it: `run_action_nowait` first (None: await `run_action`).
    component: ComponentBase
    calls: Mapping[str, str]


def _raised(prov: _Provider, call: str, exc: Exception) -> ActionOutcome:
    """A provider call that raised, failed as `invalid-configuration`."""
    return ActionOutcome(
        None,
        error=codes.INVALID_CONFIGURATION,
        message=f"{prov.spec.provider_component or DEFAULT_PROVIDER}.{call} raised "
        f"{type(exc).__name__}: {exc}",
    )


class LeaseBook:
    """The run's leases by (pool, handle) and by task; also a Service (TTL renew / expiry)."""

    def __init__(
        self,
        plan: Plan,
        components: Mapping[str, Component],
        log: LogSink,
        clock: Callable[[], float],
        wall: Callable[[], float],
        events: ProgressSink | None = None,
        finished: asyncio.Event | None = None,
    ) -> None:
        self.log = log
        self.finished = finished if finished is not None else asyncio.Event()
        self.clock = clock
        self.wall = wall
        self.events: Sink = as_sink(events)
        self.providers: dict[str, _Provider] = {}
        for name, spec in plan.resources.items():
            component = components.get(spec.provider_component or DEFAULT_PROVIDER)
            if component is not None:
                calls = {**DEFAULT_CALLS, **spec.provider_calls}
                self.providers[name] = _Provider(
                    spec, as_component(component), MappingProxyType(calls)
                )
        # A pool schedules by priority: acquisitions say whose scenario they are for.
        self.scheduled = any(spec.scheduling == "priority" for spec in plan.resources.values())
        self.held: dict[tuple[str, str], list[Holding]] = {}
        self.counts: dict[str, LeaseCounts] = {name: LeaseCounts() for name in self.providers}
        self.mounted: dict[str, Mapping[str, Any]] = {}
        # Provider calls that belong to no virtual user (mounts, health rotation).
        self.system = UserHandle("wbsrun-resources", "", private_session=False)

    async def _call(
        self, prov: _Provider, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome:
        """One provider call; a provider that raises (instead of answering an error outcome)
        fails that call as `invalid-configuration`, not the run."""
        try:
            return await prov.component.run_action(call, args, user)
        except Exception as exc:  # a third-party provider's bug must not take the run down
            return _raised(prov, call, exc)

    # -- start: mount the read-only blobs once, verified --------------------------------------
    async def start(self) -> None:
        for name, prov in self.providers.items():
            if prov.spec.type != "file_blob":
                continue
            out = await self._call(
                prov, prov.calls["mount"], {"pool": name, "bound": True}, self.system
            )
            if out.error is not None or out.value is None:
                raise RunError(f"resource '{name}': mount failed: {out.message or out.error}")
            self.mounted[name] = out.value

    # -- acquire / release ----------------------------------------------------------------------
    # Each has a `_nowait` twin for providers that answer at once (ports.ImmediateComponent,
    # as the built-in `resource-manager` does): the pass then leases and releases without the
    # coroutines of the general path, which almost never suspends.
    async def acquire(
        self, task: Task, pool: str, *, wait_for_health: bool = True
    ) -> Holding | ActionOutcome:
        """A lease for `task` (waiting for capacity), or the provider's error outcome."""
        got = self.acquire_nowait(task, pool, wait_for_health=wait_for_health)
        if got is not None:
            return got
        return await self.acquire_waiting(task, pool, wait_for_health=wait_for_health)

    async def acquire_waiting(
        self, task: Task, pool: str, *, wait_for_health: bool = True
    ) -> Holding | ActionOutcome:
        """`acquire` after `acquire_nowait` said None: the provider's call, awaited."""
        prov = self.providers[pool]
        call, args = self._acquire_call(prov, task, pool, wait_for_health)
        if self.scheduled:
            args["scenario"] = task.scenario.name
        try:
            out = await prov.component.run_action(call, args, task.user.handle)
        except Exception as exc:  # a third-party provider's bug must not take the run down
            out = _raised(prov, call, exc)
        return self._acquired(prov, task, pool, out)

    def acquire_nowait(
        self, task: Task, pool: str, *, wait_for_health: bool = True
    ) -> Holding | ActionOutcome | None:
        """`acquire` when it needs no waiting; None when it would wait (call `acquire`)."""
        prov = self.providers.get(pool)
        if prov is None:
            return ActionOutcome(
                None,
                error=codes.INVALID_CONFIGURATION,
                message=f"resource '{pool}': no provider component to lease it from",
            )
        if prov.spec.type == "file_blob":
            blob = self.mounted.get(pool, {})
            return Holding(pool, pool, blob, task, self.wall(), None, blob=True)
        call, args = self._acquire_call(prov, task, pool, wait_for_health)
        if self.scheduled:
            args["scenario"] = task.scenario.name
        try:
            out = prov.component.run_action_nowait(call, args, task.user.handle)
        except Exception as exc:  # a third-party provider's bug must not take the run down
            out = _raised(prov, call, exc)
        return None if out is None else self._acquired(prov, task, pool, out)

    @staticmethod
    def _acquire_call(
        prov: _Provider, task: Task, pool: str, wait_for_health: bool
    ) -> tuple[str, dict[str, Any]]:
        return prov.calls["acquire"], {
            "pool": pool,
            "holder": task.task_id,
            "bound": True,
            "wait-for-health": wait_for_health,
        }

    def _acquired(
        self, prov: _Provider, task: Task, pool: str, out: ActionOutcome
    ) -> Holding | ActionOutcome:
        if out.error is not None or out.value is None:
            if out.error and out.message:
                return out
            # A provider that answered nothing to tell: the error still says where.
            return ActionOutcome(
                None,
                error=out.error or codes.RESOURCE_UNAVAILABLE,
                message=f"resource '{pool}': {prov.spec.provider_component or DEFAULT_PROVIDER}."
                f"{prov.calls['acquire']} gave {out.error or 'no item'} without a message",
            )
        value = out.value
        handle = str(value.get("handle", ""))
        item: Any = value.get("item")
        kind = type(item)
        # Exact types first: isinstance against the Mapping ABC runs its __instancecheck__ in
        # Python (perf: the interpreter under _acquired, once a pass).
        if kind is not MappingProxyType and kind is not dict and not isinstance(item, Mapping):
            item = {k: v for k, v in value.items() if k not in ("handle", "pool")}
        ttl = prov.spec.ttl
        h = Holding(
            pool,
            handle,
            item,
            task,
            self.wall(),
            self.clock() + ttl if ttl else None,
            steps_at_renew=task.steps,
        )
        self.held.setdefault((pool, handle), []).append(h)
        self.counts[pool].acquired += 1
        return h

    async def release(self, h: Holding, reason: str, *, force: bool = False) -> bool:
        """Give the lease back once; deferred (and logged) while its holder is mid-action."""
        done = self.release_nowait(h, reason, force=force)
        if done is not None:
            return done
        prov = self.providers[h.pool]
        call, args = self._release_call(prov, h, reason)
        self._unhold(h)
        try:
            out = await prov.component.run_action(call, args, h.task.user.handle)
        except Exception as exc:  # a third-party provider's bug must not take the run down
            out = _raised(prov, call, exc)
        self._released(h, out)
        return True

    def release_nowait(self, h: Holding, reason: str, *, force: bool = False) -> bool | None:
        """`release` when it needs no waiting (deferred, done already, or a provider that
        answers at once); None when the provider must be awaited (call `release`)."""
        if h.released or h.blob:
            return False
        task = h.task
        if task.in_action and not force:
            if h.pending is None:
                self.counts[h.pool].deferred += 1
                action = task.run.workbook.get(task.entry, "execution.current_action")
                self.log.log(
                    "info",
                    f"release of {h.handle} ({reason}) deferred: {task.task_id} is mid-action "
                    f"({action})",
                    task.user_id,
                )
            h.pending = reason
            task.deferred = True
            return False
        prov = self.providers[h.pool]
        call, args = self._release_call(prov, h, reason)
        try:
            out = prov.component.run_action_nowait(call, args, task.user.handle)
        except Exception as exc:  # a third-party provider's bug must not take the run down
            out = _raised(prov, call, exc)
        if out is None:
            return None  # the provider wants to wait after all: `release` awaits it
        self._unhold(h)
        self._released(h, out)
        return True

    @staticmethod
    def _release_call(prov: _Provider, h: Holding, reason: str) -> tuple[str, dict[str, Any]]:
        return prov.calls["release"], {
            "pool": h.pool,
            "handle": h.handle,
            "holder": h.task.task_id,
            "reason": reason,
        }

    def _unhold(self, h: Holding) -> None:
        """Mark the lease given back (before the provider hears of it: once only)."""
        h.released = True
        h.pending = None
        holders = self.held.get((h.pool, h.handle))
        if holders is not None:
            holders.remove(h)
            if not holders:
                del self.held[(h.pool, h.handle)]

    def _released(self, h: Holding, out: ActionOutcome) -> None:
        counts = self.counts[h.pool]
        if out.error is not None:
            counts.release_failures += 1
            self.log.log("error", f"release of {h.handle} failed: {out.message}", h.task.user_id)
        else:
            counts.released += 1

    async def settle(self, task: Task) -> None:
        """Carry out the releases deferred while the task was mid-action."""
        if task.in_action:
            return
        task.deferred = False
        for h in list(task.holdings):
            if h.pending is not None and not h.released:
                await self.release(h, h.pending)

    def holders(self, pool: str, handle: str) -> list[Holding]:
        return list(self.held.get((pool, handle), ()))

    def bindings(self) -> list[Binding]:
        """Every live lease with its holder's task, phase and progress (the other direction)."""
        return [
            Binding(pool, handle, h.task.task_id, h.task.phase, h.task.progress, h.pending)
            for (pool, handle), holders in self.held.items()
            for h in holders
        ]

    # -- faults ---------------------------------------------------------------------------------
    def fail_item(
        self, pool: str, handle: str, reason: str, handlers: tuple[Handler, ...]
    ) -> list[Holding]:
        """The item failed its health check: every holder runs `handlers` at its next node."""
        hit = [h for h in self.held.get((pool, handle), ()) if not h.released]
        for h in hit:
            h.failed = True
            self._fault(h, ResourceFault(RESOURCE_FAILED, pool, handle, reason, handlers))
        return hit

    def _fault(self, h: Holding, fault: ResourceFault) -> None:
        task = h.task
        # A failed item outranks an expired lease: the rollback handles both.
        if task.fault is None or task.fault.code == codes.LEASE_EXPIRED:
            task.fault = fault
        self.counts[h.pool].faults += 1
        self.events.publish(task, "lease", PRIORITY_HIGH)

    async def track(self, pool: str, handle: str, event: str) -> ActionOutcome:
        """Tell the provider about an item: `healthy` / `unhealthy` (rotation)."""
        prov = self.providers.get(pool)
        if prov is None:
            return ActionOutcome(
                None,
                error=codes.INVALID_CONFIGURATION,
                message=f"resource '{pool}': no provider component to track it with",
            )
        return await self._call(
            prov, prov.calls["track"], {"pool": pool, "handle": handle, "event": event}, self.system
        )

    # -- TTL: renew holders that make progress, expire the others -------------------------------
    def tick(self) -> float | None:
        ttls = [p.spec.ttl for p in self.providers.values() if p.spec.ttl]
        if not ttls:
            return None
        return min(_TICK_MAX, max(_TICK_MIN, min(ttls) / 4))

    async def serve(self) -> None:
        tick = self.tick()
        if tick is None:
            return
        while not self.finished.is_set():
            try:
                async with asyncio.timeout(tick):
                    await self.finished.wait()
            except TimeoutError:
                pass  # swept below: a compiled coroutine must not suspend in a handler
            else:
                continue
            await self.sweep()

    async def sweep(self) -> None:
        now = self.clock()
        due = [
            h
            for holders in self.held.values()
            for h in holders
            if h.expires_at is not None and h.expires_at <= now and not h.expired
        ]
        for h in due:
            spec = self.providers[h.pool].spec
            ttl = spec.ttl or 0.0
            task = h.task
            # Auto-renew vouches for a holder that moved since the last renewal; a holder
            # stuck in one place for a whole TTL loses its lease like one without renewal.
            if spec.auto_renew and task.steps != h.steps_at_renew:
                h.steps_at_renew = task.steps
                h.expires_at = now + ttl
                self.counts[h.pool].renewed += 1
                continue
            h.expired = True
            self.counts[h.pool].expired += 1
            reason = f"lease on {h.handle} passed its {ttl:g}s TTL without renewal"
            self.log.log("warn", f"{task.task_id}: {reason}", task.user_id)
            self._fault(h, ResourceFault(codes.LEASE_EXPIRED, h.pool, h.handle, reason))
            await self.release(h, codes.LEASE_EXPIRED)

    def statistics(self) -> Mapping[str, Mapping[str, int]]:
        return {
            name: {
                "acquired": c.acquired,
                "returned": c.released,
                "expired": c.expired,
                "renewed": c.renewed,
                "deferred": c.deferred,
                "faults": c.faults,
                "release_failures": c.release_failures,
                "held": sum(len(v) for (pool, _), v in self.held.items() if pool == name),
            }
            for name, c in self.counts.items()
        }
