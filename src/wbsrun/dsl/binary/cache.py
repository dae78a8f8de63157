"""The plan cache: a compiled plan per bundle, keyed by the content hash of its YAML.

Where: `WBSRUN_CACHE_DIR`, else `$XDG_CACHE_HOME/wbsrun`, else `~/.cache/wbsrun`; the
plans in `plans/KEY.wbsc`. The key hashes the format, the wbsrun version, the installed
components, the bundle path given, and the name and bytes of every YAML file at the top of
the bundle (what locating and parsing the scenario read). An entry holds the hashes of
every other file the plan was made from (data, manifests, payloads…), checked on every hit
exactly as a compiled file's are. Bounded: after a write the oldest entries go until the
plans take at most `WBSRUN_CACHE_MAX_BYTES` (64 MiB by default). The cache is never an
error: an entry that cannot be read, or is stale, is made again; one that cannot be written
is skipped."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from wbsrun.dsl.binary.container import (
    FORMAT_VERSION,
    CompiledPlanError,
    provides_digest,
    read_plan,
    wbsrun_version,
    write_plan,
)
from wbsrun.dsl.bundle import Bundle
from wbsrun.dsl.plan import Plan
from wbsrun.dsl.select import select_scenarios

__all__ = ["DEFAULT_MAX_BYTES", "cache_dir", "cache_key", "load_cached", "trim"]

DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024


def cache_dir() -> Path:
    explicit = os.environ.get("WBSRUN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "wbsrun"


def _max_bytes() -> int:
    try:
        return max(0, int(os.environ.get("WBSRUN_CACHE_MAX_BYTES", DEFAULT_MAX_BYTES)))
    except ValueError:
        return DEFAULT_MAX_BYTES


def cache_key(path: Path, provides: Mapping[str, frozenset[str]]) -> str | None:
    """The key of the bundle at `path`; None when its files cannot be read (the loader
    then says why)."""
    digest = hashlib.sha256()
    where = path.resolve()
    for part in (str(FORMAT_VERSION), wbsrun_version(), provides_digest(provides), str(where)):
        digest.update(part.encode() + b"\0")
    directory = where if where.is_dir() else where.parent
    try:
        names = sorted(p for p in os.listdir(directory) if p.endswith((".yaml", ".yml")))
        for name in names:
            digest.update(name.encode() + b"\0")
            digest.update((directory / name).read_bytes() + b"\0")
    except OSError:
        return None
    return digest.hexdigest()


def load_cached(
    path: Path,
    provides: Mapping[str, frozenset[str]],
    scenarios: Sequence[str],
    compile_yaml: Callable[[Path], tuple[Plan, Bundle]],
) -> tuple[Plan, Bundle]:
    """The bundle's plan from the cache, else made by `compile_yaml(path)` (the loader,
    with every check) and stored for the next run; only the `scenarios` named, if any."""
    key = cache_key(path, provides)
    entry = None if key is None else cache_dir() / "plans" / f"{key}.wbsc"
    if entry is not None:
        try:
            hit = read_plan(entry.read_bytes(), str(entry), provides, scenarios)
            return hit.plan, hit.bundle
        except (OSError, CompiledPlanError):
            pass  # missing, stale or damaged: made again below
    plan, bundle = compile_yaml(path)
    if entry is not None:
        _store(entry, write_plan(plan, bundle, provides))
    return (select_scenarios(plan, scenarios) if scenarios else plan), bundle


def _store(entry: Path, data: bytes) -> None:
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, entry)
        trim(entry.parent, _max_bytes(), keep=entry)
    except OSError:
        return  # a read-only or full disk: the run goes on uncached


def trim(directory: Path, limit: int, keep: Path | None = None) -> None:
    """Remove the least recently written plans until those left take at most `limit`."""
    entries = []
    for p in directory.glob("*.wbsc"):
        try:
            st = p.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in entries)
    for _, size, p in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        if p == keep:
            continue
        try:
            p.unlink()
            total -= size
        except OSError:
            continue
