"""`thresholds:` of a scenario or its config.yaml read into rules, every mistake reported once
with where it is (the rule's column within the line), the value and what was expected."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

from wbsrun.dsl._failed import NONE, Failed
from wbsrun.dsl.source import PathKey, SourceDoc, did_you_mean
from wbsrun.dsl.thresholds import PlanNames, RuleError, ThresholdRule, parse_rule
from wbsrun.dsl.units import UnitError, parse_duration
from wbsrun.errors import Diagnostic

__all__ = ["check_thresholds", "merge_thresholds"]

_OPTIONS: Final = ("abort-on-fail", "delay-abort-eval")
_LIST_ITEM: Final = ("rule", *_OPTIONS)
_MAP_ITEM: Final = ("threshold", *_OPTIONS)
_K6_SPELLING: Final = {"abortOnFail": "abort-on-fail", "delayAbortEval": "delay-abort-eval"}
_SHAPE: Final = (
    "a list of rules ('- http.failed_rate < 0.01', or {rule: …, abort-on-fail: true}), or a "
    "mapping of metric to rules (http.latency_ms: ['p95 < 200'])"
)


class _Reader:
    """Reads one document's `thresholds:`; rules and diagnostics accumulate."""

    def __init__(self, doc: SourceDoc, lines: Sequence[str], names: PlanNames) -> None:
        self.doc = doc
        self.lines = lines
        self.names = names
        self.rules: list[ThresholdRule] = []
        self.found: list[Diagnostic] = []

    def error(self, path: PathKey, code: str, message: str, **kw: Any) -> None:
        self.found.append(self.doc.diag(path, code, message, **kw))

    def _column(self, path: PathKey, offset: int) -> tuple[int, int]:
        """Line and column of character ``offset`` of the string at ``path`` (one-line
        scalars; a quote opening the scalar is skipped)."""
        pos = self.doc.where(path)
        line, col = pos.line, pos.column
        if 0 < line <= len(self.lines):
            text = self.lines[line - 1]
            if 0 < col <= len(text) and text[col - 1] in "\"'":
                col += 1
        return line, col + offset

    def rule(self, path: PathKey, text: object, options: Mapping[str, Any], prefix: str) -> None:
        if not isinstance(text, str):
            self.error(
                path,
                "bad-threshold",
                "a threshold rule must be a string",
                value=text,
                expected="METRIC OP VALUE, such as 'http.failed_rate < 0.01'",
            )
            return
        abort, delay = self._options(path[:-1] if options else path, options)
        try:
            metric, op, value, value_text = parse_rule(text, self.names, prefix)
        except RuleError as exc:
            if exc.in_prefix:  # in the metric, the mapping's key: thresholds.METRIC
                pos = self.doc.where(path[:2], key=True)
                line, col = pos.line, pos.column + exc.offset
            else:
                line, col = self._column(path, exc.offset)
            base = self.doc.diag(path, exc.code, exc.message)
            self.found.append(
                replace(
                    base, line=line, column=col, value=text, expected=exc.expected, hint=exc.hint
                )
            )
            return
        if abort is None or delay is None:
            return
        pos = self.doc.where(path)
        origin = f"{self.doc.file}:{pos.line}:{pos.column}"
        self.rules.append(ThresholdRule(metric, op, value, value_text, abort, delay, origin))

    def _options(
        self, path: PathKey, options: Mapping[str, Any]
    ) -> tuple[bool | None, float | None]:
        delay: float | None = 0.0
        raw_abort = options.get("abort-on-fail", False)
        abort = raw_abort if isinstance(raw_abort, bool) else None
        if abort is None:
            where = (*path, "abort-on-fail")
            self.error(
                where,
                "bad-threshold",
                "abort-on-fail must be true or false",
                value=raw_abort,
                expected="true or false",
            )
        raw_delay = options.get("delay-abort-eval")
        if raw_delay is not None:
            try:
                delay = parse_duration(raw_delay)
            except UnitError as exc:
                where = (*path, "delay-abort-eval")
                self.error(where, "bad-duration", str(exc), value=raw_delay, expected="e.g. 10s")
                delay = None
        return abort, delay

    def item(self, path: PathKey, item: object, keys: tuple[str, ...], prefix: str) -> None:
        if not isinstance(item, Mapping):
            self.rule(path, item, {}, prefix)
            return
        for key in item:
            if key not in keys:
                hint = _K6_SPELLING.get(str(key))
                self.error(
                    (*path, key),
                    "unknown-key",
                    f"unknown threshold key '{key}'",
                    value=key,
                    expected=", ".join(keys),
                    hint=f"did you mean '{hint}'?" if hint else did_you_mean(str(key), keys),
                    key=True,
                )
        if keys[0] not in item:
            message = f"a threshold written as a mapping needs its '{keys[0]}'"
            self.error(path, "bad-threshold", message, value=item, expected=", ".join(keys))
            self._options(path, item)
            return
        self.rule((*path, keys[0]), item[keys[0]], item, prefix)


def check_thresholds(
    doc: SourceDoc, lines: Sequence[str], names: PlanNames, failed: Failed = NONE
) -> tuple[list[ThresholdRule], list[Diagnostic]]:
    """The rules of ``doc``'s `thresholds:` and every problem in it; elements in ``failed``
    (the schema reported them) are skipped. A rule written twice is kept once (a warning)."""
    data = doc.data if isinstance(doc.data, Mapping) else {}
    section = data.get("thresholds")
    reader = _Reader(doc, lines, names)
    if section is None or ("thresholds",) in failed:
        return [], []
    if isinstance(section, list):
        for i, item in enumerate(section):
            if ("thresholds", i) not in failed:
                reader.item(("thresholds", i), item, _LIST_ITEM, "")
    elif isinstance(section, Mapping):
        for metric, rules in section.items():
            path = ("thresholds", metric)
            if path in failed:
                continue
            items = rules if isinstance(rules, list) else [rules]
            for i, item in enumerate(items):
                where = (*path, i) if isinstance(rules, list) else path
                if where not in failed:
                    reader.item(where, item, _MAP_ITEM, str(metric))
    else:
        reader.error(
            ("thresholds",),
            "bad-threshold",
            "'thresholds' has the wrong shape",
            value=section,
            expected=_SHAPE,
        )
    return _unique(doc, reader.rules, reader.found)


def _unique(
    doc: SourceDoc, rules: list[ThresholdRule], found: list[Diagnostic]
) -> tuple[list[ThresholdRule], list[Diagnostic]]:
    kept: dict[tuple[object, ...], ThresholdRule] = {}
    for rule in rules:
        if rule.key in kept:
            first = kept[rule.key].origin
            found.append(
                Diagnostic(
                    "duplicate-threshold",
                    f"threshold '{rule.text}' is written twice (first at {first}); kept once",
                    doc.file,
                    *_line_col(rule.origin),
                    value=rule.text,
                    severity="warning",
                )
            )
            continue
        kept[rule.key] = rule
    return list(kept.values()), found


def _line_col(origin: str) -> tuple[int, int]:
    _, line, col = origin.rsplit(":", 2)
    return int(line), int(col)


def merge_thresholds(
    scenario: Sequence[ThresholdRule], config: Sequence[ThresholdRule]
) -> tuple[ThresholdRule, ...]:
    """The run's rules: the scenario's, then config.yaml's; a config.yaml rule equal to one of
    the scenario's (same metric, operator and value) replaces it (its abort options win)."""
    merged = {rule.key: rule for rule in scenario}
    for rule in config:
        merged[rule.key] = rule
    return tuple(merged.values())
