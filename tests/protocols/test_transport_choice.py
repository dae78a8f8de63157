"""Which transport runs: flag > WBSRUN_TRANSPORT > config.yaml > the scenario's component key >
fast; and a scenario naming an unknown transport, or `with` arguments the http component does
not take, is refused at validation with file, line and column."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from wbsrun.cli.options import resolve_options
from wbsrun.core.ports import Runtime
from wbsrun.core.rate import RateGuard
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import ComponentSpec, Plan
from wbsrun.errors import RunError, ScenarioError
from wbsrun.protocols.http import choose_transport
from wbsrun.protocols.registry import provides


class _Log:
    def log(self, level: str, message: str, user_id: str | None = None) -> None:
        pass


def spec(transport: str | None) -> ComponentSpec:
    return ComponentSpec("http", "1.0.0", "native", None, None, (), {}, transport=transport)


def runtime(transport: str | None) -> Runtime:
    extras = {"transport": transport} if transport else {}
    return Runtime(_Log(), 0, time.monotonic, RateGuard(), extras=extras)


@pytest.mark.parametrize(
    ("scenario", "option", "chosen"),
    [
        (None, None, "fast"),
        ("aiohttp", None, "aiohttp"),
        ("aiohttp", "fast", "fast"),
        (None, "aiohttp", "aiohttp"),
    ],
)
def test_run_option_beats_the_scenario_key_which_beats_the_default(
    scenario: str | None, option: str | None, chosen: str
) -> None:
    assert choose_transport(spec(scenario), runtime(option)) == chosen


def test_unknown_transport_at_run_time_is_a_run_error() -> None:
    with pytest.raises(RunError, match="unknown HTTP transport 'curl'"):
        choose_transport(None, runtime("curl"))


@pytest.mark.parametrize(
    ("config", "env", "flags", "chosen"),
    [
        ("aiohttp", {}, {}, "aiohttp"),
        ("aiohttp", {"WBSRUN_TRANSPORT": "fast"}, {}, "fast"),
        ("fast", {"WBSRUN_TRANSPORT": "fast"}, {"transport": "aiohttp"}, "aiohttp"),
        (None, {}, {}, None),
    ],
)
def test_transport_option_layers_config_then_environment_then_flag(
    tmp_path: Path, config: str | None, env: dict[str, str], flags: dict[str, Any], chosen: str
) -> None:
    path = tmp_path / "config.yaml"
    if config:
        path.write_text(f"run:\n  transport: {config}\n", encoding="utf-8")
    assert resolve_options(path, flags, env).transport == chosen


def test_bad_transport_option_names_where_it_came_from() -> None:
    with pytest.raises(ScenarioError) as info:
        resolve_options(None, {}, {"WBSRUN_TRANSPORT": "curl"})
    text = info.value.format()
    assert "WBSRUN_TRANSPORT" in text
    assert "'curl'" in text
    assert "fast or aiohttp" in text


SCRIPT = """version: "1.0"
name: t
components:
  - name: http
    version: "1.0.0"
    transport: {transport}
actions:
  a:
    component: http
    call: get
    with:
      url: "{url}"
      {extra}
workflows:
  wf:
    steps:
      - ref: a
load:
  scenarios:
    - name: s
      workflow: wf
      user-count: 1
"""


def load(
    tmp_path: Path, transport: str = "fast", url: str = "http://127.0.0.1:9/", extra: str = ""
) -> Plan:
    (tmp_path / "script.yaml").write_text(
        SCRIPT.format(transport=transport, url=url, extra=extra), encoding="utf-8"
    )
    return load_plan(tmp_path, provides())


def test_scenario_transport_key_reaches_the_component_spec(tmp_path: Path) -> None:
    plan = load(tmp_path, transport="aiohttp", extra="follow-redirects: true")
    assert plan.components["http"].transport == "aiohttp"


@pytest.mark.parametrize(
    ("kwargs", "line", "found", "expected"),
    [
        ({"transport": "curl"}, 6, "curl", "fast, aiohttp"),
        ({"url": "ftp://127.0.0.1/x"}, 12, "ftp://127.0.0.1/x", "http:// or https://"),
        ({"extra": "folow-redirects: true"}, 13, "folow-redirects", "follow-redirects"),
        ({"extra": "timeout: {reed: 2s}"}, 13, "reed", "connect, read, total"),
    ],
)
def test_what_the_http_component_cannot_do_is_refused_with_its_location(
    tmp_path: Path, kwargs: dict[str, str], line: int, found: str, expected: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        load(tmp_path, **kwargs)
    [diagnostic] = info.value.diagnostics
    assert diagnostic.file.endswith("script.yaml")
    assert diagnostic.line == line
    assert diagnostic.column > 0
    assert found in diagnostic.format()
    assert expected in diagnostic.format()
