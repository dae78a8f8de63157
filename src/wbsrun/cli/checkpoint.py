"""`wbsrun run --checkpoint DIR`: the run's state on disk every few seconds, atomically.

A checkpoint directory holds `manifest.json` (format version, the bundle and its source hash,
the options, when, how far the run was, and which state file is current, with its SHA-256)
and that state file, `state-NNNNNN.pkl`: a pickle of plain data (the statistics as a
`cluster.delta.StatsDelta` taken against nothing, the progress sums of the closed passes, the
time series, each scenario's schedule position, the feeds' cursors, the save-as files written,
the kept ledger entries). Each file is written to a temporary name, fsynced and renamed, the
state before the manifest that names it, then the directory fsynced: a reader sees the last
complete checkpoint or the one before, never a half-written file. What `wbsrun resume` does
with it: cli/resume.py; docs/operations.md "Checkpoint and resume".
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import pickle
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from wbsrun.cluster.delta import DeltaTaker
from wbsrun.core.ledger import plain
from wbsrun.dsl.bundle import locate_bundle
from wbsrun.dsl.plan import Plan
from wbsrun.errors import RunError

if TYPE_CHECKING:
    from wbsrun.cli.session import WiredRun

__all__ = [
    "DEFAULT_INTERVAL",
    "FORMAT",
    "MANIFEST",
    "MAX_KEPT",
    "CheckpointSettings",
    "CheckpointWriter",
    "Saved",
    "bundle_hash",
    "load_checkpoint",
    "write_atomic",
]

# 2: the users' health inputs in the progress sums, the health trend in the time series.
FORMAT: Final = 2
MANIFEST: Final = "manifest.json"
DEFAULT_INTERVAL: Final = 5.0
# Kept (closed) ledger entries carried in a checkpoint, at most: the sampling caps bound them
# already except `sampled` mode's every-Nth entries; this bounds the file whatever the mode.
MAX_KEPT: Final = 1_000


@dataclass(frozen=True, slots=True)
class CheckpointSettings:
    directory: Path
    interval: float = DEFAULT_INTERVAL


@dataclass(slots=True)
class Saved:
    """A checkpoint as loaded: its manifest and its state."""

    directory: Path
    manifest: dict[str, Any]
    state: dict[str, Any]

    @property
    def complete(self) -> bool:
        return bool(self.state["complete"])


def bundle_hash(source: Path, plan: Plan) -> str:
    """SHA-256 over the scenario file, its config.yaml and its data files (names and bytes):
    what decides the plan a checkpoint's positions refer to."""
    bundle = locate_bundle(source)
    files = [bundle.script, *([bundle.config] if bundle.config else [])]
    files.extend(spec.file for spec in plan.data.values())
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        try:
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            raise RunError(f"cannot read {path} for the checkpoint's source hash: {exc}") from exc
        digest.update(b"\0")
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """`data` in `path`, whole or not at all: a temporary file, fsynced, renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointWriter:
    """A run service: a checkpoint every `interval` seconds until the run ends (then
    `write(complete=…)` once more from the caller). `carried`: what earlier lives left."""

    def __init__(
        self,
        wired: WiredRun,
        settings: CheckpointSettings,
        source: Path,
        source_hash: str,
        *,
        carried: Saved | None = None,
    ) -> None:
        self.wired = wired
        self.settings = settings
        self.source = source.resolve()
        self.source_hash = source_hash
        self.history: list[dict[str, Any]] = list(carried.state["history"]) if carried else []
        self.sequence = int(carried.manifest["sequence"]) if carried else 0
        self.written = 0
        self.failed: str | None = None
        # Kept ledger entries as exported at an earlier checkpoint (closed: they no longer
        # change), so that each is exported once, not every interval.
        self._exported: dict[object, str] = {}
        try:
            settings.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(f"--checkpoint {settings.directory}: cannot be made: {exc}") from None

    async def serve(self) -> None:
        finished = self.wired.runner.ctx.finished
        while not finished.is_set():
            try:
                async with asyncio.timeout(self.settings.interval):
                    await finished.wait()
                return
            except TimeoutError:
                pass
            data = self.state_bytes(complete=False)
            # The state is taken on the loop (consistent); the disk work is not.
            await asyncio.to_thread(self._store, data, False)

    def write(self, *, complete: bool) -> None:
        """The last checkpoint, after the run: `complete` when nothing is left to run."""
        self._store(self.state_bytes(complete=complete), complete)

    def state_bytes(self, *, complete: bool) -> bytes:
        return pickle.dumps(self.state(complete=complete), protocol=pickle.HIGHEST_PROTOCOL)

    def state(self, *, complete: bool) -> dict[str, Any]:
        """Everything a second life needs, as it stands now (see the module's docstring)."""
        wired = self.wired
        runner = wired.runner
        ctx = runner.ctx
        delta = DeltaTaker().take(ctx.stats)
        # Passes in flight now are lost to this checkpoint: counted as interrupted here, run
        # again by a second life. Users: see Scheduler.users_carried.
        lost = len(ctx.inflight)
        counters = delta.counters
        if lost:
            counters["tasks_interrupted"] = counters.get("tasks_interrupted", 0) + lost
        carried = sum(s.users_carried() for s in runner.schedulers)
        if carried:
            counters["users_finished"] = counters.get("users_finished", 0) + carried
        return {
            "format": FORMAT,
            "complete": complete,
            "elapsed": runner.elapsed,
            "started_wall": runner.started_wall,
            "written_at": time.time(),
            "options": replace(runner.options, resume=None),
            "stats": delta,
            "lost_tasks": lost,
            "progress": wired.aggregator.settled(),
            "progress_done": ctx.progress_done,
            "series": wired.series,
            "positions": runner.position(),
            "feeds": {name: feed.position() for name, feed in ctx.feeds.items()},
            "persist": ctx.persist.state(),
            "global_vars": _picklable(ctx.global_vars),
            "log_counts": dict(wired.log.counts),
            "ledger": {"summary": ctx.workbook.summary(), "kept": self._kept_entries()},
            "history": self.history,
        }

    def _store(self, data: bytes, complete: bool) -> None:
        directory = self.settings.directory
        self.sequence += 1
        name = f"state-{self.sequence:06d}.pkl"
        try:
            write_atomic(directory / name, data)
            manifest = {
                "format": FORMAT,
                "bundle": str(self.source),
                "source_hash": self.source_hash,
                "options": _options_json(self.wired.runner.options),
                "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "elapsed_s": round(self.wired.runner.elapsed, 3),
                "complete": complete,
                "interval_s": self.settings.interval,
                "sequence": self.sequence,
                "state": name,
                "state_sha256": hashlib.sha256(data).hexdigest(),
                "lives": len(self.history) + 1,
            }
            text = json.dumps(manifest, indent=2) + "\n"
            write_atomic(directory / MANIFEST, text.encode())
            _sync_dir(directory)
            for old in directory.glob("state-*.pkl"):
                if old.name != name:
                    old.unlink(missing_ok=True)
            self.written += 1
        except OSError as exc:
            # A full disk must not end the run: said once, the next checkpoint tries again.
            if self.failed is None:
                self.wired.log.log("error", f"checkpoint in {directory} failed: {exc}")
            self.failed = str(exc)

    def _kept_entries(self) -> list[str]:
        """The closed ledger entries the sampling mode keeps in memory, as JSON lines (at
        most MAX_KEPT); live ones are in flight and not kept."""
        book = self.wired.runner.ctx.workbook
        before: dict[object, str] = self._exported
        now: dict[object, str] = {}
        for entry in book.entries:
            line = before.get(entry)
            if line is None:
                phase = book.get(entry, "timeline.phase")
                if not (isinstance(phase, str) and phase.startswith("closing")):
                    continue
                line = json.dumps(plain(book.export(entry)), ensure_ascii=False, default=str)
            now[entry] = line
            if len(now) >= MAX_KEPT:
                break
        self._exported = now
        return list(now.values())


def _picklable(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        try:
            pickle.dumps(value)
        except Exception:  # noqa: S112 - a value that cannot be saved starts afresh
            continue
        out[key] = value
    return out


def _options_json(options: Any) -> dict[str, Any]:
    fields = asdict(replace(options, resume=None, segment=None))
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in fields.items()}


# -- loading ------------------------------------------------------------------------------------

_SAFE_BUILTINS: Final = frozenset(
    {"set", "frozenset", "dict", "list", "tuple", "int", "float", "str", "bytes", "bool"}
)
_SAFE: Final = {
    "builtins": _SAFE_BUILTINS,
    "array": frozenset({"array", "_array_reconstructor"}),
    "collections": frozenset({"deque", "OrderedDict"}),
    "copyreg": frozenset({"_reconstructor"}),
    "pathlib": frozenset({"Path", "PosixPath", "PurePosixPath"}),
}


class _Unpickler(pickle.Unpickler):
    """Only wbsrun's own classes and plain containers: a checkpoint is data, not code."""

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("wbsrun.") or name in _SAFE.get(module, ()):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a checkpoint")


def load_checkpoint(directory: Path) -> Saved:
    """The checkpoint in `directory`; RunError saying what is wrong when it cannot be used."""
    where = directory / MANIFEST
    try:
        manifest = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{directory}: no checkpoint here (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise RunError(f"{where}: cannot read the checkpoint manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else None
        raise RunError(f"{where}: checkpoint format {got!r}; expected {FORMAT}")
    state_file = directory / str(manifest.get("state"))
    try:
        data = state_file.read_bytes()
    except OSError as exc:
        raise RunError(f"{state_file}: cannot read the checkpoint state: {exc}") from None
    if hashlib.sha256(data).hexdigest() != manifest.get("state_sha256"):
        raise RunError(f"{state_file}: does not match its manifest's SHA-256 (damaged)")
    try:
        state = _Unpickler(io.BytesIO(data)).load()
    except Exception as exc:
        raise RunError(f"{state_file}: cannot load the checkpoint state: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RunError(f"{state_file}: not a wbsrun checkpoint state of format {FORMAT}")
    return Saved(directory, manifest, state)
