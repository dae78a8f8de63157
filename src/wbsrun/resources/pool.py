"""Resource pools: `pair_pool` items from a manifest and `file_blob` files, leased per task."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from wbsrun.core.ports import Lease
from wbsrun.dsl.plan import Plan, ResourceSpec
from wbsrun.errors import RunError

__all__ = ["PairPool", "PoolManager", "load_manifest"]


def load_manifest(spec: ResourceSpec) -> list[dict[str, Any]]:
    """Items of a pair_pool manifest (csv with `fields`, header optional; or a yaml list)."""
    if spec.manifest is None:
        raise RunError(f"resource '{spec.name}': no manifest")
    try:
        text = spec.manifest.read_text(encoding="utf-8")
    except OSError as exc:
        raise RunError(f"resource '{spec.name}': cannot read {spec.manifest}: {exc}") from exc
    if spec.parser_format == "yaml":
        data = yaml.safe_load(text)
        if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
            raise RunError(f"{spec.manifest}: expected a YAML list of mappings")
        return [{str(k): v for k, v in item.items()} for item in data]
    fields = list(spec.parser_fields)
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if rows and [c.strip() for c in rows[0]] == fields:
        rows = rows[1:]  # the header line is optional
    items = []
    for lineno, row in enumerate(rows, 1):
        if len(row) != len(fields):
            raise RunError(
                f"{spec.manifest}: row {lineno} has {len(row)} values, expected {len(fields)} "
                f"({', '.join(fields)}): {','.join(row)}"
            )
        item: dict[str, Any] = {}
        for name, raw in zip(fields, row, strict=True):
            value = raw.strip()
            item[name] = int(value) if value.isdigit() else value
        items.append(item)
    return items


def _handle(item: Mapping[str, Any], fields: tuple[str, ...]) -> str:
    if "ip" in item and "port" in item:
        return f"{item['ip']}:{item['port']}"
    return ":".join(str(item.get(f, "")) for f in fields)


@dataclass(eq=False)
class PairPool:
    """Items handed out round-robin or least-used; `exclusive` means one holder per item."""

    spec: ResourceSpec
    items: list[dict[str, Any]]
    exclusive: bool
    capacity: int  # most concurrent leases; 0: no cap beyond the guard
    free: OrderedDict[int, None] = field(default_factory=OrderedDict)
    holders: list[int] = field(default_factory=list)
    uses: list[int] = field(default_factory=list)
    waiters: deque[tuple[asyncio.Future[int], str]] = field(default_factory=deque)
    last_item: dict[str, int] = field(default_factory=dict)
    active: int = 0
    leases: int = 0
    released: int = 0
    expired: int = 0
    health_failures: int = 0
    cursor: int = 0

    def __post_init__(self) -> None:
        self.free = OrderedDict((i, None) for i in range(len(self.items)))
        self.holders = [0] * len(self.items)
        self.uses = [0] * len(self.items)

    def _pick(self, user_id: str) -> int | None:
        if (self.capacity and self.active >= self.capacity) or not self.items:
            return None
        # Affinity: a user gets its previous item back when free, keeping keep-alive warm.
        last = self.last_item.get(user_id)
        if self.exclusive:
            if not self.free:
                return None
            if last is not None and last in self.free:
                del self.free[last]
                return last
            if self.spec.strategy == "least-used":
                idx = min(self.free, key=self.uses.__getitem__)
                del self.free[idx]
                return idx
            return self.free.popitem(last=False)[0]
        if last is not None:
            return last
        if self.spec.strategy == "least-used":
            return min(range(len(self.items)), key=self.holders.__getitem__)
        idx = self.cursor % len(self.items)
        self.cursor += 1
        return idx

    def _grant(self, idx: int, user_id: str) -> None:
        self.holders[idx] += 1
        self.uses[idx] += 1
        self.active += 1
        self.leases += 1
        self.last_item[user_id] = idx

    async def acquire(self, user_id: str) -> int:
        idx = self._pick(user_id) if not self.waiters else None
        if idx is not None:
            self._grant(idx, user_id)
            return idx
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiters.append((fut, user_id))
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(fut.result())  # granted while being cancelled: not lost
            raise

    def release(self, idx: int) -> None:
        self.holders[idx] -= 1
        self.active -= 1
        self.released += 1
        if self.exclusive:
            self.free[idx] = None
        # Hand over to the longest waiter; accounting happens here, not when it wakes,
        # so nobody can slip past the capacity in between.
        while self.waiters:
            fut, uid = self.waiters.popleft()
            if fut.done():
                continue
            nxt = self._pick(uid)
            if nxt is None:
                self.waiters.appendleft((fut, uid))
                return
            self._grant(nxt, uid)
            fut.set_result(nxt)
            return


class PoolManager:
    """The run's lease provider over every declared resource."""

    def __init__(self, plan: Plan, clock: Any = time.time) -> None:
        self.pools: dict[str, PairPool] = {}
        self.blobs: dict[str, dict[str, Any]] = {}
        self.clock = clock
        for name, spec in plan.resources.items():
            if spec.type == "pair_pool":
                items = load_manifest(spec)
                # Without `capacity.size` nothing caps a shared pool; an exclusive one is
                # capped by its items anyway (one holder each).
                capacity = spec.capacity if spec.capacity is not None else 0
                self.pools[name] = PairPool(spec, items, spec.exclusive, capacity)
            else:
                self.blobs[name] = self._mount(spec)

    @staticmethod
    def _mount(spec: ResourceSpec) -> dict[str, Any]:
        if spec.file is None:
            raise RunError(f"resource '{spec.name}': no file")
        try:
            data = spec.file.read_bytes()
        except OSError as exc:
            raise RunError(f"resource '{spec.name}': cannot read {spec.file}: {exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        if spec.checksum not in (None, "auto") and spec.checksum != digest:
            raise RunError(
                f"resource '{spec.name}': sha256 of {spec.file} is {digest}, "
                f"the scenario expects {spec.checksum}"
            )
        return {"path": str(spec.file), "sha256": digest, "size": len(data), "handle": spec.name}

    def item_count(self, pool: str) -> int:
        p = self.pools.get(pool)
        return len(p.items) if p else 1

    def is_exclusive(self, pool: str) -> bool:
        p = self.pools.get(pool)
        return bool(p and p.exclusive)

    async def acquire(self, pool: str, holder: str, user_id: str) -> Lease:
        p = self.pools.get(pool)
        if p is None:
            blob = self.blobs[pool]
            return Lease(pool, str(blob["handle"]), blob, holder, self.clock())
        idx = await p.acquire(user_id)
        item = p.items[idx]
        return Lease(pool, _handle(item, p.spec.parser_fields), item, holder, self.clock(), idx)

    def release(self, lease: Lease, reason: str) -> bool:
        if lease.released:
            return False
        lease.released = True
        p = self.pools.get(lease.pool)
        if p is not None and lease.index >= 0:
            p.release(lease.index)
        return True

    def statistics(self) -> Mapping[str, Mapping[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for name, p in self.pools.items():
            out[name] = {
                "capacity": p.capacity,
                "items": len(p.items),
                "leases": p.leases,
                "released": p.released,
                "active": p.active,
                "expired": p.expired,
                "health_failures": p.health_failures,
            }
        for name in self.blobs:
            out[name] = {
                "capacity": 0,
                "items": 1,
                "leases": 0,
                "released": 0,
                "active": 0,
                "expired": 0,
                "health_failures": 0,
            }
        return out
