"""wbsrun's own work per request: CPU of wbsrun on the fast transport minus the bare client's.

    .venv/bin/python bench/hotpath.py                          # 1,000 users, 3 reps, ~3 min
    .venv/bin/python bench/hotpath.py --profile DIR            # + py-spy of one wbsrun run
    .venv/bin/python bench/hotpath.py --reps 0 --profile DIR   # profile only

Both generators are children of bench/transport.py (`--child h1-bare` / `--child
wbsrun-fast`: the reference scenario wired as `wbsrun run` wires it, with the sparse ledger,
progress aggregation, bus and poller), pinned to core 0, against nginx pinned to core 1.
CPU µs per request = the child's user + system CPU over a steady window / nginx's count of
requests in it. Own work = wbsrun's figure − the bare loop's, per repetition (interleaved).

The profile (py-spy `--nonblocking`, 200 Hz, `--profile-window` s) splits wbsrun's CPU per
request by area: each sample goes to the innermost wbsrun frame on its stack (stdlib work
counts for its wbsrun caller); samples with no wbsrun frame are the event loop's.
Results: docs/benchmarks.md ("Hot path").
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import transport as T  # bench/ is sys.path[0] when run

AREAS = (
    # (area, path fragments under src/wbsrun/, in match order)
    ("HTTP transport (protocols/h1)", ("protocols/h1/",)),
    ("http component (protocols/http.py)", ("protocols/http.py", "protocols/_transport.py")),
    (
        "executor, handlers, scheduler",
        (
            "core/executor.py",
            "core/handlers.py",
            "core/scheduler.py",
            "core/task.py",
            "core/deadlines.py",
            "core/scope.py",
        ),
    ),
    (
        "workbook (sparse ledger)",
        ("core/ledger/",),
    ),
    (
        "progress events (aggregate, bus, poller)",
        ("progress/", "core/bus.py", "core/events.py", "poller/"),
    ),
    (
        "leases, pools, resource-manager",
        ("core/leases.py", "resources/", "protocols/resource_manager.py"),
    ),
    ("templates, expressions", ("dsl/",)),
    (
        "metrics, persist, logger",
        ("core/stats.py", "core/persist.py", "protocols/logger.py", "core/log.py"),
    ),
)
LOOP = "event loop (no wbsrun frame)"


def cpu_per_request(
    nginx: T.Nginx, tool: str, users: int, skip: float, window: float, profile: Path | None = None
) -> tuple[float, float]:
    """(CPU µs per request, req/s) of one child over its steady window."""
    cmd = [
        sys.executable,
        T.__file__,
        "--child",
        tool,
        "--users",
        str(users),
        "--port",
        str(nginx.port),
        "--duration",
        f"{skip + window + 1:g}",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    started = json.loads(proc.stdout.readline())
    t0, pid = float(started["t0"]), int(started["pid"])
    time.sleep(max(0.0, t0 + skip - time.monotonic()))
    a = (time.monotonic(), nginx.requests(), T.proc_cpu_s(pid))
    spy = None
    if profile is not None:
        exe = Path(sys.executable).parent / "py-spy"
        spy = subprocess.Popen(
            [
                str(exe),
                "record",
                "--pid",
                str(pid),
                "--duration",
                f"{window:.0f}",
                "--rate",
                "200",
                "--nonblocking",
                "--format",
                "raw",
                "--full-filenames",
                "--output",
                str(profile),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    time.sleep(max(0.0, t0 + skip + window - time.monotonic()))
    b = (time.monotonic(), nginx.requests(), T.proc_cpu_s(pid))
    if spy is not None:
        spy.wait()
    proc.wait()
    proc.stdout.close()
    n = b[1] - a[1]
    return (b[2] - a[2]) / n * 1e6, n / (b[0] - a[0])


def _rel(path: str) -> str | None:
    """`core/executor.py` for a wbsrun source file (full or short py-spy paths), else None."""
    if "/wbsrun/" in path:
        return path.rpartition("/wbsrun/")[2]
    return path[len("wbsrun/") :] if path.startswith("wbsrun/") else None


def area_of(path: str) -> str:
    rel = _rel(path) or path
    return next((name for name, parts in AREAS if any(p in rel for p in parts)), "other wbsrun")


def read_profile(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, samples by area, samples by innermost wbsrun function)."""
    total, areas, funcs = 0, Counter[str](), Counter[str]()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        inner = None
        for frame in reversed(stack.split(";")):
            name, _, where = frame.rpartition(" (")
            file = where.rstrip(")").rpartition(":")[0]
            rel = _rel(file)
            if rel is not None and rel != "cli/session.py":
                inner = (name, rel)
                break
        if inner is None:
            areas[LOOP] += n
        else:
            areas[area_of(inner[1])] += n
            funcs[f"{inner[1]}:{inner[0]}"] += n
    return total, areas, funcs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/hotpath.py")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip", type=float, default=8.0)
    ap.add_argument("--window", type=float, default=8.0)
    ap.add_argument("--profile", type=Path, help="py-spy one more wbsrun run into DIR")
    ap.add_argument("--profile-window", type=float, default=12.0)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args(argv)
    if args.profile is not None and not (Path(sys.executable).parent / "py-spy").exists():
        ap.error("--profile needs py-spy in the venv (.venv/bin/pip install py-spy)")
    nginx = T.Nginx(T._hosts(args.users))
    try:
        own: list[float] = []
        for rep in range(args.reps):
            order = ("wbsrun-fast", "h1-bare") if rep % 2 == 0 else ("h1-bare", "wbsrun-fast")
            got = {}
            for tool in order:
                got[tool] = cpu_per_request(nginx, tool, args.users, args.skip, args.window)
                print(
                    f"rep {rep + 1} {tool}: {got[tool][0]:.1f} CPU µs/request, "
                    f"{got[tool][1]:,.0f} req/s",
                    flush=True,
                )
            own.append(got["wbsrun-fast"][0] - got["h1-bare"][0])
            print(f"rep {rep + 1} own work: {own[-1]:.1f} µs/request", flush=True)
        if own:
            print(
                f"own work per request, median of {len(own)}: {statistics.median(own):.1f} µs "
                f"({', '.join(f'{x:.1f}' for x in own)})"
            )
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            out = args.profile / "wbsrun-fast.txt"
            cpu, rps = cpu_per_request(
                nginx, "wbsrun-fast", args.users, args.skip, args.profile_window, out
            )
            total, areas, funcs = read_profile(out)
            print(
                f"\nprofile: {total} samples, {cpu:.1f} CPU µs/request, {rps:,.0f} req/s "
                f"under py-spy\n\n| area | % | µs/request |\n|---|---:|---:|"
            )
            for name, n in areas.most_common():
                print(f"| {name} | {100 * n / total:.1f} | {cpu * n / total:.1f} |")
            print("\n| innermost wbsrun function | % | µs/request |\n|---|---:|---:|")
            for name, n in funcs.most_common(args.top):
                print(f"| `{name}` | {100 * n / total:.1f} | {cpu * n / total:.1f} |")
    finally:
        nginx.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
