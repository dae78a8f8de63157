"""A lease provider in Python (docs/wasi.md), built with componentize-py into a component of
the world wbsrun:resource/lease-provider.

Each item goes to one holder at a time (exclusive), the least often leased free item first;
`acquire` answers none when every item is held, and the host waits for a release. Handles
are `ITEM#N`: N counts the leases of that item, so `mount` can report how many there were.
"""

from __future__ import annotations

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import pool as host
from wit_world.imports import types

# pool → per item: its holder ("" when free) and how often it was leased. Module-level:
# componentize-py makes a new `Provider` for every call into the component.
HOLDERS: dict[str, list[str]] = {}
LEASED: dict[str, list[int]] = {}


class Provider(exports.Provider):
    def __init__(self) -> None:
        self.holders = HOLDERS
        self.leased = LEASED

    def _pool(self, pool: str) -> tuple[list[str], list[int]]:
        if pool not in self.holders:
            count = len(host.items(pool))
            if count == 0:
                raise Err(types.Failure("invalid-configuration", f"pool {pool!r} has no items"))
            self.holders[pool] = [""] * count
            self.leased[pool] = [0] * count
        return self.holders[pool], self.leased[pool]

    def acquire(self, pool: str, holder: str, user: str) -> types.Grant | None:
        holders, leased = self._pool(pool)
        free = [i for i, h in enumerate(holders) if not h]
        if not free:
            return None
        index = min(free, key=lambda i: (leased[i], i))
        holders[index] = holder
        leased[index] += 1
        return types.Grant(handle=f"{index}#{leased[index]}", index=index)

    def release(self, pool: str, handle: str, holder: str, reason: str) -> bool:
        holders, _ = self._pool(pool)
        index = int(handle.split("#", 1)[0]) if handle.split("#", 1)[0].isdigit() else -1
        if not 0 <= index < len(holders) or not holders[index]:
            host.log(host.Level.WARN, f"release of {handle!r} that is not held ({reason})")
            return False
        holders[index] = ""
        return True

    def mount(self, pool: str) -> str:
        holders, leased = self._pool(pool)
        held = sum(1 for h in holders if h)
        return json.dumps({"pool": pool, "items": len(holders), "held": held, "leased": leased})

    def track_lease(self, pool: str, handle: str, event: str) -> str:
        holders, _ = self._pool(pool)
        index = int(handle.split("#", 1)[0]) if handle.split("#", 1)[0].isdigit() else -1
        state = "held" if 0 <= index < len(holders) and holders[index] else "free"
        return json.dumps({"pool": pool, "handle": handle, "state": state, "event": event})
