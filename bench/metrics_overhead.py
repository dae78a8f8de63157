"""What the Prometheus exporter (`--metrics`) costs a run: throughput with it on, scraped every
second, against off, in interleaved A/B pairs in one invocation.

    .venv/bin/python bench/metrics_overhead.py                    # 1,000 users, 3 pairs
    .venv/bin/python bench/metrics_overhead.py --users 300 --reps 5 --interval 0.5
    .venv/bin/python bench/metrics_overhead.py --cost             # ms a reading, a formatting

Each side is a child process running the reference scenario against nginx as `wbsrun run`
wires it (`cli.session.wire`, and for `on` the exporter `start_metrics` starts), pinned to
core 0 with nginx on core 1 (bench/transport.py's set-up; `make nginx` installs nginx). The
parent scrapes the `on` child's endpoint every `--interval` seconds for the child's whole life.
Throughput is nginx's count of requests over a steady window; CPU µs a request is the child's
CPU over that count. The bar (issue 19): `on` keeps >= 95 % of `off`'s throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import transport as T  # bench/ is sys.path[0] when run

SIDES = ("off", "on")  # and "cost" (`--cost`)


def child(side: str, users: int, port: int, duration: float) -> None:
    import resource

    from rich.console import Console

    from wbsrun.cli.demo import prepare_bundle
    from wbsrun.cli.session import run_loop, start_metrics, wire
    from wbsrun.core.log import RunLog
    from wbsrun.core.runner import RunOptions
    from wbsrun.dsl.loader import load_plan
    from wbsrun.protocols.registry import provides
    from wbsrun.resources.pool import PoolManager
    from wbsrun.telemetry.metrics import MetricsAddress

    os.sched_setaffinity(0, {T.TOOL_CPU})
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    bundle = prepare_bundle(Path(tempfile.mkdtemp(prefix="wbsrun-metrics-")), T._hosts(users), port)
    plan = load_plan(bundle, provides())
    options = RunOptions(users=users, duration=duration, transport="fast")
    wired = wire(plan, options, PoolManager(plan), RunLog(None))
    exporter = None
    metrics_port = 0
    if side == "on":
        console = Console(file=sys.stderr)
        exporter = start_metrics(MetricsAddress("127.0.0.1", 0), wired, console)
        metrics_port = exporter.address.port

    if side == "cost":
        wired.runner.services.append(_Timer(wired))

    async def main() -> None:
        if exporter is not None:
            exporter.attach()
        print(
            json.dumps({"t0": time.monotonic(), "pid": os.getpid(), "metrics": metrics_port}),
            flush=True,
        )
        await wired.runner.run()

    run_loop(main)
    if exporter is not None:
        exporter.finish()
        exporter.close()


class _Timer:
    """`--cost`: once a second, on the loop, a reading of the run (what a scrape waits for)
    and its formatting (what the server thread does), timed; medians printed at the end."""

    def __init__(self, wired: Any) -> None:
        from wbsrun.telemetry.metrics import RunSources

        self.sources = RunSources(
            wired.runner, wired.aggregator, wired.bus, wired.poller, wired.pools.statistics
        )
        self.read: list[float] = []
        self.format: list[float] = []

    async def serve(self) -> None:
        import asyncio

        from wbsrun.telemetry.metrics import families, take_sample

        try:
            while not self.sources.runner.ctx.finished.is_set():
                await asyncio.sleep(1.0)
                began = time.perf_counter()
                sample = take_sample(self.sources)
                read = time.perf_counter()
                list(families(sample))
                self.read.append(read - began)
                self.format.append(time.perf_counter() - read)
        finally:
            ms = {
                k: statistics.median(v) * 1000
                for k, v in (("read", self.read), ("format", self.format))
                if v
            }
            print(json.dumps({"readings": len(self.read), **ms}), file=sys.stderr, flush=True)


@dataclass
class Scraper:
    """Scrapes a URL every `interval` seconds until stopped; counts and times each scrape."""

    url: str
    interval: float
    seconds: list[float] = field(default_factory=list)
    failures: int = 0
    series: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._loop, daemon=True)
        thread.start()
        return thread

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            began = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as resp:
                    text = resp.read().decode()
            except OSError:
                self.failures += 1
                continue
            self.seconds.append(time.perf_counter() - began)
            self.series = sum(1 for line in text.splitlines() if line.startswith("wbsrun_"))

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Figures:
    rps: float
    cpu_us: float
    nginx_share: float
    scrapes: int = 0
    scrape_ms: float = 0.0
    series: int = 0
    failures: int = 0


def measure(nginx: T.Nginx, side: str, args: argparse.Namespace) -> Figures:
    duration = args.skip + args.window + 1
    cmd = [sys.executable, __file__, "--child", side, "--users", str(args.users)]
    cmd += ["--port", str(nginx.port), "--duration", f"{duration:g}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    started: dict[str, Any] = json.loads(proc.stdout.readline())
    pid = int(started["pid"])
    scraper = None
    if started["metrics"]:
        url = f"http://127.0.0.1:{started['metrics']}/metrics"
        scraper = Scraper(url, args.interval)
        scraper.start()
    time.sleep(max(0.0, float(started["t0"]) + args.skip - time.monotonic()))
    a = (time.monotonic(), nginx.requests(), T.proc_cpu_s(pid), nginx.cpu_s())
    time.sleep(args.window)
    b = (time.monotonic(), nginx.requests(), T.proc_cpu_s(pid), nginx.cpu_s())
    if scraper is not None:
        scraper.stop()  # before the child ends: a scrape of a closed endpoint is no failure
    proc.wait()
    proc.stdout.close()
    n, dt = b[1] - a[1], b[0] - a[0]
    out = Figures(n / dt, (b[2] - a[2]) / n * 1e6, (b[3] - a[3]) / dt)
    if scraper is not None:
        out.scrapes, out.failures, out.series = (
            len(scraper.seconds),
            scraper.failures,
            scraper.series,
        )
        out.scrape_ms = statistics.median(scraper.seconds) * 1000 if scraper.seconds else 0.0
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/metrics_overhead.py")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3, help="A/B pairs")
    ap.add_argument("--interval", type=float, default=1.0, help="scrape interval, seconds")
    ap.add_argument("--skip", type=float, default=7.0)
    ap.add_argument("--window", type=float, default=7.0)
    ap.add_argument(
        "--cost", action="store_true", help="time one reading and its formatting instead"
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--duration", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.users, args.port, args.duration)
        return 0
    if args.cost:
        nginx = T.Nginx(T._hosts(args.users))
        try:
            f = measure(nginx, "cost", args)
            print(f"cost: {f.rps:,.0f} req/s, {f.cpu_us:.1f} CPU µs/request (timings above)")
        finally:
            nginx.stop()
        return 0
    got: dict[str, list[Figures]] = {side: [] for side in SIDES}
    ratios: list[float] = []
    # off's CPU a request over on's: the throughput ratio a saturated generator would show,
    # steadier than throughput on a shared machine where the generator's core is not its own.
    cpu_ratios: list[float] = []
    nginx = T.Nginx(T._hosts(args.users))
    try:
        for rep in range(args.reps):
            pair: dict[str, Figures] = {}
            for side in SIDES if rep % 2 == 0 else SIDES[::-1]:
                f = pair[side] = measure(nginx, side, args)
                got[side].append(f)
                valid = "" if f.nginx_share <= 0.8 else "  INVALID: nginx > 80 % of its core"
                scraped = (
                    f", {f.scrapes} scrapes of {f.series} series, median {f.scrape_ms:.1f} ms"
                    f", {f.failures} failed"
                    if side == "on"
                    else ""
                )
                print(
                    f"pair {rep + 1} {side}: {f.rps:,.0f} req/s, {f.cpu_us:.1f} CPU µs/request, "
                    f"nginx {f.nginx_share:.0%}{scraped}{valid}",
                    flush=True,
                )
            ratios.append(pair["on"].rps / pair["off"].rps)
            cpu_ratios.append(pair["off"].cpu_us / pair["on"].cpu_us)
            print(
                f"pair {rep + 1} on/off: throughput {ratios[-1]:.3f}, "
                f"CPU a request {1 / cpu_ratios[-1]:.3f}",
                flush=True,
            )
    finally:
        nginx.stop()
    for side in SIDES:
        rps = statistics.median(f.rps for f in got[side])
        cpu = statistics.median(f.cpu_us for f in got[side])
        print(f"{side}: median {rps:,.0f} req/s, {cpu:.1f} CPU µs/request")
    for label, values in (("throughput", ratios), ("throughput at equal CPU", cpu_ratios)):
        pairs = ", ".join(f"{r:.3f}" for r in values)
        median = statistics.median(values)
        verdict = "met" if median >= 0.95 else "NOT met"
        print(f"on/off {label}: median {median:.3f} [{pairs}]: >= 0.95 {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
