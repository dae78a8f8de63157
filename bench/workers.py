"""`wbsrun run --workers N` against one process: CPU per request and the coordinator's share.

    .venv/bin/python bench/workers.py                       # 200 users, --workers 1 vs 2, 3 reps
    .venv/bin/python bench/workers.py --reps 5 --users 400 --json out.json

Each run is `python -m wbsrun run BUNDLE --workers N --quiet --duration D` (the CLI as a user
runs it: spawned workers, pipes, the coordinator's ticker, bus and poller), pinned with
`taskset -c 0`: the coordinator and every worker share core 0 (their children inherit it),
nginx (one worker, `return 200`, `stub_status`) has core 1. The scenario: one GET a pass with
a status check, `USERS` users, no think time: the generator's core is the bottleneck.

In a steady window (`--skip` s after the run's first request, `--window` s long) the parent
reads nginx's request counter, and /proc's CPU time of the coordinator and of each worker
(`--workers 1`: the one process is the worker, there is no coordinator). Figures per run:
  worker µs/request  Σ workers' CPU in the window / requests nginx served in it
  coordinator share  coordinator CPU / Σ workers' CPU in the window
Ratios per repetition: two's worker µs/request over one's (the issue asks ≤ 1.1), and the
coordinator share (≤ 5 %). A run is INVALID when nginx used > 80 % of its core, the exit code
is not 0, or the result's request total differs from what nginx served during the run.
Method: /work/shared/bench-method.md; results: docs/benchmarks.md "All cores".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transport import Nginx, proc_cpu_s  # bench/ is sys.path[0] when run

TOOL_CPU = 0
TARGET_LIMIT = 0.80

SCRIPT = """\
name: cores-bench
actions:
  fetch:
    component: http
    call: get
    with: {{url: "http://127.0.0.1:{port}/asset"}}
    checks:
      - {{name: answered, status-in: [200]}}
workflows:
  main:
    steps:
      - ref: fetch
load:
  scenarios:
    - name: users
      workflow: main
      user-count: {users}
"""


@dataclass
class Run:
    workers: int
    rep: int
    rps: float = 0.0
    worker_cpu_s: float = 0.0
    coordinator_cpu_s: float = 0.0
    window_requests: int = 0
    us_per_request: float = 0.0
    coordinator_share: float = 0.0
    target_cpu_share: float = 0.0
    result_total: int = 0
    server_total: int = 0
    notes: list[str] = field(default_factory=list)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    out = []
    for child in text.split():
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                out.append(int(child))
        except OSError:
            continue
    return out


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):  # a process that has just exited
            total += proc_cpu_s(pid)
    return total


def measure(
    nginx: Nginx, bundle: Path, workers: int, rep: int, skip: float, window: float, cpus: str
) -> Run:
    run = Run(workers, rep)
    out = bundle / f"result-{workers}-{rep}.json"
    duration = skip + window + 2.0
    cmd = ["taskset", "-c", cpus, sys.executable, "-m", "wbsrun", "run", str(bundle)]
    cmd += ["--workers", str(workers), "--quiet", "--duration", f"{duration:g}s"]
    cmd += ["--json", str(out)]
    before = nginx.requests()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # The run starts when nginx sees its first requests (the workers' start-up is not timed).
    while nginx.requests() == before:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "exited")
        time.sleep(0.05)
    t0 = time.monotonic()
    pids = _children(proc.pid) if workers > 1 else [proc.pid]
    time.sleep(max(0.0, t0 + skip - time.monotonic()))
    a = (time.monotonic(), nginx.requests(), nginx.cpu_s(), _cpu(pids), _cpu([proc.pid]))
    time.sleep(max(0.0, t0 + skip + window - time.monotonic()))
    b = (time.monotonic(), nginx.requests(), nginx.cpu_s(), _cpu(pids), _cpu([proc.pid]))
    _, err = proc.communicate(timeout=duration + 120)
    span = b[0] - a[0]
    run.window_requests = b[1] - a[1]
    run.rps = run.window_requests / span
    run.target_cpu_share = (b[2] - a[2]) / span
    run.worker_cpu_s = b[3] - a[3]
    run.coordinator_cpu_s = (b[4] - a[4]) if workers > 1 else 0.0
    run.us_per_request = run.worker_cpu_s / run.window_requests * 1e6
    run.coordinator_share = run.coordinator_cpu_s / run.worker_cpu_s if workers > 1 else 0.0
    run.server_total = nginx.requests() - before
    if proc.returncode:
        run.notes.append(f"exit {proc.returncode}: {err.decode()[-300:]}")
    else:
        result = json.loads(out.read_text(encoding="utf-8"))
        run.result_total = int(result["requests"]["total"])
        if run.result_total != run.server_total:
            run.notes.append(f"result {run.result_total}, nginx {run.server_total}")
        if workers > 1 and not result["cluster"]["exact"]:
            run.notes.append("merged totals not exact")
    if len(pids) != workers:
        run.notes.append(f"{len(pids)} worker processes seen")
    if run.target_cpu_share > TARGET_LIMIT:
        run.notes.append(f"nginx CPU {run.target_cpu_share:.0%}")
    return run


def report(runs: list[Run], counts: list[int], reps: int) -> dict[str, Any]:
    base = counts[0]
    out: dict[str, Any] = {"median": {}, "ratios": {}}
    for n in counts:
        at = [r for r in runs if r.workers == n and not r.notes]
        if at:
            out["median"][n] = {
                "rps": round(statistics.median(r.rps for r in at)),
                "worker_us_per_request": round(statistics.median(r.us_per_request for r in at), 1),
                "coordinator_share": round(statistics.median(r.coordinator_share for r in at), 4),
            }
    for n in counts[1:]:
        per_rep = []
        for rep in range(1, reps + 1):
            one = [r for r in runs if r.workers == base and r.rep == rep and not r.notes]
            many = [r for r in runs if r.workers == n and r.rep == rep and not r.notes]
            if one and many:
                per_rep.append(round(many[0].us_per_request / one[0].us_per_request, 3))
        out["ratios"][f"{n}_vs_{base}_us_per_request"] = {
            "per_rep": per_rep,
            "median": statistics.median(per_rep) if per_rep else None,
        }
    return out


def environment() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    import os

    return f"nproc {os.cpu_count()}, {cpu}, Python {sys.version.split()[0]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--workers", default="1,2", help="worker counts; the first is the baseline")
    ap.add_argument("--skip", type=float, default=4.0)
    ap.add_argument("--window", type=float, default=8.0)
    ap.add_argument(
        "--cpus",
        default=str(TOOL_CPU),
        help="taskset list for wbsrun (default 0: nginx has core 1; '0,1' lets the workers "
        "float over both cores, sharing nginx's)",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.workers.split(",")]
    print(environment(), flush=True)
    nginx = Nginx([])
    bundle = Path(tempfile.mkdtemp(prefix="wbsrun-workers-bench-"))
    (bundle / "script.yaml").write_text(
        SCRIPT.format(port=nginx.port, users=args.users), encoding="utf-8"
    )
    runs: list[Run] = []
    try:
        for rep in range(1, args.reps + 1):
            for n in counts if rep % 2 else counts[::-1]:
                run = measure(nginx, bundle, n, rep, args.skip, args.window, args.cpus)
                runs.append(run)
                flag = "  INVALID: " + "; ".join(run.notes) if run.notes else ""
                print(
                    f"rep {rep} workers {n}: {run.rps:8.0f} req/s  "
                    f"{run.us_per_request:6.1f} µs CPU/request (workers)  "
                    f"coordinator {run.coordinator_share:6.2%} of workers' CPU  "
                    f"nginx CPU {run.target_cpu_share:4.0%}{flag}",
                    flush=True,
                )
    finally:
        nginx.stop()
    summary = report(runs, counts, args.reps)
    print(json.dumps(summary, indent=2))
    if args.json:
        payload = {"summary": summary, "runs": [asdict(r) for r in runs], "argv": sys.argv}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
