"""Loading scenario YAML: plain data, positions of values and keys, and clean YAML-level errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from wbsrun.dsl.source import (
    MAX_FILE_BYTES,
    Position,
    format_path,
    iter_paths,
    load_source,
    parse_source,
)
from wbsrun.errors import Diagnostic, ScenarioError

REFERENCE = Path(__file__).parent / "data" / "reference" / "http_scenario.yaml"


def _errors(text: str) -> list[Diagnostic]:
    with pytest.raises(ScenarioError) as info:
        parse_source(text, "s.yaml")
    return list(info.value.diagnostics)


def _one_error(text: str) -> Diagnostic:
    errors = _errors(text)
    assert len(errors) == 1, errors
    return errors[0]


def test_scalars_load_as_yaml_1_1_safe_load_would() -> None:
    doc = parse_source("a: 1\nb: 1.5\nc: true\nd: null\ne: text\nf: '2'\ng: 0x10\nh: ~\n", "s.yaml")
    assert doc.data == {
        "a": 1,
        "b": 1.5,
        "c": True,
        "d": None,
        "e": "text",
        "f": "2",
        "g": 16,
        "h": None,
    }


def test_dates_stay_the_iso_text_the_user_wrote() -> None:
    doc = parse_source("expiry: 2024-12-31\nat: 2024-12-31T10:00:00Z\n", "s.yaml")
    assert doc.data == {"expiry": "2024-12-31", "at": "2024-12-31T10:00:00Z"}


def test_reference_scenario_keeps_procurement_expiry_as_text() -> None:
    doc = load_source(REFERENCE)
    plugins = doc.data["load"]["scenarios"][0]["user"]["context"]["procurement"]["plugins"]
    assert plugins[0] == {"name": "http", "version": "0.2.1", "expiry": "2024-12-31"}


def test_positions_are_one_based_for_values_and_keys() -> None:
    doc = load_source(REFERENCE)
    timeout = ("workflows", "http_tri_phase", "nodes", 0, "controls", "exec", "timeout")
    assert doc.where(timeout) == Position(370, 22)
    assert doc.where(("actions", "probe-get"), key=True) == Position(301, 3)
    assert doc.where(("actions", "probe-get")) == Position(302, 5)


def test_where_falls_back_to_the_nearest_known_ancestor() -> None:
    doc = parse_source("a:\n  b: 1\n", "s.yaml")
    assert doc.where(("a", "missing", 3)) == Position(2, 3)
    assert doc.where(("nothing",)) == Position(1, 1)
    assert doc.where(("a", "b"), key=True) == Position(2, 3)


def test_flow_collections_keep_their_source_text() -> None:
    doc = load_source(REFERENCE)
    path = ("workbook", "sections", "execution", "fields", 5, "description")
    assert doc.data["workbook"]["sections"]["execution"]["fields"][5]["description"] == [
        {"action": None, "result": None, "duration": None, "owner": None}
    ]
    assert doc.raw_text[path] == "[{action,result,duration,owner}]"


def test_raw_text_is_exact_after_multibyte_characters() -> None:
    doc = parse_source("a: 中文描述\nb: [x, {y: 1}]  # note\n", "s.yaml")
    assert doc.raw_text[("b",)] == "[x, {y: 1}]"
    assert doc.raw_text[("b", 1)] == "{y: 1}"


def test_diag_carries_file_position_path_and_rendered_value() -> None:
    doc = parse_source("a:\n  list: [1, 2]\n", "s.yaml")
    diag = doc.diag(("a", "list", 1), "bad", "no", value=2, expected="x", hint="h")
    assert diag == Diagnostic("bad", "no", "s.yaml", 2, 13, "a.list[1]", "2", "x", "error", "h")


def test_format_path_quotes_keys_that_are_not_plain_names() -> None:
    assert (
        format_path(("workflows", "w", "nodes", 0, "controls")) == "workflows.w.nodes[0].controls"
    )
    assert format_path(("match", "timeline.phase")) == "match['timeline.phase']"
    assert format_path(()) == ""


def test_iter_paths_matches_wildcards_over_keys_and_indexes() -> None:
    data = {"a": {"x": [{"t": 1}, {"u": 2}, {"t": 3}]}}
    assert list(iter_paths(data, ("a", "*", "*", "t"))) == [
        (("a", "x", 0, "t"), 1),
        (("a", "x", 2, "t"), 3),
    ]


def test_anchors_aliases_and_merge_keys_expand_with_positions() -> None:
    doc = parse_source("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nagain: *b\n", "s.yaml")
    assert doc.data == {
        "base": {"x": 1, "y": 2},
        "use": {"x": 1, "y": 3},
        "again": {"x": 1, "y": 2},
    }
    assert doc.where(("use", "y")) == Position(4, 6)
    assert doc.where(("again", "x")) == Position(1, 14)


def test_duplicate_key_is_an_error_at_the_second_key() -> None:
    diag = _one_error("a: 1\nb:\n  c: 1\n  c: 2\n")
    assert (diag.code, diag.line, diag.column, diag.path) == ("duplicate-key", 4, 3, "b.c")
    assert diag.message == "duplicate key 'c' (first defined at line 3, column 3)"


def test_non_string_keys_are_errors_with_a_quoting_hint() -> None:
    errors = _errors("200: ok\nyes: no\n")
    assert [(d.code, d.line, d.column) for d in errors] == [
        ("non-string-key", 1, 1),
        ("non-string-key", 2, 1),
    ]
    assert errors[0].message == "mapping key '200' is not text (YAML reads it as int)"
    assert errors[1].message == "mapping key 'yes' is not text (YAML reads it as bool)"
    assert errors[0].hint == 'quote it: "200": ...'


def test_several_yaml_level_errors_are_reported_together() -> None:
    errors = _errors("a: 1\na: 2\n3: x\n")
    assert [(d.code, d.line) for d in errors] == [("duplicate-key", 2), ("non-string-key", 3)]


def test_yaml_syntax_error_has_line_and_column() -> None:
    diag = _one_error("a:\n  b: [1, 2\nc: 3\n")
    assert (diag.code, diag.line, diag.column) == ("yaml-syntax", 3, 2)
    assert diag.message.startswith("did not find expected ',' or ']'")
    assert "while parsing a flow sequence at line 2, column 6" in diag.message


def test_mapping_value_in_wrong_place_is_a_syntax_error() -> None:
    diag = _one_error("a: b: c\n")
    assert (diag.code, diag.line, diag.column) == ("yaml-syntax", 1, 5)
    assert diag.message == "mapping values are not allowed in this context"


def test_control_character_is_located_by_character_not_byte() -> None:
    diag = _one_error("名前: x\x07\n")
    assert (diag.code, diag.line, diag.column) == ("yaml-syntax", 1, 6)
    assert diag.message == "character #x0007 is not allowed in YAML"


def test_alias_bomb_is_refused_as_too_large() -> None:
    lines = ['l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 8)]
    diag = _one_error("\n".join(lines) + "\n")
    assert diag.code == "yaml-too-large"
    assert "more than 1,000,000 nodes" in diag.message


def test_self_referencing_alias_is_refused() -> None:
    diag = _one_error("a: &x [1, *x]\n")
    assert (diag.code, diag.line, diag.column, diag.path) == ("yaml-recursive-alias", 1, 4, "a[1]")


# libyaml's loader (when PyYAML has it) and the pure-Python one must refuse the same depth.
LOADERS = [
    pytest.param(getattr(yaml, "CSafeLoader", None), id="libyaml"),
    pytest.param(yaml.SafeLoader, id="python"),
]


def _deep_error(text: str, loader: Any) -> Diagnostic:
    if loader is None:
        pytest.skip("PyYAML without libyaml")
    with pytest.raises(ScenarioError) as info:
        parse_source(text, "s.yaml", loader)
    (diag,) = info.value.diagnostics
    return diag


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        # libyaml refuses 1,000 levels itself, looking ahead through the brackets on a line
        # before it delivers level 65: the 65th level is still the one reported.
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", 1, 67),
        ("[" * 5000 + "]" * 5000, 1, 65),
        ("a: " + "{b: " * 3000 + "x" + "}" * 3000 + "\n", 1, 3 + 4 * 63 + 1),
        ("a:\n  b:\n    - " + "[" * 2000, 3, 7 + 61),
        ('a: [\'x[\', "]\\"[", ' + "[" * 2000, 1, 19 + 62),
        ("a: ['it''s', " + "[" * 2000, 1, 14 + 62),
        # block nesting: delivered level by level by either loader
        ("- " * 70 + "x\n", 1, 129),
        ("".join(f"{' ' * i}k{i}:\n" for i in range(70)) + " " * 70 + "v\n", 65, 65),
    ],
)
def test_deep_nesting_is_refused_at_level_65_with_either_loader(
    text: str, line: int, column: int, loader: Any
) -> None:
    diag = _deep_error(text, loader)
    assert (diag.code, diag.file, diag.line, diag.column) == (
        "yaml-too-deep",
        "s.yaml",
        line,
        column,
    )
    assert diag.message == "nesting deeper than 64 levels"


@pytest.mark.parametrize("loader", LOADERS)
def test_nesting_of_64_levels_loads_with_either_loader(loader: Any) -> None:
    if loader is None:
        pytest.skip("PyYAML without libyaml")
    doc = parse_source("[" * 64 + "]" * 64, "s.yaml", loader)
    depth, value = 0, doc.data
    while isinstance(value, list):
        depth, value = depth + 1, value[0] if value else None
    assert depth == 64
    quoted = parse_source("a: '" + "[" * 5000 + "'\n", "s.yaml", loader)
    assert quoted.data == {"a": "[" * 5000}


def test_deep_nesting_is_refused_before_composing() -> None:
    diag = _one_error("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert (diag.code, diag.line, diag.column) == ("yaml-too-deep", 1, 67)
    assert diag.message == "nesting deeper than 64 levels"


def test_unsupported_tags_are_errors() -> None:
    diag = _one_error("a: !python/object 1\n")
    assert (diag.code, diag.line, diag.column) == ("yaml-tag", 1, 4)
    assert diag.message == "unsupported YAML tag '!python/object'; write a plain value instead"


def test_several_documents_are_a_syntax_error() -> None:
    diag = _one_error("a: 1\n---\nb: 2\n")
    assert (diag.code, diag.line, diag.column) == ("yaml-syntax", 2, 1)
    assert diag.message.startswith("but found another document")


def test_empty_file_loads_as_null_data(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("# nothing\n", encoding="utf-8")
    assert load_source(path).data is None


def test_missing_file_is_a_clean_diagnostic(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_source(tmp_path / "absent.yaml", display_name="absent.yaml")
    (diag,) = info.value.diagnostics
    assert (diag.code, diag.file) == ("file-unreadable", "absent.yaml")
    assert diag.message == "cannot read scenario file: No such file or directory"


def test_directory_is_refused_as_a_scenario_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_source(tmp_path)
    assert info.value.diagnostics[0].message == "expected a scenario file, found a directory"


def test_non_utf8_file_reports_the_bad_byte_position(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"a: 1\nb: caf\xe9\n")
    with pytest.raises(ScenarioError) as info:
        load_source(path, display_name="s.yaml")
    (diag,) = info.value.diagnostics
    assert (diag.code, diag.line, diag.column) == ("not-utf8", 2, 7)
    assert diag.message == "file is not UTF-8 text (byte 0xe9 cannot be decoded)"


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"\xef\xbb\xbfa: [1]\n")
    doc = load_source(path)
    assert doc.data == {"a": [1]}
    assert doc.raw_text[("a",)] == "[1]"


def test_file_over_ten_mebibytes_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ScenarioError) as info:
        load_source(path, display_name="big.yaml")
    (diag,) = info.value.diagnostics
    assert diag.code == "file-too-large"
    assert diag.message == "scenario is 10,485,761 bytes; the limit is 10,485,760 bytes (10 MiB)"
