"""Plan load time of a bundle: YAML vs the plan cache vs a compiled `.wbsc` file.

    .venv/bin/python bench/dsl_load.py                  # the reference bundle, ../shared/reference
    .venv/bin/python bench/dsl_load.py --bundle DIR --reps 200 --procs 15 --json out.json

Three ways to the same plan (docs/binary-dsl.md):
- yaml: `load_plan` (locate, parse with positions, schema, references, build, flow checks);
- cached: `load_any` on the bundle with a warm plan cache (the key: the bundle's YAML hashed;
  the entry's other sources hashed and checked; the plan decoded);
- wbsc: `load_any` on the compiled file (its sources hashed and checked; the plan decoded).

In-process: each repetition first empties the expression and template caches, so every way
compiles its expressions again as a new process would; the JSON schema and the installed
components (`provides`, the same for all three) stay loaded. Medians and minima over the
repetitions, the three ways interleaved, on the wall clock and in process CPU time (the
bar, ≥ 10×, is on CPU time: on a shared machine a few milliseconds of wall clock also hold
whatever else ran on the core meanwhile). Fresh processes: `--procs` new interpreters per way,
each timing its first load after the imports (the schema's compilation included for YAML,
what a `wbsrun run` pays). The machine is shared: compare the ratios of one run.

Codec: the same plan tree encoded and decoded by msgspec and by msgpack (when installed),
which is why `.wbsc` files are written with msgspec (docs/dependencies.md).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from wbsrun.dsl import expr, template
from wbsrun.dsl.binary import load_any, write_plan
from wbsrun.dsl.binary.codec import Encoder
from wbsrun.dsl.bundle import locate_bundle
from wbsrun.dsl.loader import load_plan
from wbsrun.protocols.registry import provides

_SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference"
# The canonical bundle beside the repository, else its packaged copy (the same scenario).
REFERENCE = (
    _SHARED
    if (_SHARED / "http_scenario.yaml").is_file()
    else Path(__file__).resolve().parents[1] / "src" / "wbsrun" / "examples" / "http_tri_phase"
)
WAYS = ("yaml", "cached", "wbsc")

_CHILD = """
import sys, time
from pathlib import Path
from wbsrun.dsl.binary import load_any
from wbsrun.dsl.loader import load_plan
from wbsrun.protocols.registry import provides
p = provides()
way, path = sys.argv[1], Path(sys.argv[2])
t, c = time.perf_counter(), time.process_time()
if way == "yaml":
    load_plan(path, p)
else:
    load_any(path, p)
print(time.perf_counter() - t, time.process_time() - c)
"""


def _fresh_caches() -> None:
    expr._compile_cached.cache_clear()
    template._compile_cached.cache_clear()


Times = dict[str, dict[str, list[float]]]


def in_process(loaders: dict[str, Callable[[], Any]], reps: int) -> Times:
    times: Times = {"wall": {w: [] for w in loaders}, "cpu": {w: [] for w in loaders}}
    for _ in range(reps):
        for way, load in loaders.items():
            _fresh_caches()
            start, cpu = time.perf_counter(), time.process_time()
            load()
            times["wall"][way].append(time.perf_counter() - start)
            times["cpu"][way].append(time.process_time() - cpu)
    return times


def fresh_processes(paths: dict[str, Path], procs: int) -> Times:
    times: Times = {"wall": {w: [] for w in paths}, "cpu": {w: [] for w in paths}}
    for _ in range(procs):
        for way, path in paths.items():
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, way, str(path)],
                capture_output=True,
                text=True,
                check=True,
                env=os.environ.copy(),
            )
            wall, cpu = out.stdout.split()
            times["wall"][way].append(float(wall))
            times["cpu"][way].append(float(cpu))
    return times


def codecs(tree: Any, reps: int) -> dict[str, dict[str, float]]:
    """Encode and decode times (µs, medians) and sizes of the plan tree per library."""
    out: dict[str, dict[str, float]] = {}
    libs: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {
        "msgspec": (msgspec.msgpack.encode, msgspec.msgpack.decode),
    }
    try:
        msgpack: Any = importlib.import_module("msgpack")  # untyped; with the `ray` extra
        libs["msgpack"] = (msgpack.packb, msgpack.unpackb)
    except ImportError:
        pass
    for name, (enc, dec) in libs.items():
        blob = enc(tree)
        assert dec(blob) == dec(msgspec.msgpack.encode(tree))
        encode, decode = [], []
        for _ in range(reps):
            start = time.perf_counter()
            enc(tree)
            encode.append(time.perf_counter() - start)
            start = time.perf_counter()
            dec(blob)
            decode.append(time.perf_counter() - start)
        out[name] = {
            "encode_us": statistics.median(encode) * 1e6,
            "decode_us": statistics.median(decode) * 1e6,
            "bytes": len(blob),
        }
    return out


def _summary(times: Times) -> dict[str, dict[str, dict[str, float]]]:
    """Per clock (wall, process CPU) and way: median, minimum, and the speed-up of the
    median over YAML's."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for clock, ways in times.items():
        base = statistics.median(ways["yaml"])
        out[clock] = {
            w: {
                "median_ms": statistics.median(t) * 1e3,
                "min_ms": min(t) * 1e3,
                "speedup": base / statistics.median(t),
            }
            for w, t in ways.items()
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=REFERENCE)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--procs", type=int, default=15)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--min-speedup", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dsl-load-") as tmp:
        os.environ["WBSRUN_CACHE_DIR"] = str(Path(tmp) / "cache")
        given = provides()
        plan = load_plan(args.bundle, given)
        data = write_plan(plan, locate_bundle(args.bundle), given)
        wbsc = Path(tmp) / "plan.wbsc"
        wbsc.write_bytes(data)
        load_any(args.bundle, given)  # fills the cache
        loaders: dict[str, Callable[[], Any]] = {
            "yaml": lambda: load_plan(args.bundle, given),
            "cached": lambda: load_any(args.bundle, given),
            "wbsc": lambda: load_any(wbsc, given),
        }
        result: dict[str, Any] = {
            "bundle": str(args.bundle),
            "wbsc_bytes": len(data),
            "in_process": _summary(in_process(loaders, args.reps)),
        }
        if args.procs:
            paths = {"yaml": args.bundle, "cached": args.bundle, "wbsc": wbsc}
            result["fresh_process"] = _summary(fresh_processes(paths, args.procs))
        result["codec"] = codecs(Encoder().encode(plan), args.reps)
    _print(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    # The bar is on CPU time: on a shared machine the wall clock of a few milliseconds also
    # holds whatever else the cores ran meanwhile (both are printed).
    worst = min(
        s["speedup"]
        for part in ("in_process", "fresh_process")
        for w, s in result.get(part, {}).get("cpu", {}).items()
        if w != "yaml"
    )
    if worst < args.min_speedup:
        print(f"FAIL: slowest CPU speed-up {worst:.1f}x < {args.min_speedup}x")
        sys.exit(1)


def _print(result: dict[str, Any]) -> None:
    print(f"bundle {result['bundle']}: compiled plan {result['wbsc_bytes']} bytes")
    for part in ("in_process", "fresh_process"):
        if part not in result:
            continue
        for clock, ways in result[part].items():
            print(f"{part.replace('_', ' ')}, {clock}:")
            for way, st in ways.items():
                print(
                    f"  {way:7} median {st['median_ms']:7.2f} ms  min {st['min_ms']:7.2f} ms"
                    f"  {st['speedup']:5.1f}x"
                )
    for name, c in result["codec"].items():
        print(
            f"codec {name:8} encode {c['encode_us']:6.0f} µs  decode {c['decode_us']:6.0f} µs"
            f"  {c['bytes']:.0f} bytes"
        )


if __name__ == "__main__":
    main()
