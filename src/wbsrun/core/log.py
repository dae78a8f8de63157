"""The run's log sink: counts per level, the last lines in memory, optionally a file."""

from __future__ import annotations

import time
from collections import deque
from typing import TextIO, final

__all__ = ["RunLog"]


def _line(level: str, user_id: str | None, message: str) -> str:
    return f"{level.upper():5} {user_id or '-'} {message}"


@final
class RunLog:
    """Scenario log lines are data of the run: counted always, kept briefly, written if asked."""

    def __init__(self, out: TextIO | None = None, keep: int = 200) -> None:
        self.counts: dict[str, int] = {}
        # The parts of the last lines, formatted when read: the reference scenario logs a
        # line a pass, and the formatting cost more than the rest of the call.
        self._recent: deque[tuple[str, str | None, str]] = deque(maxlen=keep)
        self._out = out

    @property
    def recent(self) -> list[str]:
        """The last lines (at most `keep`), oldest first."""
        return [_line(level, user_id, message) for level, user_id, message in self._recent]

    def log(self, level: str, message: str, user_id: str | None = None) -> None:
        self.counts[level] = self.counts.get(level, 0) + 1
        self._recent.append((level, user_id, message))
        if self._out is not None:
            stamp = time.strftime("%H:%M:%S", time.localtime())
            self._out.write(f"{stamp} {_line(level, user_id, message)}\n")
