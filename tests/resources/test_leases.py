"""Leasing: TTL expiry and auto-renew, releases deferred while the holder is mid-action, provider
calls that a third-party component can serve, and the reference's health-check as written."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from resource_kit import health_doc
from scenario_kit import Ran, act, edge, end, graph, http, run
from wbsrun.core.ports import ActionOutcome, Runtime, UserHandle
from wbsrun.core.runner import Runner, RunOptions
from wbsrun.dsl.plan import ComponentSpec
from wbsrun.protocols.registry import component_factories
from wbsrun.resources import HealthSupervisor
from wbsrun.target import TargetProcess


def _items(target: TargetProcess) -> list[tuple[str, int]]:
    return [(h, target.port) for h in target.hosts]


def _no_health_check(doc: dict[str, Any]) -> dict[str, Any]:
    del doc["resources"]["pool"]["health-check"]
    return doc


def test_a_lease_past_its_ttl_without_renewal_expires_with_lease_expired(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(latency_ms=120)
    doc = _no_health_check(health_doc(1, leasing={"ttl": "300ms", "auto-renew": False}))

    ran = run(tmp_path, doc, _items(target))

    assert ran.result["tasks"]["failed"] == 1
    assert ran.result["errors"] == {"lease-expired": 1}
    assert ran.result["exits"] == {"error_out": 1}
    (entry,) = ran.entries
    assert ran.book.get(entry, "execution.evidence.last_event") == "lease-expired"
    pool = ran.result["resources"]["pool"]
    assert pool["expired"] == 1
    assert pool["renewed"] == 0
    # It expired during the second post: given back when that action ended, not before.
    assert pool["deferred_releases"] == 1
    assert pool["leases"] == pool["released"] == 1
    assert pool["active"] == 0
    # The exit's classified action ran after the expiry.
    assert ran.actions_done(entry) == ["get", "post", "post", "logger.warn"]
    assert ran.result["requests"]["total"] == target.stats()["received"] == 3


def test_auto_renew_keeps_the_lease_of_a_holder_that_keeps_moving(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(latency_ms=120)
    doc = _no_health_check(
        health_doc(1, iterations=2, leasing={"ttl": "300ms", "auto-renew": True})
    )

    ran = run(tmp_path, doc, _items(target))

    assert ran.result["tasks"]["succeeded"] == 2
    pool = ran.result["resources"]["pool"]
    assert pool["expired"] == 0
    assert pool["renewed"] >= 2  # once per pass: each outlives the TTL
    assert pool["leases"] == pool["released"] == 2


def test_a_release_asked_for_while_a_sibling_branch_is_mid_action_waits_for_it(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(latency_ms=300)
    flow = graph(
        {
            "id": "fork",
            "type": "parallel",
            "controls": {
                "flow": {
                    "strategy": "fan-out",
                    "branches": [{"to": "slow"}, {"to": "bad"}],
                    "join": {"policy": "wait-all", "to": "done"},
                }
            },
        },
        act("slow", "get", edge("done")),
        act(
            "bad",
            "missing",
            edge("done"),
            on_error=[
                {"action": "resource.release", "handles": ["{{resource.ip}}:{{resource.port}}"]},
                {"goto": "done"},
            ],
        ),
        end(),
        timeout="5s",
        on_error=[{"goto": "error_out"}],
    )
    doc = _no_health_check(health_doc(1, flow=flow))
    doc["actions"]["missing"] = http("get", "/nope")
    held_mid_way: list[int] = []

    bindings: list[Any] = []

    async def watch(runner: Runner) -> None:
        await asyncio.sleep(0.15)  # `bad` answered 404 and asked; `slow` is still waiting
        assert runner.provider is not None
        assert runner.ctx.leases is not None
        held_mid_way.append(runner.provider.statistics()["pool"]["active"])
        bindings.extend(runner.ctx.leases.bindings())

    ran = run(tmp_path, doc, _items(target), during=watch)

    assert held_mid_way == [1]
    # The manager knows who holds the item, where that task stands, and what is pending.
    (binding,) = bindings
    assert binding.task_id == "u0001-t0"
    assert binding.phase == "monitoring.error_detected"  # `bad` failed; `slow` still runs
    assert binding.pending_release == "resource.release"
    assert binding.handle == f"{target.hosts[0]}:{target.port}"
    assert ran.result["tasks"]["succeeded"] == 1
    pool = ran.result["resources"]["pool"]
    assert pool["deferred_releases"] == 1
    assert pool["leases"] == pool["released"] == 1
    assert any("deferred" in line for line in ran.log.recent)


class ListProvider:
    """A third-party lease provider: hands out items from its own list, records every call."""

    CALLS: ClassVar[frozenset[str]] = frozenset({"grab", "give_back", "mount_file", "track_lease"})
    REQUESTS_PER_CALL: ClassVar[int] = 0
    items: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, spec: ComponentSpec | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.out: list[str] = []

    async def init(self, runtime: Runtime) -> None:
        return None

    async def run_action(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome:
        return self._answer(call, args)

    def _answer(self, call: str, args: Mapping[str, Any]) -> ActionOutcome:
        self.calls.append((call, dict(args)))
        if call == "grab":
            item = self.items[0]
            handle = f"{item['ip']}:{item['port']}"
            self.out.append(handle)
            return ActionOutcome({"handle": handle, "item": item})
        if call == "give_back":
            self.out.remove(str(args["handle"]))
            return ActionOutcome({"released": True})
        return ActionOutcome(None, error="invalid-configuration", message=f"no {call}")

    async def release_user(self, user: UserHandle) -> None:
        return None

    async def release(self) -> None:
        return None


def _grab_give_back_doc(component: str, iterations: int) -> dict[str, Any]:
    """Two users leasing from the third-party provider `component` (`grab` / `give_back`)."""
    doc = _no_health_check(health_doc(2, iterations=iterations))
    doc["resources"]["pool"]["provider"] = {
        "component": component,
        "calls": {"acquire": "grab", "release": "give_back"},
    }
    doc["components"].append(
        {
            "name": component,
            "version": "1.0.0",
            "kind": "native",
            "capabilities": ["grab", "give_back"],
        }
    )
    return doc


_P = TypeVar("_P", bound="ListProvider")


def _run_provider(
    tmp_path: Path, target: TargetProcess, kind: type[_P], iterations: int
) -> tuple[Ran, _P]:
    """Two users leasing from a third-party provider of class `kind`, whose one item is the
    target; the run and the provider instance it used."""
    kind.items = [{"ip": target.hosts[0], "port": target.port}]
    doc = _grab_give_back_doc("provider", iterations=iterations)
    factories = {**component_factories(), "provider": kind}
    # The manifest points nowhere: requests go where the provider's handles say.
    ran = run(tmp_path, doc, [("127.0.0.1", 9)], factories=factories)
    provider = ran.runner.ctx.components["provider"]
    assert isinstance(provider, kind)
    return ran, provider


def test_the_core_leases_only_through_the_provider_calls_the_scenario_maps(
    tmp_path: Path, target: TargetProcess
) -> None:
    ran, provider = _run_provider(tmp_path, target, ListProvider, iterations=2)
    names = [c for c, _ in provider.calls]
    assert names.count("grab") == names.count("give_back") == 4
    assert not provider.out  # every handle it gave out came back
    grab = provider.calls[0][1]
    assert grab["pool"] == "pool"
    assert grab["holder"].endswith("-t0")
    assert ran.result["tasks"]["succeeded"] == 4
    assert ran.result["requests"]["total"] == target.stats()["received"] == 12
    # The built-in pools never saw a lease.
    assert ran.pools.statistics()["pool"]["leases"] == 0
    assert ran.result["resources"]["pool"]["released"] == 0


def test_the_reference_health_check_and_on_failure_run_as_written(
    live_reference: Callable[[int], tuple[Path, TargetProcess]],
) -> None:
    from scenario_kit import Ran
    from wbsrun.core.log import RunLog
    from wbsrun.dsl.loader import load_plan
    from wbsrun.progress.report import build_result
    from wbsrun.protocols.registry import build_components, provides
    from wbsrun.resources import PoolManager, attach_health_checks

    bundle, target = live_reference(4)
    target.control(latency_ms=60)
    plan = load_plan(bundle, provides())
    spec = plan.resources["ip-port-pool"]
    assert spec.health_check is not None
    assert spec.health_check.interval == 30.0  # as written: the test runs one round itself
    pools, log = PoolManager(plan), RunLog()
    runner = Runner(
        plan, build_components(plan, log), pools, log, RunOptions(users=4, duration=1.0)
    )
    supervisor = attach_health_checks(runner, pools)
    failing = f"{target.hosts[0]}:{target.port}"
    hit: list[int] = []

    async def fault() -> None:
        book = runner.ctx.leases
        assert book is not None
        for _ in range(200):  # until a task holds the item mid-pass
            if book.holders("ip-port-pool", failing):
                break
            await asyncio.sleep(0.005)
        target.control(host=target.hosts[0], fail_health=True)
        assert spec.health_check is not None
        hit.append(len(book.holders("ip-port-pool", failing)))
        await supervisor.check("ip-port-pool", spec.health_check)

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(runner.run())
            tg.create_task(fault())

    asyncio.run(main())
    result = build_result(runner, pools.statistics(), log.counts)
    ran = Ran(runner, pools, log, result, bundle)

    assert hit == [1]
    assert isinstance(supervisor, HealthSupervisor)
    pool = result["resources"]["ip-port-pool"]
    assert pool["items_failed"] == 1
    assert pool["health_checks"] == 4  # one round: every item probed once
    assert pool["health_failures"] == 1
    assert result["tasks"]["rollbacks"] == 1
    started = result["tasks"]["started"]
    assert result["tasks"]["succeeded"] == started
    assert pool["active"] == pool["held_at_end"] == 0
    # One lease per pass, and one more for the pass that moved off the failed item.
    assert pool["leases"] == pool["released"] == started + 1
    rolled = [e for e in ran.entries if "progress.rollback" in {t for *_, t in e.trace}]
    assert len(rolled) == 1
    assert failing not in str(ran.book.get(rolled[0], "execution.resource_lease"))
    assert target.stats()["received"] == result["requests"]["total"]


class HalfImmediateProvider(ListProvider):
    """A provider that answers `give_back` at once and every other `grab` at once; the rest
    it leaves to `run_action` (ports.ImmediateComponent)."""

    def __init__(self, spec: ComponentSpec | None = None) -> None:
        super().__init__(spec)
        self.routes: list[tuple[str, str]] = []
        self.asked = 0

    def run_action_nowait(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome | None:
        if call == "grab":
            self.asked += 1
            if self.asked % 2 == 0:
                return None  # "would wait": nothing changed, the core awaits run_action
        self.routes.append(("now", call))
        return self._answer(call, args)

    async def run_action(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome:
        self.routes.append(("awaited", call))
        await asyncio.sleep(0.001)
        return self._answer(call, args)


def test_a_provider_that_answers_at_once_is_called_without_waiting_and_awaited_otherwise(
    tmp_path: Path, target: TargetProcess
) -> None:
    ran, provider = _run_provider(tmp_path, target, HalfImmediateProvider, iterations=3)
    assert ran.result["tasks"]["succeeded"] == 6
    # Six grabs: three answered at once, three declined and then awaited; every release at once.
    assert provider.asked == 6, provider.routes
    assert sorted(provider.routes) == sorted(
        [("now", "grab")] * 3 + [("awaited", "grab")] * 3 + [("now", "give_back")] * 6
    )
    assert not provider.out  # every handle it gave out came back, once
    assert ran.result["resources"]["pool"]["leases"] == 0  # the built-in pools saw none
    assert ran.result["requests"]["total"] == target.stats()["received"] == 18


class BrokenProvider(ListProvider):
    """A provider with a bug: it raises instead of answering an error outcome."""

    async def run_action(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome:
        raise RuntimeError(f"{call} is broken")


def test_a_provider_that_raises_fails_the_pass_not_the_run(
    tmp_path: Path, target: TargetProcess
) -> None:
    doc = _no_health_check(health_doc(2))
    doc["resources"]["pool"]["provider"] = {
        "component": "broken",
        "calls": {"acquire": "grab", "release": "give_back"},
    }
    doc["components"].append(
        {"name": "broken", "version": "1.0.0", "kind": "native", "capabilities": ["grab"]}
    )
    factories = {**component_factories(), "broken": BrokenProvider}

    ran = run(tmp_path, doc, _items(target), factories=factories)

    assert ran.result["status"] == "completed"
    assert ran.result["tasks"]["failed"] == 2
    assert ran.result["errors"] == {"invalid-configuration": 2}
    assert ran.result["exits"] == {"error_out": 2}
    for entry in ran.entries:
        reason = ran.book.get(entry, "execution.evidence.reason")
        assert reason == "broken.grab raised RuntimeError: grab is broken"
    assert ran.result["requests"]["total"] == target.stats()["received"] == 0


class SilentProvider(ListProvider):
    """A provider that answers `grab` with neither an item nor an error message."""

    def _answer(self, call: str, args: Mapping[str, Any]) -> ActionOutcome:
        if call == "grab":
            return ActionOutcome(None)
        return super()._answer(call, args)


def test_a_provider_that_gives_no_item_and_no_message_fails_with_one_naming_it(
    tmp_path: Path, target: TargetProcess
) -> None:
    doc = _grab_give_back_doc("silent", iterations=1)
    factories = {**component_factories(), "silent": SilentProvider}

    ran = run(tmp_path, doc, _items(target), factories=factories)

    assert ran.result["errors"] == {"resource-unavailable": 2}
    expected = "resource 'pool': silent.grab gave no item without a message"
    (sample,) = ran.result["error_messages"]
    assert (sample["action"], sample["message"], sample["count"]) == (None, expected, 2)
    for entry in ran.entries:
        assert ran.book.get(entry, "execution.evidence.reason") == expected


class RaisingProbe(ListProvider):
    """A probe component with a bug: every check raises."""

    CALLS: ClassVar[frozenset[str]] = frozenset({"check"})

    async def run_action(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome:
        raise ValueError("probe bug")


def test_a_probe_that_raises_fails_the_item_not_the_run(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(latency_ms=150)
    doc = health_doc(1)
    doc["resources"]["pool"]["health-check"]["probe"] = {"action": "raising.check"}
    doc["components"].append(
        {"name": "raising", "version": "1.0.0", "kind": "native", "capabilities": ["check"]}
    )
    factories = {**component_factories(), "raising": RaisingProbe}

    ran = run(tmp_path, doc, _items(target), factories=factories)

    assert ran.result["status"] == "completed"
    pool = ran.result["resources"]["pool"]
    assert pool["items_failed"] == 1
    assert pool["health_failures"] >= 1
    # The only item failed: its holder rolled back and found none left.
    assert ran.result["tasks"]["rolled_back"] == 1
    assert pool["leases"] == pool["released"] == 1
    assert any("probe bug" in line for line in ran.log.recent)
