"""Run options from layers: defaults < bundle config.yaml < WBSRUN_* environment < flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wbsrun.core.runner import RunOptions
from wbsrun.dsl.source import SourceDoc, did_you_mean, load_source
from wbsrun.dsl.units import SIZE_EXPECTED, UnitError, parse_duration, parse_size
from wbsrun.errors import Diagnostic, ScenarioError

__all__ = ["CONFIG_KEYS", "CONFIG_SECTIONS", "resolve_options"]

# config.yaml `run:` keys and their WBSRUN_* variables.
CONFIG_KEYS: Mapping[str, str] = {
    "users": "WBSRUN_USERS",
    "duration": "WBSRUN_DURATION",
    "connection-limit": "WBSRUN_CONNECTION_LIMIT",
    "transport": "WBSRUN_TRANSPORT",
    "graceful-stop": "WBSRUN_GRACEFUL_STOP",
    "request-timeout": "WBSRUN_REQUEST_TIMEOUT",
    "max-body": "WBSRUN_MAX_BODY",
    "sampling": "WBSRUN_SAMPLING",
}
# The top-level keys of config.yaml that wbsrun reads; any other is refused, not ignored.
CONFIG_SECTIONS = ("run", "thresholds")  # thresholds: read by the loader (dsl)
TRANSPORTS = ("fast", "aiohttp")
SAMPLING = ("aggregated", "sampled", "full")
# Options that take one of a few words.
_CHOICES: Mapping[str, tuple[str, ...]] = {"transport": TRANSPORTS, "sampling": SAMPLING}
# What each option must be: (lowest whole number allowed, what the error says is expected).
_MINIMUM: Mapping[str, tuple[int, str]] = {
    "users": (1, "a whole number ≥ 1"),
    "connection-limit": (0, "a whole number ≥ 0 (0 = no limit)"),
}
_DURATION_EXPECTED = "a duration above zero, such as 20s"
# Durations: (may it be zero, what the error says is expected). A zero window or request
# timeout would mean none at all; a zero graceful stop cuts passes in flight at once.
_DURATIONS: Mapping[str, tuple[bool, str]] = {
    "duration": (False, _DURATION_EXPECTED),
    "request-timeout": (False, "a duration above zero, such as 30s"),
    "graceful-stop": (True, "a duration ≥ 0, such as 30s"),
}

# Where a value came from: (file or layer name, line, column, YAML path); 0s when not a file.
_Origin = tuple[str, int, int, str]


def _config_layer(path: Path | None, problems: list[Diagnostic]) -> dict[str, tuple[Any, _Origin]]:
    """The `run:` values of config.yaml with where each was written; bad keys to `problems`."""
    if path is None or not path.is_file():
        return {}
    doc = load_source(path)  # the scenario's loader: positions, duplicate keys, size limits
    data = doc.data
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        problems.append(
            doc.diag(
                (),
                "config-invalid",
                "config.yaml must be a mapping",
                value=data,
                expected="run: {…}",
            )
        )
        return {}
    problems.extend(
        _unknown(doc, (key,), f"unknown config.yaml key '{key}'", key, CONFIG_SECTIONS)
        for key in data
        if key not in CONFIG_SECTIONS
    )
    run = data.get("run")
    if run is None:
        return {}
    if not isinstance(run, Mapping):
        problems.append(
            doc.diag(
                ("run",),
                "config-invalid",
                "'run' must be a mapping",
                value=run,
                expected="run: {users: …, duration: …}",
            )
        )
        return {}
    out: dict[str, tuple[Any, _Origin]] = {}
    for key, value in run.items():
        if key not in CONFIG_KEYS:
            problems.append(
                _unknown(doc, ("run", key), f"unknown run option '{key}'", key, tuple(CONFIG_KEYS))
            )
            continue
        pos = doc.where(("run", key))
        out[key] = (value, (doc.file, pos.line, pos.column, f"run.{key}"))
    return out


def _unknown(
    doc: SourceDoc, path: tuple[str, ...], message: str, key: str, known: tuple[str, ...]
) -> Diagnostic:
    return doc.diag(
        path,
        "unknown-key",
        message,
        value=key,
        expected=", ".join(known),
        hint=did_you_mean(key, known),
        key=True,
    )


def _coerce(key: str, value: Any) -> Any:
    """The option's value; raises ValueError with what was expected."""
    choices = _CHOICES.get(key)
    if choices is not None:
        if value in choices:
            return value
        raise ValueError(" or ".join(choices))
    if key in _DURATIONS:
        zero_ok, expected = _DURATIONS[key]
        try:
            seconds = parse_duration(value)
        except UnitError:
            raise ValueError(expected) from None
        if seconds < 0 or (seconds == 0 and not zero_ok):
            raise ValueError(expected)
        return seconds
    if key == "max-body":
        try:
            size = parse_size(value)
        except UnitError:
            raise ValueError(SIZE_EXPECTED) from None
        if size <= 0:
            raise ValueError(SIZE_EXPECTED)
        return size
    low, expected = _MINIMUM[key]
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(expected)
    try:
        number = int(value)
    except (ValueError, TypeError):
        raise ValueError(expected) from None
    if number < low:
        raise ValueError(expected)
    return number


def _bad(key: str, value: Any, origin: _Origin, expected: str) -> Diagnostic:
    file, line, column, path = origin
    if file == f"--{key}":
        what = file
    elif line:
        what = f"run.{key} in {Path(file).name}"
    else:
        what = f"{key} from {file}"
    message = f"{what} must be {expected}"
    return Diagnostic("bad-option", message, file, line, column, path, repr(value), expected)


def resolve_options(
    config: Path | None,
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    *,
    out_dir: Path | None = None,
) -> RunOptions:
    """Every layer's values checked; every problem of every layer reported in one error."""
    environ = os.environ if environ is None else environ
    problems: list[Diagnostic] = []
    layers: list[tuple[str, Any, _Origin]] = [
        (key, value, origin) for key, (value, origin) in _config_layer(config, problems).items()
    ]
    layers += [(k, environ[v], (v, 0, 0, "")) for k, v in CONFIG_KEYS.items() if v in environ]
    layers += [(k, v, (f"--{k}", 0, 0, "")) for k, v in flags.items() if v is not None]
    values: dict[str, Any] = {}
    for key, value, origin in layers:
        try:
            values[key] = _coerce(key, value)
        except ValueError as exc:
            problems.append(_bad(key, value, origin, str(exc)))
    if problems:
        raise ScenarioError(problems)
    return RunOptions(
        users=values.get("users"),
        duration=values.get("duration"),
        connection_limit=values.get("connection-limit", 0),
        transport=values.get("transport"),
        graceful_stop=values.get("graceful-stop"),
        request_timeout=values.get("request-timeout"),
        max_body=values.get("max-body"),
        sampling=values.get("sampling"),
        out_dir=out_dir,
    )
