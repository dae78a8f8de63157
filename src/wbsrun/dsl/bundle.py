"""Locating a scenario bundle (a "res_dir") and resolving relative paths strictly inside it."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Final

import yaml

from wbsrun.dsl.source import PathKey, SourceDoc, iter_paths
from wbsrun.errors import BundleError, Diagnostic

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

__all__ = [
    "BUNDLE_FILES",
    "SCRIPT_NAME",
    "Bundle",
    "PathEscapeError",
    "check_bundle_paths",
    "locate_bundle",
    "resolve_in_bundle",
]

SCRIPT_NAME: Final = "script.yaml"
CONFIG_NAME: Final = "config.yaml"
# Files of the bundle layout that are never the scenario, whatever they contain.
_RESERVED: Final = frozenset({"resource.yaml", "resource.yml", "config.yaml", "config.yml"})
_SCENARIO_KEYS: Final = frozenset({"workflows", "load"})
_MAX_SNIFF_BYTES: Final = 10 * 1024 * 1024
_TEMPLATE: Final = re.compile(r"\{\{.*?\}\}", re.DOTALL)
# File paths a scenario names (pattern, "*" = any key or index) and whether the file must
# already exist; persist.filename is checked against its persist.dir separately.
BUNDLE_FILES: Final[tuple[tuple[tuple[str, ...], bool], ...]] = (
    (("resources", "*", "config", "manifest"), True),
    (("resources", "*", "config", "file"), True),
    (("components", "*", "entry"), False),
    (("components", "*", "wit"), False),
    (("components", "*", "tls", "ca-file"), True),
    (("components", "*", "tls", "cert-file"), True),
    (("components", "*", "tls", "key-file"), True),
    (("actions", "*", "save-as", "persist", "dir"), False),
)


class PathEscapeError(BundleError):
    """A path in a scenario is absolute or resolves outside the bundle directory."""


@dataclass(frozen=True)
class Bundle:
    """Where a scenario lives: its directory, its script, and the optional config.yaml."""

    res_dir: Path
    script: Path
    config: Path | None


def _config_of(res_dir: Path, script: Path) -> Path | None:
    config = res_dir / CONFIG_NAME
    if config.is_file() and config.resolve() != script.resolve():
        return config
    return None


def _top_level_keys(path: Path) -> frozenset[str] | None:
    """Keys of the first document's top-level mapping; None when the file cannot be read as YAML."""
    try:
        if path.stat().st_size > _MAX_SNIFF_BYTES:
            return None
        text = path.read_text(encoding="utf-8-sig")
        return _keys_from_events(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def _keys_from_events(text: str) -> frozenset[str]:
    # Events are parsed iteratively, so odd files cannot exhaust the stack while sniffing.
    keys: set[str] = set()
    depth = 0
    expect_key = True
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            if depth == 0 and not isinstance(event, yaml.MappingStartEvent):
                return frozenset()
            if depth == 1:
                expect_key = not expect_key
            depth += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            if depth == 0:
                break
        elif isinstance(event, yaml.ScalarEvent | yaml.AliasEvent) and depth == 1:
            if expect_key and isinstance(event, yaml.ScalarEvent):
                keys.add(event.value)
            expect_key = not expect_key
    return frozenset(keys)


def _scenario_candidates(directory: Path) -> tuple[list[Path], list[Path]]:
    """(files that may be the scenario, YAML files ruled out); unreadable YAML stays a candidate."""
    candidates: list[Path] = []
    ruled_out: list[Path] = []
    entries = sorted(p for p in directory.iterdir() if p.suffix in {".yaml", ".yml"})
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_file():
            continue
        if entry.name in _RESERVED:
            ruled_out.append(entry)
            continue
        keys = _top_level_keys(entry)
        # A file that does not parse may still be the scenario: loading it reports why.
        if keys is None or keys & _SCENARIO_KEYS:
            candidates.append(entry)
        else:
            ruled_out.append(entry)
    return candidates, ruled_out


def locate_bundle(path: Path) -> Bundle:
    """The bundle for a scenario file or a bundle directory; raises BundleError when unusable."""
    if not path.exists():
        raise BundleError(f"bundle path not found: {path}")
    if not path.is_dir():
        return Bundle(res_dir=path.parent, script=path, config=_config_of(path.parent, path))
    script = path / SCRIPT_NAME
    if script.is_file():
        return Bundle(res_dir=path, script=script, config=_config_of(path, script))
    try:
        candidates, ruled_out = _scenario_candidates(path)
    except OSError as exc:
        raise BundleError(f"cannot list bundle directory {path}: {exc.strerror}") from None
    if len(candidates) == 1:
        return Bundle(res_dir=path, script=candidates[0], config=_config_of(path, candidates[0]))
    if candidates:
        names = ", ".join(c.name for c in candidates)
        raise BundleError(
            f"ambiguous bundle {path}: several files look like scenarios: {names}; "
            f"pass one of them, or name the scenario {SCRIPT_NAME}"
        )
    looked = f" (not scenarios: {', '.join(p.name for p in ruled_out)})" if ruled_out else ""
    raise BundleError(
        f"no scenario found in {path}: expected {SCRIPT_NAME} or one YAML file with a "
        f"top-level 'workflows' or 'load' key{looked}"
    )


def _is_absolute(relative: str) -> bool:
    return (
        PurePosixPath(relative).is_absolute()
        or bool(PureWindowsPath(relative).anchor)
        or relative.startswith("~")
    )


def _leaves_lexically(relative: str) -> bool:
    """True when ``..`` climbs above the start, even if later parts come back in."""
    depth = 0
    for part in relative.replace("\\", "/").split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in {"", "."}:
            depth += 1
    return False


def resolve_in_bundle(res_dir: Path, relative: str) -> Path:
    """Absolute path of ``relative`` inside ``res_dir``; PathEscapeError if it would leave it."""
    if "\0" in relative:
        raise PathEscapeError(f"path {relative!r} contains a NUL character")
    if _is_absolute(relative):
        raise PathEscapeError(
            f"absolute path '{relative}' is not allowed: paths are relative to the bundle directory"
        )
    if _leaves_lexically(relative):
        raise PathEscapeError(f"path '{relative}' leaves the bundle directory through '..'")
    root = Path(os.path.realpath(res_dir))
    target = Path(os.path.realpath(root / relative))
    if not target.is_relative_to(root):
        raise PathEscapeError(
            f"path '{relative}' resolves outside the bundle directory "
            f"(through a symbolic link) to {target}"
        )
    return target


def _file_problems(
    doc: SourceDoc,
    res_dir: Path,
    value: object,
    path: PathKey,
    *,
    must_exist: bool,
    base: str = ".",
) -> list[Diagnostic]:
    if not isinstance(value, str):
        return []
    # Only the static text can be checked now; rendered names are checked again at run time.
    static = posixpath.join(base, _TEMPLATE.sub("_", value))
    try:
        target = resolve_in_bundle(res_dir, static)
    except PathEscapeError as exc:
        message = str(exc).replace(f"'{static}'", f"'{value}'")
        hint = "keep files inside the bundle directory"
        return [doc.diag(path, "path-outside-bundle", message, value=value, hint=hint)]
    if must_exist and "{{" not in value and not target.is_file():
        message = f"file '{value}' not found in the bundle directory {res_dir}"
        return [doc.diag(path, "file-not-found", message, value=value)]
    return []


def check_bundle_paths(
    doc: SourceDoc, res_dir: Path, skip: Callable[[PathKey], bool] = lambda _: False
) -> list[Diagnostic]:
    """Every file path in ``doc`` leaving ``res_dir``, and every required file that is missing
    (but in the places `skip` says an earlier check has reported)."""
    found: list[Diagnostic] = []
    for pattern, must_exist in BUNDLE_FILES:
        for path, value in iter_paths(doc.data, pattern):
            if not skip(path):
                found += _file_problems(doc, res_dir, value, path, must_exist=must_exist)
    for path, persist in iter_paths(doc.data, ("actions", "*", "save-as", "persist")):
        if not isinstance(persist, Mapping) or skip(path):
            continue
        directory = persist.get("dir", ".")
        dir_path = (*path, "dir")
        if isinstance(directory, str) and not _file_problems(
            doc, res_dir, directory, dir_path, must_exist=False
        ):
            filename = persist.get("filename")
            found += _file_problems(
                doc, res_dir, filename, (*path, "filename"), must_exist=False, base=directory
            )
    return found
