"""WebAssembly plugins run in scenarios against the embedded target: the WAT example, the
Python example (per-user and per-worker instances), and a lease provider written as a
component driving a pool. Every request the plugins ask for is the server's to count."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from plugin_kit import Built, plugin_component, put
from scenario_kit import BASE, Doc, document, http, on, routes, run
from wbsrun.cli.plugins import wasm_loader
from wbsrun.target import TargetProcess, loopback_hosts


def _plugin_action(component: str, call: str, path: str = "/asset", **with_: Any) -> Doc:
    return {
        "component": component,
        "call": call,
        "with": {"url": BASE + path, **with_},
        "save-as": f"{component}_out",
    }


def test_wat_plugin_sends_through_the_host_once_per_action(
    tmp_path: Path, target: TargetProcess, built_plugins: Built
) -> None:
    entry = put(tmp_path / "bundle", built_plugins.ping, "ping")
    actions = {"ping": _plugin_action("ping", "get"), "push": http("post")}
    doc = document(actions, {"steps": [{"ref": "ping"}, {"ref": "push"}]}, users=3)
    doc["components"].append(plugin_component("ping", entry, "get"))

    ran = run(tmp_path, doc, on(target), wasm=wasm_loader())

    assert routes(target) == {"GET /asset": 3, "POST /asset": 3}
    assert ran.result["tasks"]["succeeded"] == 3
    assert ran.result["actions"]["ping"]["requests"] == 3
    assert ran.result["scenarios"]["s"]["requests"]["total"] == 6
    # What the plugin answered is what save-as stored: {"status": 200}, from its resume.
    for entry_ in ran.entries:
        assert dict(entry_.vars["ping_out"]) == {"status": 200}


def test_procurement_register_records_entry_wit_and_source(
    tmp_path: Path, target: TargetProcess, built_plugins: Built
) -> None:
    entry = put(tmp_path / "bundle", built_plugins.ping, "ping")
    doc = document({"ping": _plugin_action("ping", "get")}, {"steps": [{"ref": "ping"}]})
    doc["components"].append(plugin_component("ping", entry, "get"))
    doc["components"].append(
        {"name": "logger", "version": "1.0.0", "kind": "wasi-component",
         "entry": "plugins/absent.wasm", "wit": "wit/logger.wit", "capabilities": ["warn"]}
    )  # fmt: skip
    doc["components"] = [c for c in doc["components"] if c.get("kind") != "native" or
                         c["name"] != "logger"]  # fmt: skip

    ran = run(tmp_path, doc, on(target), wasm=wasm_loader())

    records = {r["name"]: r for r in ran.book.get(ran.entries[0], "registers.procurement.plugins")}
    assert records["ping"] == {
        "name": "ping", "version": "0.1.0", "kind": "wasi-component", "entry": entry,
        "wit": None, "source": "bundle",
    }  # fmt: skip
    assert records["logger"]["entry"] == "plugins/absent.wasm"
    assert records["logger"]["wit"] == "wit/logger.wit"
    assert records["logger"]["source"] == "built-in"
    notices = [m for m in ran.log.recent if "absent.wasm not in the bundle" in m]
    assert notices, "an absent entry falls back to the built-in with a notice"


def _fetch_run(
    tmp_path: Path, target: TargetProcess, built: Built, isolation: str
) -> tuple[list[Any], list[str]]:
    entry = put(tmp_path / "bundle", built.fetch, "fetch")
    doc = document({"fetch": _plugin_action("fetch", "fetch")}, {"steps": [{"ref": "fetch"}]},
                   users=2, iterations=3)  # fmt: skip
    doc["components"].append(plugin_component("fetch", entry, "fetch", isolation=isolation))
    ran = run(tmp_path, doc, on(target), wasm=wasm_loader())
    assert routes(target) == {"GET /asset": 6}
    assert ran.result["tasks"]["succeeded"] == 6
    assert ran.result["actions"]["fetch"]["requests"] == 6
    return [e.vars["fetch_out"] for e in ran.entries], ran.log.recent


def test_python_plugin_per_user_keeps_one_instance_a_user(
    tmp_path: Path, target: TargetProcess, built_plugins: Built
) -> None:
    saved, log = _fetch_run(tmp_path, target, built_plugins, "per-user")
    # The plugin's host.log lines are the run's, under its name and the user's id.
    assert sorted(line.split(" ", 1)[1] for line in log if "first fetch" in line) == [
        "u0001 fetch: first fetch: HTTP 200",
        "u0002 fetch: first fetch: HTTP 200",
    ]
    assert all(v["status"] == 200 and v["json"] is not None for v in saved)
    # Each user's instance has served that user only: count == served, 1..3 each.
    assert sorted(v["served"] for v in saved) == [1, 1, 2, 2, 3, 3]
    assert all(v["count"] == v["served"] for v in saved)


def test_python_plugin_per_worker_shares_one_instance(
    tmp_path: Path, target: TargetProcess, built_plugins: Built
) -> None:
    saved, _log = _fetch_run(tmp_path, target, built_plugins, "per-worker")
    assert sorted(v["served"] for v in saved) == [1, 2, 3, 4, 5, 6]
    assert sorted(v["count"] for v in saved) == [1, 1, 2, 2, 3, 3]


def test_python_plugin_paces_itself_with_the_runs_rate_guard(
    tmp_path: Path, target: TargetProcess, built_plugins: Built
) -> None:
    entry = put(tmp_path / "bundle", built_plugins.fetch, "fetch")
    action = _plugin_action("fetch", "fetch", rate=20)
    doc = document({"fetch": action}, {"steps": [{"ref": "fetch"}]}, users=2, iterations=4)
    doc["components"].append(plugin_component("fetch", entry, "fetch"))

    ran = run(tmp_path, doc, on(target), wasm=wasm_loader())

    assert routes(target) == {"GET /asset": 8}
    assert ran.result["tasks"]["succeeded"] == 8
    # 8 slots of a 20/s schedule shared by both users: the last one 7/20 s after the first.
    assert ran.result["duration_s"] >= 0.33


def test_lease_provider_component_drives_the_pool(
    tmp_path: Path, target_factory: Callable[..., TargetProcess], built_plugins: Built
) -> None:
    hosts = loopback_hosts(2)
    target = target_factory(hosts=hosts)
    entry = put(tmp_path / "bundle", built_plugins.lease, "lease")
    doc = document({"get": http("get")}, {"steps": [{"ref": "get"}]}, users=4, iterations=2)
    calls = ("acquire", "release", "mount", "track-lease")
    doc["components"].append(plugin_component("leases", entry, *calls))
    doc["resources"]["pool"]["provider"] = {
        "component": "leases",
        "calls": {"acquire": "acquire", "release": "release", "mount": "mount",
                  "track": "track-lease"},
    }  # fmt: skip

    ran = run(tmp_path, doc, [(h, target.port) for h in hosts], wasm=wasm_loader())

    assert ran.result["tasks"]["succeeded"] == 8
    # The component hands out the least often leased free item: 8 passes, 4 on each.
    assert target.stats()["by_host"] == {hosts[0]: 4, hosts[1]: 4}
    assert ran.result["resources"]["pool"]["held_at_end"] == 0
