"""Compiled plans in tests: a structural plan comparison that needs no `__eq__` of the
compiled parts, and a hypothesis strategy of scenario bundles that cover what a plan holds."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from scenario_kit import WORKBOOK, act, edge, end, graph, http, log
from wbsrun.dsl.expr import Expr
from wbsrun.dsl.template import CompiledValue, Template

__all__ = ["differences", "scenario_bundles", "write_generated"]


def differences(a: Any, b: Any, where: str = "plan") -> list[str]:
    """Where `a` and `b` differ: types exactly (a tuple is not a list, a MappingProxy not a
    dict), every dataclass field, compiled parts by their text, patterns by text and flags."""
    if type(a) is not type(b):
        return [f"{where}: {type(a).__name__} != {type(b).__name__}"]
    if isinstance(a, Template):
        kind = (a.source, a.names, a.is_constant, a.is_single)
        if kind != (b.source, b.names, b.is_constant, b.is_single):
            return [f"{where}: {a.source!r} != {b.source!r} (or its names, its kind)"]
        return []
    if isinstance(a, Expr):
        alike = (a.text, a.names, a.roots, a.is_constant) == (
            b.text,
            b.names,
            b.roots,
            b.is_constant,
        )
        return [] if alike else [f"{where}: {a.text!r} != {b.text!r} (or its names)"]
    if isinstance(a, CompiledValue):
        alike = (a.names, a.is_constant) == (b.names, b.is_constant)
        return differences(a.value, b.value, f"{where}.value") + ([] if alike else [where])
    if isinstance(a, re.Pattern):
        same = (a.pattern, a.flags) == (b.pattern, b.flags)
        return [] if same else [f"{where}: {a!r} != {b!r}"]
    if dataclasses.is_dataclass(a):
        out: list[str] = []
        for f in dataclasses.fields(a):
            out += differences(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
        return out
    if isinstance(a, Mapping):
        if list(a) != list(b):
            return [f"{where}: keys {list(a)} != {list(b)}"]
        return [d for k in a for d in differences(a[k], b[k], f"{where}[{k!r}]")]
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items != {len(b)}"]
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and a != a:
        return [] if b != b else [f"{where}: nan != {b!r}"]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


# -- generated bundles ----------------------------------------------------------------------

_names = st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, width=64),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12),
)
_data = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_names, inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def _load(draw: st.DrawFn, name: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "workflow": "wf",
        "user": {"inherit": ["pool"], "context": draw(st.dictionaries(_names, _data, max_size=3))},
        "exits": {"error": "error_out", "timeout": "timeout_out"},
    }
    kind = draw(st.sampled_from(["iterations", "duration", "stages", "arrival"]))
    if kind == "iterations":
        body.update({"user-count": draw(st.integers(1, 5)), "iterations": draw(st.integers(1, 9))})
    elif kind == "duration":
        body.update({"user-count": draw(st.integers(1, 5)), "task-duration": "2s"})
    else:
        body["profile"] = kind  # load.profiles (scenario_bundles)
    if draw(st.booleans()):
        body["think-time"] = draw(st.sampled_from(["100ms", "1s"]))
    if draw(st.booleans()):
        body["start-after"] = "1s"
    return body


def _profiles(draw: st.DrawFn) -> dict[str, Any]:
    target = draw(st.integers(1, 4))
    return {
        "stages": {"type": "stages", "stages": [{"duration": "1s", "target": target}]},
        "arrival": {
            "type": "constant-arrival-rate",
            "rate": draw(st.integers(1, 20)),
            "duration": "1s",
            "pre-allocated-users": 2,
            "max-users": 4,
        },
    }


@st.composite
def scenario_bundles(draw: st.DrawFn) -> dict[str, Any]:
    """A valid scenario document: one to three load scenarios of varied kinds, actions
    with templates, conditions and checks, globals of any YAML data, thresholds."""
    names = draw(st.lists(_names, min_size=1, max_size=3, unique=True))
    message = draw(st.sampled_from(["done {{ workbook.user_id }}", "plain", "{{ 1 + 2 }}"]))
    actions = {
        "fetch": {**http("get"), "checks": [{"status": 200}]},
        "note": log("info", message),
    }
    if draw(st.booleans()):
        actions["fetch"]["capture"] = [{"name": "size", "json": "$.size", "default": 0}]
    condition = draw(st.sampled_from(["always", "{{ workbook.user_id != '' }}"]))
    workflow = graph(
        act("first", "fetch", edge("second", condition), edge("done", "otherwise")),
        act("second", "note", edge("done")),
        end(),
    )
    doc: dict[str, Any] = {
        "version": draw(st.sampled_from(["1.0", "2.3"])),
        "name": draw(_names),
        "components": [
            {"name": "http", "version": "1.0.0", "kind": "native", "capabilities": ["get"]},
            {"name": "logger", "version": "1.0.0", "kind": "native", "capabilities": ["info"]},
        ],
        "globals": draw(st.dictionaries(_names, _data, max_size=3)),
        "resources": {
            "pool": {
                "type": "pair_pool",
                "config": {"manifest": "./resource.yaml", "parser": {"format": "csv"}},
                "capacity": {"size": 100},
            }
        },
        "workbook": WORKBOOK,
        "actions": actions,
        "workflows": {"wf": workflow},
        "load": {"scenarios": [draw(_load(n)) for n in names], "profiles": _profiles(draw)},
        "monitoring": {
            "error_out": {"actions": [{"action": "logger.info", "with": {"message": "e"}}]},
            "timeout_out": {"actions": [{"action": "logger.info", "with": {"message": "t"}}]},
        },
    }
    rules = [f"scenarios.{n}.progress.work > 0.{draw(st.integers(1, 9))}" for n in names]
    if draw(st.booleans()):
        doc["thresholds"] = [*rules, "http.latency_ms.p95 < 500ms"]
    return doc


def write_generated(directory: Path, doc: Mapping[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "resource.yaml").write_text("ip,port\n127.0.0.1,9\n", encoding="utf-8")
    (directory / "script.yaml").write_text(yaml.safe_dump(dict(doc), sort_keys=False), "utf-8")
    return directory
