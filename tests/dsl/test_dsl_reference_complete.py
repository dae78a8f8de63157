"""docs/dsl.md is the complete reference of the language: every key the JSON Schema accepts is
named there, and its complete example bundles validate with the real loader."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from wbsrun.dsl.loader import load_plan
from wbsrun.errors import ScenarioError
from wbsrun.protocols.registry import provides

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "dsl.md"
SCHEMA = ROOT / "src" / "wbsrun" / "dsl" / "schema" / "v1.json"

# A fenced block: its info string and its text.
_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_INLINE = re.compile(r"`([^`\n]+)`")
_BUNDLE = re.compile(r"\A# bundle: ([A-Za-z0-9_-]+)[ \t]*\n")
# `<!-- file PATH of bundle NAME -->` just before a fence: the fence's text is that file.
_EXTRA = re.compile(
    r"<!-- file (\S+) of bundle ([A-Za-z0-9_-]+) -->\n```[^\n`]*\n(.*?)^```", re.M | re.S
)


def _schema_names(node: Any, defs: Mapping[str, Any], seen: set[str]) -> Iterator[str]:
    """Every property name of the schema, following $ref into $defs (each def once) through
    properties, patternProperties, additionalProperties, items and the allOf / anyOf / oneOf /
    if / then / else arms."""
    if isinstance(node, list):
        for item in node:
            yield from _schema_names(item, defs, seen)
        return
    if not isinstance(node, Mapping):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name not in seen:
            seen.add(name)
            yield from _schema_names(defs[name], defs, seen)
    for key, sub in node.get("properties", {}).items():
        yield key
        yield from _schema_names(sub, defs, seen)
    # Pattern-named properties have no fixed name of their own; what they hold does.
    for sub in node.get("patternProperties", {}).values():
        yield from _schema_names(sub, defs, seen)
    for key in ("additionalProperties", "items", "allOf", "anyOf", "oneOf", "if", "then", "else"):
        yield from _schema_names(node.get(key), defs, seen)


def _inline_code(text: str) -> set[str]:
    """The inline code spans of the page outside its fenced blocks."""
    return set(_INLINE.findall(_FENCE.sub("", text)))


def _bundles(text: str) -> dict[str, dict[str, str]]:
    """The complete examples: ```yaml blocks opening with `# bundle: NAME` (its script.yaml),
    and the files marked as theirs (`<!-- file PATH of bundle NAME -->`)."""
    found: dict[str, dict[str, str]] = {}
    for info, body in _FENCE.findall(text):
        marker = _BUNDLE.match(body)
        if info.strip() == "yaml" and marker is not None:
            assert marker.group(1) not in found, f"bundle {marker.group(1)!r} given twice"
            found[marker.group(1)] = {"script.yaml": body}
    for path, name, body in _EXTRA.findall(text):
        assert name in found, f"file {path} of an unknown bundle {name!r}"
        found[name][path] = body
    return found


DOC_TEXT = DOC.read_text(encoding="utf-8")
BUNDLES = _bundles(DOC_TEXT)


def test_every_key_of_the_json_schema_is_named_in_dsl_md() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    names = set(_schema_names(schema, schema["$defs"], set()))
    assert len(names) > 150  # the walk reached the whole schema, not only the top level
    code = _inline_code(DOC_TEXT)
    missing = sorted(
        n for n in names if n not in code and not any(c.startswith(f"{n}:") for c in code)
    )
    assert missing == [], f"keys of v1.json that docs/dsl.md never names: {missing}"


def test_dsl_md_has_a_minimal_bundle_and_at_least_three_more_complete_examples() -> None:
    assert "minimal" in BUNDLES
    assert len(BUNDLES) >= 4, sorted(BUNDLES)


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_each_complete_example_of_dsl_md_validates_with_the_loader(
    name: str, tmp_path: Path
) -> None:
    for path, body in BUNDLES[name].items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")
    try:
        plan = load_plan(tmp_path, provides())
    except ScenarioError as exc:
        found = "\n".join(d.format() for d in exc.diagnostics)
        pytest.fail(f"bundle {name!r} of docs/dsl.md is invalid:\n{found}")
    assert plan.warnings == (), [w.format() for w in plan.warnings]


@pytest.mark.parametrize("value", ["0", "0s", "0ms"])
def test_a_zero_flush_interval_is_refused_at_validation_not_at_the_start_of_the_run(
    value: str, tmp_path: Path
) -> None:
    # The schema lets a duration be 0; the progress bus cannot flush every 0 s (dsl.md
    # "progress:" says the interval is above zero), so the loader refuses it, at its place.
    (tmp_path / "script.yaml").write_text(
        f"progress:\n  batching:\n    flush-interval: {value}\n"
        "actions:\n  a: {component: http, call: get, with: {url: 'http://127.0.0.1:9/'}}\n"
        "workflows:\n  w: {steps: [{ref: a}]}\n"
        "load:\n  scenarios: [{name: s, workflow: w}]\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError) as caught:
        load_plan(tmp_path, provides())
    found = [(d.code, d.line, d.path) for d in caught.value.diagnostics]
    assert found == [("bad-flush-interval", 3, "progress.batching.flush-interval")]


@pytest.mark.parametrize("key", ["interval", "timeout"])
def test_a_zero_health_check_interval_or_timeout_is_refused_where_it_is_written(
    key: str, tmp_path: Path
) -> None:
    # It used to read as the default (30 s / 5 s) without a word.
    for path, body in BUNDLES["pool"].items():
        if path == "script.yaml":
            body = body.replace(f"      {key}: ", f"      {key}: 0s  # was ", 1)
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_plan(tmp_path, provides())
    (found,) = caught.value.diagnostics
    assert (found.code, found.path) == ("bad-duration", f"resources.backends.health-check.{key}")
    assert found.value == "'0s'"
    assert "longer than zero" in found.message
