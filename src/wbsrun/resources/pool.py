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
from types import MappingProxyType
from typing import Any

import yaml

from wbsrun.core import codes
from wbsrun.core.ports import Lease, LeaseError
from wbsrun.core.provider import LeaseProvider
from wbsrun.dsl.plan import Plan, ResourceSpec
from wbsrun.errors import RunError
from wbsrun.resources.sched import Scheduling, WaitQueue

__all__ = ["NoHealthyItem", "PairPool", "PoolManager", "UnknownPool", "load_manifest"]


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


class NoHealthyItem(LeaseError):
    """Every item of the pool is out of rotation (failed its health check)."""

    def __init__(self, message: str) -> None:
        super().__init__(codes.RESOURCE_UNAVAILABLE, message)


class UnknownPool(LeaseError):
    """A provider call named a pool the scenario does not declare."""

    def __init__(self, message: str) -> None:
        super().__init__(codes.INVALID_CONFIGURATION, message)


@dataclass(eq=False)
class PairPool:
    """Items handed out round-robin or least-used; `exclusive` means one holder per item.
    Items that failed their health check are out of rotation until they pass again."""

    spec: ResourceSpec
    items: list[dict[str, Any]]
    exclusive: bool
    capacity: int  # most concurrent leases; 0: no cap beyond the guard
    free: OrderedDict[int, None] = field(default_factory=OrderedDict)
    holders: list[int] = field(default_factory=list)
    uses: list[int] = field(default_factory=list)
    healthy: list[bool] = field(default_factory=list)
    handles: list[str] = field(default_factory=list)
    by_handle: dict[str, int] = field(default_factory=dict)
    waiters: deque[tuple[asyncio.Future[int], str]] = field(default_factory=deque)
    last_item: dict[str, int] = field(default_factory=dict)
    active: int = 0
    leases: int = 0
    released: int = 0
    release_errors: int = 0
    cursor: int = 0
    # `leasing.scheduling: priority`: the waiters queue here instead (resources/sched.py).
    sched: WaitQueue | None = None
    # Lease-seconds of the leases given back (PoolManager.release): the pool's utilisation.
    held_s: float = 0.0

    def __post_init__(self) -> None:
        n = len(self.items)
        self.free = OrderedDict((i, None) for i in range(n))
        self.holders = [0] * n
        self.uses = [0] * n
        self.healthy = [True] * n
        self.handles = [_handle(item, self.spec.parser_fields) for item in self.items]
        self.by_handle = {h: i for i, h in enumerate(self.handles)}

    def healthy_count(self) -> int:
        return sum(self.healthy)

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
        healthy = self.healthy
        if last is not None and healthy[last]:
            return last
        candidates = [i for i in range(len(self.items)) if healthy[i]]
        if not candidates:
            return None
        if self.spec.strategy == "least-used":
            return min(candidates, key=self.holders.__getitem__)
        # Round-robin over the items in rotation.
        for _ in range(len(self.items)):
            idx = self.cursor % len(self.items)
            self.cursor += 1
            if healthy[idx]:
                return idx
        return None  # pragma: no cover - candidates is not empty

    def _grant(self, idx: int, user_id: str) -> None:
        self.holders[idx] += 1
        self.uses[idx] += 1
        self.active += 1
        self.leases += 1
        self.last_item[user_id] = idx

    async def acquire(self, user_id: str, *, wait_for_health: bool = True) -> int:
        idx = self.try_acquire(user_id, wait_for_health=wait_for_health)
        return idx if idx is not None else await self.wait(user_id)

    def try_acquire(self, user_id: str, *, wait_for_health: bool = True) -> int | None:
        """An item granted now, or None: the caller then queues with `wait`. Split from
        `acquire` so callers on the hot path skip a coroutine that almost never suspends."""
        if not wait_for_health and self.items and not any(self.healthy):
            raise NoHealthyItem(f"resource '{self.spec.name}': no item passes its health check")
        sched = self.sched
        queued = bool(self.waiters) or (sched is not None and len(sched) > 0)
        idx = self._pick(user_id) if not queued else None
        if idx is not None:
            self._grant(idx, user_id)
        return idx

    async def wait(self, user_id: str, holder: str = "", scenario: str = "") -> int:
        """Queue behind earlier waiters until `_serve_waiters` grants an item (a priority
        pool: queue by rank, `holder` and `scenario` saying whose it is)."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self.sched is not None:
            self.sched.push(fut, user_id, holder, scenario)
        else:
            self.waiters.append((fut, user_id))
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(fut.result())  # granted while being cancelled: not lost
            raise

    def release(self, idx: int) -> bool:
        """Return one hold on item `idx`; False (and counted) when nobody holds it."""
        if self.holders[idx] <= 0:
            self.release_errors += 1
            return False
        self.holders[idx] -= 1
        self.active -= 1
        self.released += 1
        if self.exclusive and self.healthy[idx]:
            self.free[idx] = None
        self._serve_waiters()
        return True

    def set_health(self, idx: int, healthy: bool) -> bool:
        """Take an item out of rotation, or back in; True when that changed anything."""
        if self.healthy[idx] == healthy:
            return False
        self.healthy[idx] = healthy
        if not healthy:
            self.free.pop(idx, None)
            if self.last_item:
                # Affinity must not steer anyone back to it.
                for uid in [u for u, i in self.last_item.items() if i == idx]:
                    del self.last_item[uid]
        else:
            if self.exclusive and self.holders[idx] == 0:
                self.free[idx] = None
            self._serve_waiters()
        return True

    def _serve_waiters(self) -> None:
        # Hand over to the longest waiter; accounting happens here, not when it wakes,
        # so nobody can slip past the capacity in between.
        if self.sched is not None:
            self._serve_by_rank(self.sched)
            return
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

    def _serve_by_rank(self, sched: WaitQueue) -> None:
        while True:
            w = sched.best()
            if w is None:
                return
            nxt = self._pick(w.user_id)
            if nxt is None:
                return
            sched.granted(w)
            self._grant(nxt, w.user_id)
            w.fut.set_result(nxt)


class PoolManager(LeaseProvider):
    """The built-in lease provider over every declared resource (the backend of the
    `resource-manager` component): pools, blobs, rotation, counts."""

    def __init__(self, plan: Plan, clock: Any = time.time) -> None:
        self.pools: dict[str, PairPool] = {}
        self.blobs: dict[str, dict[str, Any]] = {}
        self.blob_specs: dict[str, ResourceSpec] = {}
        self.mounts: dict[str, int] = {}
        self.clock = clock
        # Any pool with `scheduling: priority`: the run's priorities, holds and counts.
        self.scheduling: Scheduling | None = None
        if any(s.scheduling == "priority" for s in plan.resources.values()):
            values = {sc.name: sc.business_value for sc in plan.scenarios}
            self.scheduling = Scheduling(values, time.monotonic)
        for name, spec in plan.resources.items():
            if spec.type == "pair_pool":
                items = load_manifest(spec)
                # Without `capacity.size` nothing caps a shared pool; an exclusive one is
                # capped by its items anyway (one holder each).
                capacity = spec.capacity if spec.capacity is not None else 0
                pool = self.pools[name] = PairPool(spec, items, spec.exclusive, capacity)
                if self.scheduling is not None and spec.scheduling == "priority":
                    # The share arithmetic needs a finite capacity: the items cap a pool.
                    pool.sched = self.scheduling.queue(name, capacity or len(items))
            else:
                self.blobs[name] = self._digest(spec)
                self.blob_specs[name] = spec
                self.mounts[name] = 0

    @staticmethod
    def _read(spec: ResourceSpec) -> bytes:
        if spec.file is None:
            raise RunError(f"resource '{spec.name}': no file")
        try:
            return spec.file.read_bytes()
        except OSError as exc:
            raise RunError(f"resource '{spec.name}': cannot read {spec.file}: {exc}") from exc

    @classmethod
    def _digest(cls, spec: ResourceSpec) -> dict[str, Any]:
        data = cls._read(spec)
        digest = hashlib.sha256(data).hexdigest()
        expected = (spec.checksum or "auto").lower().removeprefix("sha256:")
        if expected != "auto" and expected != digest:
            raise RunError(
                f"resource '{spec.name}': sha256 of {spec.file} is {digest}, "
                f"the scenario expects {spec.checksum}"
            )
        return {
            "path": str(spec.file),
            "sha256": digest,
            "size": len(data),
            "handle": spec.name,
            "mode": "read-only" if spec.read_only else "read-write",
        }

    def mount(self, name: str) -> Mapping[str, Any]:
        """A file_blob, verified against the digest taken when the run started: a file that
        changed underneath the run fails the mount instead of feeding other bytes."""
        spec = self.blob_specs.get(name)
        if spec is None:
            raise UnknownPool(f"no file_blob resource '{name}'")
        blob = self.blobs[name]
        try:
            digest = hashlib.sha256(self._read(spec)).hexdigest()
        except RunError as exc:
            raise LeaseError(codes.INVALID_CONFIGURATION, str(exc)) from exc
        if digest != blob["sha256"]:
            raise LeaseError(
                codes.INVALID_CONFIGURATION,
                f"resource '{name}': {spec.file} changed during the run "
                f"(sha256 {digest}, mounted as {blob['sha256']})",
            )
        self.mounts[name] += 1
        return MappingProxyType(blob)

    def _pool(self, name: str) -> PairPool:
        p = self.pools.get(name)
        if p is None:
            raise UnknownPool(f"no pair_pool resource '{name}'")
        return p

    def item_count(self, pool: str) -> int:
        p = self.pools.get(pool)
        return len(p.items) if p else 1

    def is_exclusive(self, pool: str) -> bool:
        p = self.pools.get(pool)
        return bool(p and p.exclusive)

    def items(self, pool: str) -> list[tuple[str, Mapping[str, Any]]]:
        p = self._pool(pool)
        return list(zip(p.handles, p.items, strict=True))

    async def acquire(
        self,
        pool: str,
        holder: str,
        user_id: str,
        *,
        wait_for_health: bool = True,
        scenario: str = "",
    ) -> Lease:
        lease = self.acquire_nowait(
            pool, holder, user_id, wait_for_health=wait_for_health, scenario=scenario
        )
        if lease is not None:
            return lease
        p = self._pool(pool)
        idx = await p.wait(user_id, holder, scenario)
        if self.scheduling is not None and p.sched is None:
            self.scheduling.held(holder, pool, scenario, 1)  # a priority pool's was at grant
        return Lease(pool, p.handles[idx], p.items[idx], holder, self.clock(), idx)

    def acquire_nowait(
        self,
        pool: str,
        holder: str,
        user_id: str,
        *,
        wait_for_health: bool = True,
        scenario: str = "",
    ) -> Lease | None:
        p = self._pool(pool)
        idx = p.try_acquire(user_id, wait_for_health=wait_for_health)
        if idx is None:
            return None
        if self.scheduling is not None:
            self.scheduling.held(holder, pool, scenario, 1)
        return Lease(pool, p.handles[idx], p.items[idx], holder, self.clock(), idx)

    def release(self, lease: Lease, reason: str) -> bool:
        if lease.released:
            return False
        lease.released = True
        p = self.pools.get(lease.pool)
        if p is not None and lease.index >= 0:
            p.held_s += max(0.0, self.clock() - lease.acquired_at)
            if self.scheduling is not None:
                # Before the pool serves its waiters: the shares see the item given back.
                self.scheduling.held(lease.holder, lease.pool, None, -1)
            return p.release(lease.index)
        return True

    def release_handle(self, pool: str, handle: str) -> bool:
        p = self._pool(pool)
        idx = p.by_handle.get(handle)
        if idx is None:
            p.release_errors += 1
            return False
        return p.release(idx)

    def set_health(self, pool: str, handle: str, healthy: bool) -> bool:
        p = self._pool(pool)
        idx = p.by_handle.get(handle)
        return idx is not None and p.set_health(idx, healthy)

    def lease_seconds(self) -> dict[str, float]:
        """Per pool, the seconds its leases were held (those given back so far)."""
        return {name: p.held_s for name, p in self.pools.items()}

    def scheduling_json(self) -> dict[str, Any] | None:
        """The result's `scheduling` key (None: no pool schedules by priority)."""
        if self.scheduling is None:
            return None
        out = self.scheduling.to_json()
        for name, figures in out["pools"].items():
            figures["lease_s"] = round(self.pools[name].held_s, 3)
        return out

    def scheduling_figures(self) -> dict[str, Any]:
        """For the metrics (a copy): lease-seconds per pool, and the `scheduling` figures."""
        return {"lease_s": self.lease_seconds(), "scheduling": self.scheduling_json()}

    def statistics(self) -> Mapping[str, Mapping[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for name, p in self.pools.items():
            out[name] = {
                "capacity": p.capacity,
                "items": len(p.items),
                "healthy": p.healthy_count(),
                "leases": p.leases,
                "released": p.released,
                "active": p.active,
                "release_errors": p.release_errors,
                "mounts": 0,
            }
        for name, count in self.mounts.items():
            # Read-only blobs are mounted, not leased: nothing to give back.
            out[name] = {
                "capacity": 0,
                "items": 1,
                "healthy": 1,
                "leases": 0,
                "released": 0,
                "active": 0,
                "release_errors": 0,
                "mounts": count,
            }
        return out
