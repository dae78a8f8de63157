"""What each part of the CLI wiring costs a request, and A/B against another checkout.

    .venv/bin/python bench/wiring.py                                 # full,nopoller,nobus,none
    .venv/bin/python bench/wiring.py --variants full,full@base --base /tmp/base/src --reps 3

Each variant is a child process running the reference scenario against nginx (as
bench/transport.py's `--child wbsrun-fast`), pinned to core 0 with nginx on core 1, 1,000
users; the figure is the child's CPU µs per request over a steady window (CPU over nginx's
count of requests in it). Repetitions are interleaved (ABC, CBA, ...) and the medians printed.

Variants:
- `full`: `wire()`, exactly as `wbsrun run` runs it (aggregator, bus, poller, health checks);
- `dense`: as `full` on the Phase-1 workbook (`progress.model: dense`, one dict of fields an
  entry, no packing), the baseline of issue 22 item 6;
- `nohealth`: as `full`, but the poller has no health rules (no health checks);
- `drain`: aggregator and bus, its events taken by a subscriber that drops them every 50 ms
  (the bus's own cost, without the poller's);
- `nopoller`: aggregator and bus, no subscriber (the bus returns at once from each publish);
- `nobus`: the aggregator alone;
- `none`: a null progress sink;
- `NAME@base`: variant NAME run from `--base` (a `src/` directory of another checkout, built
  in place: `git worktree add /tmp/base REV && (cd /tmp/base && python setup.py build_ext
  --inplace)`), to compare two commits in one invocation on this noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import transport as T  # bench/ is sys.path[0] when run
from wbsrun.core.bus import EndOfStream, Subscription

VARIANTS = ("full", "dense", "nohealth", "drain", "nopoller", "nobus", "none")


def child(variant: str, users: int, port: int, duration: float) -> None:
    import resource

    from wbsrun.cli.demo import prepare_bundle
    from wbsrun.cli.session import run_loop, wire
    from wbsrun.core.bus import ProgressBus
    from wbsrun.core.events import ProgressSink, Service
    from wbsrun.core.log import RunLog
    from wbsrun.core.runner import Runner, RunOptions
    from wbsrun.dsl.loader import load_plan
    from wbsrun.poller import Poller
    from wbsrun.progress.aggregate import AggregatingSink
    from wbsrun.protocols.registry import build_components, provides
    from wbsrun.resources import attach_health_checks
    from wbsrun.resources.pool import PoolManager

    os.sched_setaffinity(0, {T.TOOL_CPU})
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    bundle = prepare_bundle(Path(tempfile.mkdtemp(prefix="wbsrun-wiring-")), T._hosts(users), port)
    plan = load_plan(bundle, provides())
    if variant == "dense":
        plan = dataclasses.replace(plan, progress=dataclasses.replace(plan.progress, model="dense"))
    options = RunOptions(users=users, duration=duration, transport="fast")
    pools, log = PoolManager(plan), RunLog(None)
    if variant in ("full", "dense"):
        runner = wire(plan, options, pools, log).runner
    elif variant in ("nohealth", "drain"):
        bus = ProgressBus(plan.progress)
        sink = AggregatingSink.for_run(plan, options, forward=bus)
        runner = Runner(plan, build_components(plan, log), pools, log, options, events=sink)
        attach_health_checks(runner, pools)
        bus.stop_on(runner.ctx.finished)
        consumer: Service
        if variant == "drain":
            consumer = _Drain(bus.subscribe(None, bound=100_000))
        else:
            consumer = Poller(
                bus,
                priorities=plan.progress.poller_priorities,
                aliases=plan.workbook.expose,
                workbook=runner.ctx.workbook,
            )
        runner.services.extend((bus, consumer))
    else:
        events: ProgressSink | None = None
        if variant == "nopoller":
            events = AggregatingSink.for_run(plan, options, forward=ProgressBus(plan.progress))
        elif variant == "nobus":
            events = AggregatingSink.for_run(plan, options)
        runner = Runner(plan, build_components(plan, log), pools, log, options, events=events)
        attach_health_checks(runner, pools)

    async def main() -> None:
        print(json.dumps({"t0": time.monotonic(), "pid": os.getpid()}), flush=True)
        await runner.run()

    run_loop(main)


class _Drain:
    """A subscriber that takes the bus's events every 50 ms and drops them."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub

    async def serve(self) -> None:
        try:
            while True:
                await asyncio.sleep(0.05)
                await self.sub.recv()
        except EndOfStream:
            pass


def measure(nginx: T.Nginx, variant: str, args: argparse.Namespace) -> tuple[float, float]:
    """(CPU µs per request, req/s) of one child over its window."""
    name, _, where = variant.partition("@")
    env = dict(os.environ)
    if where == "base":
        env["PYTHONPATH"] = str(args.base)
    duration = args.skip + args.window + 1
    cmd = [sys.executable, __file__, "--child", name, "--users", str(args.users)]
    cmd += ["--port", str(nginx.port), "--duration", f"{duration:g}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    started: dict[str, Any] = json.loads(proc.stdout.readline())
    pid = int(started["pid"])
    time.sleep(max(0.0, float(started["t0"]) + args.skip - time.monotonic()))
    a = (time.monotonic(), nginx.requests(), T.proc_cpu_s(pid))
    time.sleep(args.window)
    b = (time.monotonic(), nginx.requests(), T.proc_cpu_s(pid))
    proc.wait()
    proc.stdout.close()
    n = b[1] - a[1]
    return (b[2] - a[2]) / n * 1e6, n / (b[0] - a[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/wiring.py")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--base", type=Path, help="src/ of another built checkout (NAME@base)")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--skip", type=float, default=7.0)
    ap.add_argument("--window", type=float, default=7.0)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--duration", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.users, args.port, args.duration)
        return 0
    variants = args.variants.split(",")
    for v in variants:
        name, _, where = v.partition("@")
        if name not in VARIANTS or where not in ("", "base"):
            ap.error(f"unknown variant {v!r}: expected one of {', '.join(VARIANTS)}[@base]")
        if where == "base" and args.base is None:
            ap.error(f"{v} needs --base")
    got: dict[str, list[float]] = {v: [] for v in variants}
    nginx = T.Nginx(T._hosts(args.users))
    try:
        for rep in range(args.reps):
            for v in variants if rep % 2 == 0 else variants[::-1]:
                us, rps = measure(nginx, v, args)
                got[v].append(us)
                print(f"rep {rep + 1} {v}: {us:.1f} CPU µs/request, {rps:,.0f} req/s", flush=True)
    finally:
        nginx.stop()
    for v in variants:
        reps = ", ".join(f"{x:.1f}" for x in got[v])
        print(f"{v}: median {statistics.median(got[v]):.1f} CPU µs/request ({reps})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
