"""What a transport gives the coordinator and a worker, whatever carries the messages.

A `Link` moves `protocol` messages one way (`send`) and hands the other end's to the event
loop (`listen`); `Workers` starts the run's workers and ends them. Two transports implement
these: pipes and spawned processes (`transport.py`, `--workers N`) and Ray actors
(`raylink.py`, `--cluster`). `ClusterRunner` and `serve_worker` only see these shapes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Link", "Workers"]


class Link(Protocol):
    def send(self, message: object) -> bool:
        """Queue `message` for the other end; False when that end is gone."""
        ...

    def listen(
        self,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[Any], None],
        on_closed: Callable[[], None],
        name: str = ...,
    ) -> object:
        """Hand each message of the other end to `loop` (`on_message`), then `on_closed`
        once when the link ends (the other end closed, died or was lost)."""
        ...

    def close(self) -> None: ...


class Workers(Protocol):
    """The workers of one run: started once, each ended by its own handle."""

    @property
    def links(self) -> list[Any]: ...

    def start(self) -> list[Any]:
        """Start every worker; the coordinator's end of each one's link, by index."""
        ...

    def kill(self, i: int) -> None:
        """End worker `i` now (it is hung or lost)."""
        ...

    def exit_code(self, i: int, wait: float = 0.0) -> int | None:
        """How worker `i` ended (a process exit code), None while unknown."""
        ...

    def close(self, wait: float) -> None:
        """Wait up to `wait` seconds for the workers to end, then end those left."""
        ...
