"""The compiled plan (dsl/binary): YAML and the compiled file give the same plan, for
generated bundles and for every field of every plan record type; a selection of scenarios
read from the file equals the same selection of the YAML plan."""

from __future__ import annotations

import ast
import dataclasses
import re
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binary_kit import differences, scenario_bundles, write_generated
from property_kit import examples
from wbsrun.dsl.binary import RECORD_TYPES, read_plan, write_plan
from wbsrun.dsl.binary.codec import Decoder, Encoder
from wbsrun.dsl.bundle import locate_bundle
from wbsrun.dsl.expr import Expr, ExprEvalError, compile_expr
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import Plan
from wbsrun.dsl.select import select_scenarios
from wbsrun.dsl.template import (
    CompiledValue,
    Template,
    compile_template,
    compile_value,
    stored_expr,
    stored_template,
    stored_value,
)
from wbsrun.errors import BundleError
from wbsrun.protocols.registry import provides

_SHARED = Path(__file__).resolve().parents[3] / "shared" / "reference"
# The canonical bundle from ../shared (CI clones the repo beside it), else its copy in the
# package (the same scenario).
REFERENCE = (
    _SHARED
    if (_SHARED / "http_scenario.yaml").is_file()
    else Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "examples" / "http_tri_phase"
)
PROVIDES = provides()


def _compiled(bundle: Path) -> tuple[Plan, bytes]:
    plan = load_plan(bundle, PROVIDES)
    return plan, write_plan(plan, locate_bundle(bundle), PROVIDES)


@settings(max_examples=examples(40))
@given(doc=scenario_bundles(), data=st.data())
def test_yaml_and_compiled_plans_are_equal_for_generated_bundles(
    tmp_path_factory: pytest.TempPathFactory, doc: dict[str, Any], data: st.DataObject
) -> None:
    bundle = write_generated(tmp_path_factory.mktemp("gen"), doc)
    plan, blob = _compiled(bundle)
    assert differences(plan, read_plan(blob, "t.wbsc", PROVIDES).plan) == []
    names = [s.name for s in plan.scenarios]
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    from_file = read_plan(blob, "t.wbsc", PROVIDES, chosen).plan
    assert [s.name for s in from_file.scenarios] == [n for n in names if n in chosen]
    assert differences(select_scenarios(plan, chosen), from_file) == []


@pytest.mark.parametrize(
    "source",
    ["plain", "{{ a.b }}", "x {{ a.b + 1 }} y {{ c }}", "{{ a }}{{ b }}", "}} {{ '}}' }}", ""],
)
def test_a_stored_template_renders_as_the_compiled_one_and_compiles_once(source: str) -> None:
    compiled = compile_template(source)
    stored = stored_template(source, compiled.names)
    assert (stored.is_constant, stored.is_single) == (compiled.is_constant, compiled.is_single)
    scope = {"a": {"b": 2}, "b": "x", "c": [1]}
    for _ in range(2):
        assert stored.render(scope) == compiled.render(scope)
        assert stored.render_text(scope) == compiled.render_text(scope)
    assert stored.expressions == compiled.expressions  # filled by the first render
    value = {"k": [source, 1], "n": None}
    again = stored_value(value, compile_value(value).names, compile_value(value).is_constant)
    assert again.render(scope) == again.render(scope) == compile_value(value).render(scope)


@pytest.mark.parametrize("text", ["a.b == 1", "1 + 2", "len(x) > 'a'", "x / 0", "c[0].d"])
def test_a_stored_expression_evaluates_and_fails_as_the_compiled_one(text: str) -> None:
    compiled = compile_expr(text)
    stored = stored_expr(text, compiled.names)
    assert (stored.names, stored.roots, stored.is_constant) == (
        compiled.names,
        compiled.roots,
        compiled.is_constant,
    )
    for scope in ({"a": {"b": 1}, "x": 2, "c": [{"d": 5}]}, {}, {"x": "s", "c": []}):
        for _ in range(2):
            try:
                want: object = compiled.evaluate(scope)
            except ExprEvalError as exc:
                with pytest.raises(ExprEvalError, match=re.escape(exc.message)):
                    stored.evaluate(scope)
            else:
                assert stored.evaluate(scope) == want


def test_the_reference_bundle_compiles_to_the_same_bytes_and_plan() -> None:
    plan, blob = _compiled(REFERENCE)
    assert _compiled(REFERENCE)[1] == blob
    back = read_plan(blob, "ref.wbsc", PROVIDES).plan
    assert differences(plan, back) == []
    assert back.warnings
    assert back.warnings == plan.warnings


# -- every field of every record type ----------------------------------------------------------


def _sample(hint: Any, name: str, depth: int = 0) -> Any:
    """A value of type `hint` that no field has as its default (a record nested in itself,
    as the WBS is, two levels deep)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return types.MappingProxyType({"k": (1, f"v-{name}", None, 2.5, [True])})
    if origin in (typing.Union, types.UnionType):
        return _sample(next(a for a in args if a is not type(None)), name)
    if origin is typing.Literal:
        return args[-1]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return (_sample(args[0], name, depth + 1),) if depth < 3 else ()
        return tuple(_sample(a, name) for a in args)
    if origin in (Mapping, dict, typing.Mapping) or hint is Mapping:
        return types.MappingProxyType({_sample(args[0], name): _sample(args[1], name)})
    if origin is frozenset:
        return frozenset({_sample(args[0], name)})
    if origin is re.Pattern or hint is re.Pattern:
        return re.compile(f"a+{name}", re.IGNORECASE)
    simple: dict[Any, Any] = {
        str: f"s-{name}",
        int: 1 << 70 if name == "capacity" else 7,
        float: 1.25,
        bool: True,
        Path: Path(f"/bundle/{name}"),
        Template: compile_template(f"x {{{{ a.{name} }}}}"),
        Expr: compile_expr(f"a.{name} == 1"),
        CompiledValue: compile_value({"k": ["{{ b }}", 1, (2,)], 3: None}),
    }
    if hint in simple:
        return simple[hint]
    if dataclasses.is_dataclass(hint):
        return _instance(hint, depth + 1)
    raise AssertionError(f"the test cannot make a {hint!r} for field {name}: extend _sample")


def _hints(cls: Any) -> dict[str, Any]:
    """The field types of a record as its source declares them: the compiled (mypyc) build
    keeps no usable annotations, so they are read from the module's .py, beside its .so."""
    module = sys.modules[cls.__module__]
    source = Path(module.__file__ or "").with_name(cls.__module__.rsplit(".", 1)[-1] + ".py")
    tree = ast.parse(source.read_text(encoding="utf-8"))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    return {
        node.target.id: eval(ast.unparse(node.annotation), vars(module))
        for node in body.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }


def _unlike(hint: Any, default: Any) -> Any:
    """A value of `hint` other than `default` (a flag's other state, another literal)."""
    if typing.get_origin(hint) is typing.Literal:
        return next(a for a in typing.get_args(hint) if a != default)
    if isinstance(default, bool):
        return not default
    return default + default


def _instance(cls: Any, depth: int = 0) -> Any:
    hints = _hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        value = _sample(hints[f.name], f.name, depth)
        if f.default is not dataclasses.MISSING and value == f.default:
            value = _unlike(hints[f.name], f.default)
        values[f.name] = value
    return cls(**values)


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
def test_every_field_of_every_plan_record_round_trips(name: str) -> None:
    """A field added to any plan record type is written and read back, whatever its type:
    every field holds a value unlike its default, and must come back equal and typed."""
    cls = RECORD_TYPES[name]
    value = _instance(cls)
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            assert getattr(value, f.name) != f.default, f.name
    encoder = Encoder()
    tree = encoder.encode(value)
    back = Decoder([[n, list(fs)] for n, fs in encoder.types]).decode(tree)
    assert differences(value, back, name) == []


def _reachable(cls: Any, seen: set[Any]) -> None:
    if cls in seen or not dataclasses.is_dataclass(cls):
        return
    seen.add(cls)
    for hint in _hints(cls).values():
        stack = [hint]
        while stack:
            h = stack.pop()
            stack.extend(typing.get_args(h))
            _reachable(h, seen)


def test_every_record_type_a_plan_holds_is_one_the_file_may_name() -> None:
    seen: set[Any] = set()
    _reachable(Plan, seen)
    assert {f"{c.__module__}.{c.__qualname__}" for c in seen} <= set(RECORD_TYPES)


def test_a_file_whose_record_fields_differ_from_this_wbsrun_is_refused() -> None:
    encoder = Encoder()
    encoder.encode(_instance(RECORD_TYPES["wbsrun.dsl.plan.Milestone"]))
    table = [[n, [*fs, "added"]] for n, fs in encoder.types]
    with pytest.raises(ValueError, match="has fields name, node, edge, weight in this wbsrun"):
        Decoder(table)


def test_an_unknown_scenario_is_refused_naming_the_known_ones() -> None:
    _, blob = _compiled(REFERENCE)
    with pytest.raises(BundleError, match="no such scenario; the bundle has: http-bulk"):
        read_plan(blob, "ref.wbsc", PROVIDES, ["nope"])
