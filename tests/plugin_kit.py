"""WebAssembly plugins for the tests: the examples (examples/plugins/build.py, what `make
plugins` builds), the misbehaving guests of tests/plugins/guests, and scenario pieces.

Everything is built once a session into build/plugins (kept between sessions while newer than
its sources), and compiled once into the artifact cache build/wasm-cache, which the session
uses as WBSRUN_CACHE_DIR: a Python guest compiles in ~25 s, loads from the cache in ~0.1 s.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scenario_kit import Doc

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build" / "plugins"
CACHE = REPO / "build" / "wasm-cache"
GUESTS = Path(__file__).resolve().parent / "plugins" / "guests"
WIT = REPO / "src" / "wbsrun" / "plugins" / "wit"

__all__ = ["Built", "built_plugins", "plugin_component", "put"]


def _build_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "plugins_build", REPO / "examples" / "plugins" / "build.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Built:
    ping: Path  # examples/plugins/ping_wat (WAT)
    fetch: Path  # examples/plugins/fetch_py (componentize-py)
    lease: Path  # examples/plugins/lease_py (componentize-py, a lease provider)
    progress: Path  # examples/plugins/progress_py (componentize-py, the progress pollable)
    hostile: Path  # traps / spins / grows / answers a list, by its call's first letter
    wrong: Path  # run-action returns u32 (a world of the wrong type)
    extra: Path  # imports host.spawn, which the world does not have
    renamed: Path  # exports release-users instead of release-user


def _variant_wit(name: str, old: str, new: str) -> Path:
    """The plugin world with one line changed, for the guests built against a wrong one."""
    folder = BUILD / "test" / f"wit-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    text = (WIT / "plugin" / "world.wit").read_text(encoding="utf-8")
    assert old in text
    (folder / "world.wit").write_text(text.replace(old, new), encoding="utf-8")
    return folder


def _guests(build: Any) -> dict[str, Path]:
    out = BUILD / "test"
    out.mkdir(parents=True, exist_ok=True)
    plugin_wit = WIT / "plugin"
    wrong_wit = _variant_wit("wrong", "args-json: string) -> step;", "args-json: string) -> u32;")
    extra_wit = _variant_wit(
        "extra", "  send: func(req: request) -> u32;", "  spawn: func(cmd: string) -> u32;"
    )
    renamed_wit = _variant_wit("renamed", "release-user: func", "release-users: func")
    renamed_src = out / "renamed.wat"
    ping = (REPO / "examples" / "plugins" / "ping_wat" / "plugin.wat").read_text("utf-8")
    renamed_src.write_text(ping.replace('#release-user"', '#release-users"'), "utf-8")
    jobs = {
        "hostile": (GUESTS / "hostile.wat", plugin_wit),
        "wrong": (GUESTS / "wrong.wat", wrong_wit),
        "extra": (GUESTS / "extra.wat", extra_wit),
        "renamed": (renamed_src, renamed_wit),
    }
    return {
        name: build.wat_component(src, wit, "plugin", out / f"{name}.wasm")
        for name, (src, wit) in jobs.items()
    }


@pytest.fixture(scope="session")
def built_plugins() -> Iterator[Built]:
    """The example and test plugins, built and compiled; WBSRUN_CACHE_DIR set meanwhile."""
    pytest.importorskip("wasmtime", reason="the `wasi` extra is not installed")
    build = _build_module()
    examples = build.build(BUILD)
    guests = _guests(build)
    before = os.environ.get("WBSRUN_CACHE_DIR")
    os.environ["WBSRUN_CACHE_DIR"] = str(CACHE)
    build.precompile([*examples, *guests.values()], CACHE)
    try:
        yield Built(*examples, **guests)
    finally:
        if before is None:
            os.environ.pop("WBSRUN_CACHE_DIR", None)
        else:
            os.environ["WBSRUN_CACHE_DIR"] = before


def put(bundle: Path, wasm: Path, name: str) -> str:
    """Copy `wasm` into the bundle as plugins/NAME.wasm; the bundle-relative entry."""
    target = bundle / "plugins" / f"{name}.wasm"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(wasm, target)
    return f"plugins/{name}.wasm"


def plugin_component(name: str, entry: str, *calls: str, **metadata: Any) -> Doc:
    """A `components[]` entry of kind wasi-component."""
    out: Doc = {
        "name": name,
        "version": "0.1.0",
        "kind": "wasi-component",
        "entry": entry,
        "capabilities": list(calls),
    }
    if metadata:
        out["metadata"] = {k.replace("_", "-"): v for k, v in metadata.items()}
    return out
