"""`wbsrun demo`: the bundled tri-phase scenario against the embedded asset server."""

from __future__ import annotations

import shutil
from importlib.resources import as_file, files
from pathlib import Path

from rich.console import Console

from wbsrun.cli.options import resolve_options
from wbsrun.cli.session import execute
from wbsrun.dsl.loader import load_plan
from wbsrun.protocols.registry import provides
from wbsrun.target import TargetKnobs, TargetProcess, loopback_hosts

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
) -> int:
    console = Console(highlight=False)
    # One address per user: the scenario's pool is exclusive, so each user holds its own item.
    hosts = loopback_hosts(max(users, 1))
    knobs = TargetKnobs(latency_ms=latency_ms, error_rate=error_rate)
    console.print(f"starting the embedded asset server on {len(hosts)} loopback addresses …")
    with TargetProcess.start(hosts=hosts, port=0, knobs=knobs) as target:
        bundle = prepare_bundle(workdir, hosts, target.port)
        plan = load_plan(bundle, provides())
        options = resolve_options(None, {"users": users, "duration": duration})
        console.print(
            f"running '{plan.name}' from {bundle}: {users} users for {duration} "
            f"(target pid {target.pid}, port {target.port})"
        )
        result = execute(
            plan,
            options,
            json_out=json_out or workdir / "result.json",
            log_file=workdir / "scenario.log",
            console=console,
            live=not quiet,
        )
        served = target.stats()
    received = int(served.get("received", 0))
    console.print(
        f"server counted {received} requests, wbsrun sent {result['requests']['total']}; "
        f"result in {json_out or workdir / 'result.json'}, log in {workdir / 'scenario.log'}"
    )
    return 0
