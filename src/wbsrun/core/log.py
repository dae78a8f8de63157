"""The run's log sink: counts per level, the last lines in memory, optionally a file."""

from __future__ import annotations

import time
from collections import deque
from typing import TextIO, final

__all__ = ["RunLog"]


@final
class RunLog:
    """Scenario log lines are data of the run: counted always, kept briefly, written if asked."""

    def __init__(self, out: TextIO | None = None, keep: int = 200) -> None:
        self.counts: dict[str, int] = {}
        self.recent: deque[str] = deque(maxlen=keep)
        self._out = out

    def log(self, level: str, message: str, user_id: str | None = None) -> None:
        self.counts[level] = self.counts.get(level, 0) + 1
        line = f"{level.upper():5} {user_id or '-'} {message}"
        self.recent.append(line)
        if self._out is not None:
            stamp = time.strftime("%H:%M:%S", time.localtime())
            self._out.write(f"{stamp} {line}\n")
