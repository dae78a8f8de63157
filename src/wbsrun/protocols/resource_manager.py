"""The built-in `resource-manager` component: lease calls a scenario may make explicitly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from wbsrun.core import codes
from wbsrun.core.ports import ActionOutcome, Lease, LeaseProvider, Runtime, UserHandle
from wbsrun.dsl.plan import ComponentSpec

__all__ = ["ResourceManagerComponent"]


class ResourceManagerComponent:
    """allocate_pair / release_pair / mount_file / track_lease over the run's lease provider."""

    CALLS: ClassVar[frozenset[str]] = frozenset(
        {"allocate_pair", "release_pair", "mount_file", "track_lease"}
    )
    REQUESTS_PER_CALL: ClassVar[int] = 0

    def __init__(self, spec: ComponentSpec | None = None) -> None:
        self.spec = spec
        self._leases: LeaseProvider | None = None

    async def init(self, runtime: Runtime) -> None:
        self._leases = runtime.leases

    def _held(self, user: UserHandle) -> dict[str, Lease]:
        held: dict[str, Lease] = user.state.setdefault("resource-manager", {})
        return held

    async def run_action(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome:
        if self._leases is None:
            return ActionOutcome(
                None, error=codes.INVALID_CONFIGURATION, message="no resources declared"
            )
        pool = str(args.get("pool", args.get("resource", "")))
        if call in ("allocate_pair", "mount_file"):
            lease = await self._leases.acquire(pool, f"{user.user_id}-explicit", user.user_id)
            self._held(user)[lease.handle] = lease
            return ActionOutcome({"handle": lease.handle, "pool": pool, **lease.item})
        handle = str(args.get("handle", ""))
        held = self._held(user).get(handle)
        if held is None:
            return ActionOutcome(
                None, error=codes.INVALID_CONFIGURATION, message=f"no lease '{handle}' held"
            )
        if call == "release_pair":
            self._leases.release(self._held(user).pop(handle), "release_pair")
            return ActionOutcome({"handle": handle, "released": True})
        return ActionOutcome({"handle": handle, "pool": held.pool, "released": held.released})

    async def release_user(self, user: UserHandle) -> None:
        if self._leases is None:
            return
        for lease in self._held(user).values():
            if not lease.released:
                self._leases.release(lease, "user-finished")
        self._held(user).clear()

    async def release(self) -> None:
        return None
