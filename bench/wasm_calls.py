"""What a WebAssembly plugin costs: a call, an instance, an instance's memory, a compile.

    .venv/bin/python bench/wasm_calls.py              # after `make plugins`
    .venv/bin/python bench/wasm_calls.py --calls 20000 --instances 20 --json out.json

Uses the example plugins of build/plugins (examples/plugins/build.py) and the test guest
build/plugins/test/hostile.wasm (tests/plugin_kit.py builds it: run tests/plugins once).

- call: one `run-action` that answers at once (`done`), timed over --calls calls in one
  instance, with the function types cached (wbsrun's `TypedFunc`) and without (wasmtime-py's
  `Func.__call__`, which asks the store for the type every call); the median of 5 rounds;
- instantiate: a new store + instance + the frame's exports looked up + `init`;
- memory per instance: the process's RSS growth over --instances live instances / count;
- compile: cold (wasmtime compiles) and from the artifact cache (engine.compile_component).

Pinned to core 0 when the machine has two or more (docs/benchmarks.md "How to read").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from wbsrun.dsl.plan import ComponentSpec
from wbsrun.plugins.engine import compile_component
from wbsrun.plugins.instances import Instance
from wbsrun.plugins.loader import load_component
from wbsrun.plugins.plugin import WasmPlugin
from wbsrun.protocols.registry import component_factories

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build" / "plugins"


def _rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _plugin(path: Path, cached: bool = True) -> WasmPlugin:
    spec = ComponentSpec("bench", "0.1.0", "wasi-component", path.name, None, (), {})
    built = load_component(spec, path, component_factories(), types_cached=cached)
    assert isinstance(built, WasmPlugin)
    return built


def _call_us(path: Path, call: str, calls: int, cached: bool) -> float:
    inst: Instance = _plugin(path, cached).pool.get("")
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            inst.call("run-action", "u0001", call, "{}")
        rounds.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(rounds)


def _instances(path: Path, count: int) -> dict[str, float]:
    plugin = _plugin(path)
    plugin.pool.new()  # warm: the first instance pays for lazy initialisations
    before = _rss()
    t0 = time.perf_counter()
    live = [plugin.pool.new() for _ in range(count)]
    took = time.perf_counter() - t0
    grown = _rss() - before
    assert len(live) == count
    return {"instantiate_ms": took / count * 1e3, "rss_per_instance_mib": grown / count / 2**20}


def _compile(path: Path) -> dict[str, float]:
    wasm = path.read_bytes()
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        assert not compile_component(wasm, Path(cache)).cached
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert compile_component(wasm, Path(cache)).cached
        warm = time.perf_counter() - t0
    return {"compile_cold_s": cold, "load_cached_s": warm, "wasm_mib": len(wasm) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--json", type=Path)
    opts = parser.parse_args()
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {0})
    wat, py = BUILD / "test" / "hostile.wasm", BUILD / "fetch.wasm"
    out: dict[str, Any] = {}
    for name, path, call in (("wat", wat, "ok"), ("python", py, "nope")):
        out[name] = {
            "call_us_types_cached": _call_us(path, call, opts.calls, True),
            "call_us_types_per_call": _call_us(path, call, opts.calls, False),
            **_instances(path, opts.instances),
            **_compile(path),
        }
    for name, figures in out.items():
        print(name, " ".join(f"{k}={v:.3g}" for k, v in figures.items()))
    if opts.json is not None:
        opts.json.write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
