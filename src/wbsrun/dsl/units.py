"""Durations (``500ms``, ``5s``, ``1m30s``) and rates (``200/s``, ``50 req/s``) in scenarios."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Final

from wbsrun.dsl.source import PathKey, SourceDoc, iter_paths
from wbsrun.errors import Diagnostic

__all__ = [
    "DURATION_EXPECTED",
    "DURATION_PATTERN",
    "RATE_EXPECTED",
    "RATE_PATTERN",
    "UNIT_FIELDS",
    "UNIT_KINDS",
    "UnitError",
    "check_units",
    "format_duration",
    "parse_duration",
    "parse_rate",
]

_NUM: Final = r"[0-9]+(?:\.[0-9]+)?"

# Units must appear largest first and at most once, like k6 ("1h30m", "1m30s", "2s500ms").
# The same text is used as the JSON Schema `pattern` so editors and the loader agree.
DURATION_PATTERN: Final = (
    rf"^(?:{_NUM}|(?=[0-9])(?:{_NUM}h)?(?:{_NUM}m(?!s))?(?:{_NUM}s)?(?:{_NUM}ms)?)$"
)
# A count, an optional noun ("req", "users") and a per-unit: "200/s", "50 req/s", "30/m".
RATE_PATTERN: Final = rf"^{_NUM}(?:(?:[ ]*[A-Za-z][A-Za-z-]*)?/(?:s|m|h))?$"

DURATION_EXPECTED: Final = (
    "a number of seconds, or a number with a unit ms, s, m or h (500ms, 5s, 2m, 1h, 1m30s)"
)
RATE_EXPECTED: Final = "a count per second, minute or hour (200/s, 50 req/s, 30/m, 10/h)"

_DURATION_RE: Final = re.compile(
    rf"(?:(?P<h>{_NUM})h)?(?:(?P<m>{_NUM})m(?!s))?(?:(?P<s>{_NUM})s)?(?:(?P<ms>{_NUM})ms)?"
)
_RATE_RE: Final = re.compile(rf"(?P<n>{_NUM})(?:(?:[ ]*[A-Za-z][A-Za-z-]*)?/(?P<per>[smh]))?")
_PLAIN_RE: Final = re.compile(_NUM)
_UNIT_SECONDS: Final = {"h": 3600.0, "m": 60.0, "s": 1.0}
_PER_SECONDS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0}


class UnitError(ValueError):
    """A duration or rate that cannot be read; the message quotes the value and what is expected."""


def _quote(value: object) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _plain_number(value: object, what: str, expected: str) -> float:
    """A YAML number (bool is an int in Python but never a duration or rate)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnitError(f"invalid {what} {_quote(value)}: expected {expected}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise UnitError(f"invalid {what} {_quote(value)}: must be a finite number")
    return number


def parse_duration(value: object) -> float:
    """Seconds in ``value``: ``500ms``, ``5s``, ``2m``, ``1h``, ``1m30s`` or a bare number."""
    if not isinstance(value, str):
        seconds = _plain_number(value, "duration", DURATION_EXPECTED)
        if seconds < 0:
            raise UnitError(f"invalid duration {_quote(value)}: must not be negative")
        return seconds
    if _PLAIN_RE.fullmatch(value):
        seconds = float(value)
    else:
        match = _DURATION_RE.fullmatch(value)
        if match is None or not value or not any(match.groupdict().values()):
            raise UnitError(f"invalid duration {_quote(value)}: expected {DURATION_EXPECTED}")
        seconds = _sum_parts(match.groupdict())
    if not math.isfinite(seconds):
        raise UnitError(f"invalid duration {_quote(value)}: too large")
    return seconds


def _sum_parts(parts: dict[str, str | None]) -> float:
    # A single unit avoids float sums so that "0.1s" reads back as exactly 0.1.
    present = [(unit, text) for unit, text in parts.items() if text is not None]
    total = 0.0
    for unit, text in present:
        total += float(text) / 1000.0 if unit == "ms" else float(text) * _UNIT_SECONDS[unit]
    return total


def parse_rate(value: object) -> float:
    """Events per second in ``value``: ``200/s``, ``50 req/s``, ``30/m``, ``10/h`` or a number."""
    if not isinstance(value, str):
        rate = _plain_number(value, "rate", RATE_EXPECTED)
    else:
        match = _RATE_RE.fullmatch(value)
        if match is None:
            raise UnitError(f"invalid rate {_quote(value)}: expected {RATE_EXPECTED}")
        rate = float(match["n"]) / _PER_SECONDS[match["per"] or "s"]
    if not math.isfinite(rate):
        raise UnitError(f"invalid rate {_quote(value)}: too large")
    if rate <= 0:
        raise UnitError(f"invalid rate {_quote(value)}: must be greater than zero")
    return rate


def _positional(number: float) -> str:
    """Shortest round-tripping decimal text without an exponent (which the grammar lacks)."""
    text = format(Decimal(repr(number)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _candidates(seconds: float) -> list[str]:
    out: list[str] = []
    whole = int(seconds) if seconds.is_integer() else None
    if whole is not None and whole > 0:
        hours, rest = divmod(whole, 3600)
        minutes, secs = divmod(rest, 60)
        out.append(
            (f"{hours}h" if hours else "")
            + (f"{minutes}m" if minutes else "")
            + (f"{secs}s" if secs else "")
        )
    millis = seconds * 1000.0
    if millis.is_integer() and seconds < 1:
        out.append(f"{int(millis)}ms")
    out.append(f"{_positional(seconds)}s")
    return out


def format_duration(seconds: float) -> str:
    """The shortest readable text that :func:`parse_duration` reads back as exactly ``seconds``."""
    if isinstance(seconds, bool) or not math.isfinite(seconds) or seconds < 0:
        raise UnitError(f"cannot format duration {_quote(seconds)}: expected a finite number >= 0")
    if seconds == 0:
        return "0s"
    for text in _candidates(float(seconds)):
        if parse_duration(text) == seconds:
            return text
    return f"{_positional(float(seconds))}s"


# Where durations and rates sit in a scenario: a path pattern ("*" = any key or index) and
# the unit its value must read as; "rate-limit" is a rate or a mapping of scope -> rate.
UNIT_FIELDS: Final[tuple[tuple[tuple[str, ...], str], ...]] = (
    (("resources", "*", "provider", "leasing", "ttl"), "duration"),
    (("resources", "*", "health-check", "interval"), "duration"),
    (("resources", "*", "health-check", "timeout"), "duration"),
    (("progress", "batching", "flush-interval"), "duration"),
    (("actions", "*", "timeout"), "duration"),
    (("actions", "*", "rate-limit"), "rate-limit"),
    (("workflows", "*", "timeout"), "duration"),
    (("workflows", "*", "controls", "timeout"), "duration"),
    (("workflows", "*", "nodes", "*", "controls", "exec", "timeout"), "duration"),
    (("workflows", "*", "nodes", "*", "controls", "exec", "rate-limit"), "rate-limit"),
    (("load", "profiles", "*", "duration"), "duration"),
    (("load", "profiles", "*", "phases", "*", "at"), "duration"),
    (("load", "scenarios", "*", "spawn-rate"), "rate"),
    (("load", "scenarios", "*", "task-duration"), "duration"),
    (("load", "scenarios", "*", "think-time"), "duration"),
    (("load", "scenarios", "*", "max-duration"), "duration"),
)
# unit -> (diagnostic code, what is expected, parser); shared with the schema error mapping.
UNIT_KINDS: Final[Mapping[str, tuple[str, str, Callable[[object], float]]]] = {
    "duration": ("bad-duration", DURATION_EXPECTED, parse_duration),
    "rate": ("bad-rate", RATE_EXPECTED, parse_rate),
}


def check_units(
    doc: SourceDoc, skip: Callable[[PathKey], bool] = lambda _: False
) -> list[Diagnostic]:
    """A ``bad-duration`` / ``bad-rate`` diagnostic for every unreadable unit field in ``doc``
    (but those `skip` says an earlier check has reported)."""
    found: list[Diagnostic] = []
    for pattern, unit in UNIT_FIELDS:
        for path, value in iter_paths(doc.data, pattern):
            if skip(path):
                continue
            if unit != "rate-limit":
                items = [(path, value, unit)]
            elif isinstance(value, Mapping):
                items = [((*path, scope), rate, "rate") for scope, rate in value.items()]
            else:
                items = [(path, value, "rate")]
            for where, item, kind in items:
                code, expected, parse = UNIT_KINDS[kind]
                try:
                    parse(item)
                except UnitError as exc:
                    found.append(doc.diag(where, code, str(exc), value=item, expected=expected))
    return found
