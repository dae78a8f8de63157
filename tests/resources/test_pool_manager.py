"""The pool manager's answers to the core, field by field: leases, mounts, counts, refusals."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from resource_kit import health_doc
from wbsrun.core import codes
from wbsrun.core.handles import Lease
from wbsrun.core.ports import LeaseError
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import Plan
from wbsrun.errors import RunError
from wbsrun.protocols.registry import provides
from wbsrun.resources import NoHealthyItem, PoolManager, UnknownPool, load_manifest

PAYLOAD = b'{"asset": 1}\n'


TWO_ITEMS = "127.0.0.2,80\n127.0.0.3,81\n"


def _plan(tmp_path: Path, manifest: str | None = TWO_ITEMS, **pool: Any) -> Plan:
    doc = health_doc(1)
    doc["resources"]["pool"].update(pool)
    if manifest is not None:
        (tmp_path / "resource.yaml").write_text(manifest, encoding="utf-8")
    (tmp_path / "payload.json").write_bytes(PAYLOAD)
    doc["resources"]["blob"] = {
        "type": "file_blob",
        "provider": {"component": "resource-manager", "leasing": {"mode": "read-only"}},
        "config": {"file": "./payload.json", "checksum": "auto"},
    }
    (tmp_path / "script.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    return load_plan(tmp_path, provides())


def test_statistics_count_leases_releases_and_mounts_per_resource(tmp_path: Path) -> None:
    pools = PoolManager(_plan(tmp_path))
    first = pools.acquire_nowait("pool", "t1", "u1")
    second = pools.acquire_nowait("pool", "t2", "u2")
    assert first is not None
    assert second is not None
    assert pools.release(first, "done")
    assert not pools.release_handle("pool", "10.0.0.1:1")  # not an item of the pool
    assert not pools.release_handle("pool", "10.0.0.1:2")
    pools.set_health("pool", second.handle, healthy=False)
    pools.mount("blob")
    pools.mount("blob")
    assert pools.statistics() == {
        "pool": {
            "capacity": 100,  # health_doc's capacity.size
            "items": 2,
            "healthy": 1,
            "leases": 2,
            "released": 1,
            "active": 1,
            "release_errors": 2,
            "mounts": 0,
        },
        "blob": {
            "capacity": 0,
            "items": 1,
            "healthy": 1,
            "leases": 0,
            "released": 0,
            "active": 0,
            "release_errors": 0,
            "mounts": 2,
        },
    }


def test_a_lease_names_its_pool_item_holder_time_and_index(tmp_path: Path) -> None:
    pools = PoolManager(_plan(tmp_path), clock=lambda: 1234.5)

    async def scenario() -> tuple[Lease, Lease]:
        now = await pools.acquire("pool", "t1", "u1")
        await pools.acquire("pool", "t2", "u2")  # both items held (exclusive)
        waiting = asyncio.create_task(pools.acquire("pool", "t3", "u3"))
        await asyncio.sleep(0)
        pools.release(now, "done")
        return now, await asyncio.wait_for(waiting, 1.0)

    now, later = asyncio.run(scenario())
    for lease, holder in ((now, "t1"), (later, "t3")):
        got = (lease.pool, lease.handle, dict(lease.item), lease.holder, lease.acquired_at)
        assert got == ("pool", "127.0.0.2:80", {"ip": "127.0.0.2", "port": 80}, holder, 1234.5)
        assert lease.index == 0
    assert pools.pools["pool"].last_item["u3"] == 0


def test_pool_questions_about_an_unknown_pool_have_safe_answers_or_say_which(
    tmp_path: Path,
) -> None:
    pools = PoolManager(_plan(tmp_path))
    assert (pools.item_count("pool"), pools.item_count("other")) == (2, 1)
    assert (pools.is_exclusive("pool"), pools.is_exclusive("other")) == (True, False)
    assert pools.items("pool")[1] == ("127.0.0.3:81", {"ip": "127.0.0.3", "port": 81})
    with pytest.raises(UnknownPool, match=r"^no pair_pool resource 'other'$") as caught:
        pools.acquire_nowait("other", "t1", "u1")
    assert caught.value.code == codes.INVALID_CONFIGURATION
    with pytest.raises(UnknownPool, match=r"^no file_blob resource 'pool'$"):
        pools.mount("pool")
    # A lease outside any pool (index -1) has nothing to give back but is released once.
    loose = Lease("other", "h", {}, "t1", 0.0)
    assert pools.release(loose, "done")
    assert loose.released
    assert not pools.release(loose, "again")


def test_a_mounted_blob_describes_the_file_it_verified(tmp_path: Path) -> None:
    pools = PoolManager(_plan(tmp_path))
    assert dict(pools.mount("blob")) == {
        "path": str(tmp_path / "payload.json"),
        "sha256": hashlib.sha256(PAYLOAD).hexdigest(),
        "size": len(PAYLOAD),
        "handle": "blob",
        "mode": "read-only",
    }


def test_a_blob_changed_or_gone_during_the_run_fails_the_mount_saying_so(tmp_path: Path) -> None:
    pools = PoolManager(_plan(tmp_path))
    payload = tmp_path / "payload.json"
    payload.write_bytes(b"other\n")
    with pytest.raises(LeaseError) as changed:
        pools.mount("blob")
    digest = hashlib.sha256(b"other\n").hexdigest()
    assert changed.value.code == codes.INVALID_CONFIGURATION
    assert str(changed.value) == (
        f"resource 'blob': {payload} changed during the run "
        f"(sha256 {digest}, mounted as {hashlib.sha256(PAYLOAD).hexdigest()})"
    )
    payload.unlink()
    with pytest.raises(
        LeaseError, match=r"^resource 'blob': cannot read .*payload\.json: "
    ) as gone:
        pools.mount("blob")
    assert gone.value.code == codes.INVALID_CONFIGURATION
    assert pools.statistics()["blob"]["mounts"] == 0


def test_a_blob_with_another_sha256_than_the_scenario_names_both(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    doc = yaml.safe_load((tmp_path / "script.yaml").read_text("utf-8"))
    doc["resources"]["blob"]["config"]["checksum"] = "sha256:" + "0" * 64
    (tmp_path / "script.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    plan = load_plan(tmp_path, provides())
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(RunError) as caught:
        PoolManager(plan)
    assert str(caught.value) == (
        f"resource 'blob': sha256 of {tmp_path / 'payload.json'} is {digest}, "
        f"the scenario expects sha256:{'0' * 64}"
    )


def test_an_item_without_ip_and_port_is_named_by_its_fields_in_order(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        "- {zone: a, ip: 10.0.0.1}\n- {zone: b}\n",
        config={
            "manifest": "./resource.yaml",
            "parser": {"format": "yaml", "fields": ["ip", "zone"]},
        },
    )
    pools = PoolManager(plan)
    assert [h for h, _ in pools.items("pool")] == ["10.0.0.1:a", ":b"]


def test_csv_values_are_stripped_and_digits_read_as_integers(tmp_path: Path) -> None:
    plan = _plan(tmp_path, " 127.0.0.2 , 0080 \n  ,  \n127.0.0.3,x1\n")  # a blank row skipped
    assert load_manifest(plan.resources["pool"]) == [
        {"ip": "127.0.0.2", "port": 80},
        {"ip": "127.0.0.3", "port": "x1"},
    ]


def test_an_unreadable_or_malformed_manifest_is_refused_naming_the_file(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    (tmp_path / "resource.yaml").unlink()
    with pytest.raises(RunError, match=r"^resource 'pool': cannot read .*resource\.yaml: "):
        PoolManager(plan)
    yaml_plan = _plan(
        tmp_path,
        "- {ip: 127.0.0.2, port: 80}\n- just text\n",
        config={"manifest": "./resource.yaml", "parser": {"format": "yaml"}},
    )
    with pytest.raises(RunError) as caught:
        load_manifest(yaml_plan.resources["pool"])
    assert str(caught.value) == f"{tmp_path / 'resource.yaml'}: expected a YAML list of mappings"


def test_not_waiting_for_health_through_the_manager_fails_when_no_item_is_in_rotation(
    tmp_path: Path,
) -> None:
    pools = PoolManager(_plan(tmp_path))
    for handle, _ in pools.items("pool"):
        pools.set_health("pool", handle, healthy=False)
    with pytest.raises(NoHealthyItem, match=r"^resource 'pool': no item passes its health check$"):
        pools.acquire_nowait("pool", "t1", "u1", wait_for_health=False)
    assert pools.acquire_nowait("pool", "t1", "u1") is None


def test_a_shared_pool_without_a_size_grants_every_lease(tmp_path: Path) -> None:
    pools = PoolManager(_plan(tmp_path, capacity={}))
    leases = [pools.acquire_nowait("pool", f"t{i}", f"u{i}") for i in range(5)]
    assert all(lease is not None for lease in leases)
    assert pools.statistics()["pool"]["capacity"] == 0
    assert pools.statistics()["pool"]["active"] == 5


def test_acquiring_waits_for_health_unless_told_not_to(tmp_path: Path) -> None:
    pools = PoolManager(_plan(tmp_path))
    for handle, _ in pools.items("pool"):
        pools.set_health("pool", handle, healthy=False)

    async def scenario() -> str:
        waiting = asyncio.create_task(pools.acquire("pool", "t1", "u1"))
        await asyncio.sleep(0)
        assert not waiting.done()
        pools.set_health("pool", "127.0.0.3:81", healthy=True)
        return (await asyncio.wait_for(waiting, 1.0)).handle

    assert asyncio.run(scenario()) == "127.0.0.3:81"
    assert pools.pools["pool"].last_item == {"u1": 1}


def test_a_lease_given_back_is_released_from_its_own_pool_only(tmp_path: Path) -> None:
    pools = PoolManager(_plan(tmp_path))
    held = pools.acquire_nowait("pool", "t1", "u1")
    assert held is not None
    # No pool of that name, or no item index: nothing to give back, the lease just ends.
    assert pools.release(Lease("other", "h", {}, "t2", 0.0, 3), "done")
    assert pools.release(Lease("pool", "h", {}, "t3", 0.0), "done")
    stats = pools.statistics()["pool"]
    assert (stats["active"], stats["released"], stats["release_errors"]) == (1, 0, 0)


def test_an_item_with_ip_and_port_is_named_by_them_whatever_the_fields(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        "- {zone: a, ip: 10.0.0.1, port: 80}\n",
        config={"manifest": "./resource.yaml", "parser": {"format": "yaml", "fields": ["zone"]}},
    )
    assert [h for h, _ in PoolManager(plan).items("pool")] == ["10.0.0.1:80"]


def test_a_csv_row_with_too_many_values_is_quoted_whole(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "127.0.0.2,80\n127.0.0.3,81,x\n")
    with pytest.raises(
        RunError, match=r"row 2 has 3 values, expected 2 \(ip, port\): 127.0.0.3,81,x$"
    ):
        load_manifest(plan.resources["pool"])


def test_a_resource_without_its_file_says_which(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    with pytest.raises(RunError, match=r"^resource 'pool': no manifest$"):
        load_manifest(replace(plan.resources["pool"], manifest=None))
    with pytest.raises(RunError, match=r"^resource 'blob': no file$"):
        PoolManager._read(replace(plan.resources["blob"], file=None))


def test_a_blob_without_a_checksum_or_writable_mounts_as_it_is(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    doc = yaml.safe_load((tmp_path / "script.yaml").read_text("utf-8"))
    del doc["resources"]["blob"]["config"]["checksum"]
    doc["resources"]["blob"]["provider"]["leasing"]["mode"] = "read-write"
    (tmp_path / "script.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    plan = load_plan(tmp_path, provides())
    assert plan.resources["blob"].checksum is None
    mounted = PoolManager(plan).mount("blob")
    assert (mounted["mode"], mounted["sha256"]) == (
        "read-write",
        hashlib.sha256(PAYLOAD).hexdigest(),
    )
