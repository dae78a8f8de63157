"""Start, query and stop the embedded asset server in its own process (stdlib only, synchronous)."""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from wbsrun.errors import RunError

__all__ = [
    "KNOB_NAMES",
    "TargetKnobs",
    "TargetProcess",
    "loopback_hosts",
    "normalize_hosts",
    "update_knobs",
]

# Beyond this many hosts the command line gets long enough to be worth a range or a file.
_MAX_INLINE_HOSTS = 8
_STDERR_TAIL_CHARS = 4000


@dataclass(frozen=True, slots=True)
class TargetKnobs:
    """Fault knobs of the target; all off by default. Each applies to /asset and the demo API
    (/api/*) unless noted."""

    latency_ms: float = 0
    jitter_ms: float = 0
    error_rate: float = 0
    status: int | None = None
    fail_health: bool = False  # applies to /health only
    hang: bool = False
    close: bool = False

    def __post_init__(self) -> None:
        for name in KNOB_NAMES:
            _check_knob(name, getattr(self, name))

    @property
    def faulty(self) -> bool:
        """True when any knob changes how /asset and /api answer (lets /asset keep a fast path)."""
        return bool(
            self.latency_ms
            or self.jitter_ms
            or self.error_rate
            or self.status is not None
            or self.hang
            or self.close
        )

    def to_args(self) -> list[str]:
        """The command-line flags of `python -m wbsrun.target` that reproduce these knobs."""
        args: list[str] = []
        if self.latency_ms:
            args += ["--latency-ms", repr(float(self.latency_ms))]
        if self.jitter_ms:
            args += ["--jitter-ms", repr(float(self.jitter_ms))]
        if self.error_rate:
            args += ["--error-rate", repr(float(self.error_rate))]
        if self.status is not None:
            args += ["--status", str(self.status)]
        args += [f"--{name.replace('_', '-')}" for name in _FLAG_NAMES if getattr(self, name)]
        return args


KNOB_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TargetKnobs))
_FLAG_NAMES = ("fail_health", "hang", "close")
_RATE_NAMES = ("latency_ms", "jitter_ms", "error_rate")


def _check_knob(name: str, value: object) -> None:
    if name in _FLAG_NAMES:
        if not isinstance(value, bool):
            raise ValueError(f"knob {name!r} must be true or false, got {value!r}")
    elif name in _RATE_NAMES:
        # bool is an int subclass; `latency_ms: true` is a typo, not a number.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"knob {name!r} must be a number, got {value!r}")
        if not value >= 0:  # also rejects NaN
            raise ValueError(f"knob {name!r} must be >= 0, got {value!r}")
        if name == "error_rate" and value > 1:
            raise ValueError(f"knob 'error_rate' is a fraction in [0, 1], got {value!r}")
    elif name == "status":
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
            raise ValueError(
                f"knob 'status' must be an HTTP status 100..599 or null, got {value!r}"
            )
    else:
        known = ", ".join(KNOB_NAMES)
        raise ValueError(f"unknown knob {name!r}; known knobs: {known}")


def update_knobs(base: TargetKnobs, changes: Mapping[str, object]) -> TargetKnobs:
    """Return `base` with `changes` applied; ValueError names the first bad knob or value."""
    for name, value in changes.items():
        _check_knob(name, value)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def normalize_hosts(hosts: Sequence[str]) -> tuple[str, ...]:
    """Canonical loopback IP literals, duplicates dropped; ValueError for anything else."""
    if isinstance(hosts, str):
        hosts = [hosts]
    seen: dict[str, None] = {}
    for raw in hosts:
        text = raw.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            raise ValueError(
                f"target host {raw!r} is not an IP address; use a loopback literal such as "
                "127.0.0.1 or ::1"
            ) from None
        if not addr.is_loopback:
            raise ValueError(
                f"refusing to serve on non-loopback host {raw!r}: the target binds only "
                "127.0.0.0/8 and ::1"
            )
        seen[addr.compressed] = None
    if not seen:
        raise ValueError("the target needs at least one host")
    return tuple(seen)


def loopback_hosts(n: int, start: str = "127.0.0.2") -> list[str]:
    """`n` consecutive loopback addresses from `start` (all of 127.0.0.0/8 is local on Linux)."""
    if n < 0:
        raise ValueError(f"host count must be >= 0, got {n}")
    (first,) = normalize_hosts([start])
    addr = ipaddress.ip_address(first)
    if isinstance(addr, ipaddress.IPv6Address):
        if n > 1:
            raise ValueError("IPv6 has a single loopback address (::1); use 127.x.y.z for many")
        return [first][:n]
    last = int(addr) + n - 1
    if n and last > int(ipaddress.IPv4Address("127.255.255.254")):
        raise ValueError(f"{n} hosts from {start} run past the end of 127.0.0.0/8")
    return [str(ipaddress.IPv4Address(int(addr) + i)) for i in range(n)]


def _is_consecutive(hosts: Sequence[str]) -> bool:
    addrs = [ipaddress.ip_address(h) for h in hosts]
    if not all(isinstance(a, ipaddress.IPv4Address) for a in addrs):
        return False
    return all(int(b) - int(a) == 1 for a, b in itertools.pairwise(addrs))


def _format_url_host(host: str) -> str:
    host = host.strip("[]")
    return f"[{host}]" if ":" in host else host


class TargetProcess:
    """A running target child process; build it with `TargetProcess.start(...)`."""

    def __init__(
        self, proc: subprocess.Popen[bytes], stderr: IO[bytes], port: int, hosts: tuple[str, ...]
    ) -> None:
        self._proc = proc
        self._stderr = stderr
        self._stopped = False
        self.pid: int = proc.pid
        self.port: int = port
        self.hosts: tuple[str, ...] = hosts
        # The target is always on loopback: never route its admin calls through an HTTP proxy.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @classmethod
    def start(
        cls,
        hosts: Sequence[str] = ("127.0.0.1",),
        port: int = 0,
        knobs: TargetKnobs = TargetKnobs(),
        seed: int = 0,
        cpu: int | None = None,
        asset_file: Path | None = None,
        startup_timeout: float = 15.0,
        api_max_items: int | None = None,
        api_max_sessions: int | None = None,
    ) -> TargetProcess:
        """Spawn `python -m wbsrun.target`, wait until every socket listens, return the handle.

        `api_max_items` / `api_max_sessions` bound the demo API (None: its defaults)."""
        try:
            norm = normalize_hosts(hosts)
        except ValueError as exc:
            raise RunError(str(exc)) from None
        if not 0 <= port <= 65535:
            raise RunError(f"target port must be 0..65535, got {port}")
        args = [sys.executable, "-m", "wbsrun.target", "--port", str(port), "--seed", str(seed)]
        args += [*knobs.to_args(), "--watch-stdin"]
        if cpu is not None:
            args += ["--cpu", str(cpu)]
        if asset_file is not None:
            args += ["--asset", str(asset_file)]
        if api_max_items is not None:
            args += ["--api-max-items", str(api_max_items)]
        if api_max_sessions is not None:
            args += ["--api-max-sessions", str(api_max_sessions)]
        with tempfile.TemporaryDirectory(prefix="wbsrun-target-") as tmp:
            if len(norm) <= _MAX_INLINE_HOSTS:
                for host in norm:
                    args += ["--host", host]
            elif _is_consecutive(norm):
                args += ["--hosts-count", str(len(norm)), "--hosts-start", norm[0]]
            else:
                hosts_file = Path(tmp) / "hosts.txt"
                hosts_file.write_text("\n".join(norm) + "\n", encoding="ascii")
                args += ["--hosts-file", str(hosts_file)]
            # A file, not a pipe: a chatty child must never block on a full stderr pipe.
            stderr = tempfile.TemporaryFile(prefix="wbsrun-target-stderr-")  # noqa: SIM115 - lives as long as the child
            try:
                # stdin stays open as a lifeline: the child exits when it reads EOF.
                proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                    args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
                )
            except OSError as exc:
                stderr.close()
                raise RunError(f"cannot start the target process: {exc}") from exc
            try:
                ready = _await_ready(proc, startup_timeout)
            except BaseException as exc:  # Ctrl-C while waiting must not orphan the child
                _terminate(proc, 2.0)
                _close_pipes(proc)
                detail = _tail(stderr)
                stderr.close()
                if not isinstance(exc, RunError):
                    raise
                message = f"{exc} (exit code {proc.returncode})\n{detail}"
                raise RunError(message.rstrip()) from None
        return cls(proc, stderr, int(ready["port"]), norm)

    def url(self, host: str | None = None) -> str:
        """Base URL for `host` (default: the first host), e.g. http://127.0.0.1:8080."""
        if host is None:
            host = self.hosts[0]
        return f"http://{_format_url_host(host)}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The child's exit status once it has exited (negative: killed by that signal)."""
        return self._proc.poll()

    def stats(self) -> dict[str, Any]:
        """The server-side counters (GET /__stats)."""
        result: dict[str, Any] = json.loads(self._call("GET", "/__stats"))
        return result

    def reset_stats(self) -> None:
        """Zero every counter (POST /__stats/reset)."""
        self._call("POST", "/__stats/reset", b"")

    def control(self, host: str | None = None, **knobs: Any) -> None:
        """Change knobs at runtime: global when `host` is None, else for that host only.

        Only the knobs given change; `reset=True` first drops the host's overrides (or, globally,
        every override and the global knobs back to their start values).
        """
        changes = {k: v for k, v in knobs.items() if k != "reset"}
        update_knobs(TargetKnobs(), changes)  # fail here, with the server's wording
        if host is not None:
            (host,) = normalize_hosts([host])
        body = json.dumps({"host": host, **knobs}).encode()
        self._call("POST", "/__control", body)

    def cpu_times(self) -> float:
        """User + system CPU seconds the child has used so far (from /proc/PID/stat)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text(encoding="ascii")
        except OSError as exc:
            raise RunError(f"cannot read CPU times of target pid {self.pid}: {exc}") from exc
        # The command name may contain spaces and parentheses; fields resume after the last ')'.
        fields = stat.rpartition(")")[2].split()
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / os.sysconf("SC_CLK_TCK")

    def stderr_output(self) -> str:
        """Everything the child wrote to stderr so far (for diagnostics)."""
        return _read_all(self._stderr)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the child by PID, wait up to `timeout`, then SIGKILL; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        _terminate(self._proc, timeout)
        _close_pipes(self._proc)
        self._stderr.close()

    def __enter__(self) -> TargetProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<TargetProcess pid={self.pid} port={self.port} hosts={len(self.hosts)}>"

    def _call(self, method: str, path: str, body: bytes | None = None) -> bytes:
        url = self.url() + path
        headers = {"Content-Type": "application/json"} if body else {}
        request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 - http://loopback only
        try:
            with self._opener.open(request, timeout=10) as resp:
                data: bytes = resp.read()
                return data
        except urllib.error.HTTPError as exc:
            with exc:
                detail = exc.read().decode("utf-8", "replace")
            raise RunError(f"target {method} {path} answered {exc.code}: {detail}") from None
        except OSError as exc:
            state = "running" if self.running else f"exited with code {self._proc.returncode}"
            raise RunError(f"target at {url} unreachable ({exc}); process {state}") from exc


def _await_ready(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RunError(f"target did not start listening within {timeout:g}s")
            if not sel.select(remaining):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                proc.wait()
                raise RunError("target process died before it was listening")
            buf += chunk
    line = buf.split(b"\n", 1)[0]
    try:
        ready = json.loads(line)
        int(ready["port"])
    except (ValueError, TypeError, KeyError):
        raise RunError(f"target printed an unexpected ready line: {line!r}") from None
    if not isinstance(ready, dict):
        raise RunError(f"target printed an unexpected ready line: {line!r}")
    return ready


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


def _read_all(file: IO[bytes]) -> str:
    if file.closed:
        return ""
    fd = file.fileno()
    # pread leaves the shared file offset alone, so a live child keeps appending correctly.
    return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")


def _tail(file: IO[bytes]) -> str:
    text = _read_all(file).strip()
    if len(text) > _STDERR_TAIL_CHARS:
        text = "..." + text[-_STDERR_TAIL_CHARS:]
    return f"target stderr:\n{text}" if text else "target stderr was empty"
