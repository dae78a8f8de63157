"""Plan objects <-> a tree of msgpack values, generic over dataclass fields.

Every plan record (a frozen dataclass of `dsl/plan.py`, `checks.py`, `thresholds.py`,
`errors.py`) is written as `[RECORD, type index, field values…]` in the order of
`dataclasses.fields`; the type table (name and field names of every record type used) goes
in the file's header, and reading refuses a table that does not match the classes of this
wbsrun (a field added, removed or reordered: the file is stale). A new field of a plan class
is therefore stored without touching this module.

Values that are not msgpack's own are tagged arrays, so that a plan read back is made of
the very types it was built with: tuples stay tuples, frozen mappings stay MappingProxy,
frozensets, paths, compiled templates, expressions and patterns come back as such (the
compiled ones compiled again from their text: closures cannot be stored).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from wbsrun import errors
from wbsrun.dsl import checks, plan, thresholds
from wbsrun.dsl.expr import Expr
from wbsrun.dsl.template import (
    CompiledValue,
    Template,
    stored_expr,
    stored_template,
    stored_value,
)

__all__ = ["RECORD_TYPES", "CodecError", "Decoder", "Encoder", "type_name"]

# Tags: the first item of an array that stands for a value msgpack has no type for.
LIST: Final = 0
TUPLE: Final = 1
DICT: Final = 2
PROXY: Final = 3
FROZENSET: Final = 4
SET: Final = 5
PATH: Final = 6
TEMPLATE: Final = 7
EXPR: Final = 8
VALUE: Final = 9
REGEX: Final = 10
RECORD: Final = 11
BIGINT: Final = 12

_INT64 = (-(1 << 63), (1 << 64) - 1)


class CodecError(ValueError):
    """A value a plan file cannot hold, or a tree that is not a plan file's."""


def type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _record_types() -> dict[str, type]:
    """Every dataclass of the modules plan objects are made of: what a file may name."""
    found: dict[str, type] = {}
    for module in (plan, checks, thresholds, errors):
        for obj in vars(module).values():
            is_record = isinstance(obj, type) and dataclasses.is_dataclass(obj)
            if is_record and obj.__module__ == module.__name__:
                found[type_name(obj)] = obj
    return found


RECORD_TYPES: Final[dict[str, type]] = _record_types()


class Encoder:
    """Turns plan objects into msgpack-ready trees; collects the record types and paths."""

    def __init__(self) -> None:
        self.types: list[tuple[str, tuple[str, ...]]] = []
        self._index: dict[type, int] = {}
        self.paths: set[Path] = set()

    def encode(self, value: Any) -> Any:
        kind = type(value)
        if kind is str or kind is float or kind is bool or value is None or kind is bytes:
            return value
        if kind is int:
            return value if _INT64[0] <= value <= _INT64[1] else [BIGINT, str(value)]
        handler = _ENCODERS.get(kind)
        if handler is not None:
            return handler(self, value)
        if isinstance(value, Path):
            self.paths.add(value)
            return [PATH, str(value)]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self._record(value)
        raise CodecError(f"a plan file cannot hold a {kind.__name__}: {value!r:.80}")

    def _record(self, value: Any) -> list[Any]:
        cls = type(value)
        index = self._index.get(cls)
        if index is None:
            name = type_name(cls)
            if RECORD_TYPES.get(name) is not cls:
                raise CodecError(f"{name} is not a plan record type")
            index = len(self.types)
            self._index[cls] = index
            self.types.append((name, tuple(f.name for f in dataclasses.fields(cls))))
        names = self.types[index][1]
        return [RECORD, index, *(self.encode(getattr(value, n)) for n in names)]

    def _items(self, tag: int, value: Any) -> list[Any]:
        out: list[Any] = [tag]
        for key, item in value.items():
            out.append(self.encode(key))
            out.append(self.encode(item))
        return out


_Enc = Callable[[Encoder, Any], Any]
_ENCODERS: Final[dict[type, _Enc]] = {
    list: lambda e, v: [LIST, *(e.encode(x) for x in v)],
    tuple: lambda e, v: [TUPLE, *(e.encode(x) for x in v)],
    dict: lambda e, v: e._items(DICT, v),
    MappingProxyType: lambda e, v: e._items(PROXY, v),
    # Sorted by their encoding's text, so that one plan always makes the same bytes.
    frozenset: lambda e, v: [FROZENSET, *sorted((e.encode(x) for x in v), key=repr)],
    set: lambda e, v: [SET, *sorted((e.encode(x) for x in v), key=repr)],
    # Templates and compiled values keep the names they read (what the run's data sources
    # and checks are sized by), so they can be compiled on first use (template.py).
    Template: lambda e, v: [TEMPLATE, v.source, e.encode(v.names)],
    # With its shape (`path OP literal`, or None): the executor's condition machine
    # (core/guards.py) is built from shapes before any expression is compiled.
    Expr: lambda e, v: [EXPR, v.text, e.encode(v.names), e.encode(v.shape)],
    CompiledValue: lambda e, v: [VALUE, e.encode(v.value), e.encode(v.names), v.is_constant],
    re.Pattern: lambda e, v: [REGEX, v.pattern, v.flags],
}


class Decoder:
    """Turns trees back into plan objects, with the record types of a file's header."""

    def __init__(self, table: Any) -> None:
        self.classes: list[type] = []
        self.arity: list[int] = []
        if not isinstance(table, list):
            raise CodecError("the type table is not a list")
        for entry in table:
            name, names = entry[0], tuple(entry[1])
            cls = RECORD_TYPES.get(name)
            if cls is None:
                raise CodecError(f"record type {name} is unknown to this wbsrun")
            current = tuple(f.name for f in dataclasses.fields(cls))
            if current != names:
                raise CodecError(
                    f"record type {name} has fields {', '.join(current)} in this wbsrun, "
                    f"the file {', '.join(names)}"
                )
            self.classes.append(cls)
            self.arity.append(len(names))

    def decode(self, tree: Any) -> Any:
        if type(tree) is not list:
            return tree
        tag = tree[0]
        if tag == RECORD:
            index = tree[1]
            if len(tree) - 2 != self.arity[index]:
                raise CodecError(f"a {type_name(self.classes[index])} with a wrong field count")
            # Scalars inline: most fields are, and a call each would double the time.
            return self.classes[index](
                *[self.decode(x) if type(x) is list else x for x in tree[2:]]
            )
        if tag == TUPLE:
            return tuple([self.decode(x) if type(x) is list else x for x in tree[1:]])
        if tag in (PROXY, DICT):
            it = iter(tree[1:])
            built = {
                k if type(k) is str else self.decode(k): self.decode(v) if type(v) is list else v
                for k, v in zip(it, it, strict=True)
            }
            return MappingProxyType(built) if tag == PROXY else built
        if tag == LIST:
            return [self.decode(x) if type(x) is list else x for x in tree[1:]]
        return self._other(tag, tree)

    def _other(self, tag: int, tree: list[Any]) -> Any:
        if tag == TEMPLATE:
            return stored_template(tree[1], self.decode(tree[2]))
        if tag == EXPR:
            shape = self.decode(tree[3]) if len(tree) > 3 else None
            return stored_expr(tree[1], self.decode(tree[2]), shape)
        if tag == VALUE:
            return stored_value(self.decode(tree[1]), self.decode(tree[2]), tree[3])
        if tag == PATH:
            return Path(tree[1])
        if tag == FROZENSET:
            return frozenset([self.decode(x) for x in tree[1:]])
        if tag == SET:
            return {self.decode(x) for x in tree[1:]}
        if tag == REGEX:
            return re.compile(tree[1], tree[2])
        if tag == BIGINT:
            return int(tree[1])
        raise CodecError(f"unknown tag {tag!r}")
