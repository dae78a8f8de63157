"""Captures and checks of an action's result (`capture:`, `checks:`): their plan objects, the
JSON path subset and the regex safety rule, and how each is evaluated on a result.

Everything is compiled once, at plan time (paths split into steps, patterns compiled); at
run time a capture or a check is a few dict look-ups. docs/dsl.md "Captures and checks"."""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

# The stdlib's regex parser, private: imported by name so that type checking does not
# depend on whether the installed stubs list it.
sre: Any = importlib.import_module("re._parser")

__all__ = [
    "REGEX_WINDOW",
    "WILDCARD",
    "CaptureSpec",
    "CheckSpec",
    "JsonPathError",
    "ResponseRules",
    "capture",
    "check",
    "cookie_value",
    "json_at",
    "parse_json_path",
    "regex_problem",
]

# A regex capture or `matches` check reads at most this many characters of its text: with the
# validation rule below (no nested quantifiers or backreferences, at most one unbounded
# quantifier) a hostile body costs at worst quadratic time in this window, not in max-body.
REGEX_WINDOW: Final = 32 * 1024
# `[*]` in a path: the first element for which the rest of the path finds a value.
WILDCARD: Final = -(2**62)
_KEY_RE: Final = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")
_INDEX_RE: Final = re.compile(r"\[(-?[0-9]+|\*|'[^']*'|\"[^\"]*\")\]")

Scope = Literal["workbook", "user-local", "task-local", "global"]
CaptureKind = Literal["json", "regex", "header", "cookie"]
CheckKind = Literal["status", "body-contains", "json", "latency-below"]
Step = str | int


class JsonPathError(ValueError):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def parse_json_path(text: str) -> tuple[Step, ...]:
    """`$.a.b[0]['c d'][*]` → ("a", "b", 0, "c d", WILDCARD); raises JsonPathError."""
    if not text.startswith("$"):
        raise JsonPathError("a JSON path starts with '$'", 0)
    steps: list[Step] = []
    at = 1
    while at < len(text):
        if text[at] == ".":
            match = _KEY_RE.match(text, at + 1)
            if match is None:
                raise JsonPathError("a key expected after '.'", at + 1)
            steps.append(match.group())
            at = match.end()
            continue
        match = _INDEX_RE.match(text, at)
        if match is None:
            raise JsonPathError("'.key', '[index]', '[*]' or '[\"key\"]' expected", at)
        inner = match.group(1)
        if inner == "*":
            steps.append(WILDCARD)
        elif inner[0] in "'\"":
            steps.append(inner[1:-1])
        else:
            steps.append(int(inner))
        at = match.end()
    return tuple(steps)


def json_at(doc: Any, steps: Sequence[Step], start: int = 0) -> tuple[bool, Any]:
    """(found, value) of the path's steps from `start` in a decoded JSON document."""
    value = doc
    for i in range(start, len(steps)):
        step = steps[i]
        if isinstance(step, str):
            if not isinstance(value, Mapping) or step not in value:
                return False, None
            value = value[step]
        elif step == WILDCARD:
            items = value.values() if isinstance(value, Mapping) else value
            if not isinstance(items, list | tuple) and not isinstance(value, Mapping):
                return False, None
            for item in items:
                found, got = json_at(item, steps, i + 1)
                if found:
                    return True, got
            return False, None
        else:
            if not isinstance(value, list | tuple) or not -len(value) <= step < len(value):
                return False, None
            value = value[step]
    return True, value


def _has_repeat(items: Any) -> bool:
    """Whether a parsed (sub)pattern holds a quantifier that repeats more than once."""
    for op, av in items:
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            inner: list[Any] = [av[2]]
            if av[1] > 1:
                return True
        elif op == sre.SUBPATTERN:
            inner = [av[3]]
        elif op == sre.BRANCH:
            inner = list(av[1])
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            inner = [av[1]]
        else:
            continue
        if any(_has_repeat(part) for part in inner):
            return True
    return False


def _walk(items: Any, counts: list[int]) -> str | None:
    """The first unsafe construct in a parsed pattern; counts[0]: unbounded quantifiers."""

    for op, av in items:
        if op in (sre.GROUPREF, sre.GROUPREF_EXISTS):
            return "a backreference"
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            _, hi, body = av
            if hi > 1 and _has_repeat(body):
                return "a quantifier applied to a group that holds a quantifier (nested)"
            if hi == sre.MAXREPEAT:
                counts[0] += 1
            found = _walk(body, counts)
        elif op == sre.SUBPATTERN:
            found = _walk(av[3], counts)
        elif op == sre.BRANCH:
            found = next((f for b in av[1] if (f := _walk(b, counts))), None)
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            found = _walk(av[1], counts)
        else:
            found = None
        if found:
            return found
    return None


def regex_problem(pattern: str) -> str | None:
    """Why a pattern could backtrack catastrophically (refused at validation), or None.

    Python's `re` has no time limit, so a pattern is judged by its shape: nested quantifiers
    (`(a+)+`: exponential) and backreferences are refused, and so is a second unbounded
    quantifier (`.*x.*y`: cubic); bounded ones (`{1,40}`) are free. The text a pattern reads
    is cut to REGEX_WINDOW characters."""

    try:
        parsed = sre.parse(pattern)
    except re.error as exc:
        return f"not a regular expression: {exc}"
    counts = [0]
    found = _walk(list(parsed), counts)
    if found:
        return found
    if counts[0] > 1:
        return (
            f"{counts[0]} unbounded quantifiers (*, +, {{n,}}); at most one, bound the others "
            "as {m,n}"
        )
    return None


@dataclass(frozen=True, slots=True)
class CaptureSpec:
    """One `capture:` item: where its value comes from and where it is kept."""

    name: str
    kind: CaptureKind
    source: str  # the path, pattern, header or cookie name as written
    scope: Scope = "workbook"
    steps: tuple[Step, ...] = ()
    pattern: re.Pattern[str] | None = None
    key: str = ""  # header: its lower-case name; cookie: its name
    has_default: bool = False
    default: Any = None
    optional: bool = False


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One `checks:` item; `name` is given or derived (unique within its action)."""

    name: str
    kind: CheckKind
    statuses: frozenset[int] = frozenset()
    text: str = ""  # body-contains: the text; json: the path as written
    steps: tuple[Step, ...] = ()
    has_equals: bool = False
    equals: Any = None
    pattern: re.Pattern[str] | None = None
    limit_ms: float = 0.0
    on_fail_error: bool = False


@dataclass(frozen=True, slots=True)
class ResponseRules:
    """An action's captures and checks: one field of ActionSpec, so an action without either
    costs the executor a single `is None` test."""

    captures: tuple[CaptureSpec, ...] = ()
    checks: tuple[CheckSpec, ...] = ()


def cookie_value(set_cookies: Sequence[str], name: str) -> str | None:
    """The value a response sets for cookie `name` (the last Set-Cookie naming it)."""
    found: str | None = None
    for line in set_cookies:
        pair = line.split(";", 1)[0]
        key, eq, value = pair.partition("=")
        if eq and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            found = value
    return found


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _set_cookies(result: Mapping[str, Any]) -> list[str]:
    every = getattr(result, "header_values", None)
    if every is not None:
        return list(every("set-cookie"))
    one = result.get("headers")
    got = one.get("set-cookie") if isinstance(one, Mapping) else None
    return [got] if isinstance(got, str) else []


def capture(spec: CaptureSpec, result: Mapping[str, Any]) -> tuple[bool, Any]:
    """(found, value) of a capture on a result mapping (http: status, body, json, headers)."""
    kind = spec.kind
    if kind == "json":
        return json_at(result.get("json"), spec.steps)
    if kind == "regex":
        assert spec.pattern is not None
        match = spec.pattern.search(_text(result.get("body"))[:REGEX_WINDOW])
        if match is None:
            return False, None
        return True, match.group(1) if spec.pattern.groups else match.group()
    if kind == "header":
        headers = result.get("headers")
        got = headers.get(spec.key) if isinstance(headers, Mapping) else None
        return got is not None, got
    value = cookie_value(_set_cookies(result), spec.key)
    return value is not None, value


def _equal(seen: Any, want: Any) -> bool:
    if isinstance(seen, bool) or isinstance(want, bool):
        return seen is want
    return bool(seen == want)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check(spec: CheckSpec, result: Mapping[str, Any] | None, ms: float) -> str | None:
    """None when the check passes, else what was seen (for the failure message)."""
    kind = spec.kind
    if kind == "latency-below":
        return None if ms < spec.limit_ms else f"latency {ms:.1f}ms"
    if result is None:
        return "no response"
    if kind == "status":
        status = result.get("status")
        return None if status in spec.statuses else f"status {status}"
    if kind == "body-contains":
        return None if spec.text in _text(result.get("body")) else "body without the text"
    found, value = json_at(result.get("json"), spec.steps)
    if not found:
        return f"nothing at {spec.text}"
    if spec.has_equals:
        return None if _equal(value, spec.equals) else f"{spec.text} = {_shown(value)}"
    assert spec.pattern is not None
    if spec.pattern.search(_text(value)[:REGEX_WINDOW]) is None:
        return f"{spec.text} = {_shown(value)}"
    return None
