"""Run options from layers: defaults < bundle config.yaml < WBSRUN_* environment < flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from wbsrun.core.runner import RunOptions
from wbsrun.dsl.units import UnitError, parse_duration
from wbsrun.errors import Diagnostic, ScenarioError

__all__ = ["CONFIG_KEYS", "resolve_options"]

# config.yaml `run:` keys and their WBSRUN_* variables.
CONFIG_KEYS: Mapping[str, str] = {
    "users": "WBSRUN_USERS",
    "duration": "WBSRUN_DURATION",
    "connection-limit": "WBSRUN_CONNECTION_LIMIT",
    "transport": "WBSRUN_TRANSPORT",
    "sampling": "WBSRUN_SAMPLING",
}
TRANSPORTS = ("fast", "aiohttp")
SAMPLING = ("aggregated", "sampled", "full")


def _config_layer(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(
            [Diagnostic("config-invalid", f"cannot read config: {exc}", str(path))]
        ) from exc
    run = data.get("run", {}) if isinstance(data, dict) else None
    if not isinstance(run, dict):
        raise ScenarioError(
            [
                Diagnostic(
                    "config-invalid", "'run' must be a mapping", str(path), expected="run: {…}"
                )
            ]
        )
    unknown = sorted(set(run) - set(CONFIG_KEYS))
    if unknown:
        raise ScenarioError(
            [
                Diagnostic(
                    "unknown-key",
                    f"unknown run option '{unknown[0]}'",
                    str(path),
                    value=unknown[0],
                    expected=", ".join(CONFIG_KEYS),
                )
            ]
        )
    return dict(run)


def _coerce(key: str, value: Any, origin: str) -> Any:
    choices = {"transport": TRANSPORTS, "sampling": SAMPLING}.get(key)
    if choices is not None:
        if value in choices:
            return value
        raise ScenarioError(
            [
                Diagnostic(
                    "bad-option",
                    f"{key} from {origin}",
                    origin,
                    value=repr(value),
                    expected=" or ".join(choices),
                )
            ]
        )
    try:
        if key == "duration":
            return parse_duration(value)
        number = int(value)
        if number < 0:
            raise ValueError(value)
        return number
    except (UnitError, ValueError, TypeError):
        expected = "a duration such as 20s" if key == "duration" else "a whole number ≥ 0"
        raise ScenarioError(
            [
                Diagnostic(
                    "bad-option",
                    f"{key} from {origin}",
                    origin,
                    value=repr(value),
                    expected=expected,
                )
            ]
        ) from None


def resolve_options(
    config: Path | None,
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    *,
    out_dir: Path | None = None,
) -> RunOptions:
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for key, value in _config_layer(config).items():
        values[key] = _coerce(key, value, str(config))
    for key, var in CONFIG_KEYS.items():
        if var in environ:
            values[key] = _coerce(key, environ[var], var)
    for key, value in flags.items():
        if value is not None:
            values[key] = _coerce(key, value, f"--{key}")
    return RunOptions(
        users=values.get("users"),
        duration=values.get("duration"),
        connection_limit=values.get("connection-limit", 0),
        transport=values.get("transport"),
        sampling=values.get("sampling"),
        out_dir=out_dir,
    )
