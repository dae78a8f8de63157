"""What one component call produced. Its own module so that it is compiled with the hot
path (one is built per call) while `ports`, whose runtime-checkable Protocols mypyc cannot
compile, stays interpreted and re-exports it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, final

__all__ = ["ActionOutcome"]


@final
class ActionOutcome:
    """What one component call produced: a value to save, or an error code (data, not raised)."""

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "error",
        "latency_ms",
        "message",
        "requests",
        "status",
        "value",
    )

    def __init__(
        self,
        value: Mapping[str, Any] | None,
        # Positional too: built once a request, and keyword passing costs ~150 ns more.
        error: str | None = None,
        message: str = "",
        latency_ms: float = 0.0,
        requests: int = 0,
        # The HTTP status of the answer (0: none) and the bytes on the wire, both ways.
        status: int = 0,
        bytes_sent: int = 0,
        bytes_received: int = 0,
    ) -> None:
        self.value = value
        self.error = error
        self.message = message
        self.latency_ms = latency_ms
        self.requests = requests
        self.status = status
        self.bytes_sent = bytes_sent
        self.bytes_received = bytes_received
