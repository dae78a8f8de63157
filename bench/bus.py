"""The progress bus: publish() cost on the runner's hot path, and publish → delivery latency
at a steady event rate.

    taskset -c 0 .venv/bin/python bench/bus.py                 # 3 reps, 10,000 events/s, 5 s
    taskset -c 0 .venv/bin/python bench/bus.py --reps 5 --rate 20000 --seconds 8 --json out.json
    taskset -c 0 .venv/bin/python bench/bus.py --e2e 200        # reference scenario, CPU/request
    taskset -c 0 .venv/bin/python bench/bus.py --cpu            # logger-only passes, CPU/pass
    taskset -c 0 .venv/bin/python bench/bus.py --chain          # simulated 1,000 users, CPU/pass

publish cost: `publish()` in a tight loop (one subscriber draining every 4,096 calls, batching
as the reference scenario: 100 / 100 ms / 0.7), in ns per call, against two baselines measured
in the same invocation: `NullSink.publish` (the cost of the call itself) and a bare
`dict[key] = value` loop. Cases: coalesced (50 live tasks, a flush every 5,000 calls), one
event per publish (1,000 tasks in rotation: size flushes of 100 distinct entries, the worst
case), 10% high-priority updates (each flushed at once), and no subscriber.

latency: on uvloop, a producer publishes `--rate` updates/s in 1 ms ticks over `--tasks`
subjects, twice per repetition: with the reference batching (at 10,000/s over 1,000 tasks,
100 distinct entries fill a size flush every ~10 ms) and with max-batch-size 1,000,000 (every
normal update waits for the interval tick). Updates are phase/progress/milestone at priority
0.5; 10% are at 1.0, as errors and closes are. `serve()` flushes every flush-interval, and a
consumer task awaits `recv()` and stamps each event on arrival. High priority: arrival − the
time of that high-priority publish. Normal: arrival − `published_at` (the first update
coalesced into the event, the worst case).
Targets (issue 5): high-priority p99 < 5 ms; normal within flush-interval + 5 ms.

--cpu: logger-only passes through the runner, CPU µs per pass with NullSink, the bus (a
subscriber draining every 50 ms), the bus + poller, and the CLI wiring (AggregatingSink →
bus → poller). 100 users rarely fill a size flush: one event per pass.

--chain: the CLI chain (AggregatingSink → bus → poller, sparse workbook) without the runner,
fed the publish sequence of the reference scenario (phase, lease, then progress / milestone /
progress after each of 3 requests, closed) by simulated users on a fake clock: 1,000 users,
requests of 100–166 ms, so that size flushes of 100 distinct tasks carry most events (~4 per
pass), as at 1,000 users over HTTP. The bus flushes every 100 ms and the poller runs every
120 ms of simulated time (its ~50 ms tick plus the loop lag measured at 1,000 users). CPU µs
per pass above the same simulation with NullSink, per stage: the sink alone, + the bus (a
drained subscriber), + the poller.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wbsrun.core.bus import ProgressBus
from wbsrun.core.events import ProgressSubject
from wbsrun.core.ledger import LedgerEntry
from wbsrun.core.sinks import NullSink
from wbsrun.dsl.plan import ProgressSpec, ScenarioSpec

SPEC = ProgressSpec(max_batch_size=100, flush_interval=0.1, priority_threshold=0.7)
FIELDS = ("timeline.phase", "progress", "milestone")


@dataclass(eq=False)
class Subject:
    task_id: str
    user_id: str = "u"
    scenario_name: str = "s"
    phase: str = "executing.running_action"
    progress: float = 0.0
    error_class: str | None = None
    milestones: set[str] = field(default_factory=set)
    high_at: float = 0.0  # when its last high-priority update was published (bench only)


def _per_call_ns(fn: Callable[[int], None], n: int) -> float:
    t0 = time.perf_counter_ns()
    fn(n)
    return (time.perf_counter_ns() - t0) / n


def publish_costs(n: int) -> dict[str, float]:
    subjects: list[ProgressSubject] = [Subject(f"t{i}") for i in range(1000)]

    def null(k: int) -> None:
        sink = NullSink()
        pub = sink.publish
        for i in range(k):
            pub(subjects[i % 1000], FIELDS[i % 3], 0.5)

    def bare(k: int) -> None:
        d: dict[str, int] = {}
        for i in range(k):
            d[FIELDS[i % 3]] = i

    def bus_case(
        high_every: int, subscribed: bool, live: int = 1000, flush_every: int = 0
    ) -> Callable[[int], None]:
        def run(k: int) -> None:
            bus = ProgressBus(SPEC)
            if subscribed:
                sub = bus.subscribe(bound=1_000_000)
            pub = bus.publish
            for i in range(k):
                prio = 1.0 if high_every and i % high_every == 0 else 0.5
                pub(subjects[i % live], FIELDS[i % 3], prio)
                if flush_every and i % flush_every == 0:
                    bus.flush()  # stands for the flush-interval tick
                if subscribed and i % 4096 == 0:
                    sub.recv_nowait()

        return run

    out = {
        "null_sink_ns": _per_call_ns(null, n),
        "dict_set_ns": _per_call_ns(bare, n),
        # 50 live tasks, a flush every 5,000 calls: 99% of publishes merge into a pending entry.
        "bus_coalesced_ns": _per_call_ns(bus_case(0, True, live=50, flush_every=5000), n),
        # 1,000 tasks in rotation, batch 100: every publish becomes an event (worst case).
        "bus_event_each_ns": _per_call_ns(bus_case(0, True), n),
        "bus_10pct_high_ns": _per_call_ns(bus_case(10, True), n),
        "bus_no_subscriber_ns": _per_call_ns(bus_case(0, False), n),
    }
    out["ratio_coalesced_to_null"] = out["bus_coalesced_ns"] / out["null_sink_ns"]
    out["ratio_event_each_to_null"] = out["bus_event_each_ns"] / out["null_sink_ns"]
    return out


def _q(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def _latency(rate: int, seconds: float, tasks: int, batch: int) -> dict[str, Any]:
    clock = time.perf_counter
    spec = ProgressSpec(
        max_batch_size=batch,
        flush_interval=SPEC.flush_interval,
        priority_threshold=SPEC.priority_threshold,
    )
    bus = ProgressBus(spec, clock=clock)
    sub = bus.subscribe(bound=1_000_000)
    subjects = [Subject(f"t{i}") for i in range(tasks)]
    high: list[float] = []
    normal: list[float] = []
    received = 0

    async def consume() -> None:
        nonlocal received
        while True:
            events = await sub.recv()
            now = clock()
            received += len(events)
            for ev in events:
                s = ev.subject
                assert isinstance(s, Subject)
                if ev.priority >= SPEC.priority_threshold:
                    high.append((now - s.high_at) * 1000.0)
                else:
                    normal.append((now - ev.published_at) * 1000.0)
            sub.ack(events[-1].update_id)

    async def produce() -> int:
        start = clock()
        sent = 0
        i = 0
        while (now := clock()) - start < seconds:
            # Catch up to rate × elapsed: a late tick sends more, the average rate holds.
            for _ in range(int(rate * (now - start)) - sent):
                s = subjects[i % tasks]
                i += 1
                if i % 10 == 0:
                    s.high_at = clock()
                    bus.publish(s, "error", 1.0)
                else:
                    s.progress = (s.progress + 0.01) % 1.0
                    bus.publish(s, FIELDS[i % 3], 0.5)
                sent += 1
            await asyncio.sleep(max(0.0, 0.001 - (clock() - now)))
        return sent

    server = asyncio.create_task(bus.serve())
    consumer = asyncio.create_task(consume())
    t0 = clock()
    sent = await produce()
    elapsed = clock() - t0
    await asyncio.sleep(SPEC.flush_interval * 2)
    server.cancel()
    consumer.cancel()
    await asyncio.gather(server, consumer, return_exceptions=True)
    stats = bus.statistics()
    return {
        "rate_achieved": sent / elapsed,
        "published": stats.published,
        "events": stats.events,
        "coalesced": stats.coalesced,
        "received": received,
        "dropped": stats.dropped,
        "high_p50_ms": _q(high, 0.50),
        "high_p99_ms": _q(high, 0.99),
        "high_max_ms": max(high, default=0.0),
        "normal_p50_ms": _q(normal, 0.50),
        "normal_p99_ms": _q(normal, 0.99),
        "normal_max_ms": max(normal, default=0.0),
        "flushes": dict(stats.flushes),
    }


def latency(rate: int, seconds: float, tasks: int, batch: int) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(_latency(rate, seconds, tasks, batch))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_latency(rate, seconds, tasks, batch))


def e2e(users: int, duration: float, reps: int) -> dict[str, Any]:
    """The bundled reference scenario, CPU µs per request without a progress sink (NullSink)
    and with the bus + poller wired as the CLI wires them; target pinned to core 1."""
    import shutil
    import tempfile
    from pathlib import Path

    from wbsrun.cli.session import run_loop
    from wbsrun.core.log import RunLog
    from wbsrun.core.runner import Runner, RunOptions
    from wbsrun.dsl.loader import load_plan
    from wbsrun.poller import Poller, attach_progress_bus
    from wbsrun.protocols.registry import build_components, provides
    from wbsrun.resources.pool import PoolManager
    from wbsrun.target import TargetProcess, loopback_hosts

    example = Path(__file__).resolve().parents[1] / "src" / "wbsrun" / "examples" / "http_tri_phase"
    hosts = loopback_hosts(users)
    rows: dict[str, list[float]] = {"null": [], "bus": []}
    checks: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, TargetProcess.start(hosts=hosts, cpu=1) as target:
        bundle = Path(tmp) / "bundle"
        shutil.copytree(example, bundle)
        lines = ["ip,port", *(f"{h},{target.port}" for h in hosts)]
        (bundle / "resource.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for rep in range(reps):
            for mode in ("null", "bus") if rep % 2 == 0 else ("bus", "null"):
                plan = load_plan(bundle, provides())
                pools = PoolManager(plan)
                log = RunLog(None)
                bus = ProgressBus(plan.progress) if mode == "bus" else None
                runner = Runner(
                    plan,
                    build_components(plan, log),
                    pools,
                    log,
                    RunOptions(users=users, duration=duration),
                    events=bus,
                )
                poller: Poller | None = None
                if bus is not None:
                    poller = attach_progress_bus(runner, bus)
                cpu0 = time.process_time()
                run_loop(runner.run)
                cpu = time.process_time() - cpu0
                n = runner.ctx.stats.requests_total
                rows[mode].append(cpu / n * 1e6 if n else 0.0)
                print(f"e2e rep {rep + 1} {mode}: {n} requests, {rows[mode][-1]:.1f} µs CPU each")
                if bus is not None and poller is not None:
                    checks.append(
                        {"bus": bus.statistics().as_dict(), "poller": poller.statistics().as_dict()}
                    )
    ratios = [b / n for b, n in zip(rows["bus"], rows["null"], strict=True)]
    return {
        "users": users,
        "duration": duration,
        "cpu_us_per_request": rows,
        "ratio_bus_to_null": ratios,
        "median_ratio": statistics.median(ratios),
        "last_stats": checks[-1] if checks else None,
    }


def cpu_passes(users: int, iterations: int, reps: int) -> dict[str, Any]:
    """No network: 3 logger actions and 2 milestones per pass, CPU µs per pass with NullSink,
    with the bus (a subscriber draining every 50 ms), and with bus + poller (health on)."""
    import tempfile
    from pathlib import Path

    import yaml

    from wbsrun.cli.session import run_loop
    from wbsrun.core.log import RunLog
    from wbsrun.core.runner import Runner, RunOptions
    from wbsrun.dsl.loader import load_plan
    from wbsrun.poller import attach_progress_bus
    from wbsrun.progress.aggregate import AggregatingSink
    from wbsrun.protocols.registry import build_components, provides

    def step(name: str, to: str, edge: str | None = None) -> dict[str, Any]:
        t: dict[str, Any] = {"to": to, "condition": "always"}
        if edge:
            t["edge"] = edge
        return {
            "id": name,
            "type": "action",
            "action": name,
            "controls": {"exec": {"transitions": [t]}},
        }

    doc: dict[str, Any] = {
        "version": "1.0",
        "name": "bus-cpu",
        "components": [
            {"name": "logger", "version": "1.0.0", "kind": "native", "capabilities": ["info"]}
        ],
        "actions": {
            n: {"component": "logger", "call": "info", "with": {"message": n}} for n in "abc"
        },
        "workflows": {
            "wf": {
                "type": "graph",
                "controls": {"timeout": "5s"},
                "nodes": [
                    step("a", "b", "ab"),
                    step("b", "c"),
                    step("c", "done", "cd"),
                    {"id": "done", "type": "terminus", "state": "closing.success"},
                ],
            }
        },
        "load": {
            "scenarios": [
                {
                    "name": "s",
                    "workflow": "wf",
                    "user-count": users,
                    "iterations": iterations,
                    "milestones": [
                        {"name": "m1", "node": "a", "edge": "ab", "weight": 0.5},
                        {"name": "m2", "node": "c", "edge": "cd", "weight": 0.5},
                    ],
                    "health_threshold": {
                        "telemetry_field": "telemetry.health.score",
                        "min_score": 0.85,
                        "consecutive_breach": 3,
                    },
                }
            ]
        },
    }

    class Drain:
        def __init__(self, bus: ProgressBus) -> None:
            self.sub = bus.subscribe()

        async def serve(self) -> None:
            while True:  # cancelled at the end of the run
                await asyncio.sleep(0.05)
                self.sub.recv_nowait()

    modes = ("null", "bus", "bus+poller", "cli")
    rows: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp)
        (bundle / "script.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
        for rep in range(reps):
            for mode in modes if rep % 2 == 0 else modes[::-1]:
                plan = load_plan(bundle, provides())
                log = RunLog(None)
                bus = ProgressBus(plan.progress) if mode != "null" else None
                # The CLI's wiring (cli/session.py `wire`): the aggregating sink forwards.
                sink = AggregatingSink.for_run(plan, forward=bus) if mode == "cli" else bus
                runner = Runner(
                    plan, build_components(plan, log), None, log, RunOptions(), events=sink
                )
                if bus is not None and mode == "bus":
                    runner.services.append(Drain(bus))
                elif bus is not None:
                    attach_progress_bus(runner, bus)
                cpu0 = time.process_time()
                run_loop(runner.run)
                cpu = time.process_time() - cpu0
                rows[mode].append(cpu / runner.ctx.stats.tasks_started * 1e6)
                print(f"cpu rep {rep + 1} {mode}: {rows[mode][-1]:.1f} µs CPU per pass")
    medians = {m: statistics.median(v) for m, v in rows.items()}
    return {"cpu_us_per_pass": rows, "median": medians}


class _Pass:
    """The executor's `Task` as a progress sink sees it: the scope read through the workbook
    entry and the scenario (properties, as on `Task`), the live state in slots."""

    __slots__ = ("entry", "error", "milestones", "phase", "progress", "scenario")

    def __init__(self, entry: LedgerEntry, scenario: ScenarioSpec) -> None:
        self.entry = entry
        self.scenario = scenario
        self.phase = "initiating.idle"
        self.error: dict[str, str] | None = None
        self.progress = 0.0
        self.milestones: set[str] = set()

    @property
    def task_id(self) -> str:
        return self.entry.task_id

    @property
    def user_id(self) -> str:
        return self.entry.user_id

    @property
    def scenario_name(self) -> str:
        return self.scenario.name

    @property
    def error_class(self) -> str | None:
        return self.error["class"] if self.error else None


class _FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _chain_run(mode: str, users: int, passes: int, seed: int) -> float:
    """One simulated run; CPU µs per pass. Workbook writes as the executor makes them, so that
    the poller reads what it reads in a run."""
    import gc
    import heapq
    import random
    from pathlib import Path

    from wbsrun.core.ledger import open_workbook
    from wbsrun.core.runner import RunOptions
    from wbsrun.dsl.loader import load_plan
    from wbsrun.poller import Poller
    from wbsrun.progress.aggregate import AggregatingSink
    from wbsrun.protocols.registry import provides

    example = Path(__file__).resolve().parents[1] / "src" / "wbsrun" / "examples" / "http_tri_phase"
    plan = load_plan(example, provides())
    scenario = plan.scenarios[0]
    book = open_workbook(plan.workbook, plan.progress.model)
    clock = _FakeClock()
    bus: ProgressBus | None = None
    sub: Any = None
    poller: Poller | None = None
    sink: Any
    if mode == "null":
        sink = NullSink()
    else:
        if mode != "sink":
            bus = ProgressBus(plan.progress, clock=clock)
            if mode == "sink+bus":
                sub = bus.subscribe()
            else:
                poller = Poller(
                    bus,
                    priorities=plan.progress.poller_priorities,
                    health={
                        s.name: s.health_threshold for s in plan.scenarios if s.health_threshold
                    },
                    aliases=plan.workbook.expose,
                    workbook=book,
                    wall=clock,  # deadlines and health on the simulated wall clock
                )
        sink = AggregatingSink.for_run(plan, RunOptions(users=users), forward=bus)
    publish = sink.publish
    rng = random.Random(seed)
    steps: list[tuple[float, int, int]] = [(rng.uniform(0.0, 0.4), u, 0) for u in range(users)]
    heapq.heapify(steps)
    tasks: list[_Pass | None] = [None] * users
    done = [0] * users
    milestones = ("probe", "push", "purge")
    closed = 0
    flush_at, poll_at, freeze_at = 0.1, 0.12, 1.0

    def move(t: _Pass, to: str) -> None:
        book.transition(t.entry, t.phase, to, clock.now, "sim")
        t.phase = to

    gc.collect()
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, thresholds[1], thresholds[2])  # as the runner sets it
    cpu0 = time.process_time()
    while steps:
        at, u, step = heapq.heappop(steps)
        while bus is not None and poll_at <= at:
            clock.now = 1000.0 + poll_at
            if flush_at <= poll_at:
                bus.flush()  # stands for the flush-interval tick
                flush_at += 0.1
            if poller is not None:
                # One turn of Poller.serve(), synchronously.
                poller.ingest(poller._sub.recv_nowait())
                poller._due_deadlines()
                poller.run_checks(poller.slice_size)
            else:
                sub.recv_nowait()
            poll_at += 0.12
        clock.now = 1000.0 + at
        if at >= freeze_at:
            gc.freeze()  # the runner's flush loop does, every second
            freeze_at += 1.0
        if step == 0:
            done[u] += 1
            entry = book.open(f"u{u}", f"u{u}-t{done[u]}", scenario.name)
            t = tasks[u] = _Pass(entry, scenario)
            move(t, "planning.ready")
            publish(t, "timeline.phase", 0.5)
            move(t, "executing.waiting_resource")
            publish(t, "timeline.phase", 0.5)
            book.put(entry, "timeline.start_at", clock.now)
            book.put(entry, "execution.timeout_at", clock.now + 5.0)
            book.put(entry, "execution.resource_lease", "lease")
            publish(t, "lease", 0.5)
            move(t, "executing.running_action")
            publish(t, "timeline.phase", 0.5)
            book.begin_action(entry, "fetch", clock.now)
        else:
            running = tasks[u]
            assert running is not None
            t = running
            book.end_action(t.entry, "fetch", "executing", clock.now, "ok", 1.0, "success")
            t.progress = min(1.0, t.progress + 0.3)
            publish(t, "progress", 0.5)
            t.milestones.add(milestones[step - 1])
            book.reach_milestone(t.entry, milestones[step - 1])
            publish(t, "milestone", 0.5)
            t.progress = min(1.0, t.progress + 0.03)
            publish(t, "progress", 0.5)
            if step == 3:
                move(t, "closing.success")
                t.progress = 1.0
                publish(t, "closed", 1.0)
                closed += 1
                if done[u] < passes:
                    heapq.heappush(steps, (at + rng.uniform(0.0, 0.01), u, 0))
                continue
            book.begin_action(t.entry, "fetch", clock.now)
        heapq.heappush(steps, (at + rng.uniform(0.100, 0.166), u, step + 1))
    if bus is not None:
        bus.stop()
        if poller is not None:
            poller.ingest(poller._sub.recv_nowait())
            poller.run_checks(None)
    cpu = time.process_time() - cpu0
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    return cpu / closed * 1e6


def chain_passes(users: int, passes: int, reps: int) -> dict[str, Any]:
    """CPU µs per pass of each stage of the CLI chain above a NullSink run (see --chain)."""
    modes = ("null", "sink", "sink+bus", "cli")
    rows: dict[str, list[float]] = {m: [] for m in modes}
    for rep in range(reps):
        for mode in modes if rep % 2 == 0 else modes[::-1]:
            rows[mode].append(_chain_run(mode, users, passes, seed=rep))
        line = ", ".join(f"{m} +{rows[m][-1] - rows['null'][-1]:.1f}" for m in modes[1:])
        print(f"chain rep {rep + 1}: null {rows['null'][-1]:.1f} µs CPU per pass; {line}")
    above = {m: [v - n for v, n in zip(rows[m], rows["null"], strict=True)] for m in modes[1:]}
    return {
        "cpu_us_per_pass": rows,
        "above_null": above,
        "median_above_null": {m: statistics.median(v) for m, v in above.items()},
    }


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rate", type=int, default=10_000, help="updates published per second")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--tasks", type=int, default=1000, help="live subjects updates rotate over")
    ap.add_argument("--calls", type=int, default=1_000_000, help="publish() calls per cost case")
    ap.add_argument("--json", type=str, default=None)
    ap.add_argument(
        "--e2e",
        type=int,
        default=0,
        metavar="USERS",
        help="instead: the reference scenario with and without the bus + poller (CPU/request)",
    )
    ap.add_argument("--e2e-duration", type=float, default=8.0)
    ap.add_argument(
        "--cpu",
        action="store_true",
        help="instead: logger-only passes (no network), CPU per pass without/with bus, poller",
    )
    ap.add_argument(
        "--chain",
        action="store_true",
        help="instead: the CLI chain fed by 1,000 simulated users (no runner), CPU per pass",
    )
    args = ap.parse_args()
    if args.chain:
        found = chain_passes(1000, 8, args.reps)
        print(json.dumps(found["median_above_null"], indent=2))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(found, fh, indent=2)
        return
    if args.cpu:
        found = cpu_passes(100, 60, args.reps)
        print(json.dumps(found["median"], indent=2))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(found, fh, indent=2)
        return
    if args.e2e:
        found = e2e(args.e2e, args.e2e_duration, args.reps)
        print(json.dumps({k: v for k, v in found.items() if k != "last_stats"}, indent=2))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(found, fh, indent=2)
        return

    costs: list[dict[str, float]] = []
    lats: list[dict[str, Any]] = []
    timed: list[dict[str, Any]] = []
    for rep in range(args.reps):  # interleaved: one of each per repetition
        costs.append(publish_costs(args.calls))
        # The reference batching (size flushes dominate at this rate), then batches too big
        # to fill so that every normal update waits for the flush-interval tick.
        lats.append(latency(args.rate, args.seconds, args.tasks, SPEC.max_batch_size))
        timed.append(latency(args.rate, args.seconds, args.tasks, 1_000_000))
        c, lat, tm = costs[-1], lats[-1], timed[-1]
        print(
            f"rep {rep + 1}: publish coalesced {c['bus_coalesced_ns']:.0f} ns, event each "
            f"{c['bus_event_each_ns']:.0f} ns (null sink {c['null_sink_ns']:.0f}; "
            f"10% high {c['bus_10pct_high_ns']:.0f}; no subscriber "
            f"{c['bus_no_subscriber_ns']:.0f}) | {lat['rate_achieved']:.0f} ev/s: high p50/p99 "
            f"{lat['high_p50_ms']:.3f}/{lat['high_p99_ms']:.3f} ms, normal p50/p99 "
            f"{lat['normal_p50_ms']:.1f}/{lat['normal_p99_ms']:.1f} ms "
            f"(max {lat['normal_max_ms']:.1f}) | interval-bound: high p99 "
            f"{tm['high_p99_ms']:.3f} ms, normal p50/p99 {tm['normal_p50_ms']:.1f}/"
            f"{tm['normal_p99_ms']:.1f} ms (max {tm['normal_max_ms']:.1f})",
            flush=True,
        )
    summary = {
        "machine": {
            "nproc": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "loadavg": os.getloadavg(),
            "affinity": sorted(os.sched_getaffinity(0)),
        },
        "args": vars(args),
        "median": {
            **{k: _median(costs, k) for k in costs[0]},
            **{k: _median(lats, k) for k in lats[0] if k != "flushes"},
            **{f"interval_{k}": _median(timed, k) for k in timed[0] if k != "flushes"},
        },
        "reps": {"costs": costs, "latency": lats, "interval_bound": timed},
    }
    print(json.dumps(summary["median"], indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2)


if __name__ == "__main__":
    main()
