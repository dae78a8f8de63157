"""The `data:` section (docs/dsl.md "Data feeders"): sources checked and built into DataSpecs,
and which sources a workflow's templates read."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from wbsrun.dsl._failed import NONE, Failed
from wbsrun.dsl.bundle import PathEscapeError, resolve_in_bundle
from wbsrun.dsl.plan import (
    DATA_MODES,
    DataSpec,
    ExitSpec,
    Handler,
    HandlerCall,
    HandlerRelease,
    HandlerUpdate,
    WorkflowSpec,
)
from wbsrun.dsl.rows import FORMATS, RowError, RowFile, format_of
from wbsrun.dsl.source import SourceDoc
from wbsrun.errors import Diagnostic

__all__ = ["build_data", "sources_read"]

_Names = Iterable[tuple[str, ...]]


def build_data(
    doc: SourceDoc, res_dir: Path, failed: Failed = NONE
) -> tuple[dict[str, DataSpec], list[Diagnostic]]:
    """The sources of a schema-checked document, and what is wrong with their files."""
    section = doc.data.get("data") if isinstance(doc.data, Mapping) else None
    if not isinstance(section, Mapping) or ("data",) in failed:
        return {}, []
    specs: dict[str, DataSpec] = {}
    found: list[Diagnostic] = []
    for name, body in section.items():
        if ("data", name) in failed or not isinstance(body, Mapping):
            continue
        spec = _spec(doc, res_dir, str(name), body, found)
        if spec is not None:
            specs[spec.name] = spec
    return specs, found


def _spec(
    doc: SourceDoc, res_dir: Path, name: str, body: Mapping[str, Any], found: list[Diagnostic]
) -> DataSpec | None:
    written = str(body.get("file", ""))
    where = ("data", name, "file")
    try:
        file = resolve_in_bundle(res_dir, written)
    except PathEscapeError as exc:
        hint = "keep data files inside the bundle directory"
        found.append(doc.diag(where, "path-outside-bundle", str(exc), value=written, hint=hint))
        return None
    fmt = body.get("format") or format_of(written)
    if fmt not in FORMATS:
        message = f"cannot tell the format of data file '{written}' from its extension"
        hint = "name it .csv, .json, .jsonl or .ndjson, or set format: csv | json | jsonl"
        found.append(doc.diag(where, "unknown-format", message, value=written, hint=hint))
        return None
    if not file.is_file():
        message = f"data file '{written}' not found in the bundle directory {res_dir}"
        found.append(doc.diag(where, "file-not-found", message, value=written))
        return None
    mode = str(body.get("mode", "circular"))
    if mode not in DATA_MODES:  # the schema refuses it first; kept for partial documents
        return None
    spec = DataSpec(
        name=name,
        file=file,
        display=written,
        format=cast(Any, fmt),
        mode=mode,
        on_exhausted="error" if body.get("on-exhausted") == "error" else "stop",
        delimiter=str(body.get("delimiter", ",")),
        quote=str(body.get("quote", '"')),
    )
    rows = RowFile(file, written, spec.format, spec.delimiter, spec.quote)
    try:
        fields = rows.peek()
    except RowError as exc:
        message = f"data source '{name}': {exc}"
        found.append(doc.diag(where, "bad-data-file", message, value=written))
        return None
    return replace(spec, fields=fields)


# -- what a workflow reads ---------------------------------------------------------------------
def _handler_names(handlers: Iterable[Handler]) -> Iterator[tuple[str, ...]]:
    for h in handlers:
        if isinstance(h, HandlerCall):
            yield from h.action.args.names
        elif isinstance(h, HandlerUpdate):
            for _, value in h.assignments:
                yield from value.names
        elif isinstance(h, HandlerRelease):
            yield from h.handles.names


def _workflow_names(wf: WorkflowSpec, exits: Iterable[ExitSpec]) -> Iterator[tuple[str, ...]]:
    yield from _handler_names((*wf.on_error, *wf.on_timeout))
    for node in wf.nodes.values():
        if node.action is not None:
            yield from node.action.args.names
            save = node.action.save_as
            if save is not None and save.persist is not None:
                yield from save.persist.filename.names
        for t in node.transitions:
            if t.condition is not None:
                yield from t.condition.names
        yield from _handler_names((*node.on_error, *node.on_timeout))
    for exit_ in exits:
        if exit_.classify_field is not None:
            yield from exit_.classify_field.names
        yield from _handler_names(exit_.actions)


def sources_read(
    wf: WorkflowSpec, exits: Iterable[ExitSpec], declared: Iterable[str]
) -> tuple[str, ...]:
    """The declared sources a workflow's templates (and the exits') read, in declared order;
    all of them when one reads `data` as a whole or through a computed key."""
    read: set[str] = set()
    for path in _workflow_names(wf, exits):
        if path[0] != "data":
            continue
        if len(path) == 1:
            return tuple(declared)
        read.add(path[1])
    return tuple(name for name in declared if name in read)
