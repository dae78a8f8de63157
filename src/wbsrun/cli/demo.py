"""`wbsrun demo`: the bundled tri-phase scenario against the embedded asset server."""

from __future__ import annotations

import shutil
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from rich.console import Console

from wbsrun.cli.faults import (
    FAULT_HEALTH,
    FaultScript,
    fault_plan,
    shorten_health_checks,
    spare_items,
)
from wbsrun.cli.options import resolve_options
from wbsrun.cli.session import execute, to_stdout
from wbsrun.core.runner import Runner
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.units import parse_duration
from wbsrun.protocols.registry import provides
from wbsrun.target import TargetKnobs, TargetProcess, loopback_hosts
from wbsrun.telemetry.console import console_for
from wbsrun.telemetry.metrics import MetricsAddress

__all__ = ["DEMO_BUNDLE", "prepare_bundle", "run_demo"]

DEMO_BUNDLE = "http_tri_phase"


def prepare_bundle(workdir: Path, hosts: list[str], port: int) -> Path:
    """Copy the bundled scenario to `workdir` with a manifest of one item per address."""
    workdir.mkdir(parents=True, exist_ok=True)
    with as_file(files("wbsrun").joinpath("examples", DEMO_BUNDLE)) as src:
        for item in Path(src).iterdir():
            if item.is_dir():
                shutil.copytree(item, workdir / item.name, dirs_exist_ok=True)
            elif item.name != "resource.yaml":
                shutil.copy2(item, workdir / item.name)
    lines = ["ip,port", *(f"{h},{port}" for h in hosts)]
    (workdir / "resource.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return workdir


def run_demo(
    *,
    users: int,
    duration: str,
    workdir: Path,
    json_out: Path | None,
    latency_ms: float = 0.0,
    error_rate: float = 0.0,
    quiet: bool = False,
    faults: bool = False,
    metrics: MetricsAddress | None = None,
    metrics_linger: float = 0.0,
    report_out: Path | None = None,
) -> dict[str, Any]:
    """Run the demo; the run's result (its exit code: cli/exits.py)."""
    console = console_for(stderr=to_stdout(json_out))
    options = resolve_options(None, {"users": users, "duration": duration})
    # One address per user: the scenario's pool is exclusive, so each user holds its own item.
    # With faults, spares too: a task rolled back off a bad item needs a healthy free one.
    count = max(users, 1) + (spare_items(users) if faults else 0)
    hosts = loopback_hosts(count)
    knobs = TargetKnobs(latency_ms=latency_ms, error_rate=error_rate)
    console.print(f"starting the embedded asset server on {len(hosts)} loopback addresses …")
    with TargetProcess.start(hosts=hosts, port=0, knobs=knobs) as target:
        bundle = prepare_bundle(workdir, hosts, target.port)
        if faults:
            shorten_health_checks(bundle / "script.yaml")
        plan = load_plan(bundle, provides())
        console.print(
            f"running '{plan.name}' from {bundle}: {users} users for {duration} "
            f"(target pid {target.pid}, port {target.port})"
        )
        prepare = None
        if faults:
            window = options.duration or parse_duration(duration)
            script = fault_plan(list(target.hosts), window)
            console.print(
                f"faults: {len(script)} scheduled; health checks every "
                f"{FAULT_HEALTH['interval']} (the scenario says 30s), {len(hosts) - users} "
                "spare items"
            )

            def prepare(runner: Runner) -> None:
                runner.services.append(FaultScript(runner.ctx, target.url(), script, console))

        result = execute(
            plan,
            options,
            json_out=json_out or workdir / "result.json",
            log_file=workdir / "scenario.log",
            console=console,
            live=not quiet,
            prepare=prepare,
            metrics=metrics,
            metrics_linger=metrics_linger,
            report_out=report_out,
        )
        served = target.stats()
    received = int(served.get("received", 0))
    where = "standard output" if to_stdout(json_out) else json_out or workdir / "result.json"
    console.print(
        f"server counted {received} requests, wbsrun sent {result['requests']['total']}; "
        f"result in {where}, log in {workdir / 'scenario.log'}"
    )
    if faults:
        _fault_summary(console, result)
    return result


def _fault_summary(console: Console, result: dict[str, Any]) -> None:
    tasks = result["tasks"]
    for name, r in result["resources"].items():
        if "items_failed" not in r or r.get("items", 0) <= 1:
            continue
        held = r.get("active", 0) + r.get("held_at_end", 0)
        verdict = (
            "every lease returned"
            if held == 0 and r["leases"] == r["released"]
            else (f"{held} lease(s) still held")
        )
        console.print(
            f"{name}: {r['items_failed']} item(s) left rotation, {r['items_recovered']} came "
            f"back; {tasks.get('rollbacks', 0)} rollback(s), {tasks['rolled_back']} task(s) "
            f"closed as rolled back; {r['leases']} leases granted, {r['released']} returned, "
            f"{r.get('expired', 0)} expired: {verdict}"
        )
