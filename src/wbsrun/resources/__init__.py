"""Resource manager: pooled items and blobs leased to tasks, and their health checks."""

from wbsrun.core.runner import Runner
from wbsrun.resources.health import HealthSupervisor, ItemHealth
from wbsrun.resources.pool import NoHealthyItem, PairPool, PoolManager, UnknownPool, load_manifest

__all__ = [
    "HealthSupervisor",
    "ItemHealth",
    "NoHealthyItem",
    "PairPool",
    "PoolManager",
    "UnknownPool",
    "attach_health_checks",
    "load_manifest",
]


def attach_health_checks(runner: Runner, pools: PoolManager) -> HealthSupervisor:
    """Give the run its health checks over the built-in pools' items (a Service)."""
    supervisor = HealthSupervisor(runner.ctx, {name: pools.items(name) for name in pools.pools})
    runner.services.append(supervisor)
    return supervisor
