"""Live control of a run: the loopback HTTP endpoint (`--control`) and its client (`wbsrun ctl`).

The endpoint calls only `wbsrun.core.control.RunControl`; its API is `openapi.json` here."""

from wbsrun.control._client import ControlClient, ControlClientError
from wbsrun.control._server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ControlAddress,
    ControlServer,
    ControlSettings,
    is_loopback,
    new_token,
    openapi_document,
    write_token,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ControlAddress",
    "ControlClient",
    "ControlClientError",
    "ControlServer",
    "ControlSettings",
    "is_loopback",
    "new_token",
    "openapi_document",
    "write_token",
]
