"""Request timeouts through a real run, on both transports, against a server on 127.0.0.1 that
accepts and never answers: each layer (the action's `with.timeout` or `timeout`, the node's
`exec.timeout`, the component's config, the run's option) ends the request with
`network-timeout` in about its time, in the order action > component > run > 60 s."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from scenario_kit import Doc, Ran, act, document, edge, end, graph, http, run
from transport_kit import HostileServer
from wbsrun.core import codes
from wbsrun.core.runner import RunOptions

TRANSPORTS = ("fast", "aiohttp")


def silent_doc(
    with_: dict[str, Any] | None = None,
    action: dict[str, Any] | None = None,
    node: dict[str, Any] | None = None,
    component: dict[str, Any] | None = None,
) -> Doc:
    """One user, one pass: GET a path that never answers, then the error exit. The dicts go
    into the action's `with`, the action, the node's `exec` and the http component."""
    fetch = http("get", "/silent")
    fetch = {**fetch, **(action or {}), "with": {**fetch["with"], **(with_ or {})}}
    doc = document(
        {"fetch": fetch}, graph(act("get", "fetch", edge("done"), **(node or {})), end())
    )
    doc["components"][0].update(component or {})
    return doc


def silent_run(tmp_path: Path, hostile: HostileServer, doc: Doc, **options: Any) -> Ran:
    return run(tmp_path, doc, [("127.0.0.1", hostile.port)], RunOptions(**options))


def timed_out_after(ran: Ran) -> float:
    """The failed request's latency in seconds (the deadline's, when the runner's fired)."""
    assert ran.result["errors"] == {codes.NETWORK_TIMEOUT: 1}, ran.result["errors"]
    assert ran.result["requests"] == {**ran.result["requests"], "total": 1, "failed": 1}
    figures = ran.result["actions"]["fetch"]
    assert (figures["count"], figures["failed"]) == (1, 1)
    return float(figures["latency_ms"]["max"]) / 1000.0


Layers = tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]
# name: (with, action, node exec, component, run options)
LAYERS: dict[str, Layers] = {
    "run option": ({}, {}, {}, {}, {"request_timeout": 0.4}),
    "component config": ({}, {}, {}, {"timeout": "400ms"}, {}),
    "with.timeout": ({"timeout": "400ms"}, {}, {}, {}, {}),
    "action timeout": ({}, {"timeout": "400ms"}, {}, {}, {}),
    "node exec.timeout": ({}, {}, {"timeout": "400ms"}, {}, {}),
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("layer", list(LAYERS))
def test_each_layer_ends_a_silent_request_with_network_timeout_in_about_its_time(
    tmp_path: Path, hostile: HostileServer, transport: str, layer: str
) -> None:
    with_, action, node, component, options = LAYERS[layer]
    started = time.monotonic()
    doc = silent_doc(with_, action, node, component)
    ran = silent_run(tmp_path, hostile, doc, transport=transport, **options)
    elapsed = time.monotonic() - started
    assert 0.39 <= timed_out_after(ran) < 1.0
    assert 0.4 <= ran.runner.elapsed < 1.5
    assert elapsed < 5.0
    assert ran.result["tasks"]["failed"] == 1


# The 900 ms layer must win over the 200 ms ones.
PRECEDENCE: dict[str, Layers] = {
    "with.timeout over component and run": (
        {"timeout": "900ms"},
        {},
        {},
        {"timeout": "200ms"},
        {"request_timeout": 0.2},
    ),
    "action timeout over component": ({}, {"timeout": "900ms"}, {}, {"timeout": "200ms"}, {}),
    "node timeout over run": ({}, {}, {"timeout": "900ms"}, {}, {"request_timeout": 0.2}),
    "component over run": ({}, {}, {}, {"timeout": "900ms"}, {"request_timeout": 0.2}),
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("case", list(PRECEDENCE))
def test_precedence_is_action_then_component_then_run_option(
    tmp_path: Path, hostile: HostileServer, transport: str, case: str
) -> None:
    with_, action, node, component, options = PRECEDENCE[case]
    doc = silent_doc(with_, action, node, component)
    ran = silent_run(tmp_path, hostile, doc, transport=transport, **options)
    assert 0.85 <= timed_out_after(ran) < 1.5


def test_without_any_setting_an_http_call_is_bounded_by_sixty_seconds_a_logger_call_not(
    tmp_path: Path, hostile: HostileServer
) -> None:
    doc = document({"fetch": http("get", "/ok")}, graph(act("get", "fetch", edge("done")), end()))
    ran = run(tmp_path, doc, [("127.0.0.1", hostile.port)])
    executor = ran.runner.schedulers[0].executor
    plan = ran.runner.plan
    assert executor.limit_of(plan.actions["fetch"], None) == 60.0
    assert executor.limit_of(plan.actions["fetch"], 2.5) == 2.5
    logger = plan.exits["error_out"].actions[0]
    assert executor.limit_of(logger.action, None) is None  # type: ignore[union-attr]
