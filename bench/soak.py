"""Soak: memory over a long run, per sampling mode (`progress.sampling`).

    .venv/bin/python bench/soak.py                      # 1,000 users, 10 min, each mode
    .venv/bin/python bench/soak.py --duration 60 --modes aggregated,full --json out.json
    PYTHONPATH=/tmp/base/src .venv/bin/python bench/soak.py --modes legacy --duration 60

Each mode runs in a child process of this script (`--child MODE`, pinned to core 0, uvloop)
driving the reference scenario at full speed exactly as `wbsrun run` wires it (its
task-duration stretched to `--duration`), against nginx
on core 1 (bench/transport.py's `Nginx`: one loopback address per user, every path answered
200). The parent samples the child's RSS (`/proc/PID/status` VmRSS, and VmHWM: the peak so
far) every 0.5 s: the peak at 60 s and at the end are the figures, the curve goes to `--json`.
Throughput: the run's requests over its duration (the result's `requests.per_second`).
`legacy` runs whatever wbsrun PYTHONPATH points at with no sampling option (the code before the
sampling modes: every closed entry kept, packed).

Criteria (the issue): peak RSS at the end ≤ 1.2 × peak RSS at 60 s for `aggregated` and
`full`; `full` writes exactly `tasks.started` entries and costs ≤ 10 % throughput against
`aggregated`. Results: docs/benchmarks.md, "Soak: memory over a long run".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from transport import TOOL_CPU, Nginx, _hosts  # bench/ is sys.path[0] when run

MODES = ("aggregated", "full", "sampled")
SAMPLE_S = 0.5
EARLY_S = 60.0


def status_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid` in KiB; (0, 0) once it is gone."""
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def soak(nginx: Nginx, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix=f"wbsrun-soak-{mode}-"))
    cmd = [sys.executable, __file__, "--child", mode, "--users", str(args.users)]
    cmd += ["--port", str(nginx.port), "--duration", f"{args.duration:g}", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    started = json.loads(proc.stdout.readline())
    t0, pid = float(started["t0"]), int(started["pid"])
    curve: list[tuple[float, float]] = []
    early_hwm = 0
    while True:
        # wait4 with WNOHANG: the child is reaped here, so its rusage (peak RSS) is ours.
        reaped, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if reaped:
            break
        time.sleep(SAMPLE_S)
        t = time.monotonic() - t0
        rss, hwm = status_kb(pid)
        if rss:
            curve.append((round(t, 1), round(rss / 1024, 1)))
        if t <= EARLY_S and hwm:
            early_hwm = hwm
    proc.returncode = os.waitstatus_to_exitcode(status)
    done = json.loads(proc.stdout.read().decode().strip().splitlines()[-1])
    proc.stdout.close()
    end_mb = usage.ru_maxrss / 1024
    row = {
        "mode": mode,
        "peak_rss_60s_mb": round(early_hwm / 1024, 1),
        "peak_rss_end_mb": round(end_mb, 1),
        "growth": round(end_mb / (early_hwm / 1024), 3) if early_hwm else None,
        **done,
        "rss_curve_mb": curve[:: max(1, len(curve) // 120)],
    }
    shutil.rmtree(out, ignore_errors=True)
    return row


def parent(args: argparse.Namespace) -> int:
    modes = args.modes.split(",")
    nginx = Nginx(_hosts(args.users))
    rows = []
    try:
        for mode in modes:
            row = soak(nginx, mode, args)
            rows.append(row)
            print(
                f"{mode:<11} peak RSS {row['peak_rss_60s_mb']:7.1f} MB at 60 s, "
                f"{row['peak_rss_end_mb']:7.1f} MB at {args.duration:g} s "
                f"(x{row['growth']})  {row['per_second']:8.0f} req/s  "
                f"passes {row['tasks_started']}  kept {row.get('kept')}  "
                f"written {row.get('written')}",
                flush=True,
            )
    finally:
        nginx.stop()
    by_mode = {r["mode"]: r for r in rows}
    checks: dict[str, Any] = {}
    for mode in ("aggregated", "full"):
        if mode in by_mode and by_mode[mode]["growth"] is not None:
            checks[f"{mode}_rss_end_le_1.2x_60s"] = by_mode[mode]["growth"] <= 1.2
    if "full" in by_mode:
        full = by_mode["full"]
        checks["full_writes_every_pass"] = full["written"] == full["tasks_started"]
        if "aggregated" in by_mode:
            ratio = full["per_second"] / by_mode["aggregated"]["per_second"]
            checks["full_throughput_vs_aggregated"] = round(ratio, 3)
            checks["full_costs_le_10pct"] = ratio >= 0.9
    summary = {"users": args.users, "duration_s": args.duration, "checks": checks, "runs": rows}
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 0


def child(args: argparse.Namespace) -> int:
    import resource

    from wbsrun.cli.demo import prepare_bundle
    from wbsrun.cli.session import run_loop, wire
    from wbsrun.core.log import RunLog
    from wbsrun.core.runner import RunOptions
    from wbsrun.dsl.loader import load_plan
    from wbsrun.protocols.registry import provides
    from wbsrun.resources.pool import PoolManager

    os.sched_setaffinity(0, {TOOL_CPU})
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    hosts = _hosts(args.users)
    bundle = prepare_bundle(Path(tempfile.mkdtemp(prefix="wbsrun-soak-")), hosts, args.port)
    # Each user's window is the scenario's task-duration (120 s): stretched to the soak's, or
    # every user stops after two minutes and the run ends there.
    script = bundle / "script.yaml"
    text = script.read_text(encoding="utf-8")
    script.write_text(text.replace("task-duration: 120s", f"task-duration: {args.duration:g}s"))
    plan = load_plan(bundle, provides())
    extra: dict[str, Any] = {}
    if args.child != "legacy":
        extra = {"sampling": args.child, "out_dir": args.out}
    options = RunOptions(users=args.users, duration=args.duration, **extra)
    wired = wire(plan, options, PoolManager(plan), RunLog(None))

    async def main() -> None:
        print(json.dumps({"t0": time.monotonic(), "pid": os.getpid()}), flush=True)
        await wired.runner.run()

    run_loop(main)
    result = wired.result()
    ledger = result.get("ledger", {})
    done = {
        "tasks_started": result["tasks"]["started"],
        "requests": result["requests"]["total"],
        "failed": result["requests"]["failed"],
        "per_second": result["requests"]["per_second"],
        "kept": ledger.get("kept"),
        "written": ledger.get("written"),
        "ledger_error": ledger.get("error"),
        "outcomes": {n: t["outcomes"] for n, t in ledger.get("scenarios", {}).items()},
        "errors": result["errors"],
    }
    if args.child == "full" and args.out is not None:
        disk = sum(f.stat().st_size for f in (args.out / "ledger").iterdir())
        done["disk_mb"] = round(disk / 2**20, 1)
    shutil.rmtree(bundle, ignore_errors=True)
    print(json.dumps(done), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/soak.py")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=600.0, help="s of run window")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated; or legacy")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return child(args) if args.child else parent(args)


if __name__ == "__main__":
    sys.exit(main())
