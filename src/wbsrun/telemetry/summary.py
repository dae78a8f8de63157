"""The end summary: what a run did, in the order a reader asks (k6's and Locust's best bits).

Headline and figures, requests and latency per action with an all-requests row, status codes,
thresholds ✓ / ✗, the top error messages, milestones and resources, and where the files are.
Read from the JSON result with `.get` fallbacks: a result written before a key existed still
prints. Every line fits 80 columns with everyday figures (tests/telemetry/test_summary.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from wbsrun.progress.health import run_health

__all__ = ["SUMMARY_MESSAGES", "fmt_ms", "print_summary"]

# Error messages the summary shows (the JSON result has them all, see docs/result.md).
SUMMARY_MESSAGES = 10
# Exact status codes listed before they are folded into classes.
SUMMARY_CODES = 8
LATENCY_KEYS = ("min", "mean", "p50", "p90", "p95", "p99", "max")
DOT = " · "


def fmt_ms(value: Any) -> str:
    """Milliseconds in at most ~6 characters, 3 significant digits below 1 s."""
    if not isinstance(value, int | float):
        return "-"
    v = float(value)
    if v < 1:
        return f"{v:.3f}"
    if v < 10:
        return f"{v:.2f}"
    if v < 100:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover - the loop returns


def _pct(value: Any) -> str:
    return f"{float(value) * 100:.1f}%" if isinstance(value, int | float) else "-"


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        # 4 significant digits below 1,000 (latencies, rates); whole numbers above (req/s):
        # `g` would switch to an exponent from 10,000 on.
        return f"{value:,.4g}" if abs(value) < 1_000 else f"{value:,.0f}"
    return str(value)


def _failed_rate(req: Mapping[str, Any]) -> float:
    rate = req.get("failed_rate")
    if isinstance(rate, int | float):
        return float(rate)
    total = req.get("total", 0)
    return req.get("failed", 0) / total if total else 0.0


def print_summary(
    console: Console, result: Mapping[str, Any], files: Mapping[str, str] | None = None
) -> None:
    """The end summary of `result`; `files`: label → where it was written (result, log,
    report), listed last."""
    _print_headline(console, result)
    _print_requests(console, result)
    _print_latency(console, result)
    _print_checks(console, result.get("actions") or {})
    _print_thresholds(console, result.get("thresholds") or [])
    _print_error_messages(console, result.get("error_messages", ()))
    _print_details(console, result)
    if files:
        console.print("[bold]files[/bold]")
        for label, path in files.items():
            console.print(Text(f"  {label:<7} {path}"))


def _print_headline(console: Console, result: Mapping[str, Any]) -> None:
    req = result.get("requests", {})
    tasks = result.get("tasks", {})
    prog = result.get("progress", {})
    status = result.get("status", "?")
    colour = {"completed": "green", "interrupted": "yellow", "aborted": "red"}.get(status, "red")
    head = Text(f"{result.get('scenario', '?')} ", style="bold")
    head.append(status, style=colour)
    head.append(f" in {result.get('duration_s', 0)}s")
    if result.get("paused_s"):
        head.append(f" ({result['paused_s']}s of it paused, left out of the rates)")
    console.print(head)
    text = (
        f"  requests  {req.get('total', 0):,} ({_num(req.get('per_second', 0.0))}/s){DOT}"
        f"{req.get('failed', 0):,} failed ({_pct(_failed_rate(req))})"
    )
    if req.get("interrupted"):
        text += f"{DOT}{req['interrupted']:,} interrupted"
    console.print(Text(text))
    sent = req.get("bytes")
    if isinstance(sent, Mapping):
        console.print(
            Text(
                f"  bytes     {fmt_bytes(sent.get('sent', 0))} sent{DOT}"
                f"{fmt_bytes(sent.get('received', 0))} received"
            )
        )
    _print_status(console, req)
    parts = [f"{tasks.get('succeeded', 0):,} ok", f"{tasks.get('failed', 0):,} failed"]
    for key, label in (("timed_out", "timed out"), ("rolled_back", "rolled back")):
        parts.append(f"{tasks.get(key, 0):,} {label}")
    if tasks.get("interrupted"):
        parts.append(f"{tasks['interrupted']:,} interrupted")
    late = sum(s.get("pacing_missed", 0) for s in (result.get("scenarios") or {}).values())
    if late:
        parts.append(f"{late:,} past their pacing")
    console.print(Text("  tasks     " + DOT.join(parts)))
    _print_arrivals(console, result)
    parts = [f"work {_pct(prog.get('work'))}", f"time {_pct(prog.get('time'))}"]
    if prog.get("milestones_weighted") is not None:
        parts.append(f"milestones {_pct(prog['milestones_weighted'])}")
    console.print(Text("  progress  " + DOT.join(parts)))
    health = _health(result)
    console.print(
        Text(
            f"  health    {health['score']:.2f} (progress {health['progress']:.2f}{DOT}"
            f"error rate {health['error_rate']:.3f}{DOT}deviation {health['deviation']:.2f})"
        )
    )


def _print_arrivals(console: Console, result: Mapping[str, Any]) -> None:
    """Per arrival-rate scenario: iterations asked and achieved, dropped, start delay."""
    for name, figures in (result.get("scenarios") or {}).items():
        a = figures.get("arrival") if isinstance(figures, Mapping) else None
        if not isinstance(a, Mapping):
            continue
        delay = a.get("iteration_delay_ms", {})
        text = (
            f"  arrivals  {name}: {a.get('started', 0):,} of {a.get('planned', 0):,} "
            f"({_num(a.get('achieved_per_second', 0.0))}/s of "
            f"{_num(a.get('asked_per_second', 0.0))}/s){DOT}{a.get('dropped', 0):,} dropped"
            f"{DOT}start delay p95 {delay.get('p95', 0.0)} ms"
        )
        console.print(Text(text, style="yellow" if a.get("dropped") else ""))


def _health(result: Mapping[str, Any]) -> Mapping[str, float]:
    """The result's `health`, or computed from its progress and requests (older results)."""
    health = result.get("health")
    if isinstance(health, Mapping) and "score" in health:
        return health
    prog = result.get("progress", {})
    req = result.get("requests", {})
    return run_health(
        float(prog.get("work", 0.0)), prog.get("time"), req.get("total", 0), req.get("failed", 0)
    ).to_json()


def _table(
    title: str, columns: Sequence[str], footer: Sequence[str] | None = None, left: int = 1
) -> Table:
    """A plain table (`left` columns left-aligned, the others right); `footer`: the totals row
    under a rule (k6's and Locust's aggregate row)."""
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE,
        pad_edge=False,
        show_edge=False,
        show_footer=footer is not None,
    )
    for i, col in enumerate(columns):
        table.add_column(
            col,
            footer=footer[i] if footer is not None else "",
            justify="left" if i < left else "right",
        )
    return table


def _print_requests(console: Console, result: Mapping[str, Any]) -> None:
    """Calls per action (an action's retries may send more requests) and all requests."""
    actions: Mapping[str, Mapping[str, Any]] = result.get("actions", {})
    req = result.get("requests", {})
    total = [
        "all requests",
        f"{req.get('total', 0):,}",
        f"{req.get('ok', 0):,}",
        f"{req.get('failed', 0):,}",
        _pct(_failed_rate(req)),
        _num(req.get("per_second", 0.0)),
    ]
    table = _table(
        "requests by action", ("action", "calls", "ok", "failed", "fail %", "req/s"), total
    )
    for name, a in actions.items():
        table.add_row(
            Text(name),
            f"{a.get('count', 0):,}",
            f"{a.get('ok', 0):,}",
            f"{a.get('failed', 0):,}",
            _pct(_failed_rate({"total": a.get("count", 0), **a})),
            _num(a["per_second"]) if "per_second" in a else "-",
        )
    console.print(table)


def _print_latency(console: Console, result: Mapping[str, Any]) -> None:
    actions: Mapping[str, Mapping[str, Any]] = result.get("actions", {})
    overall = result.get("requests", {}).get("latency_ms")
    footer = None
    if isinstance(overall, Mapping):
        footer = ["all requests", *(fmt_ms(overall.get(k)) for k in LATENCY_KEYS)]
    table = _table("latency by action (ms)", ("action", *LATENCY_KEYS), footer)
    for name, a in actions.items():
        lat = a.get("latency_ms", {})
        table.add_row(Text(name), *(fmt_ms(lat.get(k)) for k in LATENCY_KEYS))
    console.print(table)


def _print_status(console: Console, req: Mapping[str, Any]) -> None:
    codes: Mapping[str, int] = req.get("status_codes") or {}
    classes: Mapping[str, int] = req.get("status") or {}
    if not codes and not classes:
        return
    shown = dict(codes) if 0 < len(codes) <= SUMMARY_CODES else dict(classes)
    parts = [f"{'no status' if k in ('0', 'none') else k} ×{n:,}" for k, n in shown.items()]
    console.print(Text("  status    " + DOT.join(parts)))


def _print_checks(console: Console, actions: Mapping[str, Any]) -> None:
    """k6's checks block: per action and check, ✓ when every evaluation held, its rate."""
    rows = [
        (action, name, c)
        for action, figures in actions.items()
        if isinstance(figures, Mapping)
        for name, c in (figures.get("checks") or {}).items()
    ]
    if not rows:
        return
    passes = sum(int(c.get("passes", 0)) for _, _, c in rows)
    total = passes + sum(int(c.get("fails", 0)) for _, _, c in rows)
    rate = passes / total if total else 0.0
    console.print(f"[bold]checks[/bold] {_pct(rate)} ({passes} of {total} passed)")
    for action, name, c in rows:
        ok = not c.get("fails")
        line = Text("  ")
        line.append("✓" if ok else "✗", style="green" if ok else "bold red")
        line.append(f" {action} {name}  {_pct(c.get('rate'))}")
        line.append(f"  ✓ {c.get('passes', 0)} ✗ {c.get('fails', 0)}")
        console.print(line)


def _print_thresholds(console: Console, thresholds: Sequence[Mapping[str, Any]]) -> None:
    if not thresholds:
        return
    passed = sum(1 for t in thresholds if t.get("ok"))
    console.print(f"[bold]thresholds[/bold] {passed} of {len(thresholds)} passed")
    for t in thresholds:
        ok = bool(t.get("ok"))
        line = Text("  ")
        line.append("✓" if ok else "✗", style="green" if ok else "bold red")
        line.append(f" {t.get('rule', '?')}  observed {_num(t.get('observed'))}")
        if not ok and t.get("first_failed_s") is not None:
            line.append(f", failing from {t['first_failed_s']}s")
        if not ok and t.get("abort_on_fail"):
            line.append(" (abort-on-fail)")
        console.print(line)


def _print_error_messages(console: Console, messages: Sequence[Mapping[str, Any]]) -> None:
    """The most frequent error messages, as Locust's failures table: count, action, code,
    message. One line each: not a table, so a long message wraps at words (or, piped, not at
    all) instead of being folded into a narrow column."""
    if not messages:
        return
    shown = messages[:SUMMARY_MESSAGES]
    title = "top error messages"
    if len(messages) > len(shown):
        title += f" ({len(shown)} of {len(messages)}; all in the JSON result)"
    console.print(f"[bold]{title}[/bold]")
    widths = [
        max(len(text) for text in column)
        for column in zip(
            *((f"{m['count']:,}", m["action"] or "(pass)", m["code"]) for m in shown), strict=True
        )
    ]
    for m in shown:
        message = m["message"]
        if message is None:
            message = "(other messages, beyond the cap)"
        count, action, code = f"{m['count']:,}", m["action"] or "(pass)", m["code"]
        # Text, not str: a message's brackets are not rich markup.
        console.print(
            Text(
                f"  {count:>{widths[0]}}  {action:<{widths[1]}}  {code:<{widths[2]}}  "
                f"{message or '(no message)'}"
            )
        )


def _print_details(console: Console, result: Mapping[str, Any]) -> None:
    """Milestones, scenarios, exits, error codes, resources and log levels: one small table."""
    prog = result.get("progress", {})
    extra = _table(
        "milestones, scenarios, exits, errors, resources", ("kind", "name", "value"), left=2
    )
    for name, m in prog.get("milestones", {}).items():
        share = f"{m['share'] * 100:.1f}%, " if "share" in m else ""
        extra.add_row("milestone", Text(name), f"{m['reached']:,} ({share}weight {m['weight']})")
    scenarios = prog.get("scenarios", {})
    health = (result.get("health") or {}).get("scenarios") or {}
    if len(scenarios) > 1:
        for name, sc in scenarios.items():
            text = f"work {_pct(sc.get('work'))}"
            if sc.get("milestones_weighted") is not None:
                text += f", milestones {_pct(sc['milestones_weighted'])}"
            score = (health.get(name) or {}).get("score")
            if isinstance(score, int | float):
                text += f", health {score:.2f}"
            extra.add_row("scenario", Text(name), text)
    for kind in ("exits", "errors"):
        for name, n in result.get(kind, {}).items():
            extra.add_row(kind[:-1], Text(name), f"{n:,}")
    for name, r in result.get("resources", {}).items():
        text = f"{r['leases']} leases, {r['released']} released, {r.get('items', 0)} items"
        if r.get("health_checks"):
            text += (
                f"; health {r['health_checks']} checks, {r['health_failures']} failed, "
                f"{r.get('healthy', r.get('items', 0))} healthy at the end"
            )
        if r.get("expired"):
            text += f"; {r['expired']} expired"
        extra.add_row("resource", Text(name), text)
    for level, n in result.get("logs", {}).items():
        extra.add_row("log", level, f"{n:,}")
    if extra.row_count:
        console.print(extra)
