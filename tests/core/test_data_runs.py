"""Data feeders in real runs: every request of a pass carries that pass's row, over loopback
to a real server that records each request's path (tests/transport_kit.py HostileServer)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from scenario_kit import Doc, run
from transport_kit import HostileServer
from wbsrun.core.runner import RunOptions

ROWS = 12


def _doc(server: HostileServer, data: Doc, users: int, iterations: int) -> Doc:
    base = f"http://127.0.0.1:{server.port}/ok?t={{{{env.task_id}}}}"
    return {
        "version": "1.0",
        "name": "feeders",
        "components": [
            {"name": "http", "version": "1.0.0", "kind": "native", "capabilities": ["get"]},
            {"name": "logger", "version": "1.0.0", "kind": "native", "capabilities": ["info"]},
        ],
        "data": {"people": data},
        "actions": {
            # Two requests a pass, each carrying the row: they must agree.
            "first": {
                "component": "http",
                "call": "get",
                "with": {"url": base + "&a=1&id={{data.people.id}}&name={{data.people.name}}"},
            },
            "second": {
                "component": "http",
                "call": "get",
                "with": {"url": base + "&a=2&id={{data.people.id}}&name={{data.people.name}}"},
            },
        },
        "workflows": {"wf": {"type": "linear", "steps": [{"ref": "first"}, {"ref": "second"}]}},
        "load": {
            "scenarios": [
                {"name": "s", "workflow": "wf", "user-count": users, "iterations": iterations}
            ]
        },
    }


def _write_people(tmp_path: Path, rows: int = ROWS) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    lines = "".join(f"{i},person-{i}\n" for i in range(rows))
    (bundle / "people.csv").write_text("id,name\n" + lines, encoding="utf-8")


_SEEN = re.compile(r"/ok\?t=(?P<task>[^&]+)&a=(?P<a>\d)&id=(?P<id>\d+)&name=(?P<name>[^&]+)$")


def _requests(server: HostileServer) -> dict[str, dict[str, tuple[str, str]]]:
    """Per task id: per action (1, 2), the row id and name its request carried."""
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for path, count in server.requests.items():
        match = _SEEN.match(path)
        assert match is not None, path
        assert count == 1, path  # a task id and action make a request unique
        out.setdefault(match["task"], {})[match["a"]] = (match["id"], match["name"])
    return out


def _run(tmp_path: Path, server: HostileServer, data: Doc, users: int, passes: int) -> Any:
    _write_people(tmp_path)
    return run(tmp_path, _doc(server, data, users, passes), [], RunOptions())


def test_every_request_of_a_pass_carries_the_same_row_and_unique_rows_never_repeat(
    tmp_path: Path, hostile: HostileServer
) -> None:
    ran = _run(tmp_path, hostile, {"file": "people.csv", "mode": "unique"}, users=3, passes=4)
    seen = _requests(hostile)
    assert len(seen) == 12  # 3 users x 4 passes, rows enough for all
    ids = []
    for task, actions in seen.items():
        assert actions["1"] == actions["2"], task  # one row per pass, not per template
        row_id, name = actions["1"]
        assert name == f"person-{row_id}"
        ids.append(row_id)
    assert sorted(ids, key=int) == [str(i) for i in range(12)]
    assert ran.result["tasks"]["succeeded"] == 12


def test_unique_rows_run_out_and_stop_ends_the_users_without_a_failed_pass(
    tmp_path: Path, hostile: HostileServer
) -> None:
    ran = _run(tmp_path, hostile, {"file": "people.csv", "mode": "unique"}, users=4, passes=10)
    seen = _requests(hostile)
    assert sorted((a["1"][0] for a in seen.values()), key=int) == [str(i) for i in range(ROWS)]
    tasks = ran.result["tasks"]
    assert (tasks["started"], tasks["succeeded"], tasks["failed"]) == (ROWS, ROWS, 0)


def test_unique_rows_run_out_with_on_exhausted_error_fail_the_pass_that_found_none(
    tmp_path: Path, hostile: HostileServer
) -> None:
    data = {"file": "people.csv", "mode": "unique", "on-exhausted": "error"}
    ran = _run(tmp_path, hostile, data, users=4, passes=10)
    assert len(_requests(hostile)) == ROWS
    tasks = ran.result["tasks"]
    assert tasks["succeeded"] == ROWS
    # The pass that found no row fails; then no user of the scenario starts another.
    assert tasks["failed"] == 1
    assert ran.result["errors"]["data-exhausted"] == 1


@pytest.mark.parametrize("mode", ["per-user", "circular", "random", "shuffled", "sequential"])
def test_each_mode_runs_against_a_real_server_with_one_row_a_pass(
    tmp_path: Path, hostile: HostileServer, mode: str
) -> None:
    ran = _run(tmp_path, hostile, {"file": "people.csv", "mode": mode}, users=3, passes=3)
    seen = _requests(hostile)
    assert len(seen) == 9
    by_user: dict[str, set[str]] = {}
    for task, actions in seen.items():
        assert actions["1"] == actions["2"]
        by_user.setdefault(task.rsplit("-t", 1)[0], set()).add(actions["1"][0])
    if mode == "per-user":
        # Each user its own row, fixed for the run.
        assert all(len(ids) == 1 for ids in by_user.values())
        assert len(set().union(*by_user.values())) == 3
    assert ran.result["tasks"]["succeeded"] == 9


def test_a_malformed_row_fails_only_its_pass_with_data_error_naming_file_and_line(
    tmp_path: Path, hostile: HostileServer
) -> None:
    _write_people(tmp_path)
    people = tmp_path / "bundle" / "people.csv"
    people.write_text("id,name\n0,person-0\n1,person-1,oops\n2,person-2\n", encoding="utf-8")
    doc = _doc(hostile, {"file": "people.csv", "mode": "sequential"}, users=1, iterations=5)
    ran = run(tmp_path, doc, [], RunOptions())
    seen = _requests(hostile)
    assert sorted(a["1"][0] for a in seen.values()) == ["0", "2"]
    tasks = ran.result["tasks"]
    assert (tasks["succeeded"], tasks["failed"]) == (2, 1)  # then the rows ran out: stop
    assert ran.result["errors"] == {"data-error": 1}
    messages = json.dumps(ran.result["error_messages"])
    assert "people.csv:3: 3 fields where the header has 2" in messages
