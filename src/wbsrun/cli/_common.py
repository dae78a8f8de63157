"""What the commands share: option parsing helpers, loading, output checks, exits."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from wbsrun.cli.exits import EXIT_INVALID, EXIT_RUN_ERROR, exit_code, threshold_lines
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import Plan
from wbsrun.errors import BundleError, Diagnostic, ScenarioError, WbsrunError
from wbsrun.protocols.registry import provides

if TYPE_CHECKING:
    from wbsrun.core.runner import RunOptions
    from wbsrun.dsl.binary import Loaded
    from wbsrun.telemetry.metrics import MetricsAddress

__all__ = [
    "ALL_SCENARIOS",
    "Selection",
    "check_out",
    "check_writable",
    "cores",
    "exit_with",
    "fail",
    "linger_seconds",
    "load_run_plan",
    "load_warned",
    "metrics_address",
    "positive_seconds",
    "with_metrics",
    "worker_count",
]


def metrics_address(
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


def linger_seconds(ctx: click.Context, param: click.Parameter, value: str) -> float:
    from wbsrun.dsl.units import UnitError, parse_duration

    try:
        return 0.0 if value.strip() in ("0", "0s") else parse_duration(value)
    except UnitError as exc:
        raise click.BadParameter(f"'{value}': {exc}; expected a duration such as 5s") from None


def positive_seconds(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
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
METRICS_OPTIONS = (
    click.option(
        "--metrics",
        "metrics",
        metavar="[HOST:]PORT",
        default=None,
        callback=metrics_address,
        help="Serve Prometheus metrics on http://HOST:PORT/metrics while the run goes "
        "(HOST 127.0.0.1 unless given; PORT 0: any free port, printed).",
    ),
    click.option(
        "--metrics-linger",
        default="0s",
        show_default=True,
        callback=linger_seconds,
        help="After the result is written, keep serving the final metrics this long, so "
        "that a scraper sees the run's end (Ctrl-C stops it).",
    ),
)


def with_metrics(f: Any) -> Any:
    for option in reversed(METRICS_OPTIONS):
        f = option(f)
    return f


def load_warned(path: Path) -> Plan:
    plan = load_plan(path, provides())
    _warn(plan)
    return plan


def _warn(plan: Plan) -> None:
    for w in plan.warnings:
        click.echo(w.format(), err=True)


@dataclass(frozen=True, slots=True)
class Selection:
    """How a run's plan is loaded, also by its workers: `--scenario` names (empty: all) and
    whether the plan cache may be used (docs/binary-dsl.md)."""

    scenarios: tuple[str, ...] = ()
    cache: bool = True


ALL_SCENARIOS = Selection()


def load_run_plan(path: Path, scenarios: tuple[str, ...] = (), *, cache: bool = True) -> Loaded:
    """A run's plan: from a compiled file, the plan cache, or the YAML; warnings printed."""
    from wbsrun.dsl.binary import load_any

    loaded = load_any(path, provides(), scenarios, cache=cache)
    _warn(loaded.plan)
    return loaded


def fail(exc: WbsrunError) -> None:
    # Diagnostics go out as plain text: wrapping would break file:line:col for editors.
    if isinstance(exc, ScenarioError):
        click.echo(exc.format(), err=True)
        errors = sum(1 for d in exc.diagnostics if d.severity == "error")
        click.echo(f"{errors} error(s); the scenario was not run", err=True)
        sys.exit(EXIT_INVALID)
    click.echo(f"error: {exc}", err=True)
    sys.exit(EXIT_INVALID if isinstance(exc, BundleError) else EXIT_RUN_ERROR)


def cores() -> int:
    """The cores this process may run on (`--workers 0`)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def worker_count(workers: int, cluster: str | None) -> int:
    """`--workers`: 0 is one per core here; with `--cluster` and no `--workers`, 0 (one per
    CPU the Ray cluster reports, counted once connected)."""
    if cluster is not None:
        source = click.get_current_context().get_parameter_source("workers")
        return 0 if source is click.core.ParameterSource.DEFAULT else workers
    return workers or cores()


def exit_with(result: dict[str, Any]) -> None:
    """Name every failed threshold on standard error (also when quiet: CI reads it), then
    exit with the run's code (cli/exits.py)."""
    for line in threshold_lines(result):
        click.echo(line, err=True)
    sys.exit(exit_code(result))


def check_writable(paths: dict[str, Path | None]) -> None:
    """Refuse, before the run, output files that could not be written after it, so a run's
    result is never lost to a bad path. Nothing is made here: the nearest existing ancestor
    must be a directory this process may write in (the run makes the rest)."""
    problems: list[Diagnostic] = []
    for flag, path in paths.items():
        if path is None or str(path) == "-":
            continue
        problem = unwritable(path)
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


def unwritable(path: Path) -> str | None:
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


def check_out(plan: Plan, options: RunOptions) -> None:
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
