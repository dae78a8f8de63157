"""`wbsrun compile BUNDLE -o PLAN.wbsc`: the validated plan as a compiled file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from wbsrun.cli._common import check_writable, fail, unwritable
from wbsrun.cli.exits import EXIT_INVALID
from wbsrun.errors import ScenarioError, WbsrunError

__all__ = ["compile_command"]


@click.command("compile")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=False),
    required=True,
    help="The compiled plan file to write (by convention PLAN.wbsc).",
)
def compile_command(path: Path, output: Path) -> None:
    """Validate a bundle, type-check its expressions, and write its plan as a compiled file
    that `wbsrun run PLAN.wbsc` runs without parsing the YAML (docs/binary-dsl.md). Exit 0:
    written; 2: invalid bundle, an expression that would fail at run time, or a bad -o."""
    from wbsrun.dsl.binary import compile_bundle
    from wbsrun.protocols.registry import provides

    try:
        check_writable({"--output": output})
        plan, data = compile_bundle(path, provides())
        for w in plan.warnings:
            click.echo(w.format(), err=True)
        _type_check(path)
        _write(output, data)
    except WbsrunError as exc:
        fail(exc)
        return
    except OSError as exc:
        problem = unwritable(output) or exc.strerror
        click.echo(f"error: cannot write {output}: {problem}", err=True)
        sys.exit(EXIT_INVALID)
    n = len(plan.scenarios)
    click.echo(
        f"{output}: compiled {plan.name} ({n} scenario{'s' if n != 1 else ''}, "
        f"{len(data)} bytes) from {plan.source}"
    )


def _type_check(path: Path) -> None:
    """Refuse expressions that would fail whenever they run (dsl/typecheck.py)."""
    from wbsrun.dsl.bundle import locate_bundle
    from wbsrun.dsl.source import load_source
    from wbsrun.dsl.typecheck import check_expressions

    script = locate_bundle(path).script
    doc = load_source(script, display_name=str(script))
    wrong = check_expressions(doc, script.read_text(encoding="utf-8-sig"))
    if wrong:
        raise ScenarioError(wrong)


def _write(output: Path, data: bytes) -> None:
    """Whole or not at all: a temporary file beside it, renamed over it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, output)
