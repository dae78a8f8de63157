"""The scenario JSON Schema: the reference passes, and each violation is one positioned message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from wbsrun.dsl.schema_check import SCHEMA_ID, load_schema, validate_schema
from wbsrun.dsl.source import SourceDoc, load_source, parse_source
from wbsrun.dsl.units import DURATION_PATTERN, RATE_PATTERN, SIZE_PATTERN, UNIT_FIELDS
from wbsrun.errors import Diagnostic

DATA = Path(__file__).parent / "data"
MINIMAL = (DATA / "minimal.yaml").read_text(encoding="utf-8")


def _check(*edits: tuple[str, str]) -> list[Diagnostic]:
    text = MINIMAL
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return validate_schema(parse_source(text, "s.yaml"))


def _only(*edits: tuple[str, str]) -> Diagnostic:
    found = _check(*edits)
    assert len(found) == 1, [d.format() for d in found]
    return found[0]


def _where(diag: Diagnostic) -> tuple[str, int, int, str]:
    return diag.code, diag.line, diag.column, diag.path


def test_reference_scenario_has_no_schema_errors() -> None:
    doc = load_source(DATA / "reference" / "http_scenario.yaml")
    assert validate_schema(doc) == []


def test_minimal_scenario_has_no_schema_errors() -> None:
    assert _check() == []


def test_schema_is_draft_2020_12_with_a_versioned_id() -> None:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == SCHEMA_ID == "https://wbsrun.dev/schema/v1.json"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _properties(node: object, conditional: bool = False) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if not conditional:
            found += list(node.get("properties", {}).items())
        for key, value in node.items():
            # `if` clauses only test values; partial `then` overlays add constraints.
            partial = key == "then" and isinstance(value, dict) and "$ref" not in value
            found += _properties(value, conditional or key == "if" or partial)
    elif isinstance(node, list):
        for item in node:
            found += _properties(item, conditional)
    return found


def test_every_property_carries_help_text_for_editors() -> None:
    undocumented = [name for name, body in _properties(load_schema()) if "description" not in body]
    assert undocumented == []


def _unit_paths(schema: dict[str, Any]) -> set[tuple[tuple[str, ...], str]]:
    """(path pattern, unit) of every duration/rate in the schema, following refs and branches."""
    defs = schema["$defs"]
    found: set[tuple[tuple[str, ...], str]] = set()

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            walk(defs[node["$ref"].rsplit("/", 1)[1]], path)
        if "x-unit" in node:
            found.add((path, node["x-unit"]))
        for key, sub in node.get("properties", {}).items():
            walk(sub, (*path, key))
        for key in ("additionalProperties", "items"):
            walk(node.get(key), (*path, "*"))
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in node.get(key, []):
                walk(sub, path)
        for key in ("then", "else"):
            walk(node.get(key), path)

    walk(schema, ())
    return found


def test_schema_unit_fields_are_exactly_the_ones_refs_checks() -> None:
    expected: set[tuple[tuple[str, ...], str]] = set()
    for path, unit in UNIT_FIELDS:
        if unit == "rate-limit":
            expected |= {(path, "rate"), ((*path, "per-user"), "rate"), ((*path, "global"), "rate")}
        else:
            expected.add((path, unit))
    assert _unit_paths(load_schema()) == expected


def test_schema_unit_patterns_are_the_ones_units_py_parses() -> None:
    defs = load_schema()["$defs"]
    assert defs["duration"]["pattern"] == DURATION_PATTERN
    assert defs["rate"]["pattern"] == RATE_PATTERN
    assert defs["size"]["pattern"] == SIZE_PATTERN


def test_misspelt_top_level_key_is_one_unknown_key_error_with_a_hint() -> None:
    diag = _only(("workflows:\n", "worklows:\n"))
    assert _where(diag) == ("unknown-key", 25, 1, "worklows")
    assert diag.message == "unknown key 'worklows' at the top level"
    assert diag.hint == "did you mean 'workflows'?"
    assert "workflows" in str(diag.expected)


def test_unknown_key_without_a_close_match_lists_the_allowed_keys() -> None:
    diag = _only(("    call: get\n", "    call: get\n    retries: 3\n"))
    assert _where(diag) == ("unknown-key", 20, 5, "actions.fetch.retries")
    assert diag.hint is None
    assert diag.expected == (
        "one of: call, capture, checks, component, id, name, rate-limit, save-as, timeout, "
        "wbs-level, with"
    )


def test_missing_required_key_points_at_the_owning_key() -> None:
    diag = _only(("    call: get\n", ""))
    assert _where(diag) == ("missing-key", 17, 3, "actions.fetch")
    assert diag.message == "missing required key 'call' in actions.fetch"


def test_wrong_type_names_the_expected_and_found_types() -> None:
    diag = _only(("user-count: 2", "user-count: many"))
    assert _where(diag) == ("wrong-type", 50, 19, "load.scenarios[0].user-count")
    assert diag.message == "wrong type: expected an integer, found the string 'many'"


def test_unquoted_version_number_gets_a_quoting_hint() -> None:
    diag = _only(('version: "1.0.0"', "version: 1.1"))
    assert _where(diag) == ("wrong-type", 5, 14, "components[0].version")
    assert diag.message == "wrong type: expected a string, found the number 1.1"
    assert diag.hint == "expected a semantic version such as 1.2.3 (quote it)"


def test_bad_enum_value_lists_allowed_values_and_suggests_one() -> None:
    diag = _only(("kind: native", "kind: nativ"))
    assert _where(diag) == ("bad-value", 6, 11, "components[0].kind")
    assert diag.message == (
        "bad value 'nativ': expected one of wasi-component, service-adapter, native"
    )
    assert diag.hint == "did you mean 'native'?"


def test_bad_duration_quotes_the_value() -> None:
    diag = _only(("timeout: 1s", "timeout: 5 sec"))
    assert _where(diag) == (
        "bad-duration",
        38,
        22,
        "workflows.main.nodes[0].controls.exec.timeout",
    )
    assert diag.message.startswith("invalid duration '5 sec': expected a number of seconds")


def test_negative_duration_number_is_refused() -> None:
    diag = _only(("timeout: 2s", "timeout: -2"))
    assert _where(diag) == ("bad-duration", 20, 14, "actions.fetch.timeout")
    assert diag.message == "invalid duration -2: must not be negative"


def test_bad_rate_quotes_the_value() -> None:
    diag = _only(("spawn-rate: 1/s", "spawn-rate: 1 per s"))
    assert _where(diag) == ("bad-rate", 51, 19, "load.scenarios[0].spawn-rate")
    assert diag.message.startswith("invalid rate '1 per s': expected a count per second")


def test_component_limits_are_a_duration_and_a_size() -> None:
    limits = "    capabilities: [get, health]\n    timeout: 30s\n    max-body: 512KiB\n"
    assert _check(("    capabilities: [get, health]\n", limits)) == []
    diag = _only(("    capabilities: [get, health]\n", "    max-body: 10 parsecs\n"))
    assert _where(diag) == ("bad-size", 7, 15, "components[0].max-body")
    assert diag.message.startswith("invalid size '10 parsecs': expected a number of bytes")


def test_http_max_body_takes_a_size_or_a_template() -> None:
    url = 'with: {url: "http://{{resource.ip}}:{{resource.port}}/"'
    for value in ("1MiB", "4096", "'{{ 2 * 1024 }}'"):
        assert _check((url, f"{url}, max-body: {value}")) == [], value
    diag = _only((url, f"{url}, max-body: lots"))
    assert (diag.code, diag.path) == ("bad-value", "actions.fetch.with.max-body")


def test_rate_limit_mapping_values_are_rates() -> None:
    diag = _only(("    timeout: 2s\n", "    timeout: 2s\n    rate-limit: {per-user: lots}\n"))
    assert _where(diag) == ("bad-rate", 21, 28, "actions.fetch.rate-limit.per-user")


def test_handler_with_goto_and_action_is_one_clear_error() -> None:
    diag = _only(("- goto: error_out", "- {goto: error_out, action: fetch}"))
    assert _where(diag) == ("bad-handler", 31, 11, "workflows.main.controls.on-error[0]")
    assert diag.message == (
        "a handler needs exactly one of 'action', 'goto', 'update-workbook', "
        "'progress.rollback' or 'resource.release'"
    )


def test_handler_with_a_misspelt_key_reports_only_the_typo() -> None:
    diag = _only(("- goto: error_out", "- gotoo: error_out"))
    assert _where(diag) == ("unknown-key", 31, 11, "workflows.main.controls.on-error[0].gotoo")
    assert diag.hint == "did you mean 'goto'?"


def test_save_as_mapping_with_a_typo_reports_only_the_typo() -> None:
    diag = _only(("      var: page", "      vars: page"))
    assert _where(diag) == ("unknown-key", 23, 7, "actions.fetch.save-as.vars")
    assert diag.hint == "did you mean 'var'?"


def test_save_as_of_the_wrong_type_names_both_accepted_types() -> None:
    old = (
        "    save-as:\n      var: page\n"
        '      persist: {dir: out, filename: "{{workbook.user_id}}.json"}'
    )
    diag = _only((old, "    save-as: 12\n\n"))
    assert _where(diag) == ("wrong-type", 22, 14, "actions.fetch.save-as")
    assert diag.message == "wrong type: expected a string or a mapping, found the number 12"


def test_unknown_key_in_an_action_node_suggests_the_node_keys() -> None:
    diag = _only(("        action: fetch", "        actoin: fetch"))
    assert _where(diag) == ("unknown-key", 35, 9, "workflows.main.nodes[0].actoin")
    assert diag.hint == "did you mean 'action'?"


def test_bad_node_type_lists_the_node_types() -> None:
    diag = _only(("type: terminus", "type: end"))
    assert _where(diag) == ("bad-value", 44, 15, "workflows.main.nodes[1].type")
    assert diag.message == "bad value 'end': expected one of action, parallel, checkpoint, terminus"


def test_parallel_node_needs_a_flow_with_branches_and_join() -> None:
    diag = _only(("        type: action\n        action: fetch\n", "        type: parallel\n\n"))
    assert _where(diag) == ("missing-key", 36, 9, "workflows.main.nodes[0].controls")
    assert diag.message == "missing required key 'flow' in workflows.main.nodes[0].controls"
    diag = _only(
        ("          exec:\n", "          flow: {branches: [{to: done}]}\n          exec:\n"),
        ("        type: action\n        action: fetch\n", "        type: parallel\n\n"),
    )
    assert _where(diag) == ("missing-key", 37, 11, "workflows.main.nodes[0].controls.flow")
    assert diag.message == "missing required key 'join' in workflows.main.nodes[0].controls.flow"


def test_action_names_with_dots_are_refused_at_the_key() -> None:
    diag = _only(("  fetch:\n", "  fe.tch:\n"))
    assert _where(diag) == ("bad-name", 17, 3, "actions['fe.tch']")
    assert diag.message == (
        "bad name 'fe.tch': names use letters, digits, '_' and '-' (no dots or spaces)"
    )


def test_wbs_level_must_look_like_l0_to_l5() -> None:
    diag = _only(("    call: get\n", "    call: get\n    wbs-level: L9\n"))
    assert _where(diag) == ("bad-value", 20, 16, "actions.fetch.wbs-level")
    assert diag.message == "bad value 'L9': expected a WBS level L0, L1, L2, L3, L4 or L5"


def test_free_form_places_accept_any_keys() -> None:
    assert (
        _check(
            ("name: mini\n", "name: mini\nglobals: {anything: [1, {x: y}]}\n"),
            ("    kind: native\n", "    kind: native\n    metadata: {whatever: 1}\n"),
            ("inherit: [pool]", "inherit: [pool]\n        context: {custom: {deep: true}}"),
            ("with: {message: failed}", "with: {message: failed, extra: 1}"),
        )
        == []
    )


def test_several_schema_errors_come_back_in_one_pass_sorted_by_position() -> None:
    found = _check(
        ("workflows:\n", "worklows:\n"),
        ("kind: native", "kind: nativ"),
        ("spawn-rate: 1/s", "spawn-rate: soon"),
    )
    assert [(d.code, d.line) for d in found] == [
        ("bad-value", 6),
        ("unknown-key", 25),
        ("bad-rate", 51),
    ]


def test_non_mapping_document_is_a_wrong_type_at_the_start() -> None:
    doc: SourceDoc = parse_source("- just\n- a list\n", "s.yaml")
    (diag,) = validate_schema(doc)
    assert _where(diag) == ("wrong-type", 1, 1, "")
    assert diag.message == "wrong type: expected a mapping, found a list"


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (("type: pair_pool", "type: pool"), "bad-value"),
        (("format: csv", "format: tsv"), "bad-value"),
        (("state: closing.success", "state: 3"), "wrong-type"),
        (("condition: always", "condition: [always]"), "wrong-type"),
        (("weight: 1}", "weight: -1}"), "bad-value"),
    ],
)
def test_nested_violations_are_each_reported(edit: tuple[str, str], code: str) -> None:
    assert _only(edit).code == code


def test_unknown_when_of_a_handler_is_refused_with_the_allowed_values() -> None:
    goto = "        - goto: error_out\n"
    diag = _only((goto, goto + "          when: nonsense\n"))
    assert _where(diag) == ("bad-value", 32, 17, "workflows.main.controls.on-error[0].when")
    assert diag.value == "nonsense"
    assert diag.expected == "transient, permanent, any"
