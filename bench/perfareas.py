"""Where wbsrun's CPU goes in the compiled build, by area: `perf` samples of the load child.

    .venv/bin/python bench/perfareas.py                     # 1,000 users, 6 s, ~25 s
    .venv/bin/python bench/perfareas.py --out /tmp/p.txt    # keep `perf script`'s stacks
    .venv/bin/python bench/perfareas.py --tool h1-bare      # the bare fast client, alone

Why not bench/hotpath.py's py-spy profile: py-spy sees the compiled functions only as native
frames, and `perf record` (kernel and libpython included) is what a mypyc build is read with.
The child is bench/transport.py's `--child wbsrun-fast` (the reference scenario wired as `wbsrun
run` wires it) pinned to core 0, against nginx on core 1; after `--skip` s of ramp-up, perf
samples it for `--window` s at `--freq` Hz with DWARF call stacks. mypyc names each compiled
function `CPyDef_<module>___<function>`, so every sample goes to the area of the innermost
wbsrun function on its stack (what it calls in CPython, libc or the kernel counts for it);
samples without one are the event loop, the kernel's network work and the interpreter.

µs per request = the area's share of the samples × CPU µs per request, the latter from the
child's CPU time over nginx's count of requests in the same window. perf costs the child some
speed (DWARF unwinding copies 16 KiB of stack a sample): read the shares, and take CPU per
request from bench/hotpath.py. Needs `perf` (Debian: linux-perf) and the compiled build.
Results: docs/benchmarks.md ("Where the CPU goes, by area").
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import transport as T  # bench/ is sys.path[0] when run

# (area, mypyc module names: the last part of the module's dotted name)
AREAS = (
    ("HTTP transport (protocols/h1, _transport)", ("_client", "_connection", "_pool", "_head")),
    ("http component (protocols/http)", ("http", "_transport")),
    ("templates, expressions, scope", ("template", "expr", "scope")),
    (
        "workbook (sparse ledger, packing)",
        ("sparse", "_sparse_parts", "_sparse_store", "_packing", "_state", "workbook", "ledger"),
    ),
    ("progress events (aggregator, bus)", ("aggregate", "bus", "sinks")),
    ("poller checks", ("_poller", "_health", "_queue")),
    ("metrics (histograms)", ("stats",)),
    (
        "executor, handlers, deadlines",
        ("executor", "handlers", "task", "deadlines", "rate", "outcome", "handles", "components"),
    ),
    ("leases and pools", ("leases", "resource_manager", "pool", "provider")),
    ("log, persist", ("logger", "log", "persist")),
)
NONE = "event loop, kernel, interpreter (no wbsrun frame)"
_MODULE = {m: area for area, modules in AREAS for m in modules}
_COMPILED = re.compile(r"^CPy(?:Def|Py)_(.+?)___")


def area_of(symbol: str) -> str | None:
    m = _COMPILED.match(symbol)
    if m is None:
        return None
    return _MODULE.get(m.group(1), f"other: {m.group(1)}")


def stacks(script: str) -> list[list[str]]:
    """`perf script -F ip,sym` output as stacks of symbols, innermost first."""
    out: list[list[str]] = []
    cur: list[str] = []
    for line in script.splitlines():
        line = line.strip()
        if not line:
            if cur:
                out.append(cur)
                cur = []
            continue
        parts = line.split(None, 1)
        cur.append((parts[1] if len(parts) > 1 else parts[0]).removesuffix(" (inlined)"))
    if cur:
        out.append(cur)
    return out


def by_area(samples: list[list[str]]) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for stack in samples:
        counts[next((a for a in map(area_of, stack) if a is not None), NONE)] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tool", choices=("wbsrun-fast", "h1-bare"), default="wbsrun-fast")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--skip", type=float, default=12.0)
    ap.add_argument("--window", type=float, default=6.0)
    ap.add_argument("--freq", type=int, default=999)
    ap.add_argument("--out", type=Path, help="write perf script's stacks here")
    args = ap.parse_args(argv)
    if shutil.which("perf") is None:
        ap.error("needs perf (apt-get install linux-perf)")
    nginx = T.Nginx(T._hosts(args.users))
    data = Path(tempfile.mkdtemp(prefix="wbsrun-perf-")) / "perf.data"
    proc = None
    try:
        cmd = [sys.executable, T.__file__, "--child", args.tool, "--users", str(args.users)]
        cmd += ["--port", str(nginx.port), "--duration", f"{args.skip + args.window + 30:g}"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        time.sleep(args.skip)
        a = (nginx.requests(), T.proc_cpu_s(proc.pid))
        record = ["perf", "record", "-F", str(args.freq), "--call-graph", "dwarf,16384"]
        record += ["-o", str(data), "-p", str(proc.pid), "--", "sleep", f"{args.window:g}"]
        subprocess.run(record, capture_output=True, check=True)
        b = (nginx.requests(), T.proc_cpu_s(proc.pid))
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        nginx.stop()
    requests = b[0] - a[0]
    cpu_us = (b[1] - a[1]) / requests * 1e6 if requests else 0.0
    script = subprocess.run(
        ["perf", "script", "-i", str(data), "-F", "ip,sym"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    shutil.rmtree(data.parent, ignore_errors=True)
    if args.out is not None:
        args.out.write_text(script, encoding="utf-8")
    samples = stacks(script)
    counts = by_area(samples)
    n = len(samples) or 1
    print(
        f"{requests:,} requests in {args.window:g} s ({requests / args.window:,.0f}/s), "
        f"{cpu_us:.1f} CPU µs a request under perf, {len(samples):,} samples"
    )
    names = [area for area, _ in AREAS] + [NONE]
    names += sorted(k for k in counts if k not in names)
    for name in names:
        share = counts[name] / n
        print(f"{name:52s} {share * 100:5.1f}%  {share * cpu_us:5.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
