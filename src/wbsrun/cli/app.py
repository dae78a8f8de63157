"""The `wbsrun` command: init, validate, wbs, run, ctl, ledger, demo, target, report,
compare, plugins. Wiring only."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from wbsrun.cli.compare import compare_command
from wbsrun.cli.ctl import control_settings, ctl, with_control
from wbsrun.cli.exits import EXIT_INVALID, EXIT_RUN_ERROR, exit_code, threshold_lines
from wbsrun.cli.plugins import check_for_validate, plugins_group
from wbsrun.dsl.bundle import locate_bundle
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import Plan
from wbsrun.dsl.wbs import render_wbs
from wbsrun.errors import BundleError, Diagnostic, RunError, ScenarioError, WbsrunError
from wbsrun.protocols.registry import provides
from wbsrun.telemetry.html import check_assets

if TYPE_CHECKING:
    from wbsrun.cli.checkpoint import CheckpointSettings
    from wbsrun.control import ControlAddress
    from wbsrun.core.runner import RunOptions
    from wbsrun.telemetry.metrics import MetricsAddress

__all__ = ["cli", "main"]


def _metrics_address(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> MetricsAddress | None:
    """`--metrics [HOST:]PORT` (127.0.0.1 unless a host is given; port 0: any free one)."""
    if value is None:
        return None
    from wbsrun.telemetry.metrics import MetricsAddress

    try:
        return MetricsAddress.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _linger_seconds(ctx: click.Context, param: click.Parameter, value: str) -> float:
    from wbsrun.dsl.units import UnitError, parse_duration

    try:
        return 0.0 if value.strip() in ("0", "0s") else parse_duration(value)
    except UnitError as exc:
        raise click.BadParameter(f"'{value}': {exc}; expected a duration such as 5s") from None


def _positive_seconds(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> float | None:
    from wbsrun.dsl.units import UnitError, parse_duration

    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except UnitError as exc:
        raise click.BadParameter(f"'{value}': {exc}; expected a duration such as 5s") from None
    if not seconds > 0:
        raise click.BadParameter(f"'{value}': expected a duration above 0, such as 5s")
    return seconds


# The exporter's options, on `run` and `demo` (docs/observability.md).
_METRICS_OPTIONS = (
    click.option(
        "--metrics",
        "metrics",
        metavar="[HOST:]PORT",
        default=None,
        callback=_metrics_address,
        help="Serve Prometheus metrics on http://HOST:PORT/metrics while the run goes "
        "(HOST 127.0.0.1 unless given; PORT 0: any free port, printed).",
    ),
    click.option(
        "--metrics-linger",
        default="0s",
        show_default=True,
        callback=_linger_seconds,
        help="After the result is written, keep serving the final metrics this long, so "
        "that a scraper sees the run's end (Ctrl-C stops it).",
    ),
)


def _with_metrics(f: Any) -> Any:
    for option in reversed(_METRICS_OPTIONS):
        f = option(f)
    return f


def _load(path: Path) -> Plan:
    plan = load_plan(path, provides())
    for w in plan.warnings:
        click.echo(w.format(), err=True)
    return plan


def _fail(exc: WbsrunError) -> None:
    # Diagnostics go out as plain text: wrapping would break file:line:col for editors.
    if isinstance(exc, ScenarioError):
        click.echo(exc.format(), err=True)
        errors = sum(1 for d in exc.diagnostics if d.severity == "error")
        click.echo(f"{errors} error(s); the scenario was not run", err=True)
        sys.exit(EXIT_INVALID)
    click.echo(f"error: {exc}", err=True)
    sys.exit(EXIT_INVALID if isinstance(exc, BundleError) else EXIT_RUN_ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wbsrun")
def cli() -> None:
    """wbsrun: scenario runner with PMP-style progress management."""


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
def validate(path: Path) -> None:
    """Validate a scenario bundle (directory or file); exit 0 if valid, 2 if not. A
    WebAssembly component in the bundle is checked against its WIT world too."""
    try:
        plan = _load(path)
    except WbsrunError as exc:
        _fail(exc)
        return
    bad = check_for_validate(path)
    if bad:
        click.echo(f"{bad} component(s) do not target their world; not valid", err=True)
        sys.exit(EXIT_INVALID)
    click.echo(f"{plan.source}: valid ({len(plan.warnings)} warning(s))")


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
def wbs(path: Path) -> None:
    """Print the work breakdown structure (L0 program … L5 action)."""
    try:
        plan = _load(path)
    except WbsrunError as exc:
        _fail(exc)
        return
    click.echo(render_wbs(plan.wbs))


@cli.command()
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
    callback=_positive_seconds,
    help="How often --checkpoint saves (e.g. 500ms, 5s).",
)
@_with_metrics
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
    metrics: MetricsAddress | None,
    metrics_linger: float,
    control: ControlAddress | None,
    control_token_file: Path | None,
    control_allow_remote: bool,
) -> None:
    """Run a scenario bundle. Exit 0: completed, every threshold passed; 99: a threshold
    failed (or aborted the run); 105: stopped by a signal; 2: invalid; 1: run error (also a
    worker or Ray actor lost: status failed; Ray missing or the workers not placed)."""
    from wbsrun.cli.checkpoint import bundle_hash
    from wbsrun.cli.options import resolve_options
    from wbsrun.cli.session import execute, to_stdout
    from wbsrun.telemetry.console import console_for

    steer = control_settings(control, control_token_file, control_allow_remote)
    try:
        plan = _load(path)
        bundle = locate_bundle(path)
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
        _check_out(plan, options)
        if out_dir is not None and json_out is None:
            json_out = out_dir / "result.json"
        _check_writable({"--json": json_out, "--report": report_out, "--log": log_file})
        if report_out is not None:
            check_assets()
        workers = _worker_count(workers, cluster)
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
            source=path,
            cluster=cluster,
            checkpoint=checkpoint,
            source_hash=bundle_hash(path, plan) if checkpoint is not None else "",
        )
    except WbsrunError as exc:
        _fail(exc)
        return
    _exit(result)


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


@cli.command()
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
    callback=_positive_seconds,
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
        plan = _load(source)
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
        _check_writable({"--json": json_out, "--report": report_out, "--log": log_file})
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
        _fail(exc)
        return
    _exit(result)


cli.add_command(ctl)


def cores() -> int:
    """The cores this process may run on (`--workers 0`)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _worker_count(workers: int, cluster: str | None) -> int:
    """`--workers`: 0 is one per core here; with `--cluster` and no `--workers`, 0 (one per
    CPU the Ray cluster reports, counted once connected)."""
    if cluster is not None:
        source = click.get_current_context().get_parameter_source("workers")
        return 0 if source is click.core.ParameterSource.DEFAULT else workers
    return workers or cores()


def _exit(result: dict[str, Any]) -> None:
    """Name every failed threshold on standard error (also when quiet: CI reads it), then
    exit with the run's code (cli/exits.py)."""
    for line in threshold_lines(result):
        click.echo(line, err=True)
    sys.exit(exit_code(result))


def _check_writable(paths: dict[str, Path | None]) -> None:
    """Refuse, before the run, output files that could not be written after it, so a run's
    result is never lost to a bad path. Nothing is made here: the nearest existing ancestor
    must be a directory this process may write in (the run makes the rest)."""
    problems: list[Diagnostic] = []
    for flag, path in paths.items():
        if path is None or str(path) == "-":
            continue
        problem = _unwritable(path)
        if problem is not None:
            problems.append(
                Diagnostic(
                    "bad-option",
                    f"{flag} {path}: {problem}",
                    value=str(path),
                    expected="a file path in a directory that can be written",
                )
            )
    if problems:
        raise ScenarioError(problems)


def _unwritable(path: Path) -> str | None:
    """Why `path` could not be written (None: it can)."""
    if path.is_dir():
        return "is a directory"
    if path.exists():
        return None if os.access(path, os.W_OK) else "cannot be written"
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"its directory cannot be made ({ancestor} is not a directory)"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"its directory cannot be made ({ancestor} cannot be written)"
    return None


def _check_out(plan: Plan, options: RunOptions) -> None:
    """`full` streams every closed entry to the output directory: refused without one."""
    if options.sampling_for(plan).mode == "full" and options.out_dir is None:
        raise ScenarioError(
            [
                Diagnostic(
                    "bad-option",
                    "sampling 'full' writes every closed workbook entry to disk and needs an "
                    "output directory",
                    plan.source,
                    value="full",
                    expected="--out DIR, or sampling aggregated | sampled",
                )
            ]
        )


@cli.command()
@click.argument("out_dir", metavar="OUTDIR", type=click.Path(path_type=Path, file_okay=False))
@click.option("--user", default=None, help="Only this user's entries.")
@click.option("--task", default=None, help="Only this task (pass) id.")
@click.option("--phase", default=None, help="Only entries closed in this phase (or group).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry and line.")
def ledger(
    out_dir: Path, user: str | None, task: str | None, phase: str | None, as_json: bool
) -> None:
    """Read the on-disk ledger a `--sampling full --out OUTDIR` run wrote (a `--workers`
    run's: every worker's, `OUTDIR/worker-I/`, one after the other)."""
    from wbsrun.core.ledger import read_ledger

    workers = sorted(out_dir.glob("worker-*/ledger"), key=lambda p: int(p.parent.name[7:]))
    dirs = [out_dir] if (out_dir / "ledger").exists() or not workers else workers
    try:
        n = 0
        entries = (e for d in dirs for e in read_ledger(d, user=user, task=task, phase=phase))
        for entry in entries:
            n += 1
            if as_json:
                click.echo(json.dumps(entry, ensure_ascii=False, default=str))
            else:
                click.echo(_entry_line(entry))
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    if not as_json:
        click.echo(f"{n} entr{'y' if n == 1 else 'ies'}", err=True)


def _entry_line(entry: dict[str, Any]) -> str:
    counters = (entry.get("telemetry") or {}).get("counters") or {}
    actions = (entry.get("execution") or {}).get("action_log") or []
    figures = " ".join(f"{k}={v}" for k, v in counters.items())
    return (
        f"{entry.get('task_id')}\t{entry.get('user_id')}\t{entry.get('scenario')}\t"
        f"{entry.get('phase')}\tactions={len(actions)} {figures}"
    )


@cli.command()
@click.option("--users", type=int, default=1000, show_default=True)
@click.option("--duration", default="20s", show_default=True, help="Run window.")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path("wbsrun-demo"),
    show_default=True,
    help="Where the demo bundle, artifacts and result go.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(path_type=Path, allow_dash=True),
    help="Write the result here ('-': standard output).",
)
@click.option("--latency-ms", type=float, default=0.0, help="Target latency for /asset.")
@click.option("--error-rate", type=float, default=0.0, help="Share of /asset answered 500.")
@click.option("--quiet", is_flag=True, help="No live line.")
@click.option(
    "--report",
    "report_out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write a self-contained HTML report of the result here (after the result).",
)
@click.option(
    "--faults",
    is_flag=True,
    help="Items go bad mid-run (failed health, hang, 401) and one recovers: watch the "
    "rollbacks, and every lease come back.",
)
@_with_metrics
def demo(
    users: int,
    duration: str,
    workdir: Path,
    json_out: Path | None,
    latency_ms: float,
    error_rate: float,
    quiet: bool,
    report_out: Path | None,
    faults: bool,
    metrics: MetricsAddress | None,
    metrics_linger: float,
) -> None:
    """Run the bundled tri-phase scenario against the embedded asset server (exit codes as
    `run`'s)."""
    from wbsrun.cli.demo import run_demo

    try:
        _check_writable(
            {"--workdir": workdir / "result.json", "--json": json_out, "--report": report_out}
        )
        if report_out is not None:
            check_assets()
        result = run_demo(
            users=users,
            duration=duration,
            workdir=workdir,
            json_out=json_out,
            latency_ms=latency_ms,
            error_rate=error_rate,
            quiet=quiet,
            faults=faults,
            metrics=metrics,
            metrics_linger=metrics_linger,
            report_out=report_out,
        )
    except (WbsrunError, RunError) as exc:
        _fail(exc)
        return
    _exit(result)


cli.add_command(compare_command)
cli.add_command(plugins_group)


@cli.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on (0: any free port, printed).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Loopback address to listen on (the target never serves beyond this machine).",
)
@click.option(
    "--latency-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Delay added to every /asset and /api answer.",
)
@click.option(
    "--jitter-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Extra random delay 0..MS on /asset and /api.",
)
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Share of /asset and /api requests answered 500.",
)
def target(port: int, host: str, latency_ms: float, jitter_ms: float, error_rate: float) -> None:
    """Serve the embedded target (the demo API under /api, /asset, /health) in the foreground
    until Ctrl-C; exit 1 when the port is taken. More knobs: `python -m wbsrun.target --help`."""
    from wbsrun.cli.serve_target import serve_target
    from wbsrun.target import TargetKnobs

    knobs = TargetKnobs(latency_ms=latency_ms, jitter_ms=jitter_ms, error_rate=error_rate)
    try:
        serve_target(host, port, knobs)
    except ValueError as exc:
        click.echo(f"error: --host {host!r}: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    except RunError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_RUN_ERROR)


@cli.command()
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path))
@click.option(
    "--url",
    default="http://127.0.0.1:8080/",
    show_default=True,
    help="The URL the scaffolded scenario calls.",
)
def init(directory: Path, url: str) -> None:
    """Write a small working bundle into DIR (new or empty), with the JSON Schema for editors."""
    from wbsrun.cli.scaffold import scaffold

    if not url.startswith(("http://", "https://")) or '"' in url or "\n" in url:
        click.echo(f"error: --url {url!r}: expected an http:// or https:// URL", err=True)
        sys.exit(EXIT_INVALID)
    try:
        written = scaffold(directory, url)
    except OSError as exc:
        click.echo(f"error: {exc}; expected a new or empty directory", err=True)
        sys.exit(EXIT_INVALID)
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"next: wbsrun validate {directory} && wbsrun run {directory}")


@cli.command()
@click.argument("result_file", metavar="RESULT.json", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where the HTML goes (default: RESULT with the suffix .html).",
)
def report(result_file: Path, out: Path | None) -> None:
    """Write the self-contained HTML report of a run's JSON result (`--json`)."""
    from wbsrun.cli.compare import BadInput, load_result
    from wbsrun.telemetry.html import write_report

    try:
        result = load_result(result_file)
        target = out or result_file.with_suffix(".html")
        try:
            path = write_report(result, target)
        except OSError as exc:
            raise BadInput(f"{target}: cannot write the report: {exc}") from None
    except BadInput as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    except WbsrunError as exc:
        _fail(exc)
        return
    click.echo(f"report in {path}")


def main() -> None:
    cli()
