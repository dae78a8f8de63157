"""Stress run: the reference scenario, 1,000 users for 60 s against the embedded target, once
per workbook model (dense, sparse) in one invocation: requests/s, peak RSS, bus latency.

    .venv/bin/python bench/stress.py                      # 1,000 users, 60 s, 1 rep per model
    .venv/bin/python bench/stress.py --users 200 --duration 10 --reps 2

Each run is `wbsrun run` in its own process pinned to core 0 (the target is pinned to core 1);
peak RSS comes from wait4's rusage of that process, the rest from its JSON result.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from wbsrun.cli.demo import prepare_bundle
from wbsrun.target import TargetProcess, loopback_hosts

MODELS = ("dense", "sparse")


def _bundle(root: Path, hosts: list[str], port: int, model: str) -> Path:
    bundle = prepare_bundle(root / model, hosts, port)
    script = bundle / "script.yaml"
    doc = yaml.safe_load(script.read_text(encoding="utf-8"))
    doc.setdefault("progress", {})["model"] = model
    script.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), "utf-8")
    return bundle


def _run(bundle: Path, users: int, duration: float, out: Path) -> tuple[dict[str, Any], int]:
    cmd = [sys.executable, "-m", "wbsrun", "run", str(bundle), "--users", str(users)]
    cmd += ["--duration", f"{duration}s", "--json", str(out), "--quiet"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    errors = out.with_suffix(".stderr")
    with errors.open("wb") as err:  # a file, not a pipe: nobody reads while we wait4
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"wbsrun run failed ({code}): {errors.read_text()[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result, usage.ru_maxrss  # KiB on Linux


def _row(model: str, result: dict[str, Any], rss_kib: int) -> dict[str, Any]:
    # `engine` since issue 19; `progress_events` in results written before.
    events = result.get("engine") or result.get("progress_events") or {}
    bus = events.get("bus") or {}
    poller = events.get("poller") or {}
    return {
        "model": model,
        "requests": result["requests"]["total"],
        "failed": result["requests"]["failed"],
        "per_second": result["requests"]["per_second"],
        "tasks": result["tasks"]["started"],
        "peak_rss_mib": round(rss_kib / 1024, 1),
        "bus_p50_ms": (bus.get("latency_ms") or {}).get("p50"),
        "bus_p99_ms": (bus.get("latency_ms") or {}).get("p99"),
        "bus_high_p99_ms": (bus.get("latency_high_ms") or {}).get("p99"),
        "poller_p99_ms": (poller.get("latency_ms") or {}).get("p99"),
        "dropped": bus.get("dropped"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    hosts = loopback_hosts(args.users)
    with tempfile.TemporaryDirectory() as tmp, TargetProcess.start(hosts=hosts, cpu=1) as target:
        root = Path(tmp)
        bundles = {m: _bundle(root, hosts, target.port, m) for m in MODELS}
        for rep in range(args.reps):  # interleaved: rep 1 of each model, then rep 2 …
            for model in MODELS:
                result, rss = _run(bundles[model], args.users, args.duration, root / "r.json")
                rows.append(_row(model, result, rss) | {"rep": rep + 1})
                print(json.dumps(rows[-1]), flush=True)
    print()
    keys = ["per_second", "peak_rss_mib", "bus_p50_ms", "bus_p99_ms", "bus_high_p99_ms"]
    print(f"{'model':8}" + "".join(f"{k:>18}" for k in keys))
    for model in MODELS:
        mine = [r for r in rows if r["model"] == model]
        cells = []
        for k in keys:
            values = sorted(v for r in mine if (v := r[k]) is not None)
            cells.append(f"{values[len(values) // 2]:>18}" if values else f"{'-':>18}")
        print(f"{model:8}" + "".join(cells))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
