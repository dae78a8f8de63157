"""Shared pytest fixtures for the whole wbsrun test suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from wbsrun.target import TargetProcess

# -- embedded asset server (wbsrun.target) ----------------------------------------------------


@pytest.fixture
def target() -> Iterator[TargetProcess]:
    """A target process on 127.0.0.1, free port, no fault knobs; stopped after the test."""
    with TargetProcess.start() as proc:
        yield proc


@pytest.fixture
def target_factory() -> Iterator[Callable[..., TargetProcess]]:
    """Start targets with `TargetProcess.start` arguments; every one is stopped after the test."""
    started: list[TargetProcess] = []

    def start(**kwargs: Any) -> TargetProcess:
        proc = TargetProcess.start(**kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
