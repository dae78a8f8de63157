"""The compiled plan (docs/binary-dsl.md): `wbsrun compile`, `.wbsc` files, the plan cache.

`load_any` is what the commands load a bundle or a compiled file with."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from wbsrun.dsl.binary.cache import cache_dir, load_cached
from wbsrun.dsl.binary.codec import RECORD_TYPES, CodecError
from wbsrun.dsl.binary.container import (
    FORMAT_VERSION,
    MAGIC,
    CompiledPlan,
    CompiledPlanError,
    read_plan,
    write_plan,
)
from wbsrun.dsl.bundle import Bundle, locate_bundle
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import Plan
from wbsrun.dsl.select import select_scenarios
from wbsrun.errors import BundleError

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "RECORD_TYPES",
    "SUFFIX",
    "CodecError",
    "CompiledPlan",
    "CompiledPlanError",
    "Loaded",
    "cache_dir",
    "compile_bundle",
    "is_compiled",
    "load_any",
    "load_compiled",
    "load_plan",
    "read_plan",
    "write_plan",
]

SUFFIX = ".wbsc"


@dataclass(frozen=True, slots=True)
class Loaded:
    """A plan and where it came from: its bundle, and the compiled file (None: YAML)."""

    plan: Plan
    bundle: Bundle
    compiled: Path | None = None
    digest: str | None = None


def is_compiled(path: Path) -> bool:
    """A compiled plan file: named `.wbsc`, or a file starting with the WBSC magic."""
    if path.suffix == SUFFIX:
        return True
    try:
        with path.open("rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _yaml_loader(
    provides: Mapping[str, frozenset[str]],
) -> Callable[[Path], tuple[Plan, Bundle]]:
    def load(path: Path) -> tuple[Plan, Bundle]:
        bundle = locate_bundle(path)
        return load_plan(path, provides), bundle

    return load


def compile_bundle(path: Path, provides: Mapping[str, frozenset[str]]) -> tuple[Plan, bytes]:
    """Load and validate a bundle; its plan and the compiled file's bytes. Raises
    ScenarioError / BundleError as validation does."""
    plan, bundle = _yaml_loader(provides)(path)
    return plan, write_plan(plan, bundle, provides)


def load_compiled(
    path: Path, provides: Mapping[str, frozenset[str]], scenarios: Sequence[str] = ()
) -> Loaded:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read compiled plan {path}: {exc.strerror}") from None
    found = read_plan(data, str(path), provides, scenarios)
    return Loaded(found.plan, found.bundle, path, found.digest)


def load_any(
    path: Path,
    provides: Mapping[str, frozenset[str]],
    scenarios: Sequence[str] = (),
    *,
    cache: bool = True,
) -> Loaded:
    """A compiled file, else the bundle at `path` (through the plan cache unless `cache`
    is false); only the `scenarios` named, when some are."""
    if path.is_file() and is_compiled(path):
        return load_compiled(path, provides, scenarios)
    if cache:
        plan, bundle = load_cached(path, provides, scenarios, _yaml_loader(provides))
        return Loaded(plan, bundle)
    plan, bundle = _yaml_loader(provides)(path)
    return Loaded(select_scenarios(plan, scenarios) if scenarios else plan, bundle)
