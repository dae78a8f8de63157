"""Command line of the embedded asset server: `python -m wbsrun.target --help`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from wbsrun.errors import RunError
from wbsrun.target.api import DEFAULT_MAX_ITEMS, DEFAULT_MAX_SESSIONS
from wbsrun.target.app import DEFAULT_ASSET, HANG_MAX_S, ServeConfig, serve
from wbsrun.target.process import TargetKnobs, loopback_hosts, normalize_hosts

__all__ = ["build_parser", "main"]

_DESCRIPTION = """\
Serve a small JSON asset and a demo API on one port across one or many loopback addresses,
with fault knobs.

routes (counted in /__stats):
  GET /asset            200, the asset document (JSON)
  POST /asset           200, {"stored":true,"bytes":N} (N = request body size)
  DELETE /asset         200, {"deleted":true}
  GET|HEAD /health      200 "ok", or 503 with --fail-health
  POST /api/login       demo API (target/api.py; docs/tutorial.md): any user name logs in
                        with the password secret-<name> -> {"token": T}, cookie session=T
  GET /api/me           with "Authorization: Bearer T" or the cookie (else 401)
  GET|POST /api/items   list (?page=1&per_page=20), create -> 201 {"id": N, ...}
  GET|PUT|DELETE /api/items/{id}   read, replace, delete (204); another user's item is 404
  anything else         404 (405 for other methods on /asset and /api routes)
admin routes (not counted):
  GET /__stats          {"received","responded","by_route","by_host","by_status"}
  POST /__stats/reset   zero the counters
  GET|POST /__control   read / change knobs: {"host": "127.0.0.3" | null, "latency_ms": 50, ...};
                        host null = global, per-host knobs override global ones;
                        {"reset": true} drops overrides (globally: back to the start knobs)

Once every socket listens, one JSON line goes to stdout: {"port": P, "pid": PID, "hosts": N}.
SIGTERM or SIGINT stops the server cleanly.
"""

_KNOB_HELP = (
    "They apply to /asset and /api/*, in this order: hang, then latency + jitter, then close, "
    "then status, then error-rate."
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every flag is documented in its help."""
    parser = argparse.ArgumentParser(
        prog="python -m wbsrun.target",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_argument_group("where to listen (hosts may be combined)")
    where.add_argument(
        "--port", type=int, default=0, help="port for every host; 0 = pick a free one (default)"
    )
    where.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="IP",
        help="loopback address to listen on; repeatable (default: 127.0.0.1)",
    )
    where.add_argument(
        "--hosts-file",
        type=Path,
        metavar="FILE",
        help="file with one loopback address per line (# comments allowed)",
    )
    where.add_argument(
        "--hosts-count",
        type=int,
        default=0,
        metavar="N",
        help="listen on N consecutive addresses starting at --hosts-start",
    )
    where.add_argument(
        "--hosts-start",
        default="127.0.0.2",
        metavar="IP",
        help="first address for --hosts-count (default: 127.0.0.2)",
    )
    where.add_argument(
        "--backlog",
        type=int,
        default=4096,
        help="listen backlog per socket (default: 4096; the kernel caps it at somaxconn)",
    )

    knobs = parser.add_argument_group(
        "fault knobs (global; change them at runtime via /__control)", _KNOB_HELP
    )
    knobs.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="delay added to every /asset and /api response",
    )
    knobs.add_argument(
        "--jitter-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="extra uniform random delay 0..MS on /asset and /api",
    )
    knobs.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="fraction 0..1 of /asset and /api requests answered 500 (seeded, reproducible)",
    )
    knobs.add_argument(
        "--status",
        type=int,
        metavar="CODE",
        help="answer every /asset and /api request with this HTTP status (e.g. 401)",
    )
    knobs.add_argument("--fail-health", action="store_true", help="/health answers 503")
    knobs.add_argument(
        "--hang",
        action="store_true",
        help=f"/asset, /api and /health never answer until the client leaves "
        f"(at most {HANG_MAX_S:g} s)",
    )
    knobs.add_argument(
        "--close",
        action="store_true",
        help="/asset and /api close the connection without answering",
    )

    api = parser.add_argument_group("demo API bounds (oldest evicted first)")
    api.add_argument(
        "--api-max-items",
        type=int,
        default=DEFAULT_MAX_ITEMS,
        metavar="N",
        help=f"items kept, all users together (default: {DEFAULT_MAX_ITEMS})",
    )
    api.add_argument(
        "--api-max-sessions",
        type=int,
        default=DEFAULT_MAX_SESSIONS,
        metavar="N",
        help=f"login sessions kept (default: {DEFAULT_MAX_SESSIONS})",
    )

    run = parser.add_argument_group("process")
    run.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the random generator behind jitter and error-rate (default: 0)",
    )
    run.add_argument(
        "--asset",
        type=Path,
        metavar="FILE",
        help="JSON file served by GET /asset (default: the reference payloads/asset.json)",
    )
    run.add_argument(
        "--cpu", type=int, metavar="N", help="pin this process to CPU N (sched_setaffinity)"
    )
    run.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="event loop: uvloop when installed (auto, default), or force one",
    )
    run.add_argument(
        "--watch-stdin",
        action="store_true",
        help="exit when stdin reaches EOF (set by a parent that holds the other end)",
    )
    return parser


def _hosts(args: argparse.Namespace) -> tuple[str, ...]:
    raw: list[str] = list(args.host)
    if args.hosts_file is not None:
        try:
            text = args.hosts_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"--hosts-file {args.hosts_file}: {exc.strerror or exc}") from None
        for line in text.splitlines():
            entry = line.partition("#")[0].strip()
            if entry:
                raw.append(entry)
    if args.hosts_count:
        raw.extend(loopback_hosts(args.hosts_count, args.hosts_start))
    return normalize_hosts(raw or ["127.0.0.1"])


def _config(args: argparse.Namespace) -> ServeConfig:
    knobs = TargetKnobs(
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        error_rate=args.error_rate,
        status=args.status,
        fail_health=args.fail_health,
        hang=args.hang,
        close=args.close,
    )
    asset = DEFAULT_ASSET
    if args.asset is not None:
        try:
            asset = args.asset.read_bytes()
        except OSError as exc:
            raise ValueError(f"--asset {args.asset}: {exc.strerror or exc}") from None
        try:
            json.loads(asset)
        except ValueError as exc:
            raise ValueError(f"--asset {args.asset} is not valid JSON: {exc}") from None
    if args.backlog < 1:
        raise ValueError(f"--backlog must be >= 1, got {args.backlog}")
    for flag, value in (
        ("--api-max-items", args.api_max_items),
        ("--api-max-sessions", args.api_max_sessions),
    ):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    return ServeConfig(
        _hosts(args),
        args.port,
        knobs,
        args.seed,
        asset,
        args.backlog,
        args.watch_stdin,
        args.api_max_items,
        args.api_max_sessions,
    )


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ValueError("--loop uvloop: uvloop is not installed") from None
        else:
            factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
            return factory
    return asyncio.new_event_loop


def _pin(cpu: int) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    try:
        os.sched_setaffinity(0, {cpu})
    except (OSError, OverflowError) as exc:
        raise ValueError(f"--cpu {cpu}: cannot pin ({exc}); allowed CPUs: {allowed}") from None


def _raise_fd_limit() -> None:
    # Every host is a listening socket and every virtual user a connection: 1,000 of each
    # overflow the common soft limit of 1024 descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _announce(port: int, hosts: int) -> None:
    sys.stdout.write(json.dumps({"port": port, "pid": os.getpid(), "hosts": hosts}) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, serve until told to stop; exit 2 on bad flags, 1 when it cannot listen."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = _config(args)
        if args.cpu is not None:
            _pin(args.cpu)
        factory = _loop_factory(args.loop)
    except ValueError as exc:
        parser.error(str(exc))
    _raise_fd_limit()
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve(config, lambda port: _announce(port, len(config.hosts))))
    except RunError as exc:
        print(f"wbsrun.target: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
