"""`data:` sources at validation: names and fields read in templates, files, modes, formats —
each mistake a positioned diagnostic, never a traceback (dsl/data.py, dsl/_flow.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import Plan
from wbsrun.errors import Diagnostic, ScenarioError
from wbsrun.protocols.registry import provides

SCRIPT = """\
version: "1.0"
name: feeders
components:
  - {name: http, version: "1.0.0", kind: native, capabilities: [get]}
data:
  people:
    file: people.csv
    mode: unique
actions:
  fetch:
    component: http
    call: get
    with: {url: "http://127.0.0.1:1/?who={{data.people.name}}"}
workflows:
  wf: {type: linear, steps: [{ref: fetch}]}
load:
  scenarios:
    - {name: s, workflow: wf, user-count: 1}
"""


def _load(tmp_path: Path, *edits: tuple[str, str], people: str = "id,name\n1,ann\n") -> Plan:
    text = SCRIPT
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    (bundle / "people.csv").write_text(people, encoding="utf-8")
    (bundle / "script.yaml").write_text(text, encoding="utf-8")
    return load_plan(bundle, provides())


def _errors(
    tmp_path: Path, *edits: tuple[str, str], people: str = "id,name\n1,ann\n"
) -> list[Diagnostic]:
    with pytest.raises(ScenarioError) as caught:
        _load(tmp_path, *edits, people=people)
    return [d for d in caught.value.diagnostics if d.severity == "error"]


def _one(tmp_path: Path, *edits: tuple[str, str], people: str = "id,name\n1,ann\n") -> Diagnostic:
    found = _errors(tmp_path, *edits, people=people)
    assert len(found) == 1, [d.format() for d in found]
    return found[0]


def test_a_valid_source_is_in_the_plan_with_its_header_fields(tmp_path: Path) -> None:
    plan = _load(tmp_path)
    spec = plan.data["people"]
    assert (spec.mode, spec.format, spec.fields, spec.on_exhausted) == (
        "unique",
        "csv",
        ("id", "name"),
        "stop",
    )
    assert spec.file == (tmp_path / "bundle" / "people.csv").resolve()


def test_an_unknown_source_in_a_template_is_reported_where_it_is_read(tmp_path: Path) -> None:
    found = _one(tmp_path, ("data.people.name", "data.peple.name"))
    assert (found.code, found.line, found.value) == ("undefined-variable", 13, "data.peple.name")
    assert "'data.peple' is not a data source" in found.message
    assert found.hint == "did you mean 'people'?"


def test_an_unknown_csv_field_is_reported_with_the_header_fields(tmp_path: Path) -> None:
    found = _one(tmp_path, ("data.people.name", "data.people.nmae"))
    assert (found.code, found.line) == ("undefined-variable", 13)
    assert "not a field of data source 'people'" in found.message
    assert found.hint == "did you mean 'name'?"
    assert found.expected == "one of the header's fields: id, name"


def test_a_missing_file_is_reported_at_its_file_key(tmp_path: Path) -> None:
    found = _one(tmp_path, ("file: people.csv", "file: nobody.csv"))
    assert (found.code, found.line, found.column) == ("file-not-found", 7, 11)
    assert "nobody.csv" in found.message


@pytest.mark.parametrize("path", ["../outside.csv", "/etc/passwd.csv", "sub/../../x.csv"])
def test_a_file_outside_the_bundle_is_refused(tmp_path: Path, path: str) -> None:
    (tmp_path / "outside.csv").write_text("id\n1\n")
    found = _one(tmp_path, ("file: people.csv", f"file: {path}"))
    assert (found.code, found.line, found.column) == ("path-outside-bundle", 7, 11)


def test_a_symbolic_link_leaving_the_bundle_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside.csv").write_text("id,name\n1,a\n")
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "link.csv").symlink_to(tmp_path / "outside.csv")
    found = _one(tmp_path, ("file: people.csv", "file: link.csv"))
    assert found.code == "path-outside-bundle"
    assert "symbolic link" in found.message


def test_a_bad_mode_is_a_schema_error_listing_the_modes(tmp_path: Path) -> None:
    found = _one(tmp_path, ("mode: unique", "mode: once"))
    assert found.line == 8
    assert "per-user" in (found.expected or found.message)


@pytest.mark.parametrize(
    ("people", "words"),
    [
        ("", "empty"),
        ("id,name\n", "no rows"),
        ("id,id\n1,2\n", "distinct"),
        ("id,name\n1,ann,extra\n", "3 fields where the header has 2"),
    ],
)
def test_an_empty_or_malformed_file_is_refused_at_validation(
    tmp_path: Path, people: str, words: str
) -> None:
    found = _one(tmp_path, people=people)
    assert (found.code, found.line, found.column) == ("bad-data-file", 7, 11)
    assert words in found.message


def test_an_unknown_extension_needs_a_format(tmp_path: Path) -> None:
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "people.txt").write_text('{"name": "ann"}\n')
    found = _one(tmp_path, ("file: people.csv", "file: people.txt"))
    assert found.code == "unknown-format"
    plan = _load(tmp_path, ("file: people.csv", "file: people.txt\n    format: jsonl"))
    assert plan.data["people"].format == "jsonl"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('{"name": "ann"}', 1, "one array of objects"),
        ("[\n  1,\n  2\n]", 2, "not an object"),
        ('[\n  {"name": "ann"\n', 2, "ends inside an item"),
        ('[\n  {"name": ann}\n]', 2, "invalid JSON"),
        ("[]", 1, "no rows"),
    ],
)
def test_a_json_file_that_is_not_an_array_of_objects_is_refused(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "people.json").write_text(text)
    found = _one(tmp_path, ("file: people.csv", "file: people.json"))
    assert found.code == "bad-data-file"
    assert words in found.message
    if words != "no rows":
        assert f"people.json:{line}: " in found.message


def test_json_and_jsonl_fields_are_not_judged_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "people.jsonl").write_text('{"name": "ann"}\n{"other": 1}\n')
    plan = _load(
        tmp_path, ("file: people.csv", "file: people.jsonl"), ("people.name", "people.other")
    )
    assert plan.data["people"].fields is None


def test_a_data_section_that_is_not_a_mapping_is_one_schema_error(tmp_path: Path) -> None:
    found = _one(
        tmp_path, ("data:\n  people:\n    file: people.csv\n    mode: unique\n", "data: [1]\n")
    )
    assert (found.line, found.path) == (5, "data")


def test_thresholds_may_name_the_data_error_codes(tmp_path: Path) -> None:
    extra = "thresholds:\n  - errors.data-exhausted == 0\n  - errors.data-error < 5\n"
    plan = _load(tmp_path, ("load:\n", extra + "load:\n"))
    assert [rule.metric.name for rule in plan.thresholds] == ["data-exhausted", "data-error"]


def test_a_variable_saved_as_data_clashes_with_the_sources(tmp_path: Path) -> None:
    found = _one(tmp_path, ("call: get\n", "call: get\n    save-as: data\n"))
    assert found.code == "name-clash"


def test_without_a_data_section_data_stays_an_ordinary_variable(tmp_path: Path) -> None:
    plan = _load(
        tmp_path,
        ("data:\n  people:\n    file: people.csv\n    mode: unique\n", ""),
        ("call: get\n", "call: get\n    save-as: data\n"),
        ("{{data.people.name}}", "x"),
    )
    assert plan.data == {}
