"""One wasmtime engine for the process, and components compiled once: cached on disk as
serialized artifacts keyed by wasmtime's version, the engine's configuration and the wasm's
sha256 (docs/wasi.md "Cache").

The engine meters fuel (a plugin's call gets a budget: a loop runs out of it instead of
hanging the run) and nothing else differs from wasmtime's defaults.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Final

import wasmtime
from wasmtime.component import Component

__all__ = ["ENGINE_CONFIG", "Compiled", "cache_dir", "compile_component", "engine"]

# Part of the cache key: an artifact compiled under another configuration is never loaded.
ENGINE_CONFIG: Final = "consume_fuel=1;opt=speed"
_SUFFIX: Final = ".cwasm"


@cache
def engine() -> wasmtime.Engine:
    """The process's engine: every plugin's component, store and linker comes from it."""
    config = wasmtime.Config()
    config.consume_fuel = True
    config.cranelift_opt_level = "speed"
    return wasmtime.Engine(config)


def cache_dir() -> Path:
    """WBSRUN_CACHE_DIR, else $XDG_CACHE_HOME/wbsrun, else ~/.cache/wbsrun; artifacts go in
    its `wasm/` folder."""
    explicit = os.environ.get("WBSRUN_CACHE_DIR")
    if explicit:
        return Path(explicit) / "wasm"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "wbsrun" / "wasm"


@dataclass(frozen=True, slots=True)
class Compiled:
    """A compiled component; `cached` tells whether it came from the artifact cache."""

    component: Component
    sha256: str
    cached: bool


def _key(digest: str) -> str:
    text = f"wasmtime={version('wasmtime')};{ENGINE_CONFIG};wasm={digest}"
    return hashlib.sha256(text.encode()).hexdigest()


def compile_component(wasm: bytes, where: Path | None = None) -> Compiled:
    """`wasm` compiled, from the cache when an artifact of the same key is there.

    A cache that cannot be read or written (read-only home, a truncated artifact) costs a
    compilation, never the run: the artifact is rebuilt or simply not kept."""
    digest = hashlib.sha256(wasm).hexdigest()
    folder = where if where is not None else cache_dir()
    path = folder / (_key(digest) + _SUFFIX)
    eng = engine()
    if path.is_file():
        # Read, not mapped (`deserialize_file` maps the file: one rewritten in place under
        # a live component would crash the process).
        try:
            return Compiled(Component.deserialize(eng, path.read_bytes()), digest, True)
        except (OSError, wasmtime.WasmtimeError):
            pass  # another wasmtime's or a damaged artifact: compiled again below
    component = Component(eng, wasm)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: a concurrent run never reads half an artifact.
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(bytes(component.serialize()))
        os.replace(tmp, path)
    except OSError:
        pass
    return Compiled(component, digest, False)
