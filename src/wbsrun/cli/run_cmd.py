"""`wbsrun run` and `wbsrun resume`: a run, and the next life of a checkpointed one."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from wbsrun.cli._common import (
    Selection,
    check_out,
    check_writable,
    exit_with,
    fail,
    load_run_plan,
    load_warned,
    positive_seconds,
    with_metrics,
    worker_count,
)
from wbsrun.cli.ctl import control_settings, with_control
from wbsrun.errors import Diagnostic, RunError, ScenarioError, WbsrunError
from wbsrun.telemetry.html import check_assets

if TYPE_CHECKING:
    from wbsrun.cli.checkpoint import CheckpointSettings
    from wbsrun.control import ControlAddress
    from wbsrun.telemetry.metrics import MetricsAddress


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--users", type=int, default=None, help="Override the users of every scenario.")
@click.option("--duration", default=None, help="Run window (e.g. 20s): no pass starts after it.")
@click.option(
    "--graceful-stop",
    default=None,
    help="After the window (or Ctrl-C), how long passes in flight may finish before they are "
    "cancelled and counted as interrupted (default: the scenario's, else 30s).",
)
@click.option("--connection-limit", type=int, default=None, help="Shared pool size (0 = none).")
@click.option(
    "--transport",
    type=click.Choice(["fast", "aiohttp"]),
    default=None,
    help="HTTP transport (default: the scenario's, else fast).",
)
@click.option(
    "--request-timeout",
    default=None,
    help="Request timeout of http calls that set none (e.g. 30s; default 60s).",
)
@click.option(
    "--max-body",
    default=None,
    help="Response body limit of http calls that set none (e.g. 1MiB; default 10MiB).",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(path_type=Path, allow_dash=True),
    help="Write the result here ('-': standard output; the live line and summary then go "
    "to standard error).",
)
@click.option(
    "--sampling",
    type=click.Choice(["aggregated", "sampled", "full"]),
    default=None,
    help="Which closed workbook entries stay whole (default: the scenario's, else aggregated).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Output directory: result.json, and the on-disk ledger of a full run.",
)
@click.option("--log", "log_file", type=click.Path(path_type=Path), help="Scenario log file.")
@click.option(
    "--report",
    "report_out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write a self-contained HTML report of the result here (after the result).",
)
@click.option("--quiet", is_flag=True, help="No live line and no summary.")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Worker processes, each running its share of the users, this process their "
    "coordinator (0: one per core; 1: one process, no coordinator).",
)
@click.option(
    "--cluster",
    metavar="local-ray|ray://ADDR",
    default=None,
    help="Run the workers as Ray actors (the `ray` extra): on a Ray started here, or on the "
    "cluster whose GCS is at ADDR (this process on one of its nodes). One per CPU of the "
    "cluster unless --workers says how many.",
)
@click.option(
    "--checkpoint",
    "checkpoint_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Save the run's state in this directory every --checkpoint-interval, atomically; "
    "`wbsrun resume DIR` continues the run from there after a crash or a stop.",
)
@click.option(
    "--checkpoint-interval",
    default="5s",
    show_default=True,
    callback=positive_seconds,
    help="How often --checkpoint saves (e.g. 500ms, 5s).",
)
@click.option(
    "--scenario",
    "scenario_names",
    multiple=True,
    metavar="NAME",
    help="Run only this scenario of the bundle (repeat for several; default: every one). "
    "A compiled plan decodes only the scenarios named and their workflows.",
)
@click.option(
    "--no-cache",
    is_flag=True,
    help="Parse and validate the YAML bundle, neither reading nor writing the plan cache "
    '(docs/binary-dsl.md "Cache").',
)
@click.option(
    "--history",
    "history_dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Earlier runs' JSON results (*.json, */result.json) of this plan: the forecast starts "
    "from their durations and pace profile (completed runs of the last 7 days).",
)
@with_metrics
@with_control
def run(
    path: Path,
    users: int | None,
    duration: str | None,
    graceful_stop: str | None,
    connection_limit: int | None,
    transport: str | None,
    request_timeout: str | None,
    max_body: str | None,
    sampling: str | None,
    out_dir: Path | None,
    json_out: Path | None,
    log_file: Path | None,
    report_out: Path | None,
    quiet: bool,
    workers: int,
    cluster: str | None,
    checkpoint_dir: Path | None,
    checkpoint_interval: float,
    history_dir: Path | None,
    metrics: MetricsAddress | None,
    metrics_linger: float,
    control: ControlAddress | None,
    control_token_file: Path | None,
    control_allow_remote: bool,
    paused: bool,
    scenario_names: tuple[str, ...] = (),
    no_cache: bool = False,
) -> None:
    """Run a scenario bundle, or a plan compiled by `wbsrun compile` (PATH.wbsc). Exit 0:
    completed, every threshold passed; 99: a threshold failed (or aborted the run); 105:
    stopped by a signal; 2: invalid; 1: run error (also a worker or Ray actor lost: status
    failed; Ray missing or the workers not placed)."""
    from wbsrun.cli.checkpoint import bundle_hash
    from wbsrun.cli.options import resolve_options
    from wbsrun.cli.session import execute, to_stdout
    from wbsrun.telemetry.console import console_for

    steer = control_settings(control, control_token_file, control_allow_remote, paused)
    try:
        _check_selection(scenario_names, checkpoint_dir)
        loaded = load_run_plan(path, scenario_names, cache=not no_cache)
        plan, bundle = loaded.plan, loaded.bundle
        # The workers and checkpoints read the bundle itself (a compiled plan names it).
        source = path if loaded.compiled is None else bundle.script
        options = resolve_options(
            bundle.config,
            {
                "users": users,
                "duration": duration,
                "graceful-stop": graceful_stop,
                "connection-limit": connection_limit,
                "transport": transport,
                "request-timeout": request_timeout,
                "max-body": max_body,
                "sampling": sampling,
            },
            out_dir=out_dir,
        )
        check_out(plan, options)
        if out_dir is not None and json_out is None:
            json_out = out_dir / "result.json"
        check_writable({"--json": json_out, "--report": report_out, "--log": log_file})
        if report_out is not None:
            check_assets()
        workers = worker_count(workers, cluster)
        checkpoint = _checkpoint_settings(checkpoint_dir, checkpoint_interval, workers, cluster)
        result = execute(
            plan,
            options,
            json_out=json_out,
            log_file=log_file,
            console=console_for(stderr=to_stdout(json_out)),
            report_out=report_out,
            live=not quiet,
            summary=not quiet,
            metrics=metrics,
            metrics_linger=metrics_linger,
            control=steer,
            workers=workers,
            source=source,
            cluster=cluster,
            checkpoint=checkpoint,
            source_hash=bundle_hash(source, plan) if checkpoint is not None else "",
            selection=Selection(scenario_names, cache=not no_cache),
            history=history_dir,
        )
    except WbsrunError as exc:
        fail(exc)
        return
    exit_with(result)


def _check_selection(names: tuple[str, ...], checkpoint_dir: Path | None) -> None:
    if names and checkpoint_dir is not None:
        raise ScenarioError(
            [
                Diagnostic(
                    "bad-option",
                    "--scenario with --checkpoint: a resumed run loads the whole bundle",
                    value=", ".join(names),
                    expected="--scenario or --checkpoint, not both",
                )
            ]
        )


def _checkpoint_settings(
    directory: Path | None, interval: float, workers: int, cluster: str | None = None
) -> CheckpointSettings | None:
    from wbsrun.cli.checkpoint import CheckpointSettings

    if directory is None:
        return None
    if cluster is not None:
        raise ScenarioError(
            [
                Diagnostic(
                    "bad-option",
                    f"--checkpoint with --cluster {cluster}: a run split across Ray actors "
                    'cannot be checkpointed yet (docs/operations.md, "Checkpoint and resume")',
                    value=cluster,
                    expected="a one-process run with --checkpoint",
                )
            ]
        )
    if workers > 1:
        raise ScenarioError(
            [
                Diagnostic(
                    "bad-option",
                    f"--checkpoint with --workers {workers}: a run split across worker "
                    'processes cannot be checkpointed yet (docs/operations.md, "Checkpoint '
                    'and resume")',
                    value=str(workers),
                    expected="--workers 1 with --checkpoint",
                )
            ]
        )
    if directory.exists() and not directory.is_dir():
        raise RunError(f"--checkpoint {directory}: not a directory")
    return CheckpointSettings(directory, interval)


@click.command()
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--json",
    "json_out",
    type=click.Path(path_type=Path, allow_dash=True),
    help="Write the result (of the whole run, every life) here ('-': standard output).",
)
@click.option("--log", "log_file", type=click.Path(path_type=Path), help="Scenario log file.")
@click.option(
    "--report",
    "report_out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write a self-contained HTML report of the result here.",
)
@click.option("--quiet", is_flag=True, help="No live line and no summary.")
@click.option(
    "--force",
    is_flag=True,
    help="Resume even though the bundle changed since the checkpoint (its schedule "
    "position is then applied to the changed plan as it is).",
)
@click.option(
    "--checkpoint-interval",
    default=None,
    callback=positive_seconds,
    help="How often this life checkpoints into DIR (default: the first life's interval, else 5s).",
)
def resume(
    directory: Path,
    json_out: Path | None,
    log_file: Path | None,
    report_out: Path | None,
    quiet: bool,
    force: bool,
    checkpoint_interval: float | None,
) -> None:
    """Continue a run that was checkpointed (`run --checkpoint DIR`) and crashed or was
    stopped: only its remaining work runs, and the result covers the whole run. Exit codes
    as `run`'s; 0 with a message when the run had completed."""
    from wbsrun.cli.checkpoint import CheckpointSettings, bundle_hash, load_checkpoint
    from wbsrun.cli.resume import check_source, nothing_left, resume_options, write_kept
    from wbsrun.cli.session import execute, to_stdout
    from wbsrun.telemetry.console import console_for

    try:
        saved = load_checkpoint(directory)
        if saved.complete:
            click.echo(nothing_left(saved), err=True)
            sys.exit(0)
        source = Path(str(saved.manifest["bundle"]))
        plan = load_warned(source)
        source_hash = bundle_hash(source, plan)
        check_source(saved, source_hash, force=force)
        options = resume_options(saved)
        out_dir = options.out_dir
        if out_dir is not None and json_out is None:
            json_out = out_dir / "result.json"
        if out_dir is not None and options.sampling_for(plan).mode == "full":
            # Each life's on-disk ledger apart: the first one's is never overwritten.
            life = len(saved.state["history"]) + 2
            options = replace(options, out_dir=out_dir / f"life{life}")
        check_writable({"--json": json_out, "--report": report_out, "--log": log_file})
        if report_out is not None:
            check_assets()
        write_kept(saved)
        interval = checkpoint_interval or float(saved.manifest.get("interval_s", 5.0))
        result = execute(
            plan,
            options,
            json_out=json_out,
            log_file=log_file,
            console=console_for(stderr=to_stdout(json_out)),
            report_out=report_out,
            live=not quiet,
            summary=not quiet,
            source=source,
            checkpoint=CheckpointSettings(directory, interval),
            carried=saved,
            source_hash=source_hash,
        )
    except WbsrunError as exc:
        fail(exc)
        return
    exit_with(result)
