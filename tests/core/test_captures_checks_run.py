"""Captures and checks through real runs against an aiohttp server on 127.0.0.1: a token
captured by JSON path authorises the next request (the server verifies it), regex, header
and cookie captures, each check kind passing and failing, `on-fail: error`, and the counts in
the JSON result (validated against result-schema.json)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from scenario_kit import BASE, Doc, Ran, act, document, edge, end, graph, run
from wbsrun.core.runner import RunOptions
from wbsrun.telemetry.metrics import RunCollector, RunSources
from wbsrun.telemetry.summary import print_summary

# The header map keeps one value per name; cookies are read from every Set-Cookie, which the
# two transports keep differently (raw head pairs, aiohttp's multidict): both are run.
BOTH = pytest.mark.parametrize("http_transport", ["fast", "aiohttp"], indirect=True)


class Server:
    """login issues a fresh token (and cookies); /me answers 200 only to `Bearer <token>`."""

    def __init__(self) -> None:
        self.issued: set[str] = set()
        self.verified = 0
        self.refused = 0
        self.seen: list[str] = []
        self.port = 0

    async def login(self, request: web.Request) -> web.Response:
        token = f"tok-{len(self.issued) + 1}"
        self.issued.add(token)
        body = {"token": token, "items": [{"id": 1}, {"id": 7, "tag": "x"}], "ok": True}
        response = web.json_response(body, headers={"X-Request-Id": "rid-42"})
        response.set_cookie("theme", "dark")
        response.set_cookie("sid", "s3ss10n")
        return response

    async def me(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        self.seen.append(auth + "|" + request.headers.get("X-Extra", ""))
        if auth.removeprefix("Bearer ") in self.issued:
            self.verified += 1
            return web.json_response({"name": "ann"})
        self.refused += 1
        return web.json_response({"error": "no"}, status=401)

    async def page(self, request: web.Request) -> web.Response:
        html = '<form><input name="csrf" value="c5rf-9"></form>'
        return web.Response(text=html, content_type="text/html")


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/login", srv.login)
    app.router.add_get("/me", srv.me)
    app.router.add_get("/page", srv.page)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    srv.port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield srv
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.run_until_complete(runner.cleanup())
    loop.close()


def flow(login: Doc, me: Doc, users: int = 1, iterations: int = 1) -> Doc:
    wf = graph(act("a", "login", edge("b")), act("b", "me", edge("done")), end())
    return document({"login": login, "me": me}, wf, users=users, iterations=iterations)


def login_action(**extra: Any) -> Doc:
    return {"component": "http", "call": "post", "with": {"url": BASE + "/login"}, **extra}


def me_action(headers: dict[str, str], **extra: Any) -> Doc:
    return {"component": "http", "call": "get", "with": {"url": BASE + "/me", "headers": headers}}


def go(tmp_path: Path, server: Server, doc: Doc) -> Ran:
    ran = run(tmp_path, doc, [("127.0.0.1", server.port)], RunOptions())
    schema = json.loads(resources.files("wbsrun").joinpath("result-schema.json").read_text())
    jsonschema.validate(ran.result, schema)
    return ran


@BOTH
def test_a_token_captured_by_json_path_authorises_the_next_request(
    tmp_path: Path, server: Server, http_transport: str
) -> None:
    login = login_action(capture=[{"name": "token", "json": "$.token"}])
    doc = flow(login, me_action({"Authorization": "Bearer {{token}}"}), users=2, iterations=2)
    ran = go(tmp_path, server, doc)
    assert ran.result["tasks"]["succeeded"] == 4
    assert server.verified == 4
    assert server.refused == 0
    assert {s.split("|")[0] for s in server.seen} == {f"Bearer tok-{n}" for n in range(1, 5)}


@BOTH
def test_regex_header_cookie_and_wildcard_json_captures_reach_templates(
    tmp_path: Path, server: Server, http_transport: str
) -> None:
    login = login_action(
        capture=[
            {"name": "rid", "header": "x-REQUEST-id"},
            {"name": "sid", "cookie": "sid", "scope": "task-local"},
            {"name": "tag", "json": "$.items[*].tag"},
            {"name": "second", "json": "$.items[-1].id", "scope": "user-local"},
            {"name": "whole", "regex": "tok-[0-9]"},
            {"name": "token", "json": "$['token']"},
        ]
    )
    extra = "{{rid}},{{sid}},{{tag}},{{second}},{{whole}}"
    me = me_action({"Authorization": "Bearer {{token}}", "X-Extra": extra})
    ran = go(tmp_path, server, flow(login, me))
    assert ran.result["tasks"]["succeeded"] == 1
    assert server.seen == ["Bearer tok-1|rid-42,s3ss10n,x,7,tok-1"]


def test_a_regex_capture_takes_its_first_group_from_an_html_body(
    tmp_path: Path, server: Server
) -> None:
    page = {
        "component": "http",
        "call": "get",
        "with": {"url": BASE + "/page"},
        "capture": [{"name": "csrf", "regex": 'name="csrf" value="([^"]+)"'}],
    }
    me = me_action({"X-Extra": "{{csrf}}"})
    wf = graph(act("a", "page", edge("b")), act("b", "me", edge("done")), end())
    ran = go(tmp_path, server, document({"page": page, "me": me}, wf))
    assert server.seen == ["|c5rf-9"]
    assert ran.result["errors"] == {"unauthorized": 1}


def test_a_capture_that_finds_nothing_fails_the_action_unless_defaulted_or_optional(
    tmp_path: Path, server: Server
) -> None:
    login = login_action(
        capture=[
            {"name": "d", "json": "$.missing", "default": "dflt"},
            {"name": "o", "header": "x-none", "optional": True},
            {"name": "token", "json": "$.nothing.here"},
        ]
    )
    ran = go(tmp_path, server, flow(login, me_action({"X-Extra": "{{d}}"})))
    assert ran.result["errors"] == {"capture-failed": 1}
    assert ran.result["actions"]["login"]["failed"] == 1
    (sample,) = ran.result["error_messages"]
    assert sample["message"] == "login: capture 'token': nothing found by json '$.nothing.here'"
    assert server.seen == []  # the pass went to its error exit


CHECKS: list[tuple[Doc, bool]] = [
    ({"status": 200}, True),
    ({"status": 201}, False),
    ({"status": [201, 200]}, True),
    ({"status-in": [204, 202]}, False),
    ({"body-contains": '"ok": true'}, True),
    ({"body-contains": "nope"}, False),
    ({"json": {"path": "$.items[1].id", "equals": 7}}, True),
    ({"json": {"path": "$.items[1].id", "equals": "7"}}, False),
    ({"json": {"path": "$.ok", "equals": True}}, True),
    ({"json": {"path": "$.token", "matches": "^tok-[0-9]+$"}}, True),
    ({"json": {"path": "$.token", "matches": "^x"}}, False),
    ({"json": {"path": "$.absent", "matches": "."}}, False),
    ({"latency-below": "10s"}, True),
    ({"latency-below": "0s"}, False),
]


@pytest.mark.parametrize(("check", "holds"), CHECKS, ids=[json.dumps(c) for c, _ in CHECKS])
def test_each_check_kind_is_counted_passing_or_failing_without_failing_the_pass(
    tmp_path: Path, server: Server, check: Doc, holds: bool
) -> None:
    login = login_action(checks=[{**check, "name": "it"}])
    ran = go(tmp_path, server, flow(login, me_action({}), iterations=3))
    want = (
        {"passes": 3, "fails": 0, "rate": 1.0} if holds else {"passes": 0, "fails": 3, "rate": 0.0}
    )
    assert ran.result["checks"] == {"it": want}
    assert ran.result["actions"]["login"]["checks"] == {"it": want}
    assert ran.result["actions"]["login"]["failed"] == 0


def test_checks_get_derived_names_unique_within_the_action(tmp_path: Path, server: Server) -> None:
    login = login_action(
        checks=[
            {"status": 200},
            {"status-in": [200]},
            {"json": {"path": "$.items[0].id", "equals": 1}},
        ]
    )
    ran = go(tmp_path, server, flow(login, me_action({})))
    assert set(ran.result["checks"]) == {"status", "status-2", "json-items_0_id"}


def test_a_failing_check_with_on_fail_error_fails_the_action_naming_the_check(
    tmp_path: Path, server: Server
) -> None:
    login = login_action(
        checks=[{"name": "created", "status": 201, "on-fail": "error"}, {"status": 200}]
    )
    ran = go(tmp_path, server, flow(login, me_action({})))
    assert ran.result["errors"] == {"check-failed": 1}
    assert ran.result["actions"]["login"]["failed"] == 1
    (sample,) = ran.result["error_messages"]
    assert sample["message"] == "login: check 'created' failed: status 200"
    assert ran.result["checks"]["status"] == {"passes": 1, "fails": 0, "rate": 1.0}
    assert server.seen == []


def test_checks_on_an_answer_that_failed_count_as_failing(tmp_path: Path, server: Server) -> None:
    me = me_action({"Authorization": "Bearer wrong"})
    me["checks"] = [{"status": 200}, {"body-contains": "error"}]
    ran = go(tmp_path, server, flow(login_action(), me))
    assert ran.result["checks"]["status"] == {"passes": 0, "fails": 1, "rate": 0.0}
    assert ran.result["checks"]["body-contains"]["passes"] == 1
    assert ran.result["errors"] == {"unauthorized": 1}


def test_the_exporter_serves_wbsrun_checks_total_by_action_check_and_result(
    tmp_path: Path, server: Server
) -> None:
    login = login_action(checks=[{"status": 200}, {"name": "slow", "latency-below": "0s"}])
    ran = go(tmp_path, server, flow(login, me_action({}), iterations=2))
    collector = RunCollector(RunSources(ran.runner))
    collector.finish()
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    found = {
        (s.labels["action"], s.labels["check"], s.labels["result"]): s.value
        for fam in text_string_to_metric_families(text)
        if fam.name == "wbsrun_checks"
        for s in fam.samples
        if s.name == "wbsrun_checks_total"
    }
    assert found == {
        ("login", "status", "pass"): 2.0,
        ("login", "status", "fail"): 0.0,
        ("login", "slow", "pass"): 0.0,
        ("login", "slow", "fail"): 2.0,
    }


def test_the_end_summary_lists_each_check_with_its_mark_and_rate(
    tmp_path: Path, server: Server
) -> None:
    login = login_action(checks=[{"status": 200}, {"name": "slow", "latency-below": "0s"}])
    ran = go(tmp_path, server, flow(login, me_action({}), iterations=2))
    console = Console(record=True, width=120)
    print_summary(console, ran.result)
    lines = console.export_text().splitlines()
    assert "checks 50.0% (2 of 4 passed)" in lines
    assert "  ✓ login status  100.0%  ✓ 2 ✗ 0" in lines
    assert "  ✗ login slow  0.0%  ✓ 0 ✗ 2" in lines
