"""`capture:` and `checks:` of an action → ResponseRules, with every mistake reported (file,
line, column, the value, what was expected) in the same pass as the rest of the plan."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final, cast

from wbsrun.dsl.checks import (
    CaptureKind,
    CaptureSpec,
    CheckKind,
    CheckSpec,
    JsonPathError,
    ResponseRules,
    Scope,
    Step,
    parse_json_path,
    regex_problem,
)
from wbsrun.dsl.units import UnitError, parse_duration

__all__ = ["CAPTURE_KINDS", "CHECK_KINDS", "response_rules"]

Path_ = tuple[str | int, ...]
# builder.error(path, code, message, value=..., expected=...)
Report = Callable[..., None]

CAPTURE_KINDS: Final = ("json", "regex", "header", "cookie")
CHECK_KINDS: Final = ("status", "status-in", "body-contains", "json", "latency-below")
_PATH_EXPECTED: Final = "a JSON path: $, then .key, [index], [*] (first match) or ['key']"
_REGEX_EXPECTED: Final = (
    "a regular expression without nested quantifiers or backreferences and with at most one "
    "unbounded quantifier (*, +, {n,})"
)


class _Rules:
    def __init__(self, report: Report) -> None:
        self.report = report

    def one_kind(self, item: Mapping[str, Any], kinds: tuple[str, ...], path: Path_) -> str:
        present = [k for k in kinds if k in item]
        if len(present) == 1:
            return present[0]
        self.report(
            path,
            "bad-check" if "status" in kinds else "bad-capture",
            f"{'no' if not present else 'more than one'} kind given"
            + (f" ({', '.join(present)})" if present else ""),
            value=dict(item),
            expected=f"exactly one of {', '.join(kinds)}",
        )
        return ""

    def json_path(self, text: Any, path: Path_) -> tuple[Step, ...] | None:
        try:
            return parse_json_path(str(text))
        except JsonPathError as exc:
            self.report(
                path,
                "bad-json-path",
                f"'{text}': {exc.message} (at character {exc.offset + 1})",
                value=text,
                expected=_PATH_EXPECTED,
            )
            return None

    def regex(self, text: Any, path: Path_) -> re.Pattern[str] | None:
        pattern = str(text)
        problem = regex_problem(pattern)
        if problem is not None:
            code = "bad-regex" if problem.startswith("not a") else "unsafe-regex"
            self.report(path, code, f"'{pattern}': {problem}", value=text, expected=_REGEX_EXPECTED)
            return None
        return re.compile(pattern)


def _captures(rules: _Rules, items: Any, path: Path_) -> tuple[CaptureSpec, ...]:
    out: list[CaptureSpec] = []
    seen: set[str] = set()
    for index, item in enumerate(items if isinstance(items, list) else ()):
        at: Path_ = (*path, index)
        if not isinstance(item, Mapping):
            continue  # the schema reported it
        name = str(item.get("name", ""))
        if name in seen:
            rules.report(
                (*at, "name"),
                "duplicate-capture",
                f"capture '{name}' is given twice in this action",
                value=name,
                expected="a name used once per action",
            )
        seen.add(name)
        kind = rules.one_kind(item, CAPTURE_KINDS, at)
        if not kind:
            continue
        source = item[kind]
        spec = CaptureSpec(
            name=name,
            kind=cast(CaptureKind, kind),
            source=str(source),
            scope=cast(Scope, item.get("scope", "workbook")),
            has_default="default" in item,
            default=item.get("default"),
            optional=item.get("optional") is True,
        )
        if kind == "json":
            steps = rules.json_path(source, (*at, kind))
            if steps is None:
                continue
            spec = _with(spec, steps=steps)
        elif kind == "regex":
            pattern = rules.regex(source, (*at, kind))
            if pattern is None:
                continue
            spec = _with(spec, pattern=pattern)
        else:
            spec = _with(spec, key=str(source).lower() if kind == "header" else str(source))
        out.append(spec)
    return tuple(out)


def _with(spec: CaptureSpec, **changes: Any) -> CaptureSpec:
    return replace(spec, **changes)


def _derived_name(kind: str, item: Mapping[str, Any]) -> str:
    if kind == "json":
        body = item.get("json")
        text = str(body.get("path", "")) if isinstance(body, Mapping) else ""
        key = re.sub(r"[^A-Za-z0-9_-]+", "_", text.lstrip("$").strip(".")).strip("_")
        return f"json-{key}" if key else "json"
    if kind == "status-in":
        return "status"
    return kind


def _statuses(rules: _Rules, value: Any, path: Path_) -> frozenset[int]:
    listed = value if isinstance(value, list) else [value]
    good = [v for v in listed if isinstance(v, int) and not isinstance(v, bool)]
    if len(good) != len(listed) or not good or any(not 100 <= v <= 599 for v in good):
        rules.report(
            path,
            "bad-check",
            f"status {value!r} is not an HTTP status or a list of them",
            value=value,
            expected="a status 100-599, or a list of them: [200, 201]",
        )
        return frozenset()
    return frozenset(good)


def _check(rules: _Rules, item: Mapping[str, Any], kind: str, at: Path_, name: str) -> CheckSpec:
    spec = CheckSpec(name=name, kind=cast(CheckKind, kind), on_fail_error=_on_fail(item))
    value = item[kind]
    if kind in ("status", "status-in"):
        return replace(spec, kind="status", statuses=_statuses(rules, value, (*at, kind)))
    if kind == "body-contains":
        return CheckSpec(name, "body-contains", text=str(value), on_fail_error=spec.on_fail_error)
    if kind == "latency-below":
        try:
            limit = parse_duration(value) * 1000.0
        except UnitError as exc:
            rules.report(
                (*at, kind), "bad-duration", str(exc), value=value, expected="e.g. 200ms, 1s"
            )
            limit = 0.0
        return CheckSpec(name, "latency-below", limit_ms=limit, on_fail_error=spec.on_fail_error)
    body = value if isinstance(value, Mapping) else {}
    steps = rules.json_path(body.get("path", ""), (*at, kind, "path")) or ()
    has_equals = "equals" in body
    pattern = None
    if has_equals == ("matches" in body):
        rules.report(
            (*at, kind),
            "bad-check",
            "a json check compares with one of equals or matches",
            value=dict(body),
            expected="{path: $.x, equals: VALUE} or {path: $.x, matches: REGEX}",
        )
    elif not has_equals:
        pattern = rules.regex(body["matches"], (*at, kind, "matches"))
    return CheckSpec(
        name,
        "json",
        text=str(body.get("path", "")),
        steps=steps,
        has_equals=has_equals,
        equals=body.get("equals"),
        pattern=pattern,
        on_fail_error=spec.on_fail_error,
    )


def _on_fail(item: Mapping[str, Any]) -> bool:
    return item.get("on-fail") == "error"


def _checks(rules: _Rules, items: Any, path: Path_) -> tuple[CheckSpec, ...]:
    out: list[CheckSpec] = []
    names: set[str] = set()
    for index, item in enumerate(items if isinstance(items, list) else ()):
        at: Path_ = (*path, index)
        if not isinstance(item, Mapping):
            continue
        kind = rules.one_kind(item, CHECK_KINDS, at)
        if not kind:
            continue
        given = item.get("name")
        name = str(given) if given is not None else _derived_name(kind, item)
        if given is None:
            base, n = name, 2
            while name in names:
                name, n = f"{base}-{n}", n + 1
        elif name in names:
            rules.report(
                (*at, "name"),
                "duplicate-check",
                f"check '{name}' is named twice in this action",
                value=name,
                expected="a name used once per action",
            )
        names.add(name)
        out.append(_check(rules, item, kind, at, name))
    return tuple(out)


def response_rules(report: Report, body: Mapping[str, Any], path: Path_) -> ResponseRules | None:
    """The action's captures and checks (None when it has neither)."""
    if "capture" not in body and "checks" not in body:
        return None
    rules = _Rules(report)
    captures = _captures(rules, body.get("capture"), (*path, "capture"))
    checks = _checks(rules, body.get("checks"), (*path, "checks"))
    if not captures and not checks:
        return None
    return ResponseRules(captures, checks)
