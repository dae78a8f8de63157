"""HTTP transports against nginx: bare client loops and wbsrun on each transport, one invocation.

    .venv/bin/python bench/transport.py                          # 100 and 1,000 users, 3 reps
    .venv/bin/python bench/transport.py --reps 5 --users 1000 --json out.json
    .venv/bin/python bench/transport.py --tools h1-bare,wbsrun-fast --reps 1

Tools (each a process of this script, `--child TOOL`, pinned to core 0, on uvloop; every user
has its own connection(s) and loops GET (x-scope-trace header) → POST (the GET's JSON body) →
DELETE, like the reference scenario):
  h1-bare        the fast transport's client (wbsrun.protocols.h1), no wbsrun around it
  curl-bare      pycurl CurlMulti driven by the event loop's socket/timer callbacks
  wbsrun-fast    the reference scenario (full workbook ledger) on `--transport fast`
  wbsrun-aiohttp the same on `--transport aiohttp`
  aiohttp-bare   a bare aiohttp loop, one ClientSession per user

Target: nginx from Debian's packages (installed with apt-get when missing), our own config in
a temp dir, one worker pinned to core 1, listening on one loopback address per user (the
reference scenario's pool is exclusive), `return 200 '<~200 B JSON>'` for every path and
`stub_status` for the server's own count. A run's req/s = nginx's request counter read at both
edges of a steady window (`--skip` s after the start; users spawn at 200/s). A run is INVALID
when nginx used > 80 % of its core, the generator waited > 10 % of the window for its core,
requests failed, or the tool's total differs from nginx's. Peak RSS: wait4() of the child.
Method: /work/shared/bench-method.md; results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _load import SCOPE_TRACE, bare_aiohttp_user  # bench/ is sys.path[0] when run

TOOLS = ("h1-bare", "curl-bare", "wbsrun-fast", "wbsrun-aiohttp", "aiohttp-bare")
TOOL_CPU, TARGET_CPU = 0, 1
TARGET_LIMIT, WAIT_LIMIT = 0.80, 0.10
SPAWN_RATE = 200.0  # users/s, as the reference scenario
BODY = json.dumps(
    {
        "id": "asset-001",
        "kind": "config",
        "payload": {"region": "cn-north", "replicas": 3, "owner": "integration"},
        "tags": ["http", "asset-refresh", "bench"],
        "checksum": "sha256:" + "0" * 64,
    }
)
HOSTS_START = "127.0.0.2"


# -- nginx -------------------------------------------------------------------------------------


def ensure_nginx() -> str:
    found = shutil.which("nginx") or (Path("/usr/sbin/nginx").is_file() and "/usr/sbin/nginx")
    if found:
        return str(found)
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "nginx-light"], check=True, env=env)
    return shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nginx:
    """nginx with one worker on TARGET_CPU, on `hosts` × one port; stopped by its PID."""

    def __init__(self, hosts: list[str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="wbsrun-nginx-"))
        self.port = free_port()
        listens = "\n".join(f"    listen {h}:{self.port} backlog=4096;" for h in hosts)
        listens += f"\n    listen 127.0.0.1:{self.port};"
        body = BODY.replace("'", "\\'")
        temps = "".join(
            f"  {k}_temp_path {self.dir}/{k};\n"
            for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = f"""worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
{temps}  server {{
{listens}
    location = /nginx_status {{ stub_status; }}
    location / {{ default_type application/json; return 200 '{body}'; }}
  }}
}}
"""
        (self.dir / "nginx.conf").write_text(conf, encoding="utf-8")
        cmd = ["taskset", "-c", str(TARGET_CPU), ensure_nginx(), "-p", str(self.dir)]
        self.proc = subprocess.Popen([*cmd, "-c", str(self.dir / "nginx.conf")])
        self.status_reads = 0
        deadline = time.monotonic() + 10
        while True:
            try:
                self.requests()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError((self.dir / "error.log").read_text()) from None
                time.sleep(0.1)
        self.workers = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _ppid(int(p.name)) == self.proc.pid
        ]

    def requests(self) -> int:
        """Requests nginx served, not counting these status reads."""
        url = f"http://127.0.0.1:{self.port}/nginx_status"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        self.status_reads += 1
        return int(text.splitlines()[2].split()[2]) - self.status_reads

    def cpu_s(self) -> float:
        return sum(proc_cpu_s(pid) for pid in self.workers)

    def wait_s(self) -> float:
        return sum(sched_wait_s(pid) for pid in self.workers)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sched_wait_s(pid: int) -> float:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


# -- the parent: runs, windows, verdicts --------------------------------------------------------


@dataclass
class Run:
    tool: str
    users: int
    rep: int
    rps: float = 0.0
    tool_total: int = 0
    server_total: int = 0
    errors: int = 0
    peak_rss_mb: float = 0.0
    tool_cpu_share: float = 0.0
    target_cpu_share: float = 0.0
    tool_wait_share: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.notes


def measure(nginx: Nginx, tool: str, users: int, rep: int, skip: float, window: float) -> Run:
    run = Run(tool, users, rep)
    duration = skip + window + 1.0
    cmd = [sys.executable, __file__, "--child", tool, "--users", str(users)]
    cmd += ["--port", str(nginx.port), "--duration", f"{duration:g}"]
    start_count = nginx.requests()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    started = json.loads(proc.stdout.readline())
    t0, pid = float(started["t0"]), int(started["pid"])
    time.sleep(max(0.0, t0 + skip - time.monotonic()))
    a = (time.monotonic(), nginx.requests(), nginx.cpu_s(), nginx.wait_s())
    a_tool = (proc_cpu_s(pid), sched_wait_s(pid))
    time.sleep(max(0.0, t0 + skip + window - time.monotonic()))
    b = (time.monotonic(), nginx.requests(), nginx.cpu_s(), nginx.wait_s())
    b_tool = (proc_cpu_s(pid), sched_wait_s(pid))
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    done = json.loads(proc.stdout.read().decode().strip().splitlines()[-1])
    proc.stdout.close()
    span = b[0] - a[0]
    run.rps = (b[1] - a[1]) / span
    run.target_cpu_share = (b[2] - a[2]) / span
    run.tool_cpu_share = (b_tool[0] - a_tool[0]) / span
    run.tool_wait_share = (b_tool[1] - a_tool[1]) / span
    run.peak_rss_mb = usage.ru_maxrss / 1024
    run.tool_total, run.errors = int(done["requests"]), int(done["errors"])
    run.server_total = nginx.requests() - start_count
    if proc.returncode:
        run.notes.append(f"exit {proc.returncode}")
    if run.target_cpu_share > TARGET_LIMIT:
        run.notes.append(f"nginx CPU {run.target_cpu_share:.0%}")
    if run.tool_wait_share > WAIT_LIMIT:
        run.notes.append(f"generator starved ({run.tool_wait_share:.0%} waiting)")
    if run.errors:
        run.notes.append(f"{run.errors} failed")
    if run.tool_total != run.server_total:
        run.notes.append(f"tool counted {run.tool_total}, nginx {run.server_total}")
    return run


def per_cpu(run: Run) -> float:
    """Requests per second of generator CPU: what a whole core would do. Steadier than req/s
    when other processes take the generator's core (a shared machine)."""
    return run.rps / run.tool_cpu_share if run.tool_cpu_share else 0.0


RATIOS = (
    ("wbsrun-fast", "aiohttp-bare"),
    ("wbsrun-fast", "h1-bare"),
    ("wbsrun-fast", "wbsrun-aiohttp"),
    ("h1-bare", "curl-bare"),
    ("curl-bare", "aiohttp-bare"),
)


def report(runs: list[Run], sizes: list[int], tools: list[str]) -> dict[str, Any]:
    """Medians per tool and per-repetition ratios, in req/s and in req per CPU-second."""
    out: dict[str, Any] = {}
    for users in sizes:
        at = [r for r in runs if r.users == users]
        summary: dict[str, Any] = {"median_rps": {}, "median_req_per_cpu_s": {}}
        summary["peak_rss_mb"] = {}
        summary["valid_runs"] = {}
        for tool in tools:
            mine = [r for r in at if r.tool == tool]
            if mine:
                summary["median_rps"][tool] = round(statistics.median(r.rps for r in mine))
                summary["median_req_per_cpu_s"][tool] = round(
                    statistics.median(per_cpu(r) for r in mine)
                )
                summary["peak_rss_mb"][tool] = round(max(r.peak_rss_mb for r in mine), 1)
                summary["valid_runs"][tool] = f"{sum(r.valid for r in mine)}/{len(mine)}"
        for metric, value in (("ratios_rps", lambda r: r.rps), ("ratios_per_cpu", per_cpu)):
            ratios = summary[metric] = {}
            for num, den in RATIOS:
                pairs = [
                    (x, y)
                    for x in at
                    for y in at
                    if x.rep == y.rep and (x.tool, y.tool) == (num, den) and value(y)
                ]
                per_rep = [value(x) / value(y) for x, y in pairs]
                if per_rep:
                    ratios[f"{num}/{den}"] = {
                        "median": round(statistics.median(per_rep), 2),
                        "per_rep": [round(v, 2) for v in per_rep],
                    }
        out[str(users)] = summary
    return out


def equal_work_rss(users: int, passes: int, reps: int) -> dict[str, Any]:
    """Peak RSS of wbsrun per transport when every user does `passes` passes: the ledger grows
    with the work done, so the timed runs' RSS also measures how fast each transport went."""
    nginx = Nginx(_hosts(users))
    out: dict[str, Any] = {}
    try:
        for rep in range(reps):
            for tool in ("wbsrun-fast", "wbsrun-aiohttp")[:: 1 if rep % 2 == 0 else -1]:
                cmd = [sys.executable, __file__, "--child", tool, "--users", str(users)]
                cmd += ["--port", str(nginx.port), "--duration", "600", "--passes", str(passes)]
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
                assert proc.stdout is not None
                _, status, usage = os.wait4(proc.pid, 0)
                done = json.loads(proc.stdout.read().decode().strip().splitlines()[-1])
                proc.stdout.close()
                row = out.setdefault(tool, {"peak_rss_mb": [], "requests": []})
                row["peak_rss_mb"].append(round(usage.ru_maxrss / 1024, 1))
                row["requests"].append(done["requests"])
                if os.waitstatus_to_exitcode(status) or done["errors"]:
                    row.setdefault("notes", []).append(f"exit {status}, {done['errors']} errors")
                print(
                    f"equal work {users} users x {passes} passes {tool:<15} "
                    f"rss {usage.ru_maxrss / 1024:6.1f} MB  requests {done['requests']}  "
                    f"errors {done['errors']}",
                    flush=True,
                )
    finally:
        nginx.stop()
    for row in out.values():
        row["median_mb"] = statistics.median(row["peak_rss_mb"])
    return out


def parent(args: argparse.Namespace) -> int:
    sizes = [int(x) for x in args.users.split(",")]
    tools = args.tools.split(",")
    runs: list[Run] = []
    for users in sizes:
        hosts = _hosts(users)
        nginx = Nginx(hosts)
        try:
            for rep in range(1, args.reps + 1):
                order = tools if rep % 2 else tools[::-1]
                for tool in order:
                    run = measure(nginx, tool, users, rep, args.skip, args.window)
                    runs.append(run)
                    flag = "  INVALID: " + "; ".join(run.notes) if run.notes else ""
                    print(
                        f"{users:>5} users rep {rep} {tool:<15} {run.rps:>9.0f} req/s "
                        f"{per_cpu(run):>7.0f} req/CPU-s  "
                        f"rss {run.peak_rss_mb:6.1f} MB  gen CPU {run.tool_cpu_share:4.0%}  "
                        f"nginx CPU {run.target_cpu_share:4.0%}{flag}",
                        flush=True,
                    )
        finally:
            nginx.stop()
    summary = report(runs, sizes, tools)
    if args.memory_passes:
        summary["equal_work_rss_mb"] = equal_work_rss(max(sizes), args.memory_passes, args.reps)
    print(json.dumps(summary, indent=2))
    if args.json:
        payload = {"summary": summary, "runs": [asdict(r) for r in runs], "argv": sys.argv}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


def _hosts(users: int) -> list[str]:
    from wbsrun.target import loopback_hosts

    return loopback_hosts(users, HOSTS_START)


# -- children: the load generators ---------------------------------------------------------------


def child(args: argparse.Namespace) -> int:
    import resource

    import uvloop

    os.sched_setaffinity(0, {TOOL_CPU})
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    hosts = _hosts(args.users)
    if args.child.startswith("wbsrun-"):
        requests, errors = run_wbsrun(args.child.removeprefix("wbsrun-"), hosts, args)
    else:
        loop_fn = LOOPS[args.child]
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            requests, errors = runner.run(
                spawn(loop_fn, hosts, args.port, args.duration, _emit_started)
            )
    print(json.dumps({"event": "done", "requests": requests, "errors": errors}), flush=True)
    return 0


def _emit_started() -> None:
    print(json.dumps({"event": "started", "t0": time.monotonic(), "pid": os.getpid()}), flush=True)


async def spawn(loop_fn: Any, hosts: list[str], port: int, duration: float, started: Any) -> Any:
    """Start one user per host at SPAWN_RATE; each runs until `duration` has passed."""
    loop = asyncio.get_running_loop()
    counts = [0, 0]
    started()
    start = loop.time()
    stop_at = start + duration
    async with asyncio.TaskGroup() as tg:
        for i, host in enumerate(hosts):
            delay = start + i / SPAWN_RATE - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tg.create_task(loop_fn(host, port, stop_at, counts))
    return counts[0], counts[1]


_H1: Any = None


async def h1_user(host: str, port: int, stop_at: float, counts: list[int]) -> None:
    """The fast transport's client and a private pool, no wbsrun around them."""
    global _H1
    from wbsrun.protocols.h1 import ConnectionPool, H1Client

    if _H1 is None:
        _H1 = H1Client()
    client, pool = _H1, ConnectionPool()
    url = f"http://{host}:{port}/asset"
    get_headers = (("x-scope-trace", SCOPE_TRACE),)
    loop = asyncio.get_running_loop()
    try:
        while loop.time() < stop_at:
            status, _, body, *_ = await client.request(pool, "GET", url, get_headers)
            counts[0] += 1
            counts[1] += status != 200
            status, _, _, *_ = await client.request(pool, "POST", url, (), body, "application/json")
            counts[0] += 1
            counts[1] += status != 200
            status, _, _, *_ = await client.request(pool, "DELETE", url)
            counts[0] += 1
            counts[1] += status != 200
    finally:
        await pool.aclose()


async def aiohttp_user(host: str, port: int, stop_at: float, counts: list[int]) -> None:
    """Like wbsrun's `session: new` on aiohttp: the bare loop of bench/overhead.py."""
    await bare_aiohttp_user(host, port, stop_at, counts, {"x-scope-trace": SCOPE_TRACE})


class CurlDriver:
    """One CurlMulti driven by the event loop: libcurl's socket callback adds/removes readers
    and writers, its timer callback arms a loop timer, both call socket_action()."""

    def __init__(self) -> None:
        import pycurl

        self.pycurl = pycurl
        self.loop = asyncio.get_running_loop()
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._socket)
        self.multi.setopt(pycurl.M_TIMERFUNCTION, self._timer)
        self.multi.setopt(pycurl.M_MAXCONNECTS, 20000)
        self.timer: asyncio.TimerHandle | None = None
        self.waiting: dict[Any, asyncio.Future[str | None]] = {}

    def _socket(self, what: int, fd: int, multi: Any, data: Any) -> None:
        pycurl, loop = self.pycurl, self.loop
        if what == pycurl.POLL_REMOVE:
            loop.remove_reader(fd)
            loop.remove_writer(fd)
            return
        if what & pycurl.POLL_IN:
            loop.add_reader(fd, self._act, fd, pycurl.CSELECT_IN)
        else:
            loop.remove_reader(fd)
        if what & pycurl.POLL_OUT:
            loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)
        else:
            loop.remove_writer(fd)

    def _timer(self, ms: int) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if ms >= 0:  # libcurl may not be re-entered from its own callback: defer
            self.timer = self.loop.call_later(ms / 1000.0, self._on_timeout)

    def _on_timeout(self) -> None:
        self.timer = None
        self.multi.socket_action(self.pycurl.SOCKET_TIMEOUT, 0)
        self._drain()

    def _act(self, fd: int, event: int) -> None:
        self.multi.socket_action(fd, event)
        self._drain()

    def _drain(self) -> None:
        while True:
            queued, ok, failed = self.multi.info_read()
            for handle in ok:
                self._finish(handle, None)
            for handle, _errno, message in failed:
                self._finish(handle, message or "curl error")
            if not queued:
                return

    def _finish(self, handle: Any, error: str | None) -> None:
        self.multi.remove_handle(handle)
        future = self.waiting.pop(handle, None)
        if future is not None and not future.done():
            future.set_result(error)

    async def perform(self, handle: Any) -> int:
        future: asyncio.Future[str | None] = self.loop.create_future()
        self.waiting[handle] = future
        self.multi.add_handle(handle)
        if await future is not None:
            return 0
        return int(handle.getinfo(self.pycurl.RESPONSE_CODE))


_CURL: CurlDriver | None = None


async def curl_user(host: str, port: int, stop_at: float, counts: list[int]) -> None:
    """Three easy handles per user (GET, POST, DELETE) sharing the multi's connection cache."""
    global _CURL
    import pycurl

    if _CURL is None:
        _CURL = CurlDriver()
    driver = _CURL
    url = f"http://{host}:{port}/asset"
    chunks: list[bytes] = []
    get, post, delete = pycurl.Curl(), pycurl.Curl(), pycurl.Curl()
    for handle in (get, post, delete):
        handle.setopt(pycurl.URL, url)
        handle.setopt(pycurl.NOSIGNAL, 1)
    get.setopt(pycurl.HTTPHEADER, [f"x-scope-trace: {SCOPE_TRACE}"])
    get.setopt(pycurl.WRITEFUNCTION, chunks.append)
    post.setopt(pycurl.HTTPHEADER, ["content-type: application/json", "Expect:"])
    post.setopt(pycurl.WRITEFUNCTION, len)
    delete.setopt(pycurl.CUSTOMREQUEST, "DELETE")
    delete.setopt(pycurl.WRITEFUNCTION, len)
    loop = asyncio.get_running_loop()
    try:
        while loop.time() < stop_at:
            chunks.clear()
            status = await driver.perform(get)
            counts[0] += 1
            counts[1] += status != 200
            post.setopt(pycurl.POSTFIELDS, b"".join(chunks))
            status = await driver.perform(post)
            counts[0] += 1
            counts[1] += status != 200
            status = await driver.perform(delete)
            counts[0] += 1
            counts[1] += status != 200
    finally:
        for handle in (get, post, delete):
            handle.close()


LOOPS: dict[str, Any] = {"h1-bare": h1_user, "curl-bare": curl_user, "aiohttp-bare": aiohttp_user}


def run_wbsrun(transport: str, hosts: list[str], args: argparse.Namespace) -> tuple[int, int]:
    """The reference scenario wired exactly as `wbsrun run --transport X` wires it (progress
    aggregation, bus, poller, health checks), without the live line."""
    from wbsrun.cli.demo import prepare_bundle
    from wbsrun.cli.session import run_loop, wire
    from wbsrun.core.log import RunLog
    from wbsrun.core.runner import RunOptions
    from wbsrun.dsl.loader import load_plan
    from wbsrun.protocols.registry import provides
    from wbsrun.resources.pool import PoolManager

    bundle = prepare_bundle(Path(tempfile.mkdtemp(prefix="wbsrun-bench-")), hosts, args.port)
    if args.passes:
        # Equal work for the memory comparison: every user does exactly `passes` passes.
        script = bundle / "script.yaml"
        text = script.read_text(encoding="utf-8")
        script.write_text(text.replace("task-duration: 120s", f"iterations: {args.passes}"))
    plan = load_plan(bundle, provides())
    options = RunOptions(users=args.users, duration=args.duration, transport=transport)
    wired = wire(plan, options, PoolManager(plan), RunLog(None))

    async def main() -> None:
        _emit_started()
        await wired.runner.run()

    run_loop(main)
    result = wired.result()
    shutil.rmtree(bundle, ignore_errors=True)
    return int(result["requests"]["total"]), int(result["requests"]["failed"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/transport.py")
    parser.add_argument("--users", default="100,1000", help="sizes, comma-separated")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--skip", type=float, default=8.0, help="s before the window")
    parser.add_argument("--window", type=float, default=8.0, help="s counted")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--memory-passes",
        type=int,
        default=10,
        help="then peak RSS of wbsrun on each transport, every user doing this many passes "
        "(equal work; 0 = skip)",
    )
    parser.add_argument("--passes", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=TOOLS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.users = int(args.users)
        return child(args)
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
