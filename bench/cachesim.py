"""Data-cache misses per request, by function: the load child under callgrind's cache model.

    .venv/bin/python bench/cachesim.py --tool wbsrun-fast     # ~4 min; needs valgrind
    .venv/bin/python bench/cachesim.py --tool h1-bare         # the bare client, for the difference

Why: wbsrun's CPU per request grows with the number of users while its instructions per
request do not (bench/hotpath.py --users 300 vs 1000). The question is which code touches
memory that a 1,000-user run has pushed out of the core's L2 (2 MiB here) by the time it is
read again. This machine's hypervisor exposes no hardware counters, so the child runs under
valgrind's callgrind with a simulated 2 MiB first-level data cache (`--D1`, callgrind's LL
setting is overridden by the host's L3) and its misses are counted over a steady window,
divided by nginx's count of requests in it.

The child is bench/transport.py's (`--child TOOL`), so the same users, scenario and nginx
target as there; it runs ~50-100x slower, hence, for `wbsrun-fast`, a copy of the scenario
with every timeout 100x longer and the per-user rate limit lifted (the run would otherwise be
all timeouts), and the cyclic collector off: natively wbsrun freezes the heap every second
and no young collection runs between freezes (core/runner.py); at valgrind's pace one would.
Costs that run per unit of wall time (timer wheels, sweeps, interval flushes) are inflated by
the same factor: read them as artifacts.

Each function's own misses go to its innermost wbsrun caller (split over callers by their
inclusive cost where a function has several): "(no wbsrun) F" is the event loop and
interpreter outside any wbsrun frame. Results: docs/benchmarks.md ("Cache misses").
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import transport as T  # bench/ is sys.path[0] when run

HERE = Path(__file__).resolve().parent
D1 = "2097152,16,64"  # one core's L2 on this machine kind (lscpu: 4 MiB, 2 instances)


def slow_scenario_child(users: int, port: int, duration: float) -> None:
    """bench/transport.py's wbsrun-fast child, with the scenario made fit for valgrind."""
    import gc
    import resource

    from wbsrun.cli.demo import prepare_bundle
    from wbsrun.cli.session import run_loop, wire
    from wbsrun.core.log import RunLog
    from wbsrun.core.runner import RunOptions
    from wbsrun.dsl.loader import load_plan
    from wbsrun.protocols.registry import provides
    from wbsrun.resources.pool import PoolManager

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    bundle = prepare_bundle(
        Path(tempfile.mkdtemp(prefix="wbsrun-cachesim-")), T._hosts(users), port
    )
    for path in bundle.glob("*.yaml"):
        text = re.sub(r"timeout: (\d+)(ms|s)\b", r"timeout: \g<1>00\2", path.read_text())
        path.write_text(text.replace("per-user: 50 req/s", "per-user: 5000 req/s"))
    plan = load_plan(bundle, provides())
    options = RunOptions(users=users, duration=duration, transport="fast")
    runner = wire(plan, options, PoolManager(plan), RunLog(None)).runner
    gc.disable()

    async def main() -> None:
        print(json.dumps({"pid": os.getpid()}), flush=True)
        await runner.run()

    run_loop(main)


def record(tool: str, users: int, warm: float, window: float, out: Path) -> int:
    """Run the child under callgrind, instrument `window` s after `warm` s; requests in it."""
    if shutil.which("valgrind") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "valgrind"], check=True)
    nginx = T.Nginx(T._hosts(users))
    proc = None
    try:
        duration = f"{warm + window + 600:g}"
        if tool == "wbsrun-fast":
            child = [
                sys.executable,
                __file__,
                "--slow-child",
                str(users),
                str(nginx.port),
                duration,
            ]
        else:
            child = [sys.executable, str(HERE / "transport.py"), "--child", tool]
            child += ["--users", str(users), "--port", str(nginx.port), "--duration", duration]
        cmd = ["valgrind", "--tool=callgrind", "--cache-sim=yes", f"--D1={D1}"]
        cmd += ["--instr-atstart=no", f"--callgrind-out-file={out}", *child]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        pid = int(json.loads(proc.stdout.readline())["pid"])
        time.sleep(warm)
        a = nginx.requests()
        subprocess.run(
            ["callgrind_control", "-i", "on", str(pid)], capture_output=True, check=False
        )
        time.sleep(window)
        subprocess.run(
            ["callgrind_control", "-i", "off", str(pid)], capture_output=True, check=False
        )
        b = nginx.requests()
        subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, check=False)
        time.sleep(5)
        return b - a
    finally:
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)  # valgrind itself: the child is its guest
            proc.wait()
        nginx.stop()


def attribute(path: Path, events: tuple[str, ...]) -> tuple[int, dict[str, float]]:
    """Total of `events`, and each function's own share given to its innermost wbsrun caller."""
    names: dict[str, str] = {}
    own: collections.Counter[str] = collections.Counter()
    calls: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    cur = callee = ""
    in_call = False
    columns: list[int] = []

    def ref(token: str) -> str:
        m = re.match(r"\((\d+)\)(?: (.*))?", token)
        assert m is not None
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return m.group(1)

    with path.open() as f:
        for line in f:
            if line.startswith("events:"):
                fields = line.split()[1:]
                columns = [fields.index(e) + 1 for e in events]
            elif line.startswith("fn="):
                cur = ref(line[3:].strip())
            elif line.startswith("cfn="):
                callee = ref(line[4:].strip())
            elif line.startswith("calls="):
                in_call = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                cost = sum(int(parts[i]) for i in columns if i < len(parts))
                if in_call:
                    calls[callee][cur] += cost
                    in_call = False
                else:
                    own[cur] += cost

    def ours(fn: str) -> bool:
        return names.get(fn, "").startswith(("CPyDef_", "CPyDunder_"))

    shares: dict[str, dict[str, float]] = {}

    def share(fn: str, depth: int = 0) -> dict[str, float]:
        if fn in shares:
            return shares[fn]
        if ours(fn):
            shares[fn] = {names[fn]: 1.0}
            return shares[fn]
        shares[fn] = {}  # a cycle back here adds nothing
        callers = {c: v for c, v in calls.get(fn, {}).items() if c != fn}
        total = sum(callers.values())
        got: dict[str, float] = collections.defaultdict(float)
        if callers and depth < 40:
            for c, v in callers.items():
                weight = v / total if total else 1 / len(callers)
                for k, w in share(c, depth + 1).items():
                    got[k] += w * weight
        shares[fn] = dict(got) if got else {f"(no wbsrun) {names.get(fn, fn)}": 1.0}
        return shares[fn]

    by_fn: dict[str, float] = collections.defaultdict(float)
    for fn, cost in own.items():
        for k, w in share(fn).items():
            by_fn[k] += cost * w
    return sum(own.values()), by_fn


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tool", choices=("wbsrun-fast", "h1-bare"), default="wbsrun-fast")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--warm", type=float, default=40.0, help="s before the window (ramp-up)")
    ap.add_argument("--window", type=float, default=60.0, help="s instrumented")
    ap.add_argument("--out", type=Path, help="callgrind file (default: a temp dir)")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--slow-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.slow_child:
        users, port, duration = args.slow_child
        slow_scenario_child(int(users), int(port), float(duration))
        return 0
    out = args.out or Path(tempfile.mkdtemp(prefix="wbsrun-cachesim-")) / "callgrind.out"
    requests = record(args.tool, args.users, args.warm, args.window, out)
    dumps = sorted(out.parent.glob(out.name + ".*")) or [out]
    print(f"{args.tool}, {args.users} users: {requests} requests in the window ({dumps[-1]})")
    if requests <= 0:
        return 1
    for events in (("D1mr", "D1mw"), ("Ir",)):
        total, by_fn = attribute(dumps[-1], events)
        label = "+".join(events)
        print(f"\n{label}: {total / requests:,.1f} per request")
        for fn, cost in sorted(by_fn.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"{cost / requests:10,.1f} {cost / total * 100:5.1f}%  {fn[:100]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
