"""The built-in pools: manifests, blobs verified on mount, rotation of unhealthy items, counts."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from resource_kit import health_doc
from wbsrun.core import codes
from wbsrun.core.ports import LeaseError
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import Plan
from wbsrun.errors import RunError
from wbsrun.protocols.registry import provides
from wbsrun.resources import NoHealthyItem, PoolManager, load_manifest


def _plan(tmp_path: Path, manifest: str, **pool: Any) -> Plan:
    doc = health_doc(1)
    doc["resources"]["pool"].update(pool)
    (tmp_path / "resource.yaml").write_text(manifest, encoding="utf-8")
    (tmp_path / "script.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    return load_plan(tmp_path, provides())


def test_csv_manifests_read_the_same_with_or_without_their_header_line(tmp_path: Path) -> None:
    with_header = _plan(tmp_path, "ip,port\n127.0.0.2,80\n127.0.0.3,81\n")
    items = load_manifest(with_header.resources["pool"])
    without = _plan(tmp_path, "127.0.0.2,80\n\n127.0.0.3,81\n")
    assert load_manifest(without.resources["pool"]) == items
    assert items == [{"ip": "127.0.0.2", "port": 80}, {"ip": "127.0.0.3", "port": 81}]


def test_a_yaml_manifest_is_a_list_of_mappings(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        "- {ip: 127.0.0.2, port: 80, zone: a}\n- {ip: 127.0.0.3, port: 81, zone: b}\n",
        config={"manifest": "./resource.yaml", "parser": {"format": "yaml"}},
    )
    pools = PoolManager(plan)
    assert [h for h, _ in pools.items("pool")] == ["127.0.0.2:80", "127.0.0.3:81"]
    assert pools.items("pool")[1][1]["zone"] == "b"


def test_a_csv_row_with_the_wrong_field_count_names_the_row_and_the_fields(
    tmp_path: Path,
) -> None:
    plan = _plan(tmp_path, "127.0.0.2,80\n127.0.0.3\n")
    with pytest.raises(RunError, match=r"row 2 has 1 values, expected 2 \(ip, port\): 127.0.0.3"):
        load_manifest(plan.resources["pool"])


def _blob_plan(tmp_path: Path, checksum: str = "auto") -> tuple[Plan, Path]:
    payload = tmp_path / "payload.json"
    payload.write_text('{"asset": 1}\n', encoding="utf-8")
    _plan(tmp_path, "127.0.0.2,80\n")
    doc = yaml.safe_load((tmp_path / "script.yaml").read_text("utf-8"))
    doc["resources"]["blob"] = {
        "type": "file_blob",
        "provider": {"component": "resource-manager", "leasing": {"mode": "read-only"}},
        "config": {"file": "./payload.json", "checksum": checksum},
    }
    (tmp_path / "script.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    return load_plan(tmp_path, provides()), payload


def test_a_blob_with_its_sha256_written_out_mounts(tmp_path: Path) -> None:
    digest = hashlib.sha256(b'{"asset": 1}\n').hexdigest()
    plan, _ = _blob_plan(tmp_path, checksum=f"sha256:{digest.upper()}")
    assert PoolManager(plan).mount("blob")["sha256"] == digest


def test_a_blob_is_hashed_at_start_and_verified_on_every_mount(tmp_path: Path) -> None:
    plan, payload = _blob_plan(tmp_path)
    pools = PoolManager(plan)
    mounted = pools.mount("blob")
    assert mounted["sha256"] == hashlib.sha256(b'{"asset": 1}\n').hexdigest()
    assert mounted["mode"] == "read-only"
    with pytest.raises(TypeError):
        mounted["size"] = 0  # type: ignore[index]
    payload.write_text('{"asset": 2}\n', encoding="utf-8")
    with pytest.raises(LeaseError, match="changed during the run") as caught:
        pools.mount("blob")
    assert caught.value.code == codes.INVALID_CONFIGURATION
    assert pools.statistics()["blob"]["mounts"] == 1


def test_a_blob_whose_sha256_differs_from_the_scenario_is_refused_at_start(
    tmp_path: Path,
) -> None:
    plan, _ = _blob_plan(tmp_path, checksum="sha256:" + "0" * 64)
    with pytest.raises(RunError, match="the scenario expects sha256:0000"):
        PoolManager(plan)


def test_an_unhealthy_item_leaves_rotation_and_a_waiter_gets_it_when_it_passes_again(
    tmp_path: Path,
) -> None:
    plan = _plan(tmp_path, "127.0.0.2,80\n127.0.0.3,80\n")
    pools = PoolManager(plan)

    async def scenario() -> None:
        first = await pools.acquire("pool", "t1", "u1")
        assert pools.set_health("pool", "127.0.0.3:80", healthy=False)
        assert not pools.set_health("pool", "127.0.0.3:80", healthy=False)  # no change
        waiter = asyncio.create_task(pools.acquire("pool", "t2", "u2"))
        await asyncio.sleep(0.01)
        assert not waiter.done()  # the only other item is out of rotation
        pools.set_health("pool", "127.0.0.3:80", healthy=True)
        second = await asyncio.wait_for(waiter, 1.0)
        assert second.handle == "127.0.0.3:80"
        assert pools.release(first, "done")
        assert not pools.release(first, "again")  # a lease goes back once
        assert pools.release_handle("pool", second.handle)
        assert not pools.release_handle("pool", second.handle)

    asyncio.run(scenario())
    stats = pools.statistics()["pool"]
    assert (stats["leases"], stats["released"], stats["active"]) == (2, 2, 0)
    assert stats["release_errors"] == 1
    assert stats["healthy"] == 2


def test_asking_not_to_wait_when_every_item_is_unhealthy_fails_as_unavailable(
    tmp_path: Path,
) -> None:
    pools = PoolManager(_plan(tmp_path, "127.0.0.2,80\n"))
    pools.set_health("pool", "127.0.0.2:80", healthy=False)

    async def scenario() -> None:
        with pytest.raises(NoHealthyItem) as caught:
            await pools.acquire("pool", "t1", "u1", wait_for_health=False)
        assert caught.value.code == codes.RESOURCE_UNAVAILABLE

    asyncio.run(scenario())


def test_a_shared_pool_round_robins_over_healthy_items_only(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        "127.0.0.2,80\n127.0.0.3,80\n127.0.0.4,80\n",
        capacity={"size": 10},
    )
    pools = PoolManager(plan)
    pools.set_health("pool", "127.0.0.3:80", healthy=False)

    async def scenario() -> list[str]:
        return [(await pools.acquire("pool", f"t{i}", f"u{i}")).handle for i in range(4)]

    assert asyncio.run(scenario()) == ["127.0.0.2:80", "127.0.0.4:80"] * 2


def test_the_resource_manager_answers_at_once_unless_an_allocation_has_to_wait(
    tmp_path: Path,
) -> None:
    from wbsrun.core.log import RunLog
    from wbsrun.core.ports import ImmediateComponent, Runtime, UserHandle
    from wbsrun.core.rate import RateGuard
    from wbsrun.protocols.resource_manager import ResourceManagerComponent

    pools = PoolManager(_plan(tmp_path, "127.0.0.2,80\n"))  # one item, exclusive
    rm = ResourceManagerComponent()
    assert isinstance(rm, ImmediateComponent)
    user = UserHandle("u1", "", private_session=False)
    grab = {"pool": "pool", "holder": "t1", "bound": True}

    async def scenario() -> None:
        await rm.init(Runtime(RunLog(), 1, lambda: 0.0, RateGuard(), leases=pools))
        first = rm.run_action_nowait("allocate_pair", grab, user)
        assert first is not None
        assert first.value is not None
        assert first.value["handle"] == "127.0.0.2:80"
        assert first.value["ip"] == "127.0.0.2"
        # The only item is out: no answer now, and nothing taken or queued.
        assert rm.run_action_nowait("allocate_pair", {**grab, "holder": "t2"}, user) is None
        assert pools.statistics()["pool"]["leases"] == 1
        assert not pools.pools["pool"].waiters
        # The general call queues for it and gets it once the first lease is released.
        waiting = asyncio.create_task(
            rm.run_action("allocate_pair", {**grab, "holder": "t2"}, user)
        )
        await asyncio.sleep(0.01)
        assert not waiting.done()
        back = rm.run_action_nowait(
            "release_pair", {"pool": "pool", "handle": "127.0.0.2:80", "holder": "t1"}, user
        )
        assert back is not None
        assert back.value == {
            "handle": "127.0.0.2:80",
            "pool": "pool",
            "released": True,
        }
        second = await asyncio.wait_for(waiting, 1.0)
        assert second.value is not None
        assert second.value["handle"] == "127.0.0.2:80"
        # Releasing a lease nobody holds is an answer too (an error outcome), not a wait.
        again = rm.run_action_nowait(
            "release_pair", {"pool": "pool", "handle": "127.0.0.2:80", "holder": "t1"}, user
        )
        assert again is not None
        assert again.error == codes.INVALID_CONFIGURATION

    asyncio.run(scenario())
    stats = pools.statistics()["pool"]
    assert (stats["leases"], stats["released"], stats["active"]) == (2, 1, 1)


def test_the_pool_manager_is_the_compiled_lease_provider_base(tmp_path: Path) -> None:
    # The resource-manager component calls it through that base: native calls when compiled.
    from wbsrun.core.ports import LeaseProvider as Exported
    from wbsrun.core.provider import LeaseProvider

    assert Exported is LeaseProvider
    pools = PoolManager(_plan(tmp_path, "127.0.0.2,80\n"))
    assert isinstance(pools, LeaseProvider)
    lease = pools.acquire_nowait("pool", "t1", "u1")
    assert lease is not None
    assert pools.release(lease, "done") is True
    with pytest.raises(NotImplementedError):
        LeaseProvider().acquire_nowait("pool", "t1", "u1")
