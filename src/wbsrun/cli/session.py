"""One run from the command line: build adapters, run with a live line, handle signals, report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO, TypeVar

from rich.console import Console

from wbsrun.cli._common import ALL_SCENARIOS, Selection
from wbsrun.cli.checkpoint import CheckpointSettings, CheckpointWriter, Saved
from wbsrun.cli.plugins import wasm_loader
from wbsrun.cli.resume import restore, resumed_line, resumed_section
from wbsrun.cli.worker import WorkerJob, worker_main
from wbsrun.cluster import BusView, ClusterRunner
from wbsrun.cluster.links import Workers
from wbsrun.cluster.raylink import RayActors
from wbsrun.control import ControlServer, ControlSettings, new_token, write_token
from wbsrun.core.bus import ProgressBus
from wbsrun.core.log import RunLog
from wbsrun.core.runner import Runner, RunOptions
from wbsrun.dsl.plan import Plan
from wbsrun.errors import RunError
from wbsrun.poller import Poller, ProgressFeed, attach_progress_bus, progress_feed
from wbsrun.progress.aggregate import AggregatingSink, Aggregator
from wbsrun.progress.history import load_history
from wbsrun.progress.pmp import PmpTimeline
from wbsrun.progress.report import build_result, pmp_ticker, with_pmp
from wbsrun.progress.series import Series
from wbsrun.progress.thresholds import ThresholdEvaluator
from wbsrun.protocols.registry import build_components
from wbsrun.resources import attach_health_checks, attach_scheduling
from wbsrun.resources.pool import PoolManager
from wbsrun.telemetry.console import LiveLine, print_summary
from wbsrun.telemetry.html import write_report
from wbsrun.telemetry.metrics import MetricsAddress, MetricsExporter, RunSources
from wbsrun.telemetry.ticker import SeriesTicker

__all__ = [
    "WiredRun",
    "execute",
    "run_loop",
    "start_warnings",
    "to_stdout",
    "wire",
    "wire_cluster",
]

T = TypeVar("T")


def run_loop(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run on uvloop where installed, plain asyncio otherwise."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


def start_warnings(
    plan: Plan, pools: PoolManager, options: RunOptions, workers: int = 1
) -> list[str]:
    out: list[str] = []
    if workers > 1:
        out.extend(
            f"pool '{name}' is exclusive, and each of the {workers} workers has its own copy: "
            "an item can be held by one user in each worker at once"
            for name in pools.pools
            if pools.is_exclusive(name)
        )
    for s in plan.scenarios:
        users = options.users if options.users is not None else s.user_count
        out.extend(
            f"scenario '{s.name}': {users} users, {pools.item_count(pool)} exclusive items "
            f"in '{pool}': at most {pools.item_count(pool)} run at once, the rest wait "
            "in executing.waiting_resource"
            for pool in s.inherit
            if pools.is_exclusive(pool) and pools.item_count(pool) < users
        )
    out.extend(
        f"component '{c.name}': tls.verify is false: https server certificates are not checked"
        for c in plan.components.values()
        if c.tls is not None and not c.tls.verify
    )
    return out


# How often thresholds are evaluated on the live result (alerts, abort-on-fail).
THRESHOLD_INTERVAL = 1.0


async def _watch_thresholds(wired: WiredRun, console: Console, live: bool) -> None:
    """Every second: the rules on the live result; a crossing is an alert in the run log (and
    on the console unless quiet); an abort-on-fail rule past its delay drains the run."""
    failed = False
    while True:
        await asyncio.sleep(THRESHOLD_INTERVAL)
        try:
            crossings = wired.thresholds.check(wired.live_result(), wired.runner.elapsed)
        except Exception as exc:  # a live check must never end the run
            # Said once (not every second); the end-of-run evaluation still decides the exit.
            if not failed:
                failed = True
                wired.log.log(
                    "error",
                    f"live threshold evaluation failed ({type(exc).__name__}: {exc}); "
                    "thresholds are still evaluated at the end of the run",
                )
            continue
        for crossing in crossings:
            wired.log.log("warn", crossing.message)
            if live:
                console.print(f"[red]{crossing.message}[/red]", highlight=False)
            if crossing.aborts:
                wired.runner.drain()


async def _run(
    runner: Runner,
    console: Console,
    live: bool,
    aggregator: Aggregator | None = None,
    exporter: MetricsExporter | None = None,
    *,
    watch: WiredRun | None = None,
    control: ControlSettings | None = None,
) -> None:
    if exporter is not None:
        exporter.attach()  # scrapes read the run on its loop from now on
    endpoint = await _open_control(runner, control, console) if control is not None else None
    try:
        await _supervise(runner, console, live, aggregator, watch)
    finally:
        if endpoint is not None:
            await endpoint.close()


async def _open_control(
    runner: Runner, settings: ControlSettings, console: Console
) -> ControlServer:
    """`--control`: the endpoint listening in this loop, its URL and token printed (and the
    token written to `--control-token-file`) before the first user starts."""
    token = new_token()
    server = ControlServer(runner.control, settings.address, token)
    try:
        bound = await server.start()
    except OSError as exc:
        where = f"{settings.address.host}:{settings.address.port}"
        raise RunError(f"--control {where}: cannot listen ({exc})") from exc
    if settings.token_file is not None:
        try:
            write_token(settings.token_file, token)
        except OSError as exc:
            await server.close()
            raise RunError(f"--control-token-file {settings.token_file}: {exc}") from exc
    if settings.paused:
        runner.control.pause()  # before the first user: the schedulers start held
    console.print(f"control: {bound.url()} token={token}", highlight=False, soft_wrap=True)
    if settings.paused:
        console.print("paused: nothing is sent until `wbsrun ctl resume`", highlight=False)
    return server


async def _supervise(
    runner: Runner,
    console: Console,
    live: bool,
    aggregator: Aggregator | None,
    watch: WiredRun | None,
) -> None:
    """The run with its signals, live line and threshold watcher."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            console.print("\n[yellow]stopping: finishing in-flight tasks (again to abort)[/yellow]")
            runner.drain()
        elif main is not None:
            main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
    line = LiveLine(runner, console, aggregator=aggregator)
    ticker = asyncio.create_task(line.run()) if live else None
    watcher = None
    if watch is not None and watch.thresholds.rules:
        watcher = asyncio.create_task(_watch_thresholds(watch, console, live))
    try:
        await runner.run()
    except asyncio.CancelledError:
        runner.interrupted = True
        if signals < 2:
            raise
    finally:
        if watcher is not None:
            watcher.cancel()
        if ticker is not None:
            ticker.cancel()
            line.clear()
            line.notices()  # a warning raised after the last live line
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


@dataclass(frozen=True, slots=True)
class WiredRun:
    """A runner with everything `wbsrun run` attaches to it (see `wire`)."""

    runner: Runner
    pools: PoolManager
    log: RunLog
    progress: AggregatingSink
    bus: ProgressBus
    poller: Poller
    ticker: SeriesTicker
    thresholds: ThresholdEvaluator
    # `--workers N`: the coordinator, which is also `runner` (see wire_cluster).
    cluster: ClusterRunner | None = None
    # The progress pollable's change feed (`progress.poller.progress_pollable: true`).
    feed: ProgressFeed | None = None
    # When each PMP process group began and was done (fed per tick, see `wire`).
    pmp_timeline: PmpTimeline = field(default_factory=PmpTimeline)

    @property
    def aggregator(self) -> Aggregator:
        return self.progress.aggregator

    @property
    def series(self) -> Series:
        """The run's time series (`latest()` for live views, `to_json()` for the result)."""
        return self.ticker.series

    def live_result(self, *, final: bool = False) -> dict[str, Any]:
        """The result as it stands (during the run: what thresholds are evaluated on, without
        the time series); `final`: after the run, with the series' last point taken."""
        events = {
            "bus": self.bus.statistics().as_dict(),
            "poller": self.poller.statistics().as_dict(),
        }
        if self.feed is not None:
            events["pollable"] = self.feed.statistics().as_dict()
        timeseries = self.ticker.finish().to_json() if final else None
        result = build_result(
            self.runner,
            self.pools.statistics(),
            self.log.counts,
            self.aggregator,
            events=events,
            timeseries=timeseries,
            users=final,  # thresholds read no per-user figure: spared every second
            pmp_timeline=self.pmp_timeline,
        )
        # `--workers`: each worker's pools schedule its own waiters; the coordinator's hold none.
        scheduling = self.pools.scheduling_json() if self.cluster is None else None
        if scheduling is not None:
            result["scheduling"] = scheduling
        # Several processes: their per-process sections, the segments and their fate (and the
        # PMP map read again from the merged figures).
        if self.cluster is not None:
            return with_pmp(self.cluster.complete(result), self.runner, self.pmp_timeline)
        return result

    def result(self) -> dict[str, Any]:
        """The final result: with every threshold's verdict, and status `aborted` when an
        abort-on-fail threshold stopped the run."""
        result = self.live_result(final=True)
        result["thresholds"] = self.thresholds.verdicts(result, self.runner.elapsed)
        if self.thresholds.aborted_by is not None and result["status"] != "failed":
            result["status"] = "aborted"
        return result


def wire(
    plan: Plan,
    options: RunOptions,
    pools: PoolManager,
    log: RunLog,
    *,
    prepare: Callable[[Runner], None] | None = None,
) -> WiredRun:
    """The runner as `wbsrun run` drives it; the benchmarks measure exactly this."""
    # Task → user → scenario → program progress, fed by the runner's progress events,
    # which then go on to the progress bus (batched) and its poller; the plugins' progress
    # pollable reads the bus through the feed (made first: a plugin subscribes as it loads).
    bus = ProgressBus(plan.progress)
    feed = progress_feed(bus, plan.progress)
    components = build_components(plan, log, wasm=wasm_loader(feed))
    progress = AggregatingSink.for_run(plan, options, forward=bus)
    runner = Runner(plan, components, pools, log, options, events=progress)
    attach_health_checks(runner, pools)
    attach_scheduling(runner, pools, progress.aggregator)
    # The time series: a sample every second (leases held: the pools' active leases).
    ticker = SeriesTicker(
        runner,
        progress.aggregator,
        leases=lambda: sum(p.get("active", 0) for p in pools.statistics().values()),
    )
    runner.services.append(ticker)
    timeline = PmpTimeline()  # the PMP process groups dated, every tick
    ticker.listeners.append(pmp_ticker(runner, progress.aggregator, timeline))
    if prepare is not None:
        prepare(runner)  # e.g. the demo's fault script, as one more run service
    poller = attach_progress_bus(runner, bus, feed)
    thresholds = ThresholdEvaluator(plan.thresholds)
    return WiredRun(
        runner,
        pools,
        log,
        progress,
        bus,
        poller,
        ticker,
        thresholds,
        feed=feed,
        pmp_timeline=timeline,
    )


def wire_cluster(
    plan: Plan,
    options: RunOptions,
    pools: PoolManager,
    log: RunLog,
    jobs: list[WorkerJob],
    transport: Workers | None = None,
) -> WiredRun:
    """`--workers N`: the coordinator as the run, wired as `wire` wires a local one (the
    same live line, series ticker, thresholds, metrics and result), fed by the workers
    (processes; `transport`: Ray actors, `--cluster`)."""
    progress = AggregatingSink.for_run(plan, options)
    bus = ProgressBus(plan.progress)
    runner = ClusterRunner(
        plan, log, options, progress.aggregator, worker_main, jobs, workers=transport
    )
    ticker = SeriesTicker(runner, progress.aggregator, leases=runner.leases)
    runner.services.append(ticker)
    timeline = PmpTimeline()
    ticker.listeners.append(pmp_ticker(runner, progress.aggregator, timeline))
    poller = attach_progress_bus(runner, bus)  # idle here: the workers' engines do the work
    thresholds = ThresholdEvaluator(plan.thresholds)
    return WiredRun(
        runner,
        pools,
        log,
        progress,
        bus,
        poller,
        ticker,
        thresholds,
        cluster=runner,
        pmp_timeline=timeline,
    )


def _checkpointing(
    wired: WiredRun,
    settings: CheckpointSettings | None,
    carried: Saved | None,
    source: Path | None,
    source_hash: str,
) -> CheckpointWriter | None:
    """A second life's figures restored; the checkpoint writer as one more run service."""
    if carried is not None:
        restore(wired, carried)
    if settings is None:
        return None
    if source is None:
        raise RunError("--checkpoint: the bundle's path is needed")
    writer = CheckpointWriter(wired, settings, source, source_hash, carried=carried)
    wired.runner.services.append(writer)
    return writer


def _use_history(wired: WiredRun, directory: Path, console: Console) -> None:
    """`--history DIR`: earlier runs of this plan as the forecast's prior; what was used said."""
    planned = {b.name: b.planned_tasks for b in wired.aggregator.baselines}
    found = load_history(directory, wired.runner.plan.name, planned)
    wired.aggregator.use_history(found.priors)
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(found.skipped.items()))
    console.print(
        f"history: {found.used} earlier run(s) of '{wired.runner.plan.name}' in {directory}"
        + (f" (skipped: {skipped})" if skipped else ""),
        highlight=False,
        soft_wrap=True,
    )


def start_metrics(address: MetricsAddress, wired: WiredRun, console: Console) -> MetricsExporter:
    """`--metrics`: the exporter of this run, listening (its address printed)."""
    cluster = wired.cluster
    if cluster is None:
        sources = RunSources(
            wired.runner,
            wired.aggregator,
            wired.bus,
            wired.poller,
            wired.pools.statistics,
            wired.log.counts,
            alerts=lambda: wired.thresholds.alerts_total,
            pollable=wired.feed,
            pmp=lambda: wired.live_result()["pmp"],
            scheduling=wired.pools.scheduling_figures,
        )
    else:  # the workers' figures, merged (their engines, pools, workbooks and logs)
        sources = RunSources(
            cluster,
            wired.aggregator,
            BusView(cluster),
            cluster.poller_view(),
            cluster.pool_statistics,
            cluster.log_counts(),
            alerts=lambda: wired.thresholds.alerts_total,
            workbook=cluster.workbook_figures,
            pmp=lambda: wired.live_result()["pmp"],
        )
    exporter = MetricsExporter(address, sources)
    try:
        bound = exporter.start()
    except OSError as exc:
        raise RunError(f"--metrics {address.host}:{address.port}: cannot listen ({exc})") from exc
    console.print(f"metrics: {bound.url()}", highlight=False)
    return exporter


def _linger(exporter: MetricsExporter, seconds: float, console: Console) -> None:
    """Serve the final figures a while longer, so that a scraper sees the run's end."""
    if seconds <= 0:
        return
    console.print(
        f"metrics: serving the final figures for {seconds:g}s (Ctrl-C to stop)", highlight=False
    )
    with contextlib.suppress(KeyboardInterrupt):
        time.sleep(seconds)


def to_stdout(json_out: Path | None) -> bool:
    """`--json -`: the result goes to standard output (and the console to standard error)."""
    return json_out is not None and str(json_out) == "-"


def _written(
    result: dict[str, Any],
    json_out: Path | None,
    log_file: Path | None,
    report_out: Path | None = None,
) -> dict[str, str]:
    """Where the run's files went, for the summary's last lines."""
    files: dict[str, str] = {}
    if json_out is not None:
        files["result"] = "standard output" if to_stdout(json_out) else str(json_out)
    if log_file is not None:
        files["log"] = str(log_file)
    if report_out is not None:
        files["report"] = str(report_out)
    ledger = result.get("ledger", {}).get("path")
    if ledger:  # sampling full: every closed workbook entry on disk
        files["ledger"] = str(ledger)
    return files


def execute(
    plan: Plan,
    options: RunOptions,
    *,
    json_out: Path | None,
    log_file: Path | None,
    console: Console,
    report_out: Path | None = None,
    live: bool = True,
    summary: bool = True,
    prepare: Callable[[Runner], None] | None = None,
    metrics: MetricsAddress | None = None,
    metrics_linger: float = 0.0,
    control: ControlSettings | None = None,
    workers: int = 1,
    source: Path | None = None,
    cluster: str | None = None,
    checkpoint: CheckpointSettings | None = None,
    carried: Saved | None = None,
    source_hash: str = "",
    selection: Selection = ALL_SCENARIOS,
    history: Path | None = None,
) -> dict[str, Any]:
    """Run the plan to the end (or a signal) and return the JSON result; always written, then
    the HTML report when asked (`report_out`). `metrics`: serve the exporter there from
    before the run until the result is written (and `metrics_linger` seconds more).
    `control`: serve the live-control endpoint there while the run goes.
    `workers` > 1: that many worker processes, each loading the bundle at `source`, with
    this process as their coordinator. `cluster` (`local-ray`, `ray://ADDR`): the workers
    are Ray actors (`workers`: how many, 0: one per CPU of the cluster).
    `checkpoint`: save the run's state there every interval (cli/checkpoint.py);
    `carried`: the checkpoint this run is the next life of. `selection`: how the workers
    load the plan (`--scenario`, the plan cache). `history`: a directory of earlier
    runs' results, the forecast's prior (progress/history.py)."""
    pools = PoolManager(plan)
    for warning in start_warnings(plan, pools, options, workers):
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    out: TextIO | None = log_file.open("w", encoding="utf-8") if log_file else None
    exporter: MetricsExporter | None = None
    actors: RayActors | None = None
    try:
        log = RunLog(out)
        if cluster is not None:
            if source is None:
                raise RunError("--cluster: the workers need the bundle's path")
            from wbsrun.cli.ray_worker import ray_workers

            shared = replace(options, data_seed=options.data_seed or random.getrandbits(64))
            actors = ray_workers(
                cluster,
                source,
                shared,
                workers,
                log_file=log_file,
                metrics=metrics is not None,
                selection=selection,
            )
            jobs = [job for job in actors.jobs if isinstance(job, WorkerJob)]
            wired = wire_cluster(plan, options, pools, log, jobs, transport=actors)
        elif workers > 1:
            if source is None:
                raise RunError("--workers: the workers need the bundle's path")
            # One data seed for all: the workers deal from the same shuffles.
            shared = replace(options, data_seed=options.data_seed or random.getrandbits(64))
            jobs = [
                WorkerJob(
                    source,
                    shared,
                    i,
                    workers,
                    log_file,
                    metrics=metrics is not None,
                    selection=selection,
                )
                for i in range(workers)
            ]
            wired = wire_cluster(plan, options, pools, log, jobs)
        else:
            wired = wire(plan, options, pools, log, prepare=prepare)
        writer = _checkpointing(wired, checkpoint, carried, source, source_hash)
        if history is not None:
            _use_history(wired, history, console)
        if metrics is not None:
            exporter = start_metrics(metrics, wired, console)
        run_loop(
            lambda: _run(
                wired.runner,
                console,
                live,
                wired.aggregator,
                exporter,
                watch=wired,
                control=control,
            )
        )
        if writer is not None:
            # The last one: complete, or (stopped by a signal or a threshold) resumable.
            writer.write(complete=not wired.runner.interrupted)
        result = wired.result()
        if carried is not None:
            result["resumed"] = resumed_section(carried)
        if exporter is not None:
            exporter.finish()
    except BaseException:
        if exporter is not None:
            exporter.close()
        raise
    finally:
        if out is not None:
            out.close()
        if actors is not None:
            actors.conn.shutdown()  # the Ray this run started, if it did
    if json_out is not None:
        text = json.dumps(result, indent=2) + "\n"
        if to_stdout(json_out):
            sys.stdout.write(text)
        else:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(text, encoding="utf-8")
    if report_out is not None:
        write_report(result, report_out)
    if summary:
        for line in list(log.recent)[-3:]:
            console.print(f"[dim]last log: {line}[/dim]", highlight=False)
        print_summary(console, result, files=_written(result, json_out, log_file, report_out))
        if "resumed" in result:
            console.print(resumed_line(result["resumed"]), highlight=False)
    elif report_out is not None:
        console.print(f"report in {report_out}", highlight=False)
    sys.stdout.flush()
    if exporter is not None:
        _linger(exporter, metrics_linger, console)
        exporter.close()
    return result
