"""`think-time` distributions and `pacing` of a scenario: read and checked here, drawn by
core/pacing.py.

Forms of `think-time` (the pause after each pass of a user, but the last):
  2s | 0.5                                  fixed (a duration, as before)
  "uniform(1s, 3s)"                         uniform between min and max (inclusive)
  "exponential(2s)"                         exponential with that mean: Poisson passes per user
  {distribution: fixed, value: 2s}          the mapping forms of the three
  {distribution: uniform, min: 1s, max: 3s}
  {distribution: exponential, mean: 2s}
`pacing: D` starts a user's passes D apart (waiting only what the pass left of D)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from wbsrun.dsl.plan import ThinkKind, ThinkSpec
from wbsrun.dsl.units import UnitError, parse_duration

__all__ = ["DISTRIBUTIONS", "THINK_EXPECTED", "ThinkError", "parse_think"]

DISTRIBUTIONS: Final[tuple[ThinkKind, ...]] = ("fixed", "uniform", "exponential")
THINK_EXPECTED: Final = (
    'a duration (2s), "uniform(MIN, MAX)", "exponential(MEAN)", or a mapping '
    "{distribution: fixed|uniform|exponential, value | min, max | mean}"
)
# The arguments of each distribution, in the order the call form takes them.
_ARGS: Final[Mapping[str, tuple[str, ...]]] = {
    "fixed": ("value",),
    "uniform": ("min", "max"),
    "exponential": ("mean",),
}
_CALL_RE: Final = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\((.*)\)\s*", re.DOTALL)


class ThinkError(ValueError):
    """A `think-time` or `pacing` that cannot be read: the message and what was expected."""

    def __init__(self, message: str, expected: str = THINK_EXPECTED) -> None:
        super().__init__(message)
        self.message = message
        self.expected = expected


def parse_think(value: object) -> ThinkSpec | None:
    """The distribution `value` describes; None when absent. Raises ThinkError."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return _from_mapping(value)
    if isinstance(value, str):
        call = _CALL_RE.fullmatch(value)
        if call is not None:
            args = [a.strip() for a in call.group(2).split(",")] if call.group(2).strip() else []
            return _make(
                call.group(1),
                dict(zip(_ARGS.get(call.group(1), ()), args, strict=False)),
                len(args),
            )
    return _make("fixed", {"value": value}, 1)


def _from_mapping(value: Mapping[object, object]) -> ThinkSpec:
    kind = value.get("distribution", "fixed")
    if not isinstance(kind, str) or kind not in _ARGS:
        raise ThinkError(f"unknown think-time distribution {kind!r}", _known())
    allowed = {"distribution", *_ARGS[kind]}
    extra = sorted(str(k) for k in value if k not in allowed)
    if extra:
        raise ThinkError(
            f"{kind} think-time takes no key {', '.join(map(repr, extra))}", _keys(kind)
        )
    args = {k: value[k] for k in _ARGS[kind] if k in value}
    return _make(kind, args, len(args))


def _make(kind: str, args: Mapping[str, object], given: int) -> ThinkSpec:
    names = _ARGS.get(kind)
    if names is None:
        raise ThinkError(f"unknown think-time distribution {kind!r}", _known())
    if given != len(names) or len(args) != len(names):
        raise ThinkError(f"{kind} think-time needs {' and '.join(names)}", _keys(kind))
    values = [_duration(f"{kind} {name}", args[name], _keys(kind)) for name in names]
    if kind == "uniform":
        low, high = values
        if low > high:
            raise ThinkError(
                f"uniform think-time has min {low:g}s above max {high:g}s", "min <= max"
            )
        return ThinkSpec("uniform", low, high)
    if kind == "exponential":
        if values[0] <= 0:
            raise ThinkError("exponential think-time needs a mean above 0", "a mean > 0, e.g. 2s")
        return ThinkSpec("exponential", values[0], values[0])
    return ThinkSpec("fixed", values[0], values[0])


def _duration(what: str, value: object, expected: str) -> float:
    try:
        return parse_duration(value)
    except UnitError as exc:
        raise ThinkError(f"{what}: {exc}", expected) from None


def _known() -> str:
    return "one of " + ", ".join(DISTRIBUTIONS)


def _keys(kind: str) -> str:
    forms = {
        "fixed": "a duration, e.g. 2s",
        "uniform": '"uniform(MIN, MAX)" or {distribution: uniform, min: 1s, max: 3s}',
        "exponential": '"exponential(MEAN)" or {distribution: exponential, mean: 2s}',
    }
    return forms[kind]
