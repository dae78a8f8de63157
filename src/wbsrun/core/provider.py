"""The lease provider: the built-in pools' interface, as the compiled base class they subclass.

A class rather than a Protocol for the same reason as `Ledger` (core/ledger/_base.py): compiled
code calls a method of a Protocol-typed value by name, its arguments boxed and parsed again
by the callee, while a method of a compiled base class is a native call. The
`resource-manager` component makes two such calls a pass (a lease and its release)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wbsrun.core.handles import Lease

__all__ = ["LeaseProvider"]


class LeaseProvider:
    """The built-in pools behind the `resource-manager` component (resources/pool.py's
    `PoolManager`). Waits are cancellable (bounded by the task timeout); failures raise
    LeaseError (core/ports.py)."""

    def item_count(self, pool: str) -> int:
        raise NotImplementedError

    def is_exclusive(self, pool: str) -> bool:
        raise NotImplementedError

    def items(self, pool: str) -> list[tuple[str, Mapping[str, Any]]]:
        raise NotImplementedError

    async def acquire(
        self,
        pool: str,
        holder: str,
        user_id: str,
        *,
        wait_for_health: bool = True,
        scenario: str = "",
    ) -> Lease:
        raise NotImplementedError

    def acquire_nowait(
        self,
        pool: str,
        holder: str,
        user_id: str,
        *,
        wait_for_health: bool = True,
        scenario: str = "",
    ) -> Lease | None:
        """The lease `acquire` would give at once, or None when it would wait. `scenario`: the
        holder's, for priority scheduling (resources/sched.py; "" when no pool schedules)."""
        raise NotImplementedError

    def release(self, lease: Lease, reason: str) -> bool:
        raise NotImplementedError

    def release_handle(self, pool: str, handle: str) -> bool:
        raise NotImplementedError

    def set_health(self, pool: str, handle: str, healthy: bool) -> bool:
        raise NotImplementedError

    def mount(self, name: str) -> Mapping[str, Any]:
        raise NotImplementedError

    def statistics(self) -> Mapping[str, Mapping[str, int]]:
        raise NotImplementedError
