"""Hypothesis profiles for the property tests, and the example counts the tests ask for.

- `dev` (the default): Hypothesis' own example counts, random, no deadline (shared machines).
- `ci` (when the environment has CI=true): derandomized, so a run is reproducible from the
  commit alone; a failure prints its reproduction blob.
- `fuzz` (HYPOTHESIS_PROFILE=fuzz, `make fuzz`): random and ten times the examples, at least
  2,000 a test, to look for new failures.

HYPOTHESIS_PROFILE names a profile explicitly. Tests that set their own `max_examples` pass
it through `examples(n)`, so that the fuzz profile scales them as well (an explicit setting
would otherwise win over any profile).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["FUZZ_MINIMUM", "PROFILE", "examples", "load_profile"]

FUZZ_MINIMUM = 2_000
_FUZZ_FACTOR = 10


def _chosen() -> str:
    named = os.environ.get("HYPOTHESIS_PROFILE", "")
    if named:
        return named
    return "ci" if os.environ.get("CI", "").lower() in ("true", "1") else "dev"


PROFILE = _chosen()

settings.register_profile("dev", deadline=None, print_blob=True)
settings.register_profile(
    "ci",
    derandomize=True,
    print_blob=True,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    derandomize=False,
    print_blob=True,
    deadline=None,
    max_examples=FUZZ_MINIMUM,
    suppress_health_check=[HealthCheck.too_slow],
)


def load_profile() -> None:
    """Make the chosen profile the default (tests/conftest.py, before tests are collected)."""
    settings.load_profile(PROFILE)


def examples(count: int) -> int:
    """A test's own example count, scaled up under the fuzz profile."""
    if PROFILE == "fuzz":
        return max(count * _FUZZ_FACTOR, FUZZ_MINIMUM)
    return count
