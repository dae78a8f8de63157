"""Scheduling by progress: a small pool shared by a high-value scenario with short holds and a
bulk one with long holds, under first-come-first-served and under `scheduling: priority`.

    PYTHONPATH=src .venv/bin/python bench/sched.py                 # 10 s each, 1 repetition
    PYTHONPATH=src .venv/bin/python bench/sched.py --seconds 20 --reps 3 --json out.json

One invocation starts one embedded target (wbsrun.target, 4 loopback addresses, every answer
delayed `--latency-ms`) and runs the same bundle twice per repetition (FCFS, then priority;
the order alternates between repetitions), through `wire()` as `wbsrun run` runs it:
- pool `slots`: 4 items, `guard: exclusive` (one holder each);
- `value` (business-value 10): 6 users, a pass holds a slot for 1 request;
- `bulk` (business-value 1): 6 users, a pass holds a slot for 8 requests in a row.

Figures, per mode (lease-seconds: the pool's `held_s`, summed at every release):
- occupancy = lease-seconds / (capacity × window): how busy the pool was;
- passes per lease-second = passes completed / lease-seconds (useful work per lease-second);
- value per lease-second = Σ business-value × passes completed / lease-seconds;
- requests per lease-second: the raw work the slots carried (a bulk pass is 8 requests);
- per scenario: passes completed, and the mean pass time (waiting included).
The gain printed is the priority figure over the FCFS one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from wbsrun.cli.session import run_loop, wire
from wbsrun.core.log import RunLog
from wbsrun.core.runner import RunOptions
from wbsrun.dsl.loader import load_plan
from wbsrun.protocols.registry import provides
from wbsrun.resources.pool import PoolManager
from wbsrun.target import TargetKnobs, TargetProcess

HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
VALUES = {"value": 10.0, "bulk": 1.0}
BULK_REQUESTS = 8
USERS = 6


def _chain(n: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    for i in range(n):
        to = f"r{i + 1}" if i + 1 < n else "done"
        nodes.append(
            {
                "id": f"r{i}",
                "type": "action",
                "action": "get",
                "controls": {"exec": {"transitions": [{"to": to, "condition": "always"}]}},
            }
        )
    nodes.append({"id": "done", "type": "terminus", "state": "closing.success"})
    return {"type": "graph", "controls": {"timeout": "30s"}, "nodes": nodes}


def bundle_doc(scheduling: str) -> dict[str, Any]:
    """The skewed workload as a scenario document (`scheduling`: fcfs or priority)."""
    scenario = {"user": {"inherit": ["slots"]}}
    return {
        "version": "1.0",
        "name": "sched-bench",
        "components": [
            {"name": "http", "version": "1.0.0", "kind": "native", "capabilities": ["get"]}
        ],
        "resources": {
            "slots": {
                "type": "pair_pool",
                "config": {"manifest": "./resource.yaml", "parser": {"format": "csv"}},
                "capacity": {"size": len(HOSTS), "guard": "exclusive"},
                "provider": {
                    "component": "resource-manager",
                    "leasing": {"strategy": "round-robin", "scheduling": scheduling},
                },
            }
        },
        "actions": {
            "get": {
                "component": "http",
                "call": "get",
                "with": {"url": "http://{{resource.ip}}:{{resource.port}}/asset"},
            }
        },
        "workflows": {"quick": _chain(1), "long": _chain(BULK_REQUESTS)},
        "load": {
            "scenarios": [
                {
                    "name": name,
                    "workflow": "quick" if name == "value" else "long",
                    "user-count": USERS,
                    "business-value": value,
                    **scenario,
                }
                for name, value in VALUES.items()
            ]
        },
    }


def run_once(workdir: Path, port: int, scheduling: str, seconds: float) -> dict[str, Any]:
    bundle = workdir / scheduling
    bundle.mkdir(parents=True, exist_ok=True)
    lines = ["ip,port", *(f"{h},{port}" for h in HOSTS)]
    (bundle / "resource.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    doc = yaml.safe_dump(bundle_doc(scheduling), sort_keys=False)
    (bundle / "script.yaml").write_text(doc, encoding="utf-8")
    plan = load_plan(bundle, provides())
    pools = PoolManager(plan)
    wired = wire(plan, RunOptions(duration=seconds), pools, RunLog(None))

    async def main() -> None:
        await wired.runner.run()

    started = time.monotonic()
    run_loop(main)
    window = time.monotonic() - started
    result = wired.result()
    lease_s = pools.lease_seconds()["slots"]
    capacity = len(HOSTS)
    per = result["progress"]["scenarios"]
    passes = {name: per[name]["tasks"]["closed"] for name in VALUES}
    value = sum(VALUES[name] * n for name, n in passes.items())
    failed = result["tasks"]["failed"] + result["tasks"]["timed_out"]
    return {
        "mode": scheduling,
        "window_s": round(window, 3),
        "lease_s": round(lease_s, 3),
        "occupancy": round(lease_s / (capacity * window), 4),
        "passes_per_lease_s": round(sum(passes.values()) / lease_s, 3),
        "value_per_lease_s": round(value / lease_s, 3),
        "requests_per_lease_s": round(result["requests"]["total"] / lease_s, 3),
        "passes": passes,
        "failed": failed,
        "mean_pass_s": {name: per[name]["mean_pass_s"] for name in VALUES},
        "scheduling": result.get("scheduling"),
    }


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="window of each run")
    parser.add_argument("--reps", type=int, default=1, help="repetitions (FCFS and priority)")
    parser.add_argument("--latency-ms", type=float, default=10.0, help="target answer delay")
    parser.add_argument("--json", type=Path, help="write every run's figures there")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="wbsrun-sched-"))
    runs: dict[str, list[dict[str, Any]]] = {"fcfs": [], "priority": []}
    with TargetProcess.start(hosts=HOSTS, knobs=TargetKnobs(latency_ms=args.latency_ms)) as t:
        for rep in range(args.reps):
            order = ("fcfs", "priority") if rep % 2 == 0 else ("priority", "fcfs")
            for mode in order:
                got = run_once(workdir / f"rep{rep}", t.port, mode, args.seconds)
                runs[mode].append(got)
                print(json.dumps({k: v for k, v in got.items() if k != "scheduling"}))
    print()
    print(f"{'figure (median)':<24}{'fcfs':>10}{'priority':>10}{'gain':>9}")
    for key in ("occupancy", "passes_per_lease_s", "value_per_lease_s", "requests_per_lease_s"):
        a, b = _median(runs["fcfs"], key), _median(runs["priority"], key)
        print(f"{key:<24}{a:>10.3f}{b:>10.3f}{(b / a - 1) * 100:>8.1f}%")
    for name in VALUES:
        a = statistics.median(r["passes"][name] for r in runs["fcfs"])
        b = statistics.median(r["passes"][name] for r in runs["priority"])
        print(f"{'passes ' + name:<24}{a:>10.0f}{b:>10.0f}{(b / a - 1) * 100:>8.1f}%")
    if args.json is not None:
        args.json.write_text(json.dumps(runs, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
