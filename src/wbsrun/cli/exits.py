"""Exit codes of `wbsrun run` and `wbsrun demo` (docs/observability.md "Thresholds and exit
codes"). 99 and 105 are k6's codes for a crossed threshold and an external abort, so CI scripts
written for k6 carry over."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_RUN_ERROR",
    "EXIT_THRESHOLDS",
    "exit_code",
    "threshold_lines",
]

EXIT_OK: Final = 0  # the run completed and every threshold passed
EXIT_RUN_ERROR: Final = 1  # the run could not start or finish (also: a worker lost, `failed`)
EXIT_INVALID: Final = 2  # invalid scenario, config.yaml or options: nothing was run
EXIT_THRESHOLDS: Final = 99  # a threshold failed at the end, or aborted the run
EXIT_INTERRUPTED: Final = 105  # stopped by a signal (SIGINT, SIGTERM) before the plan ended


def exit_code(result: Mapping[str, Any]) -> int:
    """The code a finished run exits with. A run stopped by a signal exits 105 whatever its
    thresholds say (they are still evaluated and written); an abort-on-fail stop is 99."""
    if result.get("status") == "failed":
        return EXIT_RUN_ERROR  # a worker process died: its segment's users are lost
    if result.get("status") == "interrupted":
        return EXIT_INTERRUPTED
    if result.get("status") == "aborted":
        return EXIT_THRESHOLDS
    if any(not t.get("ok", False) for t in result.get("thresholds", ())):
        return EXIT_THRESHOLDS
    return EXIT_OK


def threshold_lines(result: Mapping[str, Any]) -> list[str]:
    """One line per failed threshold, for standard error: the rule, where it was seen."""
    lines = []
    for t in result.get("thresholds", ()):
        if t.get("ok", False):
            continue
        observed = t.get("observed")
        seen = "no data" if observed is None else f"observed {observed:.6g}"
        lines.append(f"threshold failed: {t.get('rule')} ({seen})")
    return lines
