"""Health checks per pooled item: probe every `interval` within `timeout`; a failing item
leaves rotation and its holders run the resource's `on-failure` list; it comes back after
passing again."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from wbsrun.core import codes
from wbsrun.core.ports import ActionOutcome, UserHandle
from wbsrun.core.task import RunContext
from wbsrun.dsl.expr import ExprError
from wbsrun.dsl.plan import HealthCheckSpec, ResourceSpec

__all__ = ["PROBE_CONCURRENCY", "HealthSupervisor", "ItemHealth"]

# Probes of one round in flight at once: a 1,000-item pool is checked without 1,000 sockets.
PROBE_CONCURRENCY: Final = 64


@dataclass(slots=True)
class ItemHealth:
    healthy: bool = True
    last_error: str = ""
    consecutive_failures: int = 0


class HealthSupervisor:
    """A Service: one watcher per resource with a `health-check`, for the run's lifetime."""

    def __init__(self, ctx: RunContext, items: Mapping[str, list[tuple[str, Mapping[str, Any]]]]):
        self.ctx = ctx
        self.items = items  # pool → [(handle, item)], from the provider
        self.state: dict[str, dict[str, ItemHealth]] = {
            pool: {handle: ItemHealth() for handle, _ in pairs} for pool, pairs in items.items()
        }
        # Probes share the scenario's connection pool but belong to no virtual user.
        self.user = UserHandle("wbsrun-health", "", private_session=False)

    def watched(self) -> list[ResourceSpec]:
        return [
            spec
            for name, spec in self.ctx.plan.resources.items()
            if spec.health_check is not None and name in self.items
        ]

    async def serve(self) -> None:
        specs = self.watched()
        if not specs:
            return
        async with asyncio.TaskGroup() as tg:
            for spec in specs:
                tg.create_task(self._watch(spec))

    async def _watch(self, spec: ResourceSpec) -> None:
        hc = spec.health_check
        assert hc is not None
        finished = self.ctx.finished
        while not finished.is_set():
            try:
                async with asyncio.timeout(hc.interval):
                    await finished.wait()
            except TimeoutError:
                await self.check(spec.name, hc)

    async def check(self, pool: str, hc: HealthCheckSpec) -> None:
        """One round: every item of the pool probed, at most PROBE_CONCURRENCY at once."""
        gate = asyncio.Semaphore(PROBE_CONCURRENCY)

        async def one(handle: str, item: Mapping[str, Any]) -> None:
            async with gate:
                outcome = await self.probe(hc, item)
            await self._judge(pool, hc, handle, outcome)

        async with asyncio.TaskGroup() as tg:
            for handle, item in self.items[pool]:
                tg.create_task(one(handle, item))

    async def probe(self, hc: HealthCheckSpec, item: Mapping[str, Any]) -> ActionOutcome:
        action = hc.probe
        stats = self.ctx.stats
        scope = {"resource": MappingProxyType(dict(item)), "global": self.ctx.globals_view}
        try:
            args = action.args.render(scope)
        except ExprError as exc:
            return ActionOutcome(None, error=codes.code_for_expression(exc), message=str(exc))
        component = self.ctx.components[action.component]
        try:
            async with asyncio.timeout(hc.timeout):
                outcome = await component.run_action(action.call, args, self.user)
        except TimeoutError:
            outcome = ActionOutcome(
                None,
                error=codes.NETWORK_TIMEOUT,
                message=f"no answer within {hc.timeout:g}s",
                requests=getattr(component, "REQUESTS_PER_CALL", 0),
            )
        except Exception as exc:  # a component's bug fails the probe, not the run
            outcome = ActionOutcome(
                None,
                error=codes.INVALID_CONFIGURATION,
                message=f"{action.component}.{action.call} raised {type(exc).__name__}: {exc}",
            )
        if outcome.requests:
            # Probes are requests the servers count too: they belong in the run's totals.
            stats.requests_total += outcome.requests
            stats.health_probes += outcome.requests
            if outcome.error is None:
                stats.requests_ok += outcome.requests
            else:
                stats.requests_failed += outcome.requests
        return outcome

    def _count(self, pool: str, key: str) -> None:
        figures = self.ctx.stats.resource_health.setdefault(
            pool, {"probes": 0, "failures": 0, "items_failed": 0, "items_recovered": 0}
        )
        figures[key] += 1

    async def _judge(
        self, pool: str, hc: HealthCheckSpec, handle: str, outcome: ActionOutcome
    ) -> None:
        state = self.state[pool][handle]
        log = self.ctx.log
        book = self.ctx.leases
        self._count(pool, "probes")
        if outcome.error is None:
            state.consecutive_failures = 0
            if not state.healthy:
                state.healthy = True
                self._count(pool, "items_recovered")
                if book is not None:
                    await book.track(pool, handle, "healthy")
                log.log("info", f"resource '{pool}' item {handle} passed again: back in rotation")
            return
        self._count(pool, "failures")
        state.consecutive_failures += 1
        state.last_error = outcome.message or outcome.error
        if not state.healthy:
            return
        state.healthy = False
        self._count(pool, "items_failed")
        reason = f"resource '{pool}' item {handle} failed its health check ({state.last_error})"
        if book is None:
            log.log("warn", f"{reason}; out of rotation")
            return
        await book.track(pool, handle, "unhealthy")
        holders = book.fail_item(pool, handle, reason, hc.on_failure)
        log.log(
            "warn",
            f"{reason}; out of rotation, {len(holders)} holding task(s) run on-failure",
        )
