"""A WebAssembly component's settings, read from its `metadata` (docs/wasi.md "Isolation
and limits"), and what a failed call into it becomes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import wasmtime

from wbsrun.core import codes
from wbsrun.dsl.plan import ComponentSpec
from wbsrun.dsl.units import UnitError, parse_size
from wbsrun.errors import RunError

__all__ = [
    "DEFAULT_FUEL",
    "DEFAULT_ISOLATION",
    "DEFAULT_MEMORY",
    "Isolation",
    "PluginSettings",
    "failure_of",
    "to_json",
]

Isolation = Literal["per-worker", "per-user"]
DEFAULT_ISOLATION: Final[Isolation] = "per-worker"
# Fuel of one call into the plugin (about one unit a wasm instruction): a few hundred ms of
# work; a loop runs out of it and fails its action as `plugin-out-of-fuel`.
DEFAULT_FUEL: Final = 500_000_000
DEFAULT_MEMORY: Final = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PluginSettings:
    isolation: Isolation
    fuel: int
    memory: int

    @classmethod
    def of(cls, spec: ComponentSpec) -> PluginSettings:
        meta = spec.metadata
        isolation = meta.get("isolation", DEFAULT_ISOLATION)
        if isolation not in ("per-worker", "per-user"):
            raise RunError(
                f"component '{spec.name}': metadata.isolation is {isolation!r}, "
                "expected per-worker or per-user"
            )
        fuel = meta.get("fuel", DEFAULT_FUEL)
        if isinstance(fuel, bool) or not isinstance(fuel, int) or fuel <= 0:
            raise RunError(
                f"component '{spec.name}': metadata.fuel is {fuel!r}, expected a positive integer"
            )
        raw = meta.get("memory-limit", DEFAULT_MEMORY)
        try:
            memory = parse_size(raw) if isinstance(raw, str) else int(raw)
        except (UnitError, TypeError, ValueError):
            memory = -1
        if memory <= 0:
            raise RunError(
                f"component '{spec.name}': metadata.memory-limit is {raw!r}, "
                "expected a size such as 64MiB"
            )
        return cls("per-user" if isolation == "per-user" else "per-worker", fuel, memory)


def failure_of(name: str, exc: BaseException, settings: PluginSettings) -> tuple[str, str]:
    """The error code and message of a call into plugin `name` that raised `exc`."""
    if isinstance(exc, wasmtime.WasmtimeError | wasmtime.Trap):
        text = str(exc)
        reason = text.rsplit("Caused by:", 1)[-1].strip().splitlines()[0] if text else "trap"
        if "all fuel consumed" in text:
            return codes.PLUGIN_OUT_OF_FUEL, (
                f"plugin '{name}' ran out of fuel ({settings.fuel} units a call): "
                "a loop, or more work than one call may do"
            )
        if "memory" in text and ("limit" in text or "exceeds" in text):
            return codes.PLUGIN_OUT_OF_MEMORY, (
                f"plugin '{name}' needs more memory than its limit "
                f"({settings.memory} bytes): {reason}"
            )
        return codes.PLUGIN_TRAP, (
            f"plugin '{name}' trapped: {reason} (memory limit {settings.memory} bytes: "
            "a refused memory.grow usually ends in such a trap)"
        )
    return codes.PLUGIN_WRONG_TYPE, f"plugin '{name}': {exc}"


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


def to_json(value: Any) -> str:
    """`value` as the JSON text a plugin gets (mappings and sequences as such, the rest as
    text)."""
    return json.dumps(value, default=_plain, separators=(",", ":"))
