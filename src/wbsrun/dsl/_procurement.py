"""The procurement register: `registers.procurement.plugins` lists every declared component
with its `entry` and `wit` (DSL §3) and where its implementation comes from (`source`:
`bundle` for a wasi-component whose entry is in the bundle, else `built-in`; a present entry
that then fails to load with `fallback: builtin` is told by the run's log).

A scenario's own records (the workbook's defaults, a scenario's `user.context`) are kept:
a record of the same `name` gets the fields added, the other components are appended."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from wbsrun.dsl._build_base import freeze
from wbsrun.dsl.plan import ComponentSpec, ScenarioSpec, WorkbookSpec

__all__ = ["record_plugins"]


def _records(components: Mapping[str, ComponentSpec], res_dir: Path) -> list[dict[str, Any]]:
    out = []
    for spec in components.values():
        present = bool(spec.entry) and (res_dir / str(spec.entry)).is_file()
        bundle = spec.kind == "wasi-component" and present
        out.append(
            {
                "name": spec.name,
                "version": spec.version,
                "kind": spec.kind,
                "entry": spec.entry,
                "wit": spec.wit,
                "source": "bundle" if bundle else "built-in",
            }
        )
    return out


def _merged(existing: Any, records: list[dict[str, Any]]) -> Any:
    items = [dict(i) if isinstance(i, Mapping) else i for i in existing or ()]
    by_name = {i.get("name"): i for i in items if isinstance(i, dict)}
    for rec in records:
        mine = by_name.get(rec["name"])
        if mine is None:
            items.append(rec)
        else:
            mine.update({k: v for k, v in rec.items() if k not in ("name", "version")})
            mine.setdefault("version", rec["version"])
    return freeze(items)


def _with_plugins(procurement: Any, records: list[dict[str, Any]]) -> Any:
    body = dict(procurement) if isinstance(procurement, Mapping) else {}
    body["plugins"] = _merged(body.get("plugins"), records)
    return MappingProxyType(body)


def record_plugins(
    workbook: WorkbookSpec,
    scenarios: tuple[ScenarioSpec, ...],
    components: Mapping[str, ComponentSpec],
    res_dir: Path,
) -> tuple[WorkbookSpec, tuple[ScenarioSpec, ...]]:
    """The workbook and scenarios with the components recorded in their procurement
    register (the `registers` section's defaults, when the workbook declares it)."""
    if not components:
        return workbook, scenarios
    records = _records(components, res_dir)
    defaults = dict(workbook.defaults)
    registers = defaults.get("registers")
    if registers is not None:
        section = dict(registers)
        section["procurement"] = _with_plugins(section.get("procurement"), records)
        defaults["registers"] = MappingProxyType(section)
        workbook = dataclasses.replace(workbook, defaults=MappingProxyType(defaults))
    out = []
    for sc in scenarios:
        own = sc.context.get("procurement")
        if isinstance(own, Mapping) and "plugins" in own:
            context = {**sc.context, "procurement": _with_plugins(own, records)}
            sc = dataclasses.replace(sc, context=MappingProxyType(context))
        out.append(sc)
    return workbook, tuple(out)
