"""Build the example plugins (examples/plugins/*) into OUT (default build/plugins):

    python examples/plugins/build.py [OUT] [--cache DIR]   (OUT: from the current directory)

- `ping_wat/plugin.wat` → ping.wasm: `wasm-tools component embed` (the world's WIT into the
  core module) + `component new`;
- `fetch_py/app.py` → fetch.wasm, `lease_py/app.py` → lease.wasm and `progress_py/app.py` →
  progress.wasm (the progress pollable): `componentize-py --stub-wasi` (about 10 s and 20 MB
  each).

A target newer than its sources and the WIT is kept. The tools come with the `wasi` extra
(pyproject.toml): `make plugins` builds these, and the tests that need them depend on it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

# examples/ is wbsrun/examples in the package: the worlds are in wbsrun/plugins/wit.
HERE = Path(__file__).resolve().parent
WIT = HERE.parents[1] / "plugins" / "wit"
BIN = Path(sys.executable).parent
# A world → the folder of wbsrun/plugins/wit that defines it (default: its own name).
_WIT_OF = {"lease-provider": "resource", "progress-plugin": "progress"}


def _stale(target: Path, *sources: Path) -> bool:
    if not target.is_file():
        return True
    built = target.stat().st_mtime
    files = [f for s in sources for f in ([s] if s.is_file() else s.rglob("*"))]
    return any(f.stat().st_mtime > built for f in files)


def wat_component(source: Path, wit: Path, world: str, target: Path) -> Path:
    """A core module in WAT → a component of `world` (adapter-free: it imports no WASI)."""
    core = target.with_suffix(".core.wasm")
    tools = str(BIN / "wasm-tools")
    subprocess.run(  # noqa: S603 - the wasi extra's tools, the repository's files
        [tools, "component", "embed", str(wit), "--world", world, str(source), "-o", str(core)],
        check=True,
    )
    new = [tools, "component", "new", str(core), "-o", str(target)]
    subprocess.run(new, check=True)  # noqa: S603 - as above
    core.unlink()
    return target


def py_component(app: Path, wit: Path, world: str, target: Path) -> Path:
    """A Python guest → a component of `world`; no WASI beyond the stubs."""
    subprocess.run(  # noqa: S603 - the wasi extra's tools, the repository's files
        [
            str(BIN / "componentize-py"),
            "-d", str(wit), "-w", world,
            "componentize", "--stub-wasi", "-p", str(app.parent), app.stem,
            "-o", str(target),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return target


def build(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        ("ping.wasm", HERE / "ping_wat" / "plugin.wat", "plugin", wat_component),
        ("fetch.wasm", HERE / "fetch_py" / "app.py", "plugin", py_component),
        ("lease.wasm", HERE / "lease_py" / "app.py", "lease-provider", py_component),
        ("progress.wasm", HERE / "progress_py" / "app.py", "progress-plugin", py_component),
    ]
    built = []
    for name, source, world, make in jobs:
        wit = WIT / _WIT_OF.get(world, world)
        target = out / name
        if _stale(target, source, wit):
            make(source, wit, world, target)
        built.append(target)
    return built


def precompile(paths: list[Path], cache: Path) -> None:
    """Compile each component into the artifact cache `cache` (wbsrun.plugins.engine), so
    that the first run of each does not pay for it (~25 s a Python guest)."""
    os.environ["WBSRUN_CACHE_DIR"] = str(cache)
    from wbsrun.plugins.engine import compile_component

    for path in paths:
        compile_component(path.read_bytes())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Build the example WebAssembly plugins.")
    parser.add_argument("out", nargs="?", default="build/plugins", type=Path)
    parser.add_argument("--cache", type=Path, help="precompile into this artifact cache")
    opts = parser.parse_args()
    built = build(opts.out)
    if opts.cache is not None:
        precompile(built, opts.cache)
    for path in built:
        print(path)
