"""JSON Schema validation of a loaded scenario, reported as positioned, readable diagnostics."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from wbsrun.dsl._failed import Failed, element_of
from wbsrun.dsl.source import SourceDoc, did_you_mean, format_path
from wbsrun.dsl.units import UNIT_KINDS, UnitError
from wbsrun.errors import Diagnostic

__all__ = ["SCHEMA_ID", "check_schema", "load_schema", "validate_schema"]

SCHEMA_ID: Final = "https://wbsrun.dev/schema/v1.json"

_Path = tuple[str | int, ...]


@dataclass(frozen=True)
class _Ctx:
    doc: SourceDoc
    # (object path, key) pairs an unknown key was suggested for: a typo like 'nam' already
    # explains why 'name' is missing, so that second message is left out.
    renamed: frozenset[tuple[_Path, str]]


_Mapper = Callable[[_Ctx, ValidationError, _Path], list[Diagnostic]]
_JSON_TYPES: Final = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "null": "null",
}


def load_schema() -> dict[str, Any]:
    """The packaged scenario JSON Schema (a fresh copy each call)."""
    text = resources.files("wbsrun.dsl").joinpath("schema/v1.json").read_text(encoding="utf-8")
    return cast(dict[str, Any], json.loads(text))


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema())


def validate_schema(doc: SourceDoc) -> list[Diagnostic]:
    """Every schema violation in ``doc``, one clear diagnostic per place, sorted by position."""
    return check_schema(doc)[0]


def check_schema(doc: SourceDoc) -> tuple[list[Diagnostic], Failed]:
    """`validate_schema`, and the elements whose values the later checks cannot read."""
    errors = list(_validator().iter_errors(doc.data))
    ctx = _Ctx(doc, frozenset(_suggested_keys(errors)))
    found = [diag for error in errors for diag in _map_error(ctx, error)]
    unique = dict.fromkeys(found)
    ordered = sorted(unique, key=lambda d: (d.line, d.column, d.code, d.message))
    return ordered, Failed(e for error in errors for e in _failed_elements(error))


def _failed_elements(error: ValidationError) -> Iterator[_Path]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties":
        return  # an unknown key is reported and never read: its element is still sound
    if error.validator == "required" and not path:
        # A missing top-level section: only references into it are in doubt.
        present = error.instance if isinstance(error.instance, Mapping) else {}
        yield from ((k,) for k in cast(Sequence[str], error.validator_value) if k not in present)
        return
    if "propertyNames" in error.schema_path:
        path = (*path, str(error.instance))
    yield element_of(path)


def _suggested_keys(errors: Iterable[ValidationError]) -> Iterator[tuple[_Path, str]]:
    for error in errors:
        yield from _suggested_keys(error.context)
        if error.validator != "additionalProperties" or not isinstance(error.instance, Mapping):
            continue
        allowed = list(_schema(error).get("properties", {}))
        for key in _extra_keys(error):
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            if close and close[0] not in error.instance:
                yield tuple(error.absolute_path), close[0]


def _extra_keys(error: ValidationError) -> list[str]:
    schema = _schema(error)
    allowed = schema.get("properties", {})
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    instance = cast(Mapping[str, Any], error.instance)
    return [k for k in instance if k not in allowed and not any(p.search(k) for p in patterns)]


def _schema(error: ValidationError) -> Mapping[str, Any]:
    return error.schema if isinstance(error.schema, Mapping) else {}


def _describe(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    if isinstance(value, str):
        return f"the string '{value}'"
    return f"the number {value}"


def _expected_types(types: object) -> str:
    names = [types] if isinstance(types, str) else list(cast(Iterable[str], types))
    return " or ".join(_JSON_TYPES.get(n, n) for n in names)


def _map_error(ctx: _Ctx, error: ValidationError) -> list[Diagnostic]:
    path = tuple(error.absolute_path)
    schema = _schema(error)
    if "propertyNames" in error.schema_path:
        return _bad_name(ctx, error, path)
    unit = schema.get("x-unit")
    if unit in UNIT_KINDS and error.validator in {"pattern", "minimum", "exclusiveMinimum"}:
        return _bad_unit(ctx, error, path, str(unit))
    mapper = _MAPPERS.get(str(error.validator), _generic)
    return mapper(ctx, error, path)


def _unknown_keys(ctx: _Ctx, error: ValidationError, path: _Path) -> list[Diagnostic]:
    allowed = sorted(_schema(error).get("properties", {}))
    where = f" in {format_path(path)}" if path else " at the top level"
    return [
        ctx.doc.diag(
            (*path, key),
            "unknown-key",
            f"unknown key '{key}'{where}",
            expected="one of: " + ", ".join(allowed),
            hint=did_you_mean(key, allowed),
            key=True,
        )
        for key in _extra_keys(error)
    ]


def _missing_keys(ctx: _Ctx, error: ValidationError, path: _Path) -> list[Diagnostic]:
    instance = error.instance
    required = cast(Sequence[str], error.validator_value)
    missing = [
        k
        for k in required
        if (not isinstance(instance, Mapping) or k not in instance) and (path, k) not in ctx.renamed
    ]
    where = f" in {format_path(path)}" if path else " at the top level"
    return [
        ctx.doc.diag(
            path,
            "missing-key",
            f"missing required key '{k}'{where}",
            expected=k,
            key=True,
            hint=_NODE_TYPE_HINT if k == "type" and path[-2:-1] == ("nodes",) else None,
        )
        for k in missing
    ]


# A graph node needs a type, unless its `action:` says it is an action node.
_NODE_TYPE_HINT = (
    "give the node a type (action, parallel, checkpoint, terminus), "
    "or an action: for an action node"
)


def _wrong_type(ctx: _Ctx, error: ValidationError, path: _Path) -> list[Diagnostic]:
    expected = _expected_types(error.validator_value)
    message = f"wrong type: expected {expected}, found {_describe(error.instance)}"
    return [
        ctx.doc.diag(
            path,
            "wrong-type",
            message,
            value=error.instance,
            expected=expected,
            hint=_type_hint(error),
        )
    ]


def _type_hint(error: ValidationError) -> str | None:
    """Numbers where text is wanted: say to quote them, unless quoting alone would not do."""
    wants_text = "string" in _type_list(error)
    if (
        not wants_text
        or isinstance(error.instance, bool)
        or not isinstance(error.instance, int | float)
    ):
        return None
    schema = _schema(error)
    pattern = schema.get("pattern")
    if pattern is not None and not re.search(pattern, str(error.instance)):
        return cast(str | None, schema.get("patternErrorMessage"))
    return f'quote the value to keep it as text: "{error.instance}"'


def _bad_enum(ctx: _Ctx, error: ValidationError, path: _Path) -> list[Diagnostic]:
    raw = error.validator_value
    allowed = [raw] if error.validator == "const" else list(cast(Iterable[Any], raw))
    shown = ", ".join(str(a) for a in allowed)
    value = error.instance
    hint = did_you_mean(value, [str(a) for a in allowed]) if isinstance(value, str) else None
    message = f"bad value '{value}': expected one of {shown}"
    return [ctx.doc.diag(path, "bad-value", message, value=value, expected=shown, hint=hint)]


def _bad_pattern(ctx: _Ctx, error: ValidationError, path: _Path) -> list[Diagnostic]:
    schema = _schema(error)
    explain = schema.get("patternErrorMessage") or f"expected text matching {schema.get('pattern')}"
    message = f"bad value '{error.instance}': {explain}"
    return [ctx.doc.diag(path, "bad-value", message, value=error.instance)]


def _bad_name(ctx: _Ctx, error: ValidationError, path: _Path) -> list[Diagnostic]:
    name = str(error.instance)
    explain = _schema(error).get("patternErrorMessage") or "this name is not allowed"
    message = f"bad name '{name}': {explain}"
    return [ctx.doc.diag((*path, name), "bad-name", message, value=name, key=True)]


def _bad_unit(ctx: _Ctx, error: ValidationError, path: _Path, unit: str) -> list[Diagnostic]:
    code, expected, parse = UNIT_KINDS[unit]
    try:
        parse(error.instance)
    except UnitError as exc:
        message = str(exc)
    else:  # the schema and units.py disagree; still say what was expected
        message = f"invalid {unit} '{error.instance}': expected {expected}"
    return [ctx.doc.diag(path, code, message, value=error.instance, expected=expected)]


def _branches(error: ValidationError) -> dict[object, list[ValidationError]]:
    groups: dict[object, list[ValidationError]] = {}
    for sub in error.context:
        branch = sub.relative_schema_path[0] if sub.relative_schema_path else None
        groups.setdefault(branch, []).append(sub)
    return groups


def _alternatives(ctx: _Ctx, error: ValidationError, path: _Path) -> list[Diagnostic]:
    """One message for anyOf/oneOf: the schema's own words, the branch that fits, or the types."""
    schema = _schema(error)
    if "errorMessage" in schema:
        if any(where == path for where, _ in ctx.renamed):
            return []  # a misspelt key here ('gotto') already says what is wrong
        code = str(schema.get("x-code", "bad-value"))
        return [ctx.doc.diag(path, code, str(schema["errorMessage"]))]
    # A branch whose type does not even match the value is not what the user meant.
    viable = [
        subs
        for subs in _branches(error).values()
        if not any(s.validator == "type" and not s.relative_path for s in subs)
    ]
    if len(viable) == 1:
        return [d for sub in viable[0] for d in _map_error(ctx, sub)]
    if not viable:
        types = [t for s in error.context if s.validator == "type" for t in _type_list(s)]
        expected = _expected_types(list(dict.fromkeys(types)))
        message = f"wrong type: expected {expected}, found {_describe(error.instance)}"
        return [ctx.doc.diag(path, "wrong-type", message, value=error.instance, expected=expected)]
    best = best_match(error.context)
    return _map_error(ctx, best) if best is not None else _generic(ctx, error, path)


def _type_list(error: ValidationError) -> list[str]:
    value = error.validator_value
    return [value] if isinstance(value, str) else list(cast(Iterable[str], value))


def _generic(ctx: _Ctx, error: ValidationError, path: _Path) -> list[Diagnostic]:
    explain = _LIMITS.get(str(error.validator))
    value = error.instance
    if explain is None:
        message = error.message
    else:
        message = f"bad value {json.dumps(value, ensure_ascii=False, default=str)[:80]}: "
        message += explain.format(error.validator_value)
    return [ctx.doc.diag(path, "bad-value", message, value=value)]


_LIMITS: Final = {
    "minimum": "must be at least {}",
    "maximum": "must be at most {}",
    "exclusiveMinimum": "must be greater than {}",
    "exclusiveMaximum": "must be less than {}",
    "minItems": "needs at least {} item(s)",
    "maxItems": "takes at most {} item(s)",
    "minLength": "must be at least {} character(s) long",
    "minProperties": "needs at least {} key(s)",
    "uniqueItems": "items must be unique",
}
_MAPPERS: Final[Mapping[str, _Mapper]] = {
    "additionalProperties": _unknown_keys,
    "required": _missing_keys,
    "type": _wrong_type,
    "enum": _bad_enum,
    "const": _bad_enum,
    "pattern": _bad_pattern,
    "anyOf": _alternatives,
    "oneOf": _alternatives,
}
