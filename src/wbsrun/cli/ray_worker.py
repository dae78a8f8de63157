"""`wbsrun run --cluster local-ray | ray://ADDR`: the workers are Ray actors (cluster/raylink.py).

`ray_workers` connects, counts the workers, ships the bundle and places them (all or none)
before the run; `ray_body` is what each actor runs: the bundle written to a directory of its
own, then the same worker as a `--workers` process (`prepare_worker`, `serve_worker`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

from wbsrun.cli._common import ALL_SCENARIOS, Selection
from wbsrun.cli.worker import WorkerJob, prepare_worker
from wbsrun.cluster import Failed, serve_worker
from wbsrun.cluster.links import Link
from wbsrun.cluster.raylink import RayActors, RayConnection
from wbsrun.cluster.shipping import BundleFiles, pack_bundle, unpack_bundle
from wbsrun.core.runner import RunOptions
from wbsrun.dsl.bundle import locate_bundle
from wbsrun.errors import RunError, WbsrunError

__all__ = ["ray_body", "ray_workers"]


async def ray_body(link: Link, job: WorkerJob, bundle: BundleFiles) -> None:
    """One actor's worker: its copy of the bundle, then its segment, reported over `link`."""
    with tempfile.TemporaryDirectory(prefix="wbsrun-bundle-") as where:
        try:
            path = unpack_bundle(bundle, Path(where))
            prepared = prepare_worker(replace(job, path=path))
        except (WbsrunError, OSError) as exc:
            link.send(Failed(job.index, str(exc)))
            return
        try:
            await serve_worker(link, prepared.reporter)
        except WbsrunError as exc:
            link.send(Failed(job.index, str(exc)))
        finally:
            prepared.close()


def ray_workers(
    cluster: str,
    source: Path,
    options: RunOptions,
    count: int,
    *,
    log_file: Path | None,
    metrics: bool,
    selection: Selection = ALL_SCENARIOS,
) -> RayActors:
    """Connect to Ray, and place `count` workers (0: one per CPU the cluster reports), each
    with the bundle's files and its job; a `RunError` when Ray cannot run them all."""
    bundle = locate_bundle(source)
    files = pack_bundle(bundle.res_dir, source)
    # The workers' files are written where they run: absolute paths, as given here.
    if options.out_dir is not None:
        options = replace(options, out_dir=options.out_dir.resolve())
    log = log_file.resolve() if log_file is not None else None
    conn = RayConnection.connect(cluster, _cores())
    try:
        n = count or conn.cpus()
        if n < 1:
            raise RunError(f"--cluster {cluster}: the Ray cluster reports no CPU")
        # The path is the bundle's own, replaced by each actor with its unpacked copy's.
        jobs = [
            WorkerJob(Path(files.entry), options, i, n, log, metrics, selection) for i in range(n)
        ]
        actors = RayActors(conn, ray_body, jobs, files)
        actors.place()
    except BaseException:
        conn.shutdown()
        raise
    return actors


def _cores() -> int:
    """The CPUs of a `local-ray`: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
