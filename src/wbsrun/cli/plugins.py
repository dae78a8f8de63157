"""`wbsrun plugins check BUNDLE`, the same check inside `wbsrun validate`, and the
WebAssembly loader `wbsrun run` hands the component registry (docs/wasi.md)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from wbsrun.cli.exits import EXIT_INVALID, EXIT_RUN_ERROR
from wbsrun.dsl.plan import ComponentSpec
from wbsrun.errors import BundleError, RunError, WbsrunError
from wbsrun.plugins.check import CheckResult, check_bundle
from wbsrun.protocols.registry import WasmLoader

__all__ = ["check_for_validate", "plugins_group", "wasm_loader"]


def wasm_loader(progress: Any = None) -> WasmLoader | None:
    """The WebAssembly host, or None when the `wasi` extra (wasmtime) is not installed: a
    component with its entry in the bundle then refuses the start, or falls back. wasmtime
    is imported at the first component loaded, not by every run. `progress`: the run's
    change feed (`wbsrun.poller.ProgressFeed`) that the progress pollable reads, if any."""
    if importlib.util.find_spec("wasmtime") is None:
        return None

    def load(spec: ComponentSpec, path: Path, factories: Mapping[str, Any]) -> Any:
        from wbsrun.plugins.loader import load_component

        return load_component(spec, path, factories, progress=progress)

    return load


def _report(results: list[CheckResult]) -> int:
    bad = 0
    for r in results:
        if r.diagnostic is None:
            click.echo(f"ok: component '{r.name}': {r.entry} targets the world '{r.world}'")
        else:
            bad += 1
            click.echo(r.diagnostic.format(), err=True)
    return bad


@click.group("plugins")
def plugins_group() -> None:
    """WebAssembly plugins (docs/wasi.md)."""


@plugins_group.command("check")
@click.argument("path", type=click.Path(path_type=Path))
def check(path: Path) -> None:
    """Check every wasi-component whose entry is in the bundle against its WIT world
    (wasm-tools component targets); exit 0 if all do, 2 if one does not."""
    try:
        results = check_bundle(path)
    except WbsrunError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INVALID if isinstance(exc, BundleError) else EXIT_RUN_ERROR)
    if not results:
        click.echo("no wasi-component with its entry in the bundle: nothing to check")
        return
    bad = _report(results)
    if bad:
        click.echo(f"{bad} component(s) do not target their world", err=True)
        sys.exit(EXIT_INVALID)


def check_for_validate(path: Path) -> int:
    """`wbsrun validate`'s interface check: the components that fail (0: none, or none to
    check); without wasm-tools, a notice and 0."""
    try:
        results = check_bundle(path)
    except RunError as exc:
        click.echo(f"notice: WebAssembly components not checked: {exc}", err=True)
        return 0
    return _report(results) if results else 0
