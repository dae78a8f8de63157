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
- compile: cold (wasmtime compiles) and from the artifact cache (engine.compile_component);
- pollable (build/plugins/progress.wasm, the progress pollable): one `ready()` (empty feed,
  ready recomputed each call and cached) and one `block(16)` with 16 changes waiting, called
  --calls times from the guest, 200 an action, less the guest's empty loop; and the host side
  alone (`PollSubscription.ready` / `block` called from Python).

Pinned to core 0 when the machine has two or more (docs/benchmarks.md "How to read").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wbsrun.core.bus import ProgressBus
from wbsrun.core.events import PRIORITY_NORMAL
from wbsrun.dsl.plan import ComponentSpec, ProgressSpec
from wbsrun.plugins.engine import compile_component
from wbsrun.plugins.instances import Instance
from wbsrun.plugins.loader import load_component
from wbsrun.plugins.plugin import WasmPlugin
from wbsrun.poller import ChangeFilter, Poller, Priority, ProgressFeed
from wbsrun.protocols.registry import component_factories

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build" / "plugins"


def _rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _plugin(path: Path, cached: bool = True, progress: ProgressFeed | None = None) -> WasmPlugin:
    spec = ComponentSpec("bench", "0.1.0", "wasi-component", path.name, None, (), {})
    factories = component_factories()
    built = load_component(spec, path, factories, types_cached=cached, progress=progress)
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


@dataclass(eq=False)
class _Subject:
    """A running task as the bus reads it (core/events.ProgressSubject)."""

    task_id: str
    phase: str
    user_id: str = "u1"
    scenario_name: str = "s"
    progress: float = 0.5
    error_class: str | None = None
    milestones: set[str] = field(default_factory=set)


_PRIORITIES: tuple[Priority, ...] = (
    ("critical", {"timeline.phase": ("closing",)}, 1.0),
    ("routine", {}, 0.2),
)


def _feed(rebuild: bool, waiting: int) -> ProgressFeed:
    bus = ProgressBus(ProgressSpec(max_batch_size=100_000))
    feed = ProgressFeed(bus, rebuild=rebuild)
    feed.bind(Poller(bus, priorities=_PRIORITIES), asyncio.Event())
    feed.subscribe(ChangeFilter())  # subscribes the feed to the bus; the guest's comes next
    return feed


def _fill(feed: ProgressFeed, waiting: int) -> None:
    bus = feed.bus
    for i in range(waiting):
        phase = "closing.success" if i % 2 else "executing.running_action"
        bus.publish(_Subject(f"t{i}", phase), "progress", PRIORITY_NORMAL)
    bus.flush()
    feed.refresh()


def _guest_us(path: Path, calls: int, what: str, rebuild: bool, waiting: int) -> float:
    feed = _feed(rebuild, waiting)
    inst = _plugin(path, progress=feed).pool.get("")
    _fill(feed, waiting)

    # 200 calls an action: a block(16) loop of thousands would use a call's fuel up.
    per, actions = 200, max(1, calls // 200)

    def median(kind: str) -> float:
        args = json.dumps({"n": per, "what": kind, "max": 16})
        rounds = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(actions):
                inst.call("run-action", "u0001", "bench", args)
            rounds.append((time.perf_counter() - t0) / (per * actions) * 1e6)
        return statistics.median(rounds)

    return median(what) - median("none")


def _host_us(calls: int, what: str, rebuild: bool, waiting: int) -> float:
    feed = _feed(rebuild, waiting)
    sub = feed.subscribe(ChangeFilter())
    _fill(feed, waiting)
    call = sub.ready if what == "ready" else lambda: sub.block(16)
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            call()
        rounds.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(rounds)


def _pollable(path: Path, calls: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, what, rebuild, waiting in (
        ("ready", "ready", True, 0),
        ("ready_cached", "ready", False, 0),
        ("block16", "block", True, 16),
    ):
        out[f"{label}_us"] = _guest_us(path, calls, what, rebuild, waiting)
        out[f"{label}_host_us"] = _host_us(calls, what, rebuild, waiting)
    return out


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
    out["pollable"] = _pollable(BUILD / "progress.wasm", opts.calls)
    for name, figures in out.items():
        print(name, " ".join(f"{k}={v:.3g}" for k, v in figures.items()))
    if opts.json is not None:
        opts.json.write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
