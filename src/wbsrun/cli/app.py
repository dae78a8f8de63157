"""The `wbsrun` command: init, validate, wbs, compile, run, ctl, ledger, demo, target,
report, compare, plugins. Wiring only."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from wbsrun.cli._common import (
    fail,
    load_warned,
)
from wbsrun.cli.compare import compare_command
from wbsrun.cli.compile_cmd import compile_command
from wbsrun.cli.ctl import ctl
from wbsrun.cli.exits import EXIT_INVALID
from wbsrun.cli.plugins import check_for_validate, plugins_group
from wbsrun.cli.run_cmd import resume, run
from wbsrun.cli.tools import demo, init, ledger, report, target
from wbsrun.dsl.wbs import render_wbs
from wbsrun.errors import WbsrunError

__all__ = ["cli", "main"]


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
        plan = load_warned(path)
    except WbsrunError as exc:
        fail(exc)
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
        plan = load_warned(path)
    except WbsrunError as exc:
        fail(exc)
        return
    click.echo(render_wbs(plan.wbs))


for _command in (
    run,
    resume,
    compile_command,
    ctl,
    ledger,
    demo,
    compare_command,
    plugins_group,
    target,
    init,
    report,
):
    cli.add_command(_command)


def main() -> None:
    cli()
