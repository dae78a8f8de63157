"""The other commands: ledger, demo, target, init, report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from wbsrun.cli._common import (
    check_writable,
    exit_with,
    fail,
    with_metrics,
)
from wbsrun.cli.exits import EXIT_INVALID, EXIT_RUN_ERROR
from wbsrun.errors import RunError, WbsrunError
from wbsrun.telemetry.html import check_assets

if TYPE_CHECKING:
    from wbsrun.telemetry.metrics import MetricsAddress


@click.command()
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


@click.command()
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
@with_metrics
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
        check_writable(
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
        fail(exc)
        return
    exit_with(result)


@click.command()
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


@click.command()
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


@click.command()
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
        fail(exc)
        return
    click.echo(f"report in {path}")
