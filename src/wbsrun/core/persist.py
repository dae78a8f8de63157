"""Write-behind buffer for `save-as.persist`: the last value per file, flushed in batches.

Bounded and honest (docs/result.md, `persist`): a file is at most `limit` bytes (the run's
max-body) — a larger value is not written and fails the action that saved it — and the
counters say what reached the disk: `files_written` distinct files, `writes` operations,
`bytes_written`, `failed` failures (the first 20 messages in `errors`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Final, final

from wbsrun.core import codes
from wbsrun.core.ledger import plain
from wbsrun.core.limits import DEFAULT_MAX_BODY
from wbsrun.core.stats import RunStats

__all__ = ["PersistBuffer", "PersistTooLarge", "bad_file_name"]

MAX_ERRORS: Final = 20
# Encoded text is written in pieces of about this many characters: a large value is never
# held as one whole string as well as its encoded bytes.
_PIECE: Final = 64 * 1024
_NAME_BYTES: Final = 255  # the longest file name Linux filesystems take


class PersistTooLarge(Exception):
    """The value's JSON text would exceed the limit; nothing was written."""


def bad_file_name(name: str) -> str | None:
    """Why `name` (a rendered `persist.filename`) is not a single safe file name, or None.

    Directories belong in `persist.dir`: a name from a response must not create any, nor
    leave the directory."""
    if not name:
        return "the file name is empty"
    # A name rendered from a response may be the whole body: quote its start only.
    shown = repr(name) if len(name) <= 80 else f"{name[:80]!r}…"
    if "\0" in name:
        return f"file name {shown} contains a NUL character"
    if name.startswith("/"):
        return f"file name {shown} is an absolute path; expected a single file name"
    if "/" in name or "\\" in name:
        return f"file name {shown} contains a path separator; expected a single file name"
    if name in (".", ".."):
        return f"file name {shown} is not a file name"
    if len(name.encode("utf-8", "surrogateescape")) > _NAME_BYTES:
        return f"file name {shown} is longer than {_NAME_BYTES} bytes"
    return None


@final
class PersistBuffer:
    """Coalesces writes per path so a hot loop never blocks on the disk.

    A file is rewritten with the latest value each flush; the final flush at the end of a run
    leaves every file with the last value saved, which is what a per-request write would have
    left too. A write goes to a temporary file renamed over the target: a failed or refused
    write leaves the previous content, never a partial file.
    """

    def __init__(self, limit: int = DEFAULT_MAX_BODY, stats: RunStats | None = None) -> None:
        self.limit = limit
        # Where a failure found at flush time is charged: the action that saved the value.
        self.stats = stats
        # Keyed by the path's text: a `Path` key hashes through interpreted code on every put
        # (two a pass in the reference scenario). (value, action name, action succeeded)
        self._pending: dict[str, tuple[Any, str, bool]] = {}
        self._written: set[str] = set()
        self.writes = 0
        self.bytes_written = 0
        self.failed = 0
        self.errors: list[str] = []
        self._dirs: set[Path] = set()

    @property
    def files_written(self) -> int:
        """Distinct files this run wrote (a file rewritten each flush counts once)."""
        return len(self._written)

    def put(self, path: Path | str, value: Any, action: str = "", ok: bool = True) -> None:
        self._pending[path if type(path) is str else str(path)] = (value, action, ok)

    def refuse(self, message: str) -> None:
        """A value that could not be queued (its file name): counted like a failed write."""
        self.failed += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)

    def state(self) -> dict[str, Any]:
        """What reached the disk so far (a checkpoint): the files written and the counters.
        Values still pending are not on disk, and not in it."""
        return {
            "files": sorted(self._written),
            "writes": self.writes,
            "bytes_written": self.bytes_written,
            "failed": self.failed,
            "errors": list(self.errors),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """A second life counts on from a first life's `state()` (its files stay on disk)."""
        self._written.update(str(f) for f in state["files"])
        self.writes += int(state["writes"])
        self.bytes_written += int(state["bytes_written"])
        self.failed += int(state["failed"])
        self.errors.extend(str(e) for e in state["errors"][: max(0, MAX_ERRORS - len(self.errors))])

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
            value, action, ok = self._pending.pop(key)
            written += 1
            try:
                self.bytes_written += self._write(Path(key), value)
                self.writes += 1
                self._written.add(key)
            except PersistTooLarge as too_large:  # one name per exception type (mypyc)
                self._failed(action, ok, codes.BODY_TOO_LARGE, f"{key}: {too_large}")
            except (OSError, TypeError, ValueError) as exc:
                self._failed(action, ok, codes.PERSIST_ERROR, f"{key}: {exc}")
        return written

    def _write(self, path: Path, value: Any) -> int:
        """The value as indented JSON in `path`, at most `limit` bytes; the bytes written."""
        parent = path.parent
        if parent not in self._dirs:
            parent.mkdir(parents=True, exist_ok=True)  # persist.dir itself, never a name's
            self._dirs.add(parent)
        partial = path.with_name(f".{path.name}.partial")
        encoder = json.JSONEncoder(ensure_ascii=False, default=str, indent=1)
        limit = self.limit
        size = held = 0
        pieces: list[str] = []
        try:
            with open(partial, "wb") as out:
                for piece in encoder.iterencode(plain(value)):
                    pieces.append(piece)
                    held += len(piece)
                    if held >= _PIECE:
                        size += self._put_out(out, pieces, size, limit)
                        held = 0
                size += self._put_out(out, pieces, size, limit)
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return size

    @staticmethod
    def _put_out(out: Any, pieces: list[str], size: int, limit: int) -> int:
        data = "".join(pieces).encode("utf-8", "surrogateescape")
        pieces.clear()
        if size + len(data) > limit:
            raise PersistTooLarge(
                f"the value's JSON is over the max-body limit of {limit} bytes; not written"
            )
        out.write(data)
        return len(data)

    def _failed(self, action: str, ok: bool, code: str, message: str) -> None:
        """A write that failed at flush time fails the action that saved the value, after
        the fact: its pass has moved on, but the run's figures count it."""
        self.refuse(message)
        stats = self.stats
        if stats is None or not action:
            return
        stats.count_error(code, action, message, time.time())
        if ok:
            st = stats.action(action)
            if st.ok > 0:
                st.ok -= 1
                st.failed += 1
