"""One load-generating process for bench/overhead.py: wbsrun's runner or a bare aiohttp loop.

    python bench/_load.py wbsrun --users N --duration S --bundle DIR [--cpu 0]
    python bench/_load.py bare --users N --duration S --port P --spawn-rate R [--cpu 0]

Both pin themselves to `--cpu`, run on uvloop, spawn users at the scenario's spawn rate and
start no pass after `--duration`; in-flight passes finish, so the reported total is what the
server received. stdout carries two JSON lines: `{"event": "started", "t0": <monotonic>,
"pid": ...}` when the load starts, and `{"event": "done", "requests": ..., ...}` at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Same request headers as the reference scenario, so both tools put the same bytes on the wire.
SCOPE_TRACE = '["ProgramA","HTTP","Scenario:http-bulk-refresh"]'


def _emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class GcMeter:
    """Collections and seconds spent in the garbage collector, per generation, in a window."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._t = 0.0
        self.window: dict[str, list[float]] = {}
        self._at: list[float] = []

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            gen = info["generation"]
            self.count[gen] += 1
            self.seconds[gen] += time.perf_counter() - self._t

    def start(self, window: tuple[float, float] | None) -> None:
        """Count from now; with `window` (s after the load starts), keep that window's share."""
        gc.callbacks.append(self._callback)
        if window is not None:
            t0 = time.monotonic()
            threading.Thread(target=self._snapshots, args=(t0, window), daemon=True).start()

    def _snapshots(self, t0: float, window: tuple[float, float]) -> None:
        marks = []
        for at in window:
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            marks.append((list(self.count), list(self.seconds)))
        (c0, s0), (c1, s1) = marks
        self.window = {
            "collections": [b - a for a, b in zip(c0, c1, strict=True)],
            "seconds": [b - a for a, b in zip(s0, s1, strict=True)],
        }

    def report(self) -> dict[str, Any]:
        return {"run": {"collections": self.count, "seconds": self.seconds}, **self.window}


GC = GcMeter()
GC_WINDOW: tuple[float, float] | None = None
MEASURE_GC = False


def _started() -> None:
    if MEASURE_GC:
        GC.start(GC_WINDOW)
    _emit("started", t0=time.monotonic(), pid=os.getpid())


def _done(requests: int, errors: int, extra: dict[str, Any]) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _emit(
        "done",
        requests=requests,
        errors=errors,
        cpu_s=usage.ru_utime + usage.ru_stime,
        maxrss_kb=usage.ru_maxrss,
        **({"gc": GC.report()} if MEASURE_GC else {}),
        **extra,
    )


def run_wbsrun(bundle: Path, users: int, duration: float) -> None:
    """The reference scenario through the library API, as `wbsrun run` does (no log file)."""
    from wbsrun.cli.session import run_loop
    from wbsrun.core.log import RunLog
    from wbsrun.core.runner import Runner, RunOptions
    from wbsrun.dsl.loader import load_plan
    from wbsrun.progress.report import build_result
    from wbsrun.protocols.registry import build_components, provides
    from wbsrun.resources.pool import PoolManager

    plan = load_plan(bundle, provides())
    pools = PoolManager(plan)
    log = RunLog(None)
    components = build_components(plan, log)
    runner = Runner(plan, components, pools, log, RunOptions(users=users, duration=duration))

    async def main() -> None:
        _started()
        await runner.run()

    run_loop(main)
    result = build_result(runner, pools.statistics(), log.counts)
    req = result["requests"]
    _done(
        int(req["total"]),
        int(req["failed"]),
        {
            "status": result["status"],
            "tasks": result["tasks"],
            "exits": result["exits"],
            "error_codes": result["errors"],
            "resources": result["resources"],
            "persist": result["persist"],
        },
    )


async def bare_aiohttp_user(
    host: str, port: int, stop_at: float, counts: list[int], headers_get: dict[str, str]
) -> None:
    import aiohttp

    url = f"http://{host}:{port}/asset"
    post_headers = {"content-type": "application/json"}
    loop = asyncio.get_running_loop()
    # Like wbsrun's `session: new`: a private session, unlimited connector, no client timeout.
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
    ) as session:
        while loop.time() < stop_at:
            async with session.get(url, headers=headers_get) as resp:
                body = await resp.read()
                ok = resp.status == 200
            counts[0] += 1
            counts[1] += not ok
            async with session.post(url, data=body, headers=post_headers) as resp:
                await resp.read()
                ok = resp.status == 200
            counts[0] += 1
            counts[1] += not ok
            async with session.delete(url) as resp:
                await resp.read()
                ok = resp.status == 200
            counts[0] += 1
            counts[1] += not ok


async def _bare_main(hosts: Sequence[str], port: int, duration: float, rate: float) -> list[int]:
    loop = asyncio.get_running_loop()
    counts = [0, 0]  # requests, non-200 answers
    headers_get = {"x-scope-trace": SCOPE_TRACE}
    _started()
    start = loop.time()
    stop_at = start + duration
    step = 1.0 / rate if rate else 0.0
    async with asyncio.TaskGroup() as tg:
        for i, host in enumerate(hosts):
            delay = start + i * step - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if loop.time() >= stop_at:
                break
            tg.create_task(bare_aiohttp_user(host, port, stop_at, counts, headers_get))
    return counts


def run_bare(users: int, port: int, duration: float, rate: float, hosts_start: str) -> None:
    """N users, each its own ClientSession to its own address: GET → POST(body) → DELETE."""
    import uvloop

    from wbsrun.target import loopback_hosts

    hosts = loopback_hosts(users, hosts_start)
    # The loop wbsrun's run_loop uses, without importing the runner.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        counts = runner.run(_bare_main(hosts, port, duration, rate))
    _done(counts[0], counts[1], {})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/_load.py")
    parser.add_argument("tool", choices=("wbsrun", "bare"))
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    parser.add_argument("--bundle", type=Path, help="prepared bundle (wbsrun)")
    parser.add_argument("--port", type=int, default=0, help="target port (bare)")
    parser.add_argument("--hosts-start", default="127.0.0.2", help="first address (bare)")
    parser.add_argument("--spawn-rate", type=float, default=0.0, help="users/s (bare)")
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    parser.add_argument(
        "--gc-window",
        metavar="START,END",
        help="time the garbage collector (gc.callbacks); report this window (s after start)",
    )
    args = parser.parse_args(argv)
    if args.gc_window:
        global GC_WINDOW, MEASURE_GC
        start, end = (float(x) for x in args.gc_window.split(","))
        GC_WINDOW, MEASURE_GC = (start, end), True
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.tool == "wbsrun":
        if args.bundle is None:
            parser.error("wbsrun needs --bundle")
        run_wbsrun(args.bundle, args.users, args.duration)
    else:
        if not args.port:
            parser.error("bare needs --port")
        run_bare(args.users, args.port, args.duration, args.spawn_rate, args.hosts_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
