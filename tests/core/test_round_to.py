"""`round_to` is `round(x, digits)` to the bit, sign of zero included."""

from __future__ import annotations

import math

from hypothesis import example, given, settings
from hypothesis import strategies as st

from property_kit import examples
from wbsrun.core.stats import round_to


def same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


@settings(max_examples=examples(3000))
@given(st.floats(allow_nan=True, allow_infinity=True), st.integers(0, 6))
@example(1.0005, 3)
@example(2.675, 2)
@example(-0.0001, 3)
@example(0.5, 0)
@example(1.5, 0)
@example(-2.5, 0)
@example(9.8805, 3)
@example(1e300, 4)
def test_round_to_gives_what_round_gives(x: float, digits: int) -> None:
    assert same(round_to(x, digits), round(x, digits))


@settings(max_examples=examples(3000))
@given(st.integers(-(10**12), 10**12), st.integers(0, 6), st.sampled_from([0.0, 0.5, 1e-9, -1e-9]))
def test_round_to_agrees_near_the_halves_of_the_last_digit(n: int, digits: int, off: float) -> None:
    x = (n + 0.5) / 10**digits + off
    assert same(round_to(x, digits), round(x, digits))


def test_latencies_of_the_usual_size_round_the_same() -> None:
    for i in range(200_000):
        ms = i * 0.0137 + i % 7 * 1e-5
        assert same(round_to(ms, 3), round(ms, 3))
        assert same(round_to(ms / 100.0, 4), round(ms / 100.0, 4))
