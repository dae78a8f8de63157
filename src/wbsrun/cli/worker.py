"""A worker process of `wbsrun run --workers N`: its segment of the plan, wired as `wbsrun run`
wires a run, reporting to the coordinator over its pipe (wbsrun.cluster)."""

from __future__ import annotations

import signal
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TextIO

from wbsrun.cli._common import ALL_SCENARIOS, Selection
from wbsrun.cluster import Failed, PipeLink, Reporter, serve_worker
from wbsrun.core.log import RunLog
from wbsrun.core.runner import RunOptions
from wbsrun.core.scheduler import spawn_plan
from wbsrun.core.segments import Segmentation, SegmentSequence
from wbsrun.dsl.binary import load_any
from wbsrun.errors import WbsrunError
from wbsrun.progress.report import persist_figures, resource_figures
from wbsrun.protocols.registry import provides
from wbsrun.resources.pool import PoolManager
from wbsrun.telemetry.metrics import workbook_figures

__all__ = ["PreparedWorker", "WorkerJob", "prepare_worker", "worker_log_path", "worker_main"]


@dataclass(frozen=True, slots=True)
class WorkerJob:
    """What a worker is sent: the bundle to load (each process loads and compiles it itself),
    the run's resolved options, and which part of the run is its own."""

    path: Path
    options: RunOptions
    index: int
    count: int
    log_file: Path | None = None
    # `--metrics`: also send the figures only the exporter reads (workbook footprint: a walk
    # over the entries held, so not paid without it).
    metrics: bool = False
    # `--scenario` and the plan cache, as the coordinator loaded the plan.
    selection: Selection = ALL_SCENARIOS


def worker_log_path(log_file: Path, index: int) -> Path:
    """Worker `index`'s run log, beside the coordinator's: `run.log` → `run.worker-0.log`."""
    return log_file.with_name(f"{log_file.stem}.worker-{index}{log_file.suffix}")


def segment_options(options: RunOptions, index: int, count: int) -> RunOptions:
    """The options of worker `index` of `count`: its segment of the even split (its users
    and iterations, with their global ids: docs/distributed.md "Work split"), and its own
    output directory (a `full` ledger each)."""
    out = options.out_dir / f"worker-{index}" if options.out_dir is not None else None
    segment = Segmentation(SegmentSequence.even(count), index)
    return replace(options, out_dir=out, segment=segment)


@dataclass(slots=True)
class PreparedWorker:
    """A worker's run, wired and ready to serve (`serve_worker`), and its run log's file."""

    reporter: Reporter
    log_out: TextIO | None

    def close(self) -> None:
        if self.log_out is not None:
            self.log_out.close()


def prepare_worker(job: WorkerJob) -> PreparedWorker:
    """Load the bundle and wire the worker's segment exactly as `wbsrun run` wires a run (any
    transport: a spawned process here, a Ray actor in cli/ray_worker.py). Raises
    `WbsrunError` or `OSError` when the worker cannot run."""
    from wbsrun.cli.session import wire

    selection = job.selection
    plan = load_any(job.path, provides(), selection.scenarios, cache=selection.cache).plan
    options = segment_options(job.options, job.index, job.count)
    out: TextIO | None = None
    if job.log_file is not None:
        out = worker_log_path(job.log_file, job.index).open("w", encoding="utf-8")
    try:
        log = RunLog(out)
        pools = PoolManager(plan)
        wired = wire(plan, options, pools, log)
    except BaseException:
        if out is not None:
            out.close()
        raise
    runner = wired.runner

    def sections() -> dict[str, Any]:
        figures = {
            "resources": resource_figures(runner, pools.statistics()),
            "ledger": runner.ctx.workbook.summary(),
            "persist": persist_figures(runner),
            "logs": dict(log.counts),
            "pools": {k: dict(v) for k, v in pools.statistics().items()},
            "engine": {
                "bus": wired.bus.statistics().as_dict(),
                "poller": wired.poller.statistics().as_dict(),
            },
        }
        if job.metrics:
            book, phases = workbook_figures(runner)
            gauges = wired.poller.gauges()
            figures["metrics"] = {
                "workbook": book,
                "phases": phases,
                "poller_gauges": {"queue": gauges.queue, "inbox": gauges.inbox},
            }
        return figures

    def leases() -> int:
        return sum(p.get("active", 0) for p in pools.statistics().values())

    users = sum(spawn_plan(s, options.users, options.segment).users for s in plan.scenarios)
    reporter = Reporter(job.index, runner, wired.aggregator, sections, leases, users)
    return PreparedWorker(reporter, out)


def worker_main(conn: Connection, job: WorkerJob) -> None:
    """The worker process's entry (spawned: a fresh interpreter)."""
    from wbsrun.cli.session import run_loop

    # Ctrl-C reaches every process of the terminal's group: the coordinator decides, and
    # tells its workers (drain, then abort).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    link = PipeLink(conn)
    try:
        prepared = prepare_worker(job)
    except (WbsrunError, OSError) as exc:
        link.send(Failed(job.index, str(exc)))
        link.close()
        return
    try:
        run_loop(lambda: serve_worker(link, prepared.reporter))
    except WbsrunError as exc:
        link.send(Failed(job.index, str(exc)))
    finally:
        link.close()
        prepared.close()
