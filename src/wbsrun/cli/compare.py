"""`wbsrun compare A.json B.json`: two run results side by side with ratios B/A, and
`--fail-on` tolerances for CI. Wiring and printing; the comparison is wbsrun.progress.compare.

Exit codes: 0 no tolerance tripped, 99 a regression (a tolerance tripped: the code of a crossed
threshold, so CI scripts treat both alike), 2 a bad file or a malformed tolerance.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from wbsrun.cli.exits import EXIT_INVALID, EXIT_THRESHOLDS
from wbsrun.progress.compare import Comparison, Row, compare, split_action
from wbsrun.progress.tolerance import ToleranceError, Verdict, check, number, parse_tolerance

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["EXIT_BAD_INPUT", "EXIT_REGRESSION", "BadInput", "compare_command", "load_result"]

# A regression exits like a crossed threshold (k6's code), see docs/observability.md.
EXIT_REGRESSION = EXIT_THRESHOLDS
EXIT_BAD_INPUT = EXIT_INVALID
# |ratio − 1| below this is not coloured as better or worse.
NOISE = 0.05


class BadInput(Exception):
    """A file or option `compare` cannot use; the message names it and what was expected."""


def load_result(path: Path) -> dict[str, Any]:
    """A `--json` result of `wbsrun run` / `demo`; BadInput says why a file is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file (expected a result of `wbsrun run --json`)") from None
    except IsADirectoryError:
        raise BadInput(f"{path}: is a directory (expected a result JSON file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot be read: {exc}") from None
    try:
        result = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    if not isinstance(result, dict) or not isinstance(result.get("requests"), dict):
        found = f"keys {sorted(result)[:8]}" if isinstance(result, dict) else type(result).__name__
        raise BadInput(
            f"{path}: not a wbsrun run result (expected a JSON object with a 'requests' "
            f"object, as `wbsrun run --json` writes; found {found})"
        )
    return result


@click.command("compare")
@click.argument("a", metavar="A.json", type=click.Path(path_type=Path))
@click.argument("b", metavar="B.json", type=click.Path(path_type=Path))
@click.option(
    "--fail-on",
    "fail_on",
    multiple=True,
    metavar="RULE",
    help="Exit 99 when B regresses: 'p95 > 1.1x' (relative to A), 'failed_rate > 0.01' "
    "(absolute), 'actions.NAME.p99 > 1.2x', 'rps < 0.9x'. Repeatable.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(path_type=Path, allow_dash=True),
    help="Write the comparison as JSON here ('-': standard output; the table then goes to "
    "standard error).",
)
def compare_command(a: Path, b: Path, fail_on: tuple[str, ...], json_out: Path | None) -> None:
    """Compare two run results (A the baseline, B the new run) with ratios B/A; exit 0, 99 when
    a --fail-on tolerance trips, 2 on a bad file or tolerance."""
    from rich.console import Console

    to_stdout = json_out is not None and str(json_out) == "-"
    console = Console(highlight=False, stderr=to_stdout)
    console.soft_wrap = not console.is_terminal
    try:
        tolerances = [parse_tolerance(rule) for rule in fail_on]
        comparison = compare(load_result(a), load_result(b), str(a), str(b))
        verdicts = [check(t, comparison) for t in tolerances]
    except (BadInput, ToleranceError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    regression = any(v.tripped for v in verdicts)
    if json_out is not None:
        doc = {
            **comparison.to_json(),
            "tolerances": [v.to_json() for v in verdicts],
            "regression": regression,
        }
        text = json.dumps(doc, indent=2) + "\n"
        if to_stdout:
            sys.stdout.write(text)
        else:
            try:
                json_out.write_text(text, encoding="utf-8")
            except OSError as exc:
                click.echo(f"error: --json {json_out}: cannot write: {exc.strerror}", err=True)
                sys.exit(EXIT_BAD_INPUT)
    print_comparison(console, comparison, verdicts)
    sys.exit(EXIT_REGRESSION if regression else 0)


def _value(v: float | None, unit: str) -> str:
    from wbsrun.telemetry.summary import fmt_ms

    if v is None:
        return "n/a"
    if unit == "ms":
        return fmt_ms(v)
    if unit == "share":
        return f"{v * 100:.2f}%"
    if unit == "score":
        return f"{v:.3f}"
    if unit == "s":
        return f"{v:,.2f}s"
    if unit == "/s":
        return f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"
    return f"{v:,.0f}"


def _ratio(row: Row) -> str:
    ratio = row.ratio
    if ratio is None:
        return "n/a"
    text = f"{ratio:.2f}x"
    if row.better is None or abs(ratio - 1) < NOISE:
        return text
    worse = ratio > 1 if row.better == "lower" else ratio < 1
    return f"[red]{text}[/red]" if worse else f"[green]{text}[/green]"


def _label(row: Row) -> str:
    action = split_action(row.metric)
    return action[1] if action is not None else row.metric


def print_comparison(console: Console, comparison: Comparison, verdicts: Sequence[Verdict]) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    runs = (("A", comparison.a, comparison.a_name), ("B", comparison.b, comparison.b_name))
    for tag, result, name in runs:
        console.print(
            Text(
                f"{tag}  {name}: {result.get('scenario', '?')} {result.get('status', '?')}, "
                f"started {result.get('started_at', '?')}"
            )
        )
    if comparison.a.get("scenario") != comparison.b.get("scenario"):
        console.print("[yellow]note:[/yellow] A and B ran different scenarios")
    by_metric: dict[str, list[Verdict]] = {}
    for v in verdicts:
        by_metric.setdefault(v.tolerance.metric, []).append(v)
    table = Table(box=box.SIMPLE, pad_edge=False, show_edge=False)
    for col in ("metric", "A", "B", "B/A", "fail-on"):
        table.add_column(col, justify="left" if col in ("metric", "fail-on") else "right")
    section = None
    for row in comparison.rows(brief=True):
        if row.section != section:
            section = row.section
            table.add_row(Text(section, style="bold"), "", "", "", "")
        marks = " ".join(_mark(v) for v in by_metric.get(row.metric, ()))
        table.add_row(
            Text("  " + _label(row)),
            _value(row.a, row.unit),
            _value(row.b, row.unit),
            _ratio(row),
            marks,
        )
    console.print(table)
    for tag, names in (("A", comparison.actions("only_a")), ("B", comparison.actions("only_b"))):
        if names:
            console.print(Text(f"actions only in {tag}: {', '.join(names)}"))
    _print_verdicts(console, verdicts)


def _mark(v: Verdict) -> str:
    t = v.tolerance
    rule = f"{t.op} {number(t.value)}{'x' if t.relative else ''}"
    return f"[red]✗ {rule}[/red]" if v.tripped else f"[green]✓ {rule}[/green]"


def _print_verdicts(console: Console, verdicts: Sequence[Verdict]) -> None:
    from rich.text import Text

    if not verdicts:
        return
    tripped = [v for v in verdicts if v.tripped]
    for v in verdicts:
        t = v.tolerance
        base = f" ({number(t.value)} × A {v.a:,.4g})" if t.relative and v.a is not None else ""
        line = Text("  ")
        line.append("✗" if v.tripped else "✓", style="bold red" if v.tripped else "green")
        line.append(f" {t}: B {v.b:,.4g} vs limit {v.limit:,.4g}{base}")
        console.print(line)
    if tripped:
        console.print(
            f"[bold red]regression[/bold red]: {len(tripped)} of {len(verdicts)} "
            f"tolerance(s) tripped (exit {EXIT_REGRESSION})"
        )
    else:
        console.print(f"no regression: {len(verdicts)} tolerance(s) held")
