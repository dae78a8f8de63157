"""The live threshold watcher survives an evaluation that raises: it says so once in the run
log and keeps going (the end-of-run evaluation still decides the exit code)."""

from __future__ import annotations

import asyncio
import io
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from wbsrun.cli import session
from wbsrun.core.log import RunLog


class _Breaking:
    """A threshold set whose evaluation raises the first three times, then reports nothing."""

    def __init__(self) -> None:
        self.calls = 0
        self.rules = ("x",)

    def check(self, result: dict[str, Any], elapsed: float) -> list[Any]:
        self.calls += 1
        if self.calls <= 3:
            raise KeyError("requests")
        return []


def test_a_failing_live_evaluation_is_logged_once_and_the_watcher_keeps_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(session, "THRESHOLD_INTERVAL", 0.01)
    out = io.StringIO()
    thresholds = _Breaking()
    wired: Any = SimpleNamespace(
        thresholds=thresholds,
        live_result=dict,
        log=RunLog(out),
        runner=SimpleNamespace(elapsed=1.0, drain=lambda: None),
    )

    async def main() -> None:
        task = asyncio.create_task(
            session._watch_thresholds(wired, Console(file=io.StringIO()), False)
        )
        await asyncio.sleep(0.2)
        assert not task.done()  # still watching after the failures
        task.cancel()

    asyncio.run(main())
    assert thresholds.calls > 5
    lines = [line for line in out.getvalue().splitlines() if "live threshold evaluation" in line]
    assert len(lines) == 1, out.getvalue()
    assert "KeyError" in lines[0]
