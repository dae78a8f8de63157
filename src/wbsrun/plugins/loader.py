"""A `wasi-component`'s entry → the wbsrun component that runs it.

The world is told by what the component exports: `wbsrun:plugin/frame` (a protocol plugin,
`WasmPlugin`) or `wbsrun:resource/provider` (a lease provider, `WasmLeaseProvider`). The
component is compiled once (engine.py's cache) and instantiated once here, so that a missing
import, an export of the wrong shape or a refused `init` stops the start with the reason,
not the first user.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wasmtime import WasmtimeError

from wbsrun.core.ports import Component
from wbsrun.dsl.plan import ComponentSpec
from wbsrun.errors import RunError
from wbsrun.plugins.calls import MissingExport, WrongType
from wbsrun.plugins.engine import compile_component
from wbsrun.plugins.lease import PROVIDER, WasmLeaseProvider
from wbsrun.plugins.plugin import FRAME, WasmPlugin
from wbsrun.plugins.progress import PROGRESS, ProgressSource
from wbsrun.plugins.settings import PluginSettings

__all__ = ["load_component"]

# The largest entry read (a componentize-py guest is ~20 MB).
MAX_ENTRY_BYTES = 256 * 1024 * 1024


def _sender(spec: ComponentSpec, factories: Mapping[str, Any]) -> Component:
    """The built-in `http`, configured as the plugin's own (timeout, max-body, tls,
    transport), which sends what the plugin queues."""
    http = factories.get("http")
    if http is None:
        raise RunError("no built-in `http` to send the plugin's requests with")
    sender: Component = http(spec)
    return sender


def load_component(
    spec: ComponentSpec,
    path: Path,
    factories: Mapping[str, Any],
    types_cached: bool = True,
    progress: ProgressSource | None = None,
) -> Component:
    """The component of `spec`, whose entry is `path`; RunError saying why it cannot be.
    `progress`: the run's change feed, when `progress.poller.progress_pollable` is on."""
    settings = PluginSettings.of(spec)
    try:
        if path.stat().st_size > MAX_ENTRY_BYTES:
            raise RunError(f"{path.name} is over {MAX_ENTRY_BYTES} bytes")
        wasm = path.read_bytes()
    except OSError as exc:
        raise RunError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        compiled = compile_component(wasm)
    except WasmtimeError as exc:
        raise RunError(f"not a WebAssembly component wasmtime can compile: {exc}") from exc
    component = compiled.component
    built: WasmPlugin | WasmLeaseProvider
    if component.get_export_index(FRAME) is not None:
        sender = _sender(spec, factories)
        built = WasmPlugin(spec, component, sender, settings, types_cached, progress)
        if built.imports_progress and progress is None:
            raise RunError(
                f"it imports {PROGRESS}, which this run does not offer: set "
                "progress.poller.progress_pollable: true (docs/dsl.md)"
            )
        # The probe's subscriptions (made by its init) are the shared instance's, or closed.
        built.owner = "" if settings.isolation == "per-worker" else "<probe>"
    elif component.get_export_index(PROVIDER) is not None:
        built = WasmLeaseProvider(spec, component, settings)
    else:
        raise RunError(
            f"it exports neither {FRAME} (a plugin) nor {PROVIDER} (a lease provider); "
            "`wbsrun plugins check` tells what it does export"
        )
    try:
        probe = built.pool.new()
    except (WasmtimeError, MissingExport, WrongType) as exc:
        reason = _first_line(exc)
        if "exceeds memory limits" in reason:
            reason += f" (metadata.memory-limit: {settings.memory} bytes)"
        raise RunError(f"cannot be instantiated: {reason}") from exc
    if settings.isolation == "per-worker" or isinstance(built, WasmLeaseProvider):
        built.pool.adopt(probe)
    elif isinstance(built, WasmPlugin):
        built.progress.drop_owner("<probe>")
    return built


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.replace("\n\nCaused by:\n   ", ":").splitlines()[0] if text else type(exc).__name__
