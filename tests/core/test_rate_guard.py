"""RateGuard: slots of a 1/rate schedule per key, reserved in call order."""

from __future__ import annotations

import asyncio
import time

import pytest

from wbsrun.core.rate import RateGuard


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_slots_are_spaced_by_one_over_rate_per_key() -> None:
    clock = FakeClock()
    guard = RateGuard(clock)
    assert guard.reserve("a", 4.0) == 0.0
    assert guard.reserve("a", 4.0) == pytest.approx(0.25)
    assert guard.reserve("a", 4.0) == pytest.approx(0.50)
    assert guard.reserve("b", 4.0) == 0.0  # keys do not share a schedule


def test_an_idle_key_does_not_bank_slots() -> None:
    clock = FakeClock()
    guard = RateGuard(clock)
    guard.reserve("a", 2.0)
    clock.now += 10.0  # long idle: no burst of saved-up slots afterwards
    assert guard.reserve("a", 2.0) == 0.0
    assert guard.reserve("a", 2.0) == pytest.approx(0.5)


def test_wait_sleeps_until_the_reserved_slot() -> None:
    guard = RateGuard()

    async def three() -> float:
        t0 = time.monotonic()
        for _ in range(3):
            await guard.wait("k", 20.0)
        return time.monotonic() - t0

    elapsed = asyncio.run(three())
    assert 0.09 <= elapsed < 0.5
