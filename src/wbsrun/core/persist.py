"""Write-behind buffer for `save-as.persist`: the last value per file, flushed in batches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, final

from wbsrun.core.workbook import plain

__all__ = ["PersistBuffer"]


@final
class PersistBuffer:
    """Coalesces writes per path so a hot loop never blocks on the disk.

    A file is rewritten with the latest value each flush; the final flush at the end of a run
    leaves every file with the last value saved, which is what a per-request write would have
    left too.
    """

    def __init__(self) -> None:
        self._pending: dict[Path, Any] = {}
        self.files_written = 0
        self.errors: list[str] = []
        self._dirs: set[Path] = set()

    def put(self, path: Path, value: Any) -> None:
        self._pending[path] = value

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        pending, self._pending = self._pending, {}
        for path, value in pending.items():
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
        return len(pending)
