"""Component discovery through the `wbsrun.components` entry-point group."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from wbsrun.core.ports import Component, LogSink
from wbsrun.dsl.plan import ComponentSpec, Plan
from wbsrun.errors import RunError

__all__ = ["ENTRY_POINT_GROUP", "build_components", "component_factories", "provides"]

ENTRY_POINT_GROUP = "wbsrun.components"


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
    plan: Plan, log: LogSink, factories: Mapping[str, Any] | None = None
) -> dict[str, Component]:
    """One instance per component the plan uses, with notices for WebAssembly fallbacks."""
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
        if cls is None:
            raise RunError(f"no implementation registered for component '{name}'")
        if spec.kind == "wasi-component" and spec.entry:
            present = (plan.res_dir / spec.entry).is_file()
            log.log(
                "info",
                f"component '{name}': "
                + (
                    f"{spec.entry} found, but WebAssembly loading is a later phase; "
                    if present
                    else f"{spec.entry} not in the bundle; "
                )
                + "using the built-in implementation",
            )
        out[name] = cls(spec)
    return out
