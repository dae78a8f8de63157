"""Opens the workbook a plan asks for: `progress.model` picks the storage, the interface is one.

The executor, the expression scope and the reports see a `Ledger`; only this function knows
which class stands behind it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wbsrun.core.ledger._base import Ledger, LedgerModel
from wbsrun.core.ledger._disk import META, read_frames, read_meta
from wbsrun.core.ledger._packing import Packer
from wbsrun.core.ledger._sparse_parts import thaw_hot
from wbsrun.core.ledger._sparse_store import SparseEntry
from wbsrun.core.ledger.dense import Entry, Workbook
from wbsrun.core.ledger.sparse import SparseWorkbook
from wbsrun.dsl.plan import SamplingSpec, WorkbookSpec

__all__ = ["open_workbook", "read_ledger"]


def open_workbook(
    spec: WorkbookSpec,
    model: LedgerModel = "sparse",
    sampling: SamplingSpec | None = None,
    out: Path | None = None,
) -> Ledger[Any]:
    """`sparse` (the default) or `dense` (the plain model: one dict of fields per entry);
    `sampling` says which closed entries stay whole (`full` writes them under `out`)."""
    if model == "dense":
        return Workbook(spec, sampling, out)
    if model == "sparse":
        return SparseWorkbook(spec, sampling, out)
    raise ValueError(f"unknown workbook model {model!r} (expected 'dense' or 'sparse')")


def _phase_matches(phase: Any, wanted: str) -> bool:
    # A phase or its process group: `closing` matches `closing.error`.
    return isinstance(phase, str) and (phase == wanted or phase.startswith(wanted + "."))


def read_ledger(
    directory: Path,
    *,
    user: str | None = None,
    task: str | None = None,
    phase: str | None = None,
) -> Iterator[dict[str, Any]]:
    """The entries of an on-disk ledger (`<out>/ledger`, or the run's `<out>` holding it), in
    the order they closed, as `Ledger.export` showed them, with `scenario` and the final
    `phase`; filtered by user id, task id and final phase (or its process group). ValueError
    when `directory` holds no ledger."""
    if not (directory / META).exists() and (directory / "ledger" / META).exists():
        directory = directory / "ledger"
    meta = read_meta(directory)
    wb = meta.get("workbook") or {}
    spec = WorkbookSpec(
        defaults=wb.get("defaults") or {},
        process_groups=wb.get("process_groups") or {},
        descriptions=wb.get("descriptions") or {},
        expose=wb.get("expose") or {},
    )
    sparse, dense, packer = SparseWorkbook(spec), Workbook(spec), Packer(refs=False)
    for raw, ends in read_frames(directory):
        view = memoryview(raw)
        start = 0
        for end in ends:
            record = packer.decode(view[start:end])
            start = end
            kind, user_id, task_id, scenario, final, state, saved = record
            if user is not None and user_id != user:
                continue
            if task is not None and task_id != task:
                continue
            if phase is not None and not _phase_matches(final, phase):
                continue
            yield _texts(
                {
                    "scenario": scenario,
                    "phase": final,
                    **_export(kind, (user_id, task_id, scenario), state, saved, sparse, dense),
                }
            )


def _texts(value: Any) -> Any:
    """Bytes (an HTTP result's body) as text: what a reader of the ledger wants to see."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {k: _texts(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_texts(v) for v in value]
    return value


def _export(
    kind: str,
    ids: tuple[str, str, str],
    state: Any,
    saved: Any,
    sparse: SparseWorkbook,
    dense: Workbook,
) -> dict[str, Any]:
    if kind == "h":
        entry = SparseEntry(sparse, *ids)
        entry._h = thaw_hot(state)
        entry.vars = dict(saved or {})
        return sparse.export(entry)
    if kind == "f":
        plain_entry = Entry(*ids)
        plain_entry.fields = dict(state[0])
        plain_entry.trace = [tuple(t) for t in state[1]]
        plain_entry.vars = dict(saved or {})
        return dense.export(plain_entry)
    if isinstance(state, dict):
        return state
    return {"user_id": ids[0], "task_id": ids[1]}
