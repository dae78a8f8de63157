"""wbsrun vs a bare aiohttp loop: throughput ratio and wbsrun's own CPU cost per request.

    .venv/bin/python bench/overhead.py                      # 100 and 1,000 users, 3 reps
    .venv/bin/python bench/overhead.py --reps 5 --window 10 --users 100,1000 --json out.json
    .venv/bin/python bench/overhead.py --profile DIR        # + py-spy of both at 1,000 users
    .venv/bin/python bench/overhead.py --reps 0 --users 1000 --profile DIR   # profiles only

Method (docs/benchmarks.md, /work/shared/bench-method.md): per size the embedded target runs
once, on one loopback address per user, pinned to core 1; every run is its own process
(bench/_load.py) pinned to core 0, wbsrun and the bare loop interleaved (order alternating per
repetition). A run's throughput is the target's own request counter read at both edges of a
steady window that starts `--settle` seconds after the last user was spawned. A run is INVALID
when the target used > 80 % of its core, or its CPU + run-queue wait exceeded 80 % (another
process took its core), when the generator waited > 10 % of the window for its core, when the
tool's total differs from the target's, or when requests failed. CPU cost per request = the
generator's CPU seconds (user + system, /proc) in the window / requests in the window.

`--profile DIR` then runs each tool once more at the largest size with py-spy attached
(non-blocking: see start_py_spy) for `--profile-window` seconds and the garbage collector timed
by gc.callbacks, and summarises where wbsrun's samples go (DIR/summary.md, raw stacks beside).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from wbsrun.cli.demo import prepare_bundle
from wbsrun.dsl.loader import load_plan
from wbsrun.protocols.registry import provides
from wbsrun.target import TargetProcess, loopback_hosts

HERE = Path(__file__).resolve().parent
LOAD = HERE / "_load.py"
TOOLS = ("wbsrun", "bare")
TOOL_CPU = 0
TARGET_CPU = 1
TARGET_CPU_LIMIT = 0.80
TOOL_WAIT_LIMIT = 0.10  # the generator waited this share of the window for its core: noisy
REQUIRED_RATIO = 0.85
TAIL_S = 1.0  # the run goes on this long after the window closes
STARTUP_TIMEOUT_S = 60.0
EXIT_GRACE_S = 60.0
HOSTS_START = "127.0.0.2"  # loopback_hosts() default


@dataclass
class Run:
    users: int
    tool: str
    rep: int
    window_s: float = 0.0
    window_requests: int = 0
    rps: float = 0.0
    tool_cpu_s: float = 0.0  # generator CPU (user+sys) over the window
    tool_cpu_share: float = 0.0
    cpu_us_per_req: float = 0.0
    target_cpu_share: float = 0.0
    target_wait_share: float = 0.0  # runnable but not running (another process on its core)
    tool_wait_share: float = 0.0
    tool_total: int = 0
    server_total: int = 0
    errors: int = 0
    peak_rss_kb: int = 0
    notes: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)  # the load process's final report

    @property
    def valid(self) -> bool:
        return not self.notes


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sched_wait_s(pid: int) -> float:
    """Seconds the process's main thread spent runnable but waiting for a CPU."""
    fields = Path(f"/proc/{pid}/schedstat").read_text(encoding="ascii").split()
    return int(fields[1]) / 1e9


def sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def read_line(stream: IO[bytes], timeout: float) -> dict[str, Any]:
    """The next JSON line from a child's stdout, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = stream.fileno()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while not buf.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no line from the load process within {timeout:g}s")
            if not sel.select(remaining):
                continue
            chunk = os.read(fd, 1)
            if not chunk:
                raise RuntimeError("the load process closed its stdout")
            buf += chunk
    data: dict[str, Any] = json.loads(buf)
    return data


def reap(proc: subprocess.Popen[bytes], deadline: float) -> tuple[int, int]:
    """Wait for the child by PID (wait4, for its own rusage); kill it by PID if overdue.

    Returns (exit status, peak RSS in KiB).
    """
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            code = os.waitstatus_to_exitcode(status)
            proc.returncode = code
            return code, int(usage.ru_maxrss)
        if time.monotonic() > deadline:
            os.kill(proc.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10.0
        time.sleep(0.05)


def load_command(
    tool: str, users: int, duration: float, bundle: Path, port: int, rate: float
) -> list[str]:
    cmd = [sys.executable, str(LOAD), tool, "--users", str(users), "--duration", f"{duration:g}"]
    cmd += ["--cpu", str(TOOL_CPU)]
    if tool == "wbsrun":
        return [*cmd, "--bundle", str(bundle)]
    return [*cmd, "--port", str(port), "--spawn-rate", f"{rate:g}", "--hosts-start", HOSTS_START]


@contextlib.contextmanager
def started_load(
    cmd: list[str], err: IO[bytes]
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)  # our interpreter, our file
    try:
        assert proc.stdout is not None
        started = read_line(proc.stdout, STARTUP_TIMEOUT_S)
        yield proc, started
    finally:
        if proc.returncode is None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def measure(
    target: TargetProcess,
    tool: str,
    users: int,
    rep: int,
    *,
    bundle: Path,
    rate: float,
    skip: float,
    window: float,
    profile_to: Path | None = None,
) -> Run:
    """One run of one tool; the target's counter and CPU read at both edges of the window."""
    run = Run(users=users, tool=tool, rep=rep)
    duration = skip + window + TAIL_S
    cmd = load_command(tool, users, duration, bundle, target.port, rate)
    if profile_to is not None:
        cmd += ["--gc-window", f"{skip:g},{skip + window:g}"]
    target.reset_stats()
    with tempfile.TemporaryFile() as err, started_load(cmd, err) as (proc, started):
        assert proc.stdout is not None
        t0, pid = float(started["t0"]), int(started["pid"])
        spy: subprocess.Popen[bytes] | None = None
        sleep_until(t0 + skip)
        if profile_to is not None:
            spy = start_py_spy(pid, window, profile_to)
        a_wall, a_recv = time.monotonic(), int(target.stats()["received"])
        a_tgt, a_tool = target.cpu_times(), proc_cpu_s(pid)
        a_tgt_wait, a_tool_wait = sched_wait_s(target.pid), sched_wait_s(pid)
        sleep_until(t0 + skip + window)
        b_wall, b_recv = time.monotonic(), int(target.stats()["received"])
        b_tgt, b_tool = target.cpu_times(), proc_cpu_s(pid)
        b_tgt_wait, b_tool_wait = sched_wait_s(target.pid), sched_wait_s(pid)
        code, run.peak_rss_kb = reap(proc, t0 + duration + EXIT_GRACE_S)
        if spy is not None:
            try:
                spy.wait(window + 30)
            except subprocess.TimeoutExpired:
                os.kill(spy.pid, signal.SIGKILL)
                spy.wait(10)
        rest = proc.stdout.read().decode()
        if code != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{tool} at {users} users exited with {code}:\n{tail}")
    done = json.loads(rest.strip().splitlines()[-1])
    run.window_s = b_wall - a_wall
    run.window_requests = b_recv - a_recv
    run.rps = run.window_requests / run.window_s
    run.tool_cpu_s = b_tool - a_tool
    run.tool_cpu_share = run.tool_cpu_s / run.window_s
    run.cpu_us_per_req = 1e6 * run.tool_cpu_s / max(run.window_requests, 1)
    run.target_cpu_share = (b_tgt - a_tgt) / run.window_s
    run.target_wait_share = (b_tgt_wait - a_tgt_wait) / run.window_s
    run.tool_wait_share = (b_tool_wait - a_tool_wait) / run.window_s
    run.tool_total = int(done["requests"])
    run.errors = int(done["errors"])
    run.detail = {k: v for k, v in done.items() if k not in ("event", "requests", "errors")}
    run.server_total = int(target.stats()["received"])
    if run.target_cpu_share > TARGET_CPU_LIMIT:
        run.notes.append(f"target CPU {run.target_cpu_share:.0%} > {TARGET_CPU_LIMIT:.0%}")
    elif run.target_cpu_share + run.target_wait_share > TARGET_CPU_LIMIT:
        # Another process took the target's core: it wanted more CPU than it got.
        demand = run.target_cpu_share + run.target_wait_share
        run.notes.append(f"target starved (CPU + run-queue wait {demand:.0%})")
    if run.tool_wait_share > TOOL_WAIT_LIMIT:
        run.notes.append(f"generator starved (run-queue wait {run.tool_wait_share:.0%})")
    if run.tool_total != run.server_total:
        run.notes.append(f"tool counted {run.tool_total}, server {run.server_total}")
    if run.errors:
        run.notes.append(f"{run.errors} failed requests")
    return run


# --- profiling ----------------------------------------------------------------------------

PY_SPY_RATE = 200  # samples/s; one sample ≈ 5 ms of the process's (non-idle) time


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start_py_spy(pid: int, window: float, out: Path) -> subprocess.Popen[bytes]:
    exe = py_spy()
    assert exe is not None
    cmd = [exe, "record", "--pid", str(pid), "--duration", f"{window:.0f}"]
    # --nonblocking: on this VM a paused (blocking) sample lands on the next syscall, so
    # blocking mode piles samples on getpid() in asyncio.get_running_loop() (measured: a loop
    # spending 2 % of its time in getpid() got 91 % of blocking samples, 3 % non-blocking).
    cmd += ["--rate", str(PY_SPY_RATE), "--nonblocking", "--format", "raw", "--full-filenames"]
    cmd += ["--output", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def parse_frame(frame: str) -> tuple[str, str]:
    """'func (path:line)' → (func, path)."""
    name, _, where = frame.rpartition(" (")
    path = where.rstrip(")").rpartition(":")[0]
    return name, path


OWNERS = {
    "/wbsrun/": "wbsrun",
    "/aiohttp/": "aiohttp (+ yarl, multidict)",
    "/yarl/": "aiohttp (+ yarl, multidict)",
    "/multidict/": "aiohttp (+ yarl, multidict)",
}
BARE_CODE = frozenset({"bare_aiohttp_user", "_bare_main"})  # the bare loop's own functions
LOOP = "event loop, asyncio (no library frame)"


def owner(path: str, name: str) -> str | None:
    """Which library a frame belongs to; None for stdlib and the loop runner."""
    if path.endswith("/wbsrun/cli/session.py") and name == "run_loop":
        return None  # only runs the loop (the bare loop uses asyncio.Runner the same way)
    if path.endswith("/bench/_load.py"):
        return "bare loop code (bench/_load.py)" if name in BARE_CODE else None
    return next((label for key, label in OWNERS.items() if key in path), None)


def short(path: str) -> str:
    if "/wbsrun/" in path:
        return "wbsrun/" + path.rpartition("/wbsrun/")[2]
    return Path(path).name


@dataclass
class Profile:
    samples: int = 0
    owners: Counter[str] = field(default_factory=Counter)  # innermost library frame's owner
    own_fn: Counter[str] = field(default_factory=Counter)  # wbsrun-owned, by innermost function
    own_file: Counter[str] = field(default_factory=Counter)  # wbsrun-owned, by module
    own_leaf: Counter[str] = field(default_factory=Counter)  # wbsrun-owned, stdlib leaf ← caller
    own_incl: Counter[str] = field(default_factory=Counter)  # any wbsrun frame on the stack
    lib_fn: Counter[str] = field(default_factory=Counter)  # aiohttp-owned, by innermost function


def read_profile(path: Path) -> Profile:
    """py-spy raw (collapsed) stacks → samples by owner and wbsrun's own hot spots.

    A sample belongs to the innermost frame of wbsrun, aiohttp/yarl/multidict or the bare
    loop on its stack: stdlib work (asyncio.timeout, json, create_task …) counts for whoever
    called it; samples with no such frame are the event loop's.
    """
    prof = Profile()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        n = int(count_text)
        frames = [parse_frame(f) for f in stack.split(";") if f]
        prof.samples += n
        keys = {f"{short(p)}:{fn}" for fn, p in frames if owner(p, fn) == "wbsrun"}
        for key in keys:
            prof.own_incl[key] += n
        for depth in range(len(frames) - 1, -1, -1):
            fn, p = frames[depth]
            who = owner(p, fn)
            if who is None:
                continue
            prof.owners[who] += n
            key = f"{short(p)}:{fn}"
            if who == "wbsrun":
                prof.own_fn[key] += n
                prof.own_file[short(p)] += n
                if depth < len(frames) - 1:
                    leaf_fn, leaf_p = frames[-1]
                    prof.own_leaf[f"{short(leaf_p)}:{leaf_fn} ← {key}"] += n
            elif who.startswith("aiohttp"):
                prof.lib_fn[key] += n
            break
        else:
            prof.owners[LOOP] += n
    return prof


def gc_lines(profiles: dict[str, tuple[Profile, Run]]) -> list[str]:
    """The garbage collector's time in the window (gc.callbacks in the load process)."""
    rows = []
    for tool, (_, run) in profiles.items():
        gc = run.detail.get("gc", {})
        if "seconds" not in gc:
            continue
        secs, counts = gc["seconds"], gc["collections"]
        total = sum(secs)
        per_gen = ", ".join(f"{c} / {1e3 * t:.0f} ms" for c, t in zip(counts, secs, strict=True))
        rows.append(
            f"| {tool} | {per_gen} | {1e6 * total / max(run.window_requests, 1):.1f}"
            f" | {100 * total / max(run.tool_cpu_s, 1e-9):.1f} |"
        )
    if not rows:
        return []
    return [
        "",
        "Garbage collector in the same window (gc.callbacks; py-spy attributes this time to"
        " whatever line allocated):",
        "",
        "| tool | collections / time, gen 0, 1, 2 | GC µs/req | % of process CPU |",
        "|---|---|---:|---:|",
        *rows,
    ]


def profile_report(profiles: dict[str, tuple[Profile, Run]], top: int = 15) -> str:
    """Markdown: samples by owner for both tools, wbsrun's hot spots, aiohttp's differences.

    µs/req = share of the samples × the process's CPU µs/request measured (from /proc) in the
    same profiled run: py-spy also samples a runnable thread waiting for its core, so its raw
    sample counts overstate CPU time on a busy machine; the shares are what it measures.
    """
    lines = ["", f"## Profile (py-spy {PY_SPY_RATE} Hz, steady window)", ""]
    for tool, (prof, run) in profiles.items():
        lines.append(
            f"- {tool}: {prof.samples} samples, {run.window_requests:,} requests in the window"
            f" ({run.rps:,.0f} req/s under py-spy), {run.cpu_us_per_req:.1f} CPU µs/request"
        )
    lines.append("")

    def us(n: float, tool: str) -> float:
        prof, run = profiles[tool]
        return n / max(prof.samples, 1) * run.cpu_us_per_req

    tools = list(profiles)
    head = " | ".join(f"{t} % | {t} µs/req" for t in tools)
    lines += [f"| samples owned by | {head} |", "|---|" + "---:|---:|" * len(tools)]
    owners = sorted({o for p, _ in profiles.values() for o in p.owners})
    for who in [*owners, "all"]:
        cells = []
        for tool, (prof, _) in profiles.items():
            n = prof.samples if who == "all" else prof.owners[who]
            cells += [f"{100 * n / max(prof.samples, 1):.1f}", f"{us(n, tool):.1f}"]
        lines.append(f"| {who} | " + " | ".join(cells) + " |")
    lines.extend(gc_lines(profiles))
    if "wbsrun" not in profiles:
        return "\n".join(lines) + "\n"
    prof, _ = profiles["wbsrun"]
    total = max(prof.samples, 1)

    def table(title: str, counter: Counter[str]) -> None:
        lines.extend(["", f"{title}:", ""])
        lines.extend(["| where | samples | % of all | µs/req |", "|---|---:|---:|---:|"])
        for key, n in counter.most_common(top):
            lines.append(f"| `{key}` | {n} | {100 * n / total:.1f} | {us(n, 'wbsrun'):.1f} |")

    table("wbsrun-owned samples by module", prof.own_file)
    table("wbsrun-owned samples by innermost wbsrun function (self + stdlib it calls)", prof.own_fn)
    table("wbsrun-owned samples spent in stdlib: leaf ← wbsrun caller", prof.own_leaf)
    table("wbsrun functions by inclusive samples (anywhere on the stack)", prof.own_incl)
    if "bare" in profiles:
        bare, _ = profiles["bare"]
        diffs = {
            k: us(prof.lib_fn[k], "wbsrun") - us(bare.lib_fn[k], "bare")
            for k in set(prof.lib_fn) | set(bare.lib_fn)
        }
        lines.extend(
            [
                "",
                "aiohttp-owned samples by innermost aiohttp function, largest differences:",
                "",
                "| where | wbsrun µs/req | bare µs/req | difference |",
                "|---|---:|---:|---:|",
            ]
        )
        for key in sorted(diffs, key=lambda k: -abs(diffs[k]))[:top]:
            lines.append(
                f"| `{key}` | {us(prof.lib_fn[key], 'wbsrun'):.1f}"
                f" | {us(bare.lib_fn[key], 'bare'):.1f} | {diffs[key]:+.1f} |"
            )
    return "\n".join(lines) + "\n"


# --- orchestration --------------------------------------------------------------------------


def ramp_s(users: int, rate: float | None) -> float:
    return (users - 1) / rate if rate else 0.0


def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_line(run: Run) -> str:
    """One progress line per run."""
    status = "ok" if run.valid else "INVALID: " + ", ".join(run.notes)
    return (
        f"  rep {run.rep + 1} {run.tool:6} {run.rps:8,.0f} req/s {run.cpu_us_per_req:6.1f} µs/req"
        f"  tool CPU {run.tool_cpu_share:4.0%} wait {run.tool_wait_share:3.0%}"
        f"  target CPU {run.target_cpu_share:4.0%} wait {run.target_wait_share:3.0%}"
        f"  RSS {run.peak_rss_kb / 1024:4.0f} MiB  totals {run.tool_total}/{run.server_total}"
        f"  {status}"
    )


def pct(values: Sequence[float]) -> str:
    return "/".join(f"{100 * v:.0f}" for v in values)


def per_rep(values: Sequence[float], fmt: str, stars: Sequence[str]) -> str:
    return ", ".join(f"{v:{fmt}}{s}" for v, s in zip(values, stars, strict=True))


def report(runs: list[Run], reps: int, window: float) -> str:
    """Markdown: the table of medians and per-rep figures, the overhead table, the verdicts."""
    out = [
        "| users | tool | req/s median | req/s per rep | ratio wbsrun/bare per rep"
        " | ratio median | CPU µs/req median | tool CPU % per rep | peak RSS MiB"
        " | target CPU % per rep | target wait % per rep | valid |",
        "|---:|---|---:|---|---|---:|---:|---|---:|---|---|---|",
    ]
    overhead: list[str] = []
    verdicts: list[str] = []
    for users in sorted({r.users for r in runs}):
        by_tool = {
            t: sorted((r for r in runs if r.users == users and r.tool == t), key=lambda r: r.rep)
            for t in TOOLS
        }
        w, b = by_tool["wbsrun"], by_tool["bare"]
        pairs = list(zip(w, b, strict=True))
        # Medians over the repetitions where both runs are valid (all of them if none is).
        good = [(x, y) for x, y in pairs if x.valid and y.valid] or pairs
        left_out = {x.rep for x, y in pairs if (x, y) not in good}
        ratios = [x.rps / y.rps for x, y in good]
        deltas = [x.cpu_us_per_req - y.cpu_us_per_req for x, y in good]

        stars = ["*" if x.rep in left_out else "" for x, _ in pairs]

        for tool, rs in by_tool.items():
            is_w = tool == "wbsrun"
            kept = [x if is_w else y for x, y in good]
            bad = [f"rep {r.rep + 1}: {', '.join(r.notes)}" for r in rs if r.notes]
            out.append(
                f"| {users:,} | {tool} | {med([r.rps for r in kept]):,.0f}"
                f" | {per_rep([r.rps for r in rs], ',.0f', stars)}"
                f" | {per_rep([x.rps / y.rps for x, y in pairs], '.3f', stars) if is_w else ''}"
                f" | {f'{med(ratios):.3f}' if is_w else ''}"
                f" | {med([r.cpu_us_per_req for r in kept]):.1f}"
                f" | {pct([r.tool_cpu_share for r in rs])}"
                f" | {max(r.peak_rss_kb for r in rs) / 1024:.0f}"
                f" | {pct([r.target_cpu_share for r in rs])}"
                f" | {pct([r.target_wait_share for r in rs])}"
                f" | {'INVALID: ' + '; '.join(bad) if bad else 'yes'} |"
            )
        w_us = med([x.cpu_us_per_req for x, _ in good])
        b_us = med([y.cpu_us_per_req for _, y in good])
        diffs = per_rep([x.cpu_us_per_req - y.cpu_us_per_req for x, y in pairs], ".1f", stars)
        overhead.append(
            f"| {users:,} | {w_us:.1f} | {b_us:.1f} | {diffs} | **{med(deltas):.1f}** |"
        )
        valid = all(r.valid for r in w + b)
        verdict = "meets" if med(ratios) >= REQUIRED_RATIO else "FAILS"
        verdicts.append(
            f"- {users:,} users: median ratio {med(ratios):.3f}, {verdict} the required"
            f" ≥ {REQUIRED_RATIO}{'' if valid else ' (some runs INVALID, see the table)'};"
            f" wbsrun's own cost {med(deltas):.1f} µs/request (target < 40)"
        )
    return "\n".join(
        [
            f"Window {window:g} s per run, {reps} interleaved repetitions. Medians are over the"
            " repetitions where both runs are valid; `*` marks a repetition left out.",
            "",
            *out,
            "",
            "wbsrun's own cost per request = CPU µs/req of wbsrun − that of the bare loop"
            " (same repetition; CPU = user + system of the generator process over the window):",
            "",
            "| users | wbsrun CPU µs/req | bare CPU µs/req | difference per rep | median |",
            "|---:|---:|---:|---|---:|",
            *overhead,
            "",
            *verdicts,
            "",
        ]
    )


def environment() -> str:
    """Markdown lines: machine, versions and the source state measured."""
    import platform
    from importlib.metadata import version

    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    git = ["git", "-C", str(HERE.parent)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head, dirty = "?", ""
    return "\n".join(
        [
            f"- command: `{' '.join(['.venv/bin/python', 'bench/overhead.py', *sys.argv[1:]])}`",
            f"- machine: nproc {os.cpu_count()}, {model}, {platform.platform()}",
            f"- python {platform.python_version()}, aiohttp {version('aiohttp')},"
            f" uvloop {version('uvloop')}, wbsrun {version('wbsrun')}",
            f"- source: commit {head}{' (src/ has uncommitted changes)' if dirty else ''}",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/overhead.py", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3)")
    parser.add_argument("--window", type=float, default=10.0, help="steady window, s (default 10)")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="s after the last spawn before the window (3)"
    )
    parser.add_argument("--users", default="100,1000", help="comma-separated sizes (100,1000)")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument("--workdir", type=Path, help="bundles go here (default: a temp dir)")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy one run of each tool at the largest size",
    )
    parser.add_argument(
        "--profile-window", type=float, default=20.0, help="window of the profiled runs, s (20)"
    )
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.users.split(",") if x.strip()]
    if args.profile is not None and py_spy() is None:
        parser.error("--profile needs py-spy (pip install py-spy into the venv)")
    if len(os.sched_getaffinity(0)) < 2:
        parser.error("needs two CPUs: the generator on core 0, the target on core 1")

    env = environment()  # before the runs: src/ may change while they go on
    runs: list[Run] = []
    profiles: dict[str, tuple[Profile, Run]] = {}
    with tempfile.TemporaryDirectory(prefix="wbsrun-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        for users in sizes:
            hosts = loopback_hosts(users, HOSTS_START)
            with TargetProcess.start(hosts=hosts, port=0, cpu=TARGET_CPU) as target:
                bundle = prepare_bundle(workdir / f"bundle-{users}", hosts, target.port)
                rate = load_plan(bundle, provides()).scenarios[0].spawn_rate
                skip = ramp_s(users, rate) + args.settle
                print(
                    f"{users} users: target pid {target.pid} on core {TARGET_CPU}, spawn rate "
                    f"{rate}/s, window {skip:.1f}–{skip + args.window:.1f} s",
                    flush=True,
                )
                for rep in range(args.reps):
                    order = TOOLS if rep % 2 == 0 else TOOLS[::-1]
                    for tool in order:
                        run = measure(
                            target,
                            tool,
                            users,
                            rep,
                            bundle=bundle,
                            rate=rate or 0.0,
                            skip=skip,
                            window=args.window,
                        )
                        runs.append(run)
                        print(run_line(run), flush=True)
                if args.profile is not None and users == max(sizes):
                    args.profile.mkdir(parents=True, exist_ok=True)
                    for tool in TOOLS:
                        out = args.profile / f"{tool}-{users}.txt"
                        run = measure(
                            target,
                            tool,
                            users,
                            -1,
                            bundle=bundle,
                            rate=rate or 0.0,
                            skip=skip,
                            window=args.profile_window,
                            profile_to=out,
                        )
                        profiles[tool] = (read_profile(out), run)
                        print(
                            f"  profiled {tool}: {run.rps:,.0f} req/s under py-spy → {out}",
                            flush=True,
                        )
    text = env + "\n"
    if runs:
        text += report(runs, args.reps, args.window)
    if profiles:
        text += profile_report(profiles)
        if args.profile is not None:
            (args.profile / "summary.md").write_text(text, encoding="utf-8")
    print("\n" + text)
    if args.json is not None:
        data = {"runs": [{**asdict(r), "valid": r.valid} for r in runs]}
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
