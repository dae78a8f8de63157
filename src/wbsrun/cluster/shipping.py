"""A bundle shipped to workers on other machines (`--cluster`): its directory's files, bounded.

A scenario's paths never leave its bundle directory (dsl/bundle.py refuses them), so the
directory's regular files are all a worker needs to load the plan. The coordinator reads them
once (`pack_bundle`, at most `MAX_BUNDLE_BYTES` in `MAX_BUNDLE_FILES` files, `.git` and
`__pycache__` left out); each worker writes them into a directory of its own
(`unpack_bundle`) and loads the plan from there. See docs/distributed.md "Ray".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from wbsrun.errors import RunError

__all__ = ["MAX_BUNDLE_BYTES", "MAX_BUNDLE_FILES", "BundleFiles", "pack_bundle", "unpack_bundle"]

MAX_BUNDLE_BYTES = 64 * 1024 * 1024
MAX_BUNDLE_FILES = 10_000
SKIPPED_DIRS = frozenset({".git", "__pycache__"})


@dataclass(frozen=True, slots=True)
class BundleFiles:
    """The bundle directory's files (POSIX paths relative to it → content), and the path the
    run was given (the directory itself, or a scenario file in it), relative to it."""

    files: dict[str, bytes]
    entry: str

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.files.values())


def pack_bundle(
    root: Path,
    entry: Path,
    *,
    max_bytes: int = MAX_BUNDLE_BYTES,
    max_files: int = MAX_BUNDLE_FILES,
) -> BundleFiles:
    """Read the bundle directory `root` (`entry`: the path given to `wbsrun run`, in it);
    a `RunError` when it is larger than the bounds, or unreadable."""
    root = root.resolve()
    rel = entry.resolve().relative_to(root) if entry.resolve() != root else Path(".")
    files: dict[str, bytes] = {}
    size = 0
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(names):
            path = Path(folder) / name
            if not path.is_file():
                continue
            if len(files) >= max_files:
                raise RunError(
                    f"--cluster: the bundle directory {root} has more than "
                    f"{max_files} files to ship to the workers; move other files out"
                )
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise RunError(f"--cluster: cannot read {path} to ship it: {exc}") from None
            size += len(data)
            if size > max_bytes:
                raise RunError(
                    f"--cluster: the bundle directory {root} holds more than "
                    f"{_size(max_bytes)} to ship to the workers "
                    f"(at {path.relative_to(root)}); move other files out"
                )
            files[path.relative_to(root).as_posix()] = data
    return BundleFiles(files, rel.as_posix())


def unpack_bundle(bundle: BundleFiles, dest: Path) -> Path:
    """Write the files under `dest` (never outside it); the path to load the plan from."""
    dest = dest.resolve()
    for name, data in bundle.files.items():
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise RunError(f"--cluster: refusing to write '{name}' outside the bundle")
        path = dest.joinpath(*rel.parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return dest.joinpath(*PurePosixPath(bundle.entry).parts)


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n} bytes"
