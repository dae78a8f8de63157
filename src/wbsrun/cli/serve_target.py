"""`wbsrun target`: the embedded target in the foreground on a fixed port, for tutorials."""

from __future__ import annotations

import asyncio
import os

import click

from wbsrun.target.app import ServeConfig, serve
from wbsrun.target.process import TargetKnobs, normalize_hosts

__all__ = ["serve_target"]


def serve_target(host: str, port: int, knobs: TargetKnobs) -> None:
    """Serve until SIGINT/SIGTERM; RunError when the port cannot be had, ValueError for a
    host that is not loopback."""
    config = ServeConfig(normalize_hosts([host]), port, knobs)

    def ready(bound: int) -> None:
        base = f"http://{config.hosts[0]}:{bound}".replace("http://::1", "http://[::1]")
        click.echo(f"wbsrun target: serving on {base} (pid {os.getpid()}); Ctrl-C stops it")
        click.echo(
            "  demo API: POST /api/login (user demo, password secret-demo), GET /api/me, "
            "/api/items; also GET /asset, GET /health; counters: GET /__stats"
        )

    asyncio.run(serve(config, ready))
    click.echo("wbsrun target: stopped")
