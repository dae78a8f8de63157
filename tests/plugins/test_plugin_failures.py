"""A plugin that traps, loops, outgrows its memory or answers the wrong type fails the
action that called it, with its error code and message; the run, and every other action,
go on. Real components (tests/plugins/guests), a real server."""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path

import pytest

from plugin_kit import Built, plugin_component, put
from scenario_kit import Doc, document, http, on, routes, run
from wbsrun.cli.plugins import wasm_loader
from wbsrun.core import codes
from wbsrun.core.handles import UserHandle
from wbsrun.core.log import RunLog
from wbsrun.core.ports import Runtime
from wbsrun.core.rate import RateGuard
from wbsrun.dsl.plan import ComponentSpec
from wbsrun.plugins.loader import load_component
from wbsrun.plugins.plugin import WasmPlugin
from wbsrun.protocols.registry import component_factories
from wbsrun.target import TargetProcess

# Small limits: a spin uses its fuel up in milliseconds, `grow` meets the limit at 2 MiB.
LIMITS = {"fuel": 20_000_000, "memory_limit": "2MiB"}


def _one_scenario_per_action(doc: Doc, actions: list[str]) -> Doc:
    """Scenario `s_NAME` runs workflow [NAME, get] once, for each action name."""
    base = doc["load"]["scenarios"][0]
    doc["workflows"] = {f"wf_{a}": {"steps": [{"ref": a}, {"ref": "get"}]} for a in actions}
    doc["load"]["scenarios"] = [
        {**copy.deepcopy(base), "name": f"s_{a}", "workflow": f"wf_{a}"} for a in actions
    ]
    return doc


def test_trap_spin_grow_and_wrong_json_each_fail_only_their_action(
    tmp_path: Path, target: TargetProcess, built_plugins: Built
) -> None:
    entry = put(tmp_path / "bundle", built_plugins.hostile, "hostile")
    calls = ["trap", "spin", "grow", "json", "ok"]
    actions: Doc = {c: {"component": "hostile", "call": c} for c in calls}
    actions["get"] = http("get")
    doc = _one_scenario_per_action(document(actions, {"steps": []}), calls)
    doc["components"].append(plugin_component("hostile", entry, *calls, **LIMITS))

    started = time.monotonic()
    ran = run(tmp_path, doc, on(target), wasm=wasm_loader())

    assert time.monotonic() - started < 30
    assert ran.result["tasks"] == {**ran.result["tasks"], "started": 5, "succeeded": 1}
    # Only the scenario whose plugin call succeeded went on to its GET.
    assert routes(target) == {"GET /asset": 1}
    assert ran.result["actions"]["get"]["ok"] == 1
    assert ran.result["actions"]["ok"]["ok"] == 1
    assert ran.result["errors"] == {
        codes.PLUGIN_TRAP: 2,  # trap, and grow: a refused memory.grow ends in a trap
        codes.PLUGIN_OUT_OF_FUEL: 1,
        codes.PLUGIN_WRONG_TYPE: 1,
    }
    messages = {m["action"]: m["message"] for m in ran.result["error_messages"]}
    assert "unreachable" in messages["trap"]
    assert "ran out of fuel (20000000 units a call)" in messages["spin"]
    assert "memory limit 2097152 bytes" in messages["grow"]
    assert "value-json is '[1]', not an object" in messages["json"]


def test_a_plugin_of_the_wrong_world_type_fails_its_actions_not_the_run(
    tmp_path: Path, target: TargetProcess, built_plugins: Built
) -> None:
    entry = put(tmp_path / "bundle", built_plugins.wrong, "wrong")
    actions: Doc = {"go": {"component": "wrong", "call": "go"}, "get": http("get")}
    doc = _one_scenario_per_action(document(actions, {"steps": []}), ["go", "get"])
    doc["components"].append(plugin_component("wrong", entry, "go"))

    ran = run(tmp_path, doc, on(target), wasm=wasm_loader())

    assert ran.result["errors"] == {codes.PLUGIN_WRONG_TYPE: 1}
    (message,) = [m["message"] for m in ran.result["error_messages"]]
    assert "its export 'run-action' is func(user: string, call: string, args-json: string)" \
        " -> u32; its world says" in message  # fmt: skip
    assert routes(target) == {"GET /asset": 2}  # s_get's two GETs; s_go stopped at `go`


def _plugin(path: Path, **metadata: object) -> WasmPlugin:
    spec = ComponentSpec("hostile", "0.1.0", "wasi-component", "x.wasm", None, (), metadata)
    built = load_component(spec, path, component_factories())
    assert isinstance(built, WasmPlugin)
    return built


def test_a_trapped_instance_is_replaced_and_the_next_call_succeeds(
    built_plugins: Built,
) -> None:
    plugin = _plugin(built_plugins.hostile, fuel=10_000_000)
    user = UserHandle("u0001", "s", False)

    async def calls() -> list[tuple[str | None, object]]:
        await plugin.init(Runtime(RunLog(), 0, time.monotonic, RateGuard()))
        out: list[tuple[str | None, object]] = []
        for call in ("trap", "ok", "spin", "ok"):
            got = await plugin.run_action(call, {}, user)
            out.append((got.error, got.value))
        await plugin.release()
        return out

    assert asyncio.run(calls()) == [
        (codes.PLUGIN_TRAP, None),
        (None, {"ok": True}),
        (codes.PLUGIN_OUT_OF_FUEL, None),
        (None, {"ok": True}),
    ]
    assert plugin.pool.instantiated == 3  # at load, after the trap, after the spin


def test_requests_queued_by_a_call_that_did_not_wait_are_never_sent(
    built_plugins: Built,
) -> None:
    """`q` queues a request (to a closed port) and answers done; `w` answers wait with
    nothing queued: the first request must not ride along with the second call's wait."""
    plugin = _plugin(built_plugins.hostile)
    user = UserHandle("u0001", "s", False)

    async def calls() -> list[int]:
        await plugin.init(Runtime(RunLog(), 0, time.monotonic, RateGuard()))
        sent = [(await plugin.run_action(c, {}, user)).requests for c in ("q", "w")]
        await plugin.release()
        return sent

    assert asyncio.run(calls()) == [0, 0]


@pytest.mark.parametrize("isolation", ["per-user", "per-worker"])
def test_isolation_decides_how_many_instances_serve_the_users(
    built_plugins: Built, isolation: str
) -> None:
    plugin = _plugin(built_plugins.hostile, isolation=isolation)
    users = [UserHandle(f"u{i:04d}", "s", False) for i in range(3)]

    async def calls() -> None:
        await plugin.init(Runtime(RunLog(), 0, time.monotonic, RateGuard()))
        for user in users:
            assert (await plugin.run_action("ok", {}, user)).value == {"ok": True}
        live = len(plugin.pool)
        assert live == (3 if isolation == "per-user" else 1)
        await plugin.release_user(users[0])
        assert len(plugin.pool) == live - (1 if isolation == "per-user" else 0)

    asyncio.run(calls())
