"""Write-behind buffer for `save-as.persist`: the last value per file, flushed in batches."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, final

from wbsrun.core.ledger import plain

__all__ = ["PersistBuffer"]


@final
class PersistBuffer:
    """Coalesces writes per path so a hot loop never blocks on the disk.

    A file is rewritten with the latest value each flush; the final flush at the end of a run
    leaves every file with the last value saved, which is what a per-request write would have
    left too.
    """

    def __init__(self) -> None:
        # Keyed by the path's text: a `Path` key hashes through interpreted code on every put
        # (two a pass in the reference scenario).
        self._pending: dict[str, Any] = {}
        self.files_written = 0
        self.errors: list[str] = []
        self._dirs: set[Path] = set()

    def put(self, path: Path | str, value: Any) -> None:
        self._pending[path if type(path) is str else str(path)] = value

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self, budget: float | None = None) -> int:
        """Write pending files, oldest first; stop after `budget` seconds (None: all).

        Opening a file costs ~1 ms on some filesystems: a thousand of them in one go would
        stall the event loop for a second, so periodic flushes run on a small budget and the
        final flush writes the rest.
        """
        deadline = None if budget is None else time.perf_counter() + budget
        written = 0
        while self._pending:
            if deadline is not None and written and time.perf_counter() > deadline:
                break
            key = next(iter(self._pending))
            value = self._pending.pop(key)
            path = Path(key)
            written += 1
            try:
                if path.parent not in self._dirs:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    self._dirs.add(path.parent)
                text = json.dumps(plain(value), ensure_ascii=False, default=str, indent=1)
                path.write_text(text, encoding="utf-8")
                self.files_written += 1
            except (OSError, TypeError, ValueError) as exc:
                if len(self.errors) < 20:
                    self.errors.append(f"{path}: {exc}")
        return written
