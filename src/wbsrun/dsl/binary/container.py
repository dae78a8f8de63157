"""The compiled plan file (`.wbsc`): layout, writing, and reading with every refusal.

    magic "WBSC" | format (u16, big-endian) | body length (u32) | body | SHA-256 of all before

The body is one msgpack map (docs/binary-dsl.md): the wbsrun version, the record type
table, the bundle's paths, the sources' hashes, the installed components' digest, the plan
without its scenarios and workflows, and each scenario and workflow as bytes of its own, so
that a run of some scenarios decodes only those (and their workflows)."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import msgspec

from wbsrun.dsl.binary.codec import CodecError, Decoder, Encoder
from wbsrun.dsl.bundle import Bundle
from wbsrun.dsl.plan import Plan, WorkflowSpec
from wbsrun.dsl.select import check_selection, select_scenarios
from wbsrun.errors import BundleError

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "CompiledPlan",
    "CompiledPlanError",
    "file_digest",
    "provides_digest",
    "read_plan",
    "source_hashes",
    "write_plan",
]

MAGIC: Final = b"WBSC"
FORMAT_VERSION: Final = 1
_HEAD = struct.Struct(">4sHI")
_DIGEST = 32


class CompiledPlanError(BundleError):
    """A compiled plan that cannot be used: not one, corrupt, or stale. One line."""


@dataclass(frozen=True, slots=True)
class CompiledPlan:
    plan: Plan
    bundle: Bundle
    # SHA-256 of the file (hex): what a result's `source.hash` names.
    digest: str


def wbsrun_version() -> str:
    from wbsrun import __version__

    return __version__


def file_digest(path: Path) -> str | None:
    """SHA-256 of a file's bytes; "dir" for a directory; None when there is nothing there."""
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except IsADirectoryError:
        return "dir"
    except OSError:
        return None


def provides_digest(provides: Mapping[str, frozenset[str]]) -> str:
    """What the installed components provide decides what validates: part of the key."""
    text = "\n".join(f"{n}:{','.join(sorted(c))}" for n, c in sorted(provides.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def _dependencies(plan: Plan, bundle: Bundle, paths: Iterable[Path]) -> list[Path]:
    """Every file the plan was made from: the script, its config, the YAML files beside it
    (they decide which is the scenario), every path in the plan, and component entries and
    WIT files (whether they are present is in the plan)."""
    found = {bundle.script, *([bundle.config] if bundle.config else [])}
    found.update(p for p in bundle.res_dir.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))
    found.update(p for p in paths if p != bundle.res_dir)
    for spec in plan.components.values():
        found.update(bundle.res_dir / f for f in (spec.entry, spec.wit) if f)
    return sorted(found)


def source_hashes(paths: Iterable[Path]) -> list[list[str | None]]:
    return [[str(p), file_digest(p)] for p in paths]


def write_plan(plan: Plan, bundle: Bundle, provides: Mapping[str, frozenset[str]]) -> bytes:
    """The compiled file's bytes for a validated plan."""
    encoder = Encoder()
    enc = msgspec.msgpack.encode
    shared = replace(plan, scenarios=(), workflows=MappingProxyType({}))
    body: dict[str, Any] = {
        "plan": enc(encoder.encode(shared)),
        "scenarios": [[s.name, s.workflow, enc(encoder.encode(s))] for s in plan.scenarios],
        "workflows": {n: enc(encoder.encode(wf)) for n, wf in plan.workflows.items()},
    }
    sources = _dependencies(plan, bundle, encoder.paths)
    body.update(
        wbsrun=wbsrun_version(),
        types=[[name, list(fields)] for name, fields in encoder.types],
        bundle=[str(bundle.res_dir), str(bundle.script), _opt(bundle.config)],
        sources=source_hashes(sources),
        provides=provides_digest(provides),
    )
    payload = enc(body)
    head = _HEAD.pack(MAGIC, FORMAT_VERSION, len(payload)) + payload
    return head + hashlib.sha256(head).digest()


def _opt(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _body(data: bytes, where: str) -> dict[str, Any]:
    if data[:4] != MAGIC:
        raise CompiledPlanError(f"{where}: not a compiled wbsrun plan (no WBSC header)")
    if len(data) < _HEAD.size + _DIGEST:
        raise CompiledPlanError(f"{where}: corrupt compiled plan (truncated to {len(data)} bytes)")
    _, version, size = _HEAD.unpack_from(data)
    if version != FORMAT_VERSION:
        raise CompiledPlanError(
            f"{where}: compiled plan format {version}, this wbsrun reads format "
            f"{FORMAT_VERSION}; compile the bundle again (wbsrun compile)"
        )
    end = _HEAD.size + size
    if len(data) != end + _DIGEST or hashlib.sha256(data[:end]).digest() != data[end:]:
        raise CompiledPlanError(
            f"{where}: corrupt compiled plan (truncated or altered: its checksum does not "
            "match); compile the bundle again (wbsrun compile)"
        )
    try:
        body = msgspec.msgpack.decode(data[_HEAD.size : end])
    except msgspec.DecodeError as exc:
        raise CompiledPlanError(f"{where}: corrupt compiled plan ({exc})") from None
    if not isinstance(body, dict):
        raise CompiledPlanError(f"{where}: corrupt compiled plan (its body is not a map)")
    return body


def check_fresh(
    body: Mapping[str, Any], where: str, provides: Mapping[str, frozenset[str]] | None
) -> None:
    """Refuse a file another wbsrun wrote, or whose sources or components changed since."""
    made_by = body.get("wbsrun")
    if made_by != wbsrun_version():
        raise CompiledPlanError(
            f"{where}: compiled by wbsrun {made_by}, this is wbsrun {wbsrun_version()}; "
            "compile the bundle again (wbsrun compile)"
        )
    for path, digest in body["sources"]:
        if file_digest(Path(path)) != digest:
            change = "is gone" if digest is not None else "appeared"
            if digest is not None and Path(path).exists():
                change = "changed"
            raise CompiledPlanError(
                f"{where}: stale compiled plan: {path} {change} since it was compiled; "
                "compile the bundle again (wbsrun compile)"
            )
    if provides is not None and body.get("provides") != provides_digest(provides):
        raise CompiledPlanError(
            f"{where}: stale compiled plan: the installed components changed since it was "
            "compiled; compile the bundle again (wbsrun compile)"
        )


# What a body of the wrong shape raises while it is read (its checksum only proves that it
# is whole, not that a wbsrun wrote it).
_MALFORMED = (
    CodecError,
    KeyError,
    TypeError,
    ValueError,
    IndexError,
    AttributeError,
    RecursionError,
    msgspec.DecodeError,
)


def read_plan(
    data: bytes,
    where: str,
    provides: Mapping[str, frozenset[str]] | None,
    scenarios: Sequence[str] = (),
) -> CompiledPlan:
    """The plan in a compiled file (only the `scenarios` named, when some are); raises
    CompiledPlanError, one line, for a file that is not one, corrupt, or stale."""
    body = _body(data, where)
    try:
        check_fresh(body, where, provides)
        return _decode(body, data, scenarios)
    except _MALFORMED as exc:  # a well-formed file no wbsrun wrote: never a traceback
        raise CompiledPlanError(f"{where}: unreadable compiled plan ({exc})") from None


def _decode(body: Mapping[str, Any], data: bytes, scenarios: Sequence[str]) -> CompiledPlan:
    decoder = Decoder(body["types"])
    dec = msgspec.msgpack.decode
    shared = decoder.decode(dec(body["plan"]))
    if not isinstance(shared, Plan):
        raise CodecError("the plan section holds no plan")
    entries = body["scenarios"]
    wanted = set(check_selection([e[0] for e in entries], scenarios)) if scenarios else None
    picked = [e for e in entries if wanted is None or e[0] in wanted]
    used = {e[1] for e in picked}
    workflows: dict[str, WorkflowSpec] = {
        name: decoder.decode(dec(blob)) for name, blob in body["workflows"].items() if name in used
    }
    plan = replace(
        shared,
        scenarios=tuple(decoder.decode(dec(e[2])) for e in picked),
        workflows=MappingProxyType(workflows),
    )
    if wanted is not None:
        plan = select_scenarios(plan, scenarios)
    res_dir, script, config = body["bundle"]
    bundle = Bundle(Path(res_dir), Path(script), None if config is None else Path(config))
    return CompiledPlan(plan, bundle, hashlib.sha256(data).hexdigest())
