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

    __slots__ = ("error", "latency_ms", "message", "requests", "value")

    def __init__(
        self,
        value: Mapping[str, Any] | None,
        # Positional too: built once a request, and keyword passing costs ~150 ns more.
        error: str | None = None,
        message: str = "",
        latency_ms: float = 0.0,
        requests: int = 0,
    ) -> None:
        self.value = value
        self.error = error
        self.message = message
        self.latency_ms = latency_ms
        self.requests = requests
