"""The built-in `resource-manager` component: the provider calls over the run's pools.

The core reaches pools only through these calls (mapped per resource in `provider.calls`):
`allocate_pair` (waits for capacity), `release_pair`, `mount_file` (verified sha256,
read-only) and `track_lease` (rotation: `event: unhealthy | healthy`; without `event`, the
lease's state). Calls the core makes carry `bound: true` — the lease book tracks those leases;
the same calls made by a scenario's own actions are tracked here, per user, and given back when
the user finishes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, cast

from wbsrun.core import codes
from wbsrun.core.components import ComponentBase
from wbsrun.core.ports import (
    ActionOutcome,
    Lease,
    LeaseError,
    Runtime,
    UserHandle,
)
from wbsrun.core.provider import LeaseProvider
from wbsrun.dsl.plan import ComponentSpec

__all__ = ["ResourceManagerComponent"]

_EXPLICIT = "resource-manager"


def _as_dict(args: Mapping[str, Any]) -> dict[str, Any]:
    """The call's arguments as a dict (what the core passes): reads are then dict lookups,
    not `get` looked up by name on the Mapping."""
    return cast(dict[str, Any], args) if type(args) is dict else dict(args)


_ABSENT: Any = object()


def _pool_of(args: dict[str, Any]) -> str:
    pool = args.get("pool", _ABSENT)
    return str(pool if pool is not _ABSENT else args.get("resource", ""))


class ResourceManagerComponent(ComponentBase):
    """allocate_pair / release_pair / mount_file / track_lease over the built-in pools."""

    CALLS: ClassVar[frozenset[str]] = frozenset(
        {"allocate_pair", "release_pair", "mount_file", "track_lease"}
    )
    REQUESTS_PER_CALL: ClassVar[int] = 0

    def __init__(self, spec: ComponentSpec | None = None) -> None:
        self.spec = spec
        self._pools: LeaseProvider | None = None
        # Leases the core holds (bound), by (pool, handle, holder): released by handle.
        self._bound: dict[tuple[str, str, str], Lease] = {}

    async def init(self, runtime: Runtime) -> None:
        self._pools = runtime.leases

    def _explicit(self, user: UserHandle) -> dict[str, Lease]:
        held: dict[str, Lease] = user.state.setdefault(_EXPLICIT, {})
        return held

    async def run_action(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome:
        out = self.run_action_nowait(call, args, user)
        if out is not None:
            return out
        # `allocate_pair` with no item free: queue for one.
        pools = self._pools
        assert pools is not None
        d = _as_dict(args)
        pool = _pool_of(d)
        try:
            lease = await pools.acquire(
                pool,
                self._holder(d, user),
                user.user_id,
                wait_for_health=bool(d.get("wait-for-health", True)),
                scenario=str(d.get("scenario", "")),
            )
        except LeaseError as exc:
            return ActionOutcome(None, error=exc.code, message=str(exc))
        return self._allocated(pool, lease, d, user)

    def run_action_nowait(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome | None:
        """Every call but an `allocate_pair` that has to wait for an item answers at once
        (`ImmediateComponent`): the lease book leases and releases without a coroutine."""
        pools = self._pools
        if pools is None:
            return ActionOutcome(
                None, error=codes.INVALID_CONFIGURATION, message="no resources declared"
            )
        d = _as_dict(args)
        pool = _pool_of(d)
        try:
            if call == "allocate_pair":
                lease = pools.acquire_nowait(
                    pool,
                    self._holder(d, user),
                    user.user_id,
                    wait_for_health=bool(d.get("wait-for-health", True)),
                    scenario=str(d.get("scenario", "")),
                )
                return None if lease is None else self._allocated(pool, lease, d, user)
            if call == "mount_file":
                return ActionOutcome(dict(pools.mount(pool)))
            if call == "release_pair":
                return self._release(pools, pool, d, user)
            return self._track(pools, pool, d, user)
        except LeaseError as exc:
            return ActionOutcome(None, error=exc.code, message=str(exc))

    @staticmethod
    def _holder(args: dict[str, Any], user: UserHandle) -> str:
        return str(args.get("holder") or f"{user.user_id}-explicit")

    def _allocated(
        self, pool: str, lease: Lease, args: dict[str, Any], user: UserHandle
    ) -> ActionOutcome:
        if args.get("bound"):
            self._bound[(pool, lease.handle, lease.holder)] = lease
        else:
            self._explicit(user)[lease.handle] = lease
        return ActionOutcome(
            {"handle": lease.handle, "pool": pool, "item": lease.item, **lease.item}
        )

    def _release(
        self, pools: LeaseProvider, pool: str, args: dict[str, Any], user: UserHandle
    ) -> ActionOutcome:
        handle = str(args.get("handle", ""))
        holder = str(args.get("holder", ""))
        lease = self._bound.pop((pool, handle, holder), None)
        if lease is None:
            lease = self._explicit(user).pop(handle, None)
        if lease is None:
            return ActionOutcome(
                None,
                error=codes.INVALID_CONFIGURATION,
                message=f"no lease on '{handle}' in '{pool}' held by {holder or user.user_id}",
            )
        released = pools.release(lease, str(args.get("reason", "release_pair")))
        return ActionOutcome({"handle": handle, "pool": pool, "released": released})

    def _track(
        self, pools: LeaseProvider, pool: str, args: dict[str, Any], user: UserHandle
    ) -> ActionOutcome:
        handle = str(args.get("handle", ""))
        event = args.get("event")
        if event in ("healthy", "unhealthy"):
            changed = pools.set_health(pool, handle, event == "healthy")
            return ActionOutcome({"handle": handle, "pool": pool, "changed": changed})
        held = self._explicit(user).get(handle)
        state = "held" if held is not None and not held.released else "free"
        return ActionOutcome({"handle": handle, "pool": pool, "state": state})

    async def release_user(self, user: UserHandle) -> None:
        if self._pools is None:
            return
        for lease in self._explicit(user).values():
            if not lease.released:
                self._pools.release(lease, "user-finished")
        self._explicit(user).clear()

    async def release(self) -> None:
        # Anything the core still holds at the very end (an aborted run) goes back too.
        if self._pools is not None:
            for lease in self._bound.values():
                self._pools.release(lease, "run-ended")
        self._bound.clear()
