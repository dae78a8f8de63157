"""`wbsrun ctl …`: steer a run started with `--control` (docs/operations.md, "Live control"),
and the `run` options that start its endpoint."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from wbsrun.cli.exits import EXIT_INVALID, EXIT_RUN_ERROR

if TYPE_CHECKING:
    from wbsrun.control import ControlAddress, ControlClient

__all__ = ["CONTROL_OPTIONS", "control_settings", "ctl", "with_control"]

DEFAULT_URL = "http://127.0.0.1:9465"


def _address(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    from wbsrun.control import ControlAddress

    try:
        return ControlAddress.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


# `run`'s options (docs/operations.md).
CONTROL_OPTIONS = (
    click.option(
        "--control",
        "control",
        metavar="[HOST:]PORT",
        default=None,
        callback=_address,
        help="Serve the live-control endpoint (pause, resume, scale, stop: `wbsrun ctl`) on "
        "http://HOST:PORT (HOST 127.0.0.1 unless given; PORT 0: any free port); its URL and "
        "a random token are printed at the start.",
    ),
    click.option(
        "--control-token-file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Also write the control token to this file (mode 0600) for scripts and "
        "`wbsrun ctl --token-file`.",
    ),
    click.option(
        "--control-allow-remote",
        is_flag=True,
        help="Let --control listen on a non-loopback address (refused otherwise).",
    ),
    click.option(
        "--paused",
        is_flag=True,
        help="Start paused (as k6's --paused): nothing is sent until `wbsrun ctl resume`; "
        "needs --control.",
    ),
)


def with_control(f: Any) -> Any:
    for option in reversed(CONTROL_OPTIONS):
        f = option(f)
    return f


def control_settings(
    address: ControlAddress | None,
    token_file: Path | None,
    allow_remote: bool,
    paused: bool = False,
) -> Any:
    """The run's `ControlSettings` (None without --control); a usage error for a non-loopback
    bind without --control-allow-remote, or a token file or --paused without --control (a run
    started paused with no endpoint could never be resumed)."""
    if address is None:
        if token_file is not None or allow_remote or paused:
            raise click.UsageError(
                "--control-token-file, --control-allow-remote and --paused need --control"
            )
        return None
    from wbsrun.control import ControlSettings

    settings = ControlSettings(address, token_file, allow_remote, paused)
    try:
        settings.check()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return settings


def _client(url: str | None, token: str | None, token_file: Path | None) -> ControlClient:
    from wbsrun.control import ControlClient

    if token is None and token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise click.UsageError(f"--token-file {token_file}: {exc.strerror or exc}") from None
    token = token if token is not None else os.environ.get("WBSRUN_CONTROL_TOKEN")
    if not token:
        raise click.UsageError(
            "no token: give --token, --token-file (as written by run --control-token-file) "
            "or WBSRUN_CONTROL_TOKEN"
        )
    return ControlClient(url or os.environ.get("WBSRUN_CONTROL_URL") or DEFAULT_URL, token)


def _call(obj: dict[str, Any], what: str, *args: Any) -> dict[str, Any]:
    from wbsrun.control import ControlClientError

    client = _client(obj["url"], obj["token"], obj["token_file"])
    try:
        answer: dict[str, Any] = getattr(client, what)(*args)
    except ControlClientError as exc:
        click.echo(f"error: {what}: {exc.message}", err=True)
        sys.exit(EXIT_INVALID if exc.status in (400, 404) else EXIT_RUN_ERROR)
    return answer


def _line(status: dict[str, Any]) -> str:
    scenarios = ", ".join(
        f"{name} {s.get('users')}/{s.get('target')} users"
        for name, s in (status.get("scenarios") or {}).items()
    )
    paused = f", {status.get('paused_s', 0):.1f}s paused" if status.get("paused_s") else ""
    return f"{status.get('state')}{paused}; {scenarios}" if scenarios else str(status.get("state"))


@click.group()
@click.option(
    "--url",
    default=None,
    help=f"The run's control endpoint (default: WBSRUN_CONTROL_URL, else {DEFAULT_URL}).",
)
@click.option("--token", default=None, help="The token the run printed (or WBSRUN_CONTROL_TOKEN).")
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Read the token from this file (run --control-token-file).",
)
@click.pass_context
def ctl(ctx: click.Context, url: str | None, token: str | None, token_file: Path | None) -> None:
    """Steer a run started with --control: pause, resume, scale, stop, status. Exit 0: done;
    2: refused as invalid (unknown scenario, bad value); 1: no run answers, bad token, or the
    run is over."""
    ctx.obj = {"url": url, "token": token, "token_file": token_file}


@ctl.command()
@click.pass_obj
def status(obj: dict[str, Any]) -> None:
    """The run's state, paused seconds and users per scenario, as JSON."""
    click.echo(json.dumps(_call(obj, "status"), indent=2))


@ctl.command()
@click.pass_obj
def pause(obj: dict[str, Any]) -> None:
    """Users finish their current action and wait; no spawn, pass or arrival starts."""
    click.echo(_line(_call(obj, "pause")))


@ctl.command()
@click.pass_obj
def resume(obj: dict[str, Any]) -> None:
    """Users go on where they waited."""
    click.echo(_line(_call(obj, "resume")))


@ctl.command()
@click.argument("scenario")
@click.argument("users", type=click.IntRange(min=0))
@click.pass_obj
def scale(obj: dict[str, Any], scenario: str, users: int) -> None:
    """SCENARIO to USERS users from now (arrival-rate: its max-users)."""
    click.echo(_line(_call(obj, "scale", scenario, users)))


@ctl.command()
@click.pass_obj
def stop(obj: dict[str, Any]) -> None:
    """The graceful stop, as a first Ctrl-C: passes in flight finish, the result is written."""
    click.echo(_line(_call(obj, "stop")))
