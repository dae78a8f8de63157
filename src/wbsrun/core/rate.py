"""Rate guards: a 1/rate schedule per key, for node rate limits and for components."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from typing import final

__all__ = ["RateGuard"]


@final
class RateGuard:
    """Hands out slots of a 1/rate schedule per key; callers wait for their slot.

    Reservations are made at call time, so concurrent callers queue fairly in call order.
    """

    __slots__ = ("_clock", "_slots")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._slots: dict[Hashable, float] = {}

    def reserve(self, key: Hashable, rate: float) -> float:
        """Take the next slot for `key`; the seconds to wait until it (0 when free now)."""
        now = self._clock()
        slot = self._slots.get(key, now)
        self._slots[key] = max(slot, now) + 1.0 / rate
        return max(0.0, slot - now)

    async def wait(self, key: Hashable, rate: float) -> None:
        delay = self.reserve(key, rate)
        if delay > 0:
            await asyncio.sleep(delay)
