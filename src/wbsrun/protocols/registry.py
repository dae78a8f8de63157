"""Component discovery through the `wbsrun.components` entry-point group."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from wbsrun.core.ports import Component, LogSink
from wbsrun.dsl.plan import ComponentSpec, Plan
from wbsrun.errors import RunError

__all__ = [
    "ENTRY_POINT_GROUP",
    "WasmLoader",
    "build_components",
    "component_factories",
    "provides",
]

ENTRY_POINT_GROUP = "wbsrun.components"
# Loads a wasi-component's entry (spec, the entry's path, the factories: its HTTP sender is
# the built-in `http`), raising RunError when it cannot. `wbsrun.plugins.load_component`;
# the CLI passes it in (an adapter beside this one: wbsrun.plugins).
WasmLoader = Callable[[ComponentSpec, Path, Mapping[str, Any]], Any]


def component_factories() -> dict[str, Any]:
    """name → component class, built-ins first so a third party cannot shadow them silently."""
    from wbsrun.protocols.http import HttpComponent
    from wbsrun.protocols.logger import LoggerComponent
    from wbsrun.protocols.resource_manager import ResourceManagerComponent

    found: dict[str, Any] = {
        "http": HttpComponent,
        "logger": LoggerComponent,
        "resource-manager": ResourceManagerComponent,
    }
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            continue
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # a broken plugin must not take the runner down
            raise RunError(f"component '{ep.name}' ({ep.value}) failed to load: {exc}") from exc
    return found


def provides(factories: Mapping[str, Any] | None = None) -> dict[str, frozenset[str]]:
    """name → calls its implementation provides, for validation."""
    factories = factories if factories is not None else component_factories()
    return {name: frozenset(getattr(cls, "CALLS", frozenset())) for name, cls in factories.items()}


def _used_components(plan: Plan) -> set[str]:
    from wbsrun.dsl.plan import HandlerCall

    used = {a.component for a in plan.actions.values()}
    handler_lists = [e.actions for e in plan.exits.values()]
    for wf in plan.workflows.values():
        handler_lists += [wf.on_error, wf.on_timeout]
        for node in wf.nodes.values():
            handler_lists += [node.on_error, node.on_timeout]
    for res in plan.resources.values():
        # Every resource is leased through its provider; the built-in one when none is named.
        used.add(res.provider_component or "resource-manager")
        if res.health_check is not None:
            used.add(res.health_check.probe.component)
            handler_lists.append(res.health_check.on_failure)
    for handlers in handler_lists:
        used.update(h.action.component for h in handlers if isinstance(h, HandlerCall))
    return used


def build_components(
    plan: Plan,
    log: LogSink,
    factories: Mapping[str, Any] | None = None,
    wasm: WasmLoader | None = None,
) -> dict[str, Component]:
    """One instance per component the plan uses.

    A `wasi-component` whose `entry` is absent from the bundle runs the built-in of the same
    name, with a notice (the DSL contract, §3). One whose entry is present is loaded by
    `wasm`; if that fails (or no loader is given), the run does not start unless the
    component says `fallback: builtin` (docs/wasi.md "Fallback")."""
    factories = factories if factories is not None else component_factories()
    out: dict[str, Component] = {}
    for name in sorted(_used_components(plan) | set(plan.components)):
        spec = plan.components.get(name) or ComponentSpec(
            name=name,
            version="0.0.0",
            kind="native",
            entry=None,
            wit=None,
            capabilities=(),
            metadata={},
        )
        cls = factories.get(name)
        if spec.kind == "wasi-component" and spec.entry:
            path = plan.res_dir / spec.entry
            if path.is_file():
                loaded = _load_wasm(spec, path, cls, factories, wasm, log)
                if loaded is not None:
                    out[name] = loaded
                    continue
            else:
                log.log(
                    "info",
                    f"component '{name}': {spec.entry} not in the bundle; "
                    "using the built-in implementation",
                )
        if cls is None:
            raise RunError(f"no implementation registered for component '{name}'")
        out[name] = cls(spec)
    return out


def _load_wasm(
    spec: ComponentSpec,
    path: Path,
    builtin: Any,
    factories: Mapping[str, Any],
    wasm: WasmLoader | None,
    log: LogSink,
) -> Component | None:
    """The loaded component; None when it falls back to the built-in (with a notice)."""
    try:
        if wasm is None:
            raise RunError(
                "this wbsrun has no WebAssembly host (install the `wasi` extra: "
                "pip install 'wbsrun[wasi]')"
            )
        loaded: Component = wasm(spec, path, factories)
        return loaded
    except RunError as exc:
        reason = str(exc)
    if spec.fallback == "builtin" and builtin is not None:
        log.log(
            "warn",
            f"component '{spec.name}': {spec.entry} cannot be loaded ({reason}); "
            "using the built-in implementation (fallback: builtin)",
        )
        return None
    hint = "; `fallback: builtin` would run the built-in instead" if builtin is not None else ""
    raise RunError(f"component '{spec.name}': {spec.entry} cannot be loaded: {reason}{hint}")
