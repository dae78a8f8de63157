"""WebAssembly plugins run in scenarios against the embedded target: the WAT example, the
Python example, and a lease provider written as a component driving a pool."""

from __future__ import annotations

import json
from pathlib import Path

from plugin_kit import Built, plugin_component, put
from scenario_kit import BASE, document, http, on, routes, run
from wbsrun.cli.plugins import wasm_loader
from wbsrun.target import TargetProcess


def test_wat_plugin_sends_through_the_host_once_per_action(
    tmp_path: Path, target: TargetProcess, built_plugins: Built
) -> None:
    entry = put(tmp_path / "bundle", built_plugins.ping, "ping")
    actions = {
        "ping": {"component": "ping", "call": "get", "with": {"url": BASE + "/asset"},
                 "save-as": "pinged"},
        "push": http("post"),
    }  # fmt: skip
    doc = document(actions, {"steps": [{"ref": "ping"}, {"ref": "push"}]}, users=3)
    doc["components"].append(plugin_component("ping", entry, "get"))
    ran = run(tmp_path, doc, on(target), wasm=wasm_loader())
    print(json.dumps(ran.result, indent=1, default=str)[:6000])
    assert routes(target) == {"GET /asset": 3, "POST /asset": 3}
    assert ran.result["tasks"]["succeeded"] == 3
