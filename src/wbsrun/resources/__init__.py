"""Resource manager: pooled items and blobs leased to tasks, and their health checks."""

from wbsrun.core.runner import Runner
from wbsrun.progress.aggregate import Aggregator
from wbsrun.resources.health import HealthSupervisor, ItemHealth
from wbsrun.resources.pool import NoHealthyItem, PairPool, PoolManager, UnknownPool, load_manifest
from wbsrun.resources.priority import PriorityService

__all__ = [
    "HealthSupervisor",
    "ItemHealth",
    "NoHealthyItem",
    "PairPool",
    "PoolManager",
    "UnknownPool",
    "attach_health_checks",
    "attach_scheduling",
    "load_manifest",
]


def attach_health_checks(runner: Runner, pools: PoolManager) -> HealthSupervisor:
    """Give the run its health checks over the built-in pools' items (a Service)."""
    supervisor = HealthSupervisor(runner.ctx, {name: pools.items(name) for name in pools.pools})
    runner.services.append(supervisor)
    return supervisor


def attach_scheduling(
    runner: Runner, pools: PoolManager, aggregator: Aggregator
) -> PriorityService | None:
    """Priorities that follow the scenarios' health (a Service), when a pool schedules by
    priority (`leasing.scheduling: priority`); None otherwise: nothing runs."""
    if pools.scheduling is None:
        return None
    service = PriorityService(runner, aggregator, pools.scheduling)
    runner.services.append(service)
    return service
