"""Durations (``500ms``, ``5s``, ``1m30s``), rates (``200/s``, ``50 req/s``) and sizes
(``10MiB``, ``512KiB``, ``1MB``, plain bytes) in scenarios and run options."""

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
    "SIZE_EXPECTED",
    "SIZE_PATTERN",
    "UNIT_FIELDS",
    "UNIT_KINDS",
    "UnitError",
    "check_units",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_rate",
    "parse_size",
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
# Bytes: a whole number, or a number with a decimal (kB/KB, MB, GB: powers of 1000) or binary
# (KiB, MiB, GiB: powers of 1024) unit, optionally one space apart: "10MiB", "1.5 MB", "4096".
SIZE_PATTERN: Final = rf"^(?:[0-9]+|{_NUM}[ ]?(?:B|kB|KB|MB|GB|KiB|MiB|GiB))$"
SIZE_EXPECTED: Final = "a number of bytes, or a number with a unit B, KB, MB, GB, KiB, MiB or GiB"

_DURATION_RE: Final = re.compile(
    rf"(?:(?P<h>{_NUM})h)?(?:(?P<m>{_NUM})m(?!s))?(?:(?P<s>{_NUM})s)?(?:(?P<ms>{_NUM})ms)?"
)
_RATE_RE: Final = re.compile(rf"(?P<n>{_NUM})(?:(?:[ ]*[A-Za-z][A-Za-z-]*)?/(?P<per>[smh]))?")
_PLAIN_RE: Final = re.compile(_NUM)
_SIZE_RE: Final = re.compile(rf"(?P<n>{_NUM})[ ]?(?P<unit>B|kB|KB|MB|GB|KiB|MiB|GiB)")
_SIZE_UNITS: Final = {
    "B": 1,
    "kB": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}
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


def parse_size(value: object) -> int:
    """Bytes in ``value``: ``10MiB``, ``512KiB``, ``1MB``, ``2 GB`` or a whole number of bytes.

    A fraction of a byte is dropped (``1.5KiB`` is 1536, ``0.0001KB`` refused as zero)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        if isinstance(value, float) and value.is_integer() and value > 0:
            return int(value)
        raise UnitError(f"invalid size {_quote(value)}: expected {SIZE_EXPECTED}")
    if isinstance(value, int):
        size = value
    elif value.isascii() and value.isdigit():
        size = int(value)
    else:
        match = _SIZE_RE.fullmatch(value)
        if match is None:
            raise UnitError(f"invalid size {_quote(value)}: expected {SIZE_EXPECTED}")
        number, scale = match["n"], _SIZE_UNITS[match["unit"]]
        # Exact for whole numbers however large; a float only for a fraction.
        size = int(number) * scale if number.isdigit() else int(float(number) * scale)
    if size <= 0:
        raise UnitError(f"invalid size {_quote(value)}: must be greater than zero")
    return size


def format_size(size: int) -> str:
    """``size`` bytes as people write it: ``10 MiB``, ``512 KiB``, ``1000 B``, ``1.5 MiB``."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            text = f"{size / scale:.2f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
    return f"{size} B"


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
    (("components", "*", "timeout"), "duration"),
    (("components", "*", "max-body"), "size"),
    (("resources", "*", "provider", "leasing", "ttl"), "duration"),
    (("resources", "*", "health-check", "interval"), "duration"),
    (("resources", "*", "health-check", "timeout"), "duration"),
    (("progress", "batching", "flush-interval"), "duration"),
    (("actions", "*", "timeout"), "duration"),
    (("actions", "*", "rate-limit"), "rate-limit"),
    (("actions", "*", "checks", "*", "latency-below"), "duration"),
    (("workflows", "*", "timeout"), "duration"),
    (("workflows", "*", "controls", "timeout"), "duration"),
    (("workflows", "*", "nodes", "*", "controls", "exec", "timeout"), "duration"),
    (("workflows", "*", "nodes", "*", "controls", "exec", "rate-limit"), "rate-limit"),
    (("load", "profiles", "*", "duration"), "duration"),
    (("load", "profiles", "*", "phases", "*", "at"), "duration"),
    (("load", "scenarios", "*", "spawn-rate"), "rate"),
    (("load", "scenarios", "*", "task-duration"), "duration"),
    (("load", "scenarios", "*", "pacing"), "duration"),
    (("load", "scenarios", "*", "max-duration"), "duration"),
    (("load", "scenarios", "*", "graceful-stop"), "duration"),
    (("load", "profiles", "*", "time-unit"), "duration"),
    (("load", "profiles", "*", "stages", "*", "duration"), "duration"),
    (("load", "scenarios", "*", "start-after"), "duration"),
)
# unit -> (diagnostic code, what is expected, parser); shared with the schema error mapping.
UNIT_KINDS: Final[Mapping[str, tuple[str, str, Callable[[object], float]]]] = {
    "duration": ("bad-duration", DURATION_EXPECTED, parse_duration),
    "rate": ("bad-rate", RATE_EXPECTED, parse_rate),
    "size": ("bad-size", SIZE_EXPECTED, parse_size),
}


def check_units(
    doc: SourceDoc, skip: Callable[[PathKey], bool] = lambda _: False
) -> list[Diagnostic]:
    """A ``bad-duration`` / ``bad-rate`` / ``bad-size`` diagnostic for every unreadable unit
    field in ``doc`` (but those `skip` says an earlier check has reported)."""
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
