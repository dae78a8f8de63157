"""The http conveniences' keys are checked when the scenario loads, each finding at its
file:line:column: `auth`, `multipart`, `body-from` (a file_blob), `cookies`, `tls`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from scenario_kit import act, document, edge, end, graph, write_bundle
from wbsrun.dsl.loader import load_plan
from wbsrun.errors import ScenarioError
from wbsrun.protocols.registry import provides


def bundle_with(tmp_path: Path, with_: dict[str, Any], **extra: Any) -> Path:
    actions = {"go": {"component": "http", "call": "post", "with": {"url": "http://h/", **with_}}}
    doc = document(actions, graph(act("go", "go", edge("done")), end()), **extra.get("scn", {}))
    doc["resources"]["logo"] = {"type": "file_blob", "config": {"file": "./logo.bin"}}
    if "component" in extra:
        doc["components"][0].update(extra["component"])
    (tmp_path / "bundle").mkdir(exist_ok=True)
    (tmp_path / "bundle" / "logo.bin").write_bytes(b"x")
    return write_bundle(tmp_path, doc, [("127.0.0.1", 1)])


def findings(bundle: Path) -> list[tuple[str, str, int, int]]:
    with pytest.raises(ScenarioError) as caught:
        load_plan(bundle, provides())
    found = caught.value.diagnostics
    return [(d.code, d.path, d.line, d.column) for d in found if d.severity == "error"]


def line_of(bundle: Path, text: str) -> int:
    lines = (bundle / "script.yaml").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_valid_conveniences_load_into_the_plan(tmp_path: Path) -> None:
    with_ = {
        "auth": {"basic": {"username": "{{ env.user_id }}", "password": "p"}},
        "multipart": [
            {"name": "f", "file": "logo", "filename": "a.png"},
            {"name": "t", "value": 1},
        ],
        "cookies": False,
    }
    tls = {"tls": {"ca-file": "./logo.bin", "verify": False}}
    plan = load_plan(
        bundle_with(tmp_path, with_, component=tls, scn={"cookies": False}), provides()
    )
    [http] = [c for c in plan.components.values() if c.name == "http"]
    assert http.tls is not None
    assert not http.tls.verify
    assert http.tls.ca_file == (tmp_path / "bundle" / "logo.bin").resolve()
    assert [s.cookies for s in plan.scenarios] == [False]


def test_an_auth_of_no_known_kind_is_refused_where_it_is(tmp_path: Path) -> None:
    bundle = bundle_with(tmp_path, {"auth": {"digest": "x"}})
    [(code, path, line, _)] = findings(bundle)
    assert (code, path) == ("unknown-key", "actions.go.with.auth.digest")
    assert line == line_of(bundle, "digest:")


def test_body_from_and_multipart_files_must_name_a_file_blob(tmp_path: Path) -> None:
    bundle = bundle_with(
        tmp_path, {"body-from": "logoo", "multipart": [{"name": "a", "file": "pool"}]}
    )
    found = findings(bundle)
    assert ("unknown-resource", "actions.go.with.body-from") in [(c, p) for c, p, _, _ in found]
    assert ("unknown-resource", "actions.go.with.multipart[0].file") in [
        (c, p) for c, p, _, _ in found
    ]
    assert all(line > 0 and column > 0 for _, _, line, column in found)


def test_tls_files_must_exist_in_the_bundle_and_verify_is_a_boolean(tmp_path: Path) -> None:
    bundle = bundle_with(tmp_path, {}, component={"tls": {"ca-file": "./ca.pem"}})
    assert [(c, p) for c, p, _, _ in findings(bundle)] == [
        ("file-not-found", "components[0].tls.ca-file")
    ]
    bundle = bundle_with(
        tmp_path, {}, component={"tls": {"verify": "no", "key-file": "./logo.bin"}}
    )
    assert sorted((c, p) for c, p, _, _ in findings(bundle)) == [
        ("bad-value", "components[0].tls"),  # key-file without cert-file
        ("wrong-type", "components[0].tls.verify"),
    ]


def test_the_loaded_document_round_trips_as_yaml(tmp_path: Path) -> None:
    bundle = bundle_with(tmp_path, {"form": {"a": [1, 2]}, "auth": {"bearer": "t"}})
    assert yaml.safe_load((bundle / "script.yaml").read_text())["actions"]["go"]["with"]["form"]
    load_plan(bundle, provides())


def test_verify_off_is_one_start_warning_of_the_run(tmp_path: Path) -> None:
    from wbsrun.cli.session import start_warnings
    from wbsrun.core.runner import RunOptions
    from wbsrun.resources.pool import PoolManager

    plan = load_plan(bundle_with(tmp_path, {}, component={"tls": {"verify": False}}), provides())
    warnings = start_warnings(plan, PoolManager(plan), RunOptions())
    assert warnings == [
        "component 'http': tls.verify is false: https server certificates are not checked"
    ]
