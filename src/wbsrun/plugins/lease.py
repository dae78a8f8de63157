"""A component of the world `wbsrun:resource/resource` as a lease provider.

The host reads the pool's items (the resource's manifest, through the run's pools) and hands
them to the component on request (`pool.items`); the component decides which item a holder
gets and when. The core calls it as any provider (`provider.calls` mapped to `acquire`,
`release`, `mount`, `track-lease`); an `acquire` the component answers with none waits for
the next release, then asks again, until the pass's timeout cancels it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from wasmtime.component import Linker, Variant

from wbsrun.core import codes
from wbsrun.core.ports import ActionOutcome, Runtime, UserHandle
from wbsrun.dsl.plan import ComponentSpec
from wbsrun.plugins.engine import engine
from wbsrun.plugins.instances import InstancePool
from wbsrun.plugins.settings import PluginSettings, failure_of

__all__ = ["POOL", "PROVIDER", "PROVIDER_FUNCS", "WasmLeaseProvider"]

PROVIDER: Final = "wbsrun:resource/provider@0.1.0"
POOL: Final = "wbsrun:resource/pool@0.1.0"
_FAILURE: Final = "record{code: string, message: string}"
# The provider's exports and their signatures in the world (calls.signature's notation).
PROVIDER_FUNCS: Final = {
    "acquire": "func(pool: string, holder: string, user: string) -> "
    f"result<option<record{{handle: string, index: u32}}>, {_FAILURE}>",
    "release": "func(pool: string, handle: string, holder: string, reason: string) -> bool",
    "mount": f"func(pool: string) -> result<string, {_FAILURE}>",
    "track-lease": "func(pool: string, handle: string, event: string) -> "
    f"result<string, {_FAILURE}>",
}


def _result(value: Any) -> tuple[bool, Any]:
    """(ok, payload) of a WIT `result` as wasmtime-py gives it (tagged or not)."""
    if isinstance(value, Variant):
        return value.tag == "ok", value.payload
    if hasattr(value, "code") and hasattr(value, "message"):
        return False, value
    return True, value


class WasmLeaseProvider:
    """acquire / release / mount / track-lease answered by the component."""

    CALLS: ClassVar[frozenset[str]] = frozenset(PROVIDER_FUNCS)

    def __init__(self, spec: ComponentSpec, component: Any, settings: PluginSettings) -> None:
        self.spec = spec
        self.name = spec.name
        self.settings = settings
        self._runtime: Runtime | None = None
        self._released = asyncio.Event()
        linker = Linker(engine())
        with linker.root() as root, root.add_instance(POOL) as pool:
            pool.add_func("log", self._log)
            pool.add_func("now", self._now)
            pool.add_func("items", self._items)
        # One instance for the whole run: the provider's books are shared by every user.
        shared = PluginSettings("per-worker", settings.fuel, settings.memory)
        self.pool = InstancePool(component, linker, PROVIDER, PROVIDER_FUNCS, shared)

    def _log(self, _store: Any, level: str, message: str) -> None:
        if self._runtime is not None:
            self._runtime.log.log(level, f"{self.name}: {message}")

    def _now(self, _store: Any) -> float:
        return self._runtime.clock() if self._runtime is not None else 0.0

    def _items(self, _store: Any, pool: str) -> list[list[tuple[str, str]]]:
        leases = self._runtime.leases if self._runtime is not None else None
        if leases is None:
            return []
        try:
            found = leases.items(pool)
        except Exception:  # an unknown pool: the component sees none
            return []
        return [[(str(k), str(v)) for k, v in item.items()] for _handle, item in found]

    async def init(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.pool.get("")

    def _call(self, func: str, *args: Any) -> tuple[Any, ActionOutcome | None]:
        try:
            return self.pool.get("").call(func, *args), None
        except Exception as exc:
            self.pool.drop("")
            code, message = failure_of(self.name, exc, self.settings)
            return None, ActionOutcome(None, code, message)

    def run_action_nowait(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome | None:
        pool = str(args.get("pool", args.get("resource", "")))
        if call == "acquire":
            holder = str(args.get("holder") or f"{user.user_id}-explicit")
            return self._acquire(pool, holder, user.user_id)
        if call == "release":
            got, failed = self._call(
                "release",
                pool,
                str(args.get("handle", "")),
                str(args.get("holder", "")),
                str(args.get("reason", "release")),
            )
            if failed is not None:
                return failed
            self._released.set()
            return ActionOutcome({"handle": args.get("handle"), "pool": pool, "released": got})
        if call == "mount":
            return self._json(self._call("mount", pool))
        event = args.get("event")
        return self._json(
            self._call("track-lease", pool, str(args.get("handle", "")), str(event or ""))
        )

    def _acquire(self, pool: str, holder: str, user_id: str) -> ActionOutcome | None:
        got, failed = self._call("acquire", pool, holder, user_id)
        if failed is not None:
            return failed
        ok, payload = _result(got)
        if not ok:
            return ActionOutcome(
                None, str(getattr(payload, "code", "")), str(getattr(payload, "message", ""))
            )
        if payload is None:
            return None  # none free: wait for a release
        handle, index = getattr(payload, "handle", None), getattr(payload, "index", None)
        items = self._runtime.leases.items(pool) if self._runtime and self._runtime.leases else []
        if (
            not isinstance(handle, str)
            or not isinstance(index, int)
            or not (0 <= index < len(items))
        ):
            return ActionOutcome(
                None,
                codes.PLUGIN_WRONG_TYPE,
                f"plugin '{self.name}': acquire granted item {index!r} (handle {handle!r}) "
                f"of a pool of {len(items)}",
            )
        item = dict(items[index][1])
        return ActionOutcome({"handle": handle, "pool": pool, "item": item, **item})

    def _json(self, answer: tuple[Any, ActionOutcome | None]) -> ActionOutcome:
        got, failed = answer
        if failed is not None:
            return failed
        ok, payload = _result(got)
        if not ok:
            return ActionOutcome(
                None, str(getattr(payload, "code", "")), str(getattr(payload, "message", ""))
            )
        try:
            value = json.loads(payload) if isinstance(payload, str) else None
        except ValueError:
            value = None
        if not isinstance(value, dict):
            return ActionOutcome(
                None, codes.PLUGIN_WRONG_TYPE, f"plugin '{self.name}': {payload!r} is no object"
            )
        return ActionOutcome(value)

    async def run_action(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome:
        while True:
            out = self.run_action_nowait(call, args, user)
            if out is not None:
                return out
            self._released.clear()
            await self._released.wait()

    async def release_user(self, user: UserHandle) -> None:
        return None

    async def release(self) -> None:
        self.pool.clear()
