"""The on-disk ledger (`progress.sampling: full`): segment files vs SQLite, on real entries.

    .venv/bin/python bench/ledger_disk.py                     # 50,000 entries, 3 reps
    .venv/bin/python bench/ledger_disk.py --entries 20000 --reps 5 --json out.json

The entries are the reference scenario's passes (bench/workbook.py `reference_pass`), closed,
each turned into the record `full` mode writes (`[kind, user, task, scenario, phase, packed
state, vars]`, msgpack, ~1 KiB). Both writers take the records the same way: encoded on the
calling thread (the event loop's, in a run) into batches of 256, handed through a bounded
queue to a writer thread. What differs is the writer:

  segments  wbsrun's `DiskWriter`: one zstd frame (level 1) per batch, appended to one file
  sqlite    a table (scenario, user_id, task_id, phase, body) in WAL mode, synchronous=OFF,
            `executemany` + commit per batch; body = the msgpack record
  sqlite-z  the same, each body zstd-compressed (level 1) on the writer thread

Figures per entry: the caller's CPU (thread_time of the adds: what the event loop pays), the
writer's CPU (process CPU minus the caller's), the wall time to write them all (`close()`
included), and the bytes on disk. The caller's share is the one that costs a run throughput;
the writer's runs beside it (zstd and SQLite release the GIL for their work, not all of it).
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import zstandard

from wbsrun.core.ledger import open_workbook
from wbsrun.core.ledger._disk import BATCH, DEPTH, DiskWriter
from wbsrun.core.ledger._packing import Packer
from wbsrun.core.ledger._sparse_parts import hot_state
from wbsrun.dsl.loader import load_plan
from wbsrun.protocols.registry import provides
from workbook import BUNDLE, KEEP_ALL, context_paths, reference_pass


def records(n: int) -> list[list[Any]]:
    plan = load_plan(BUNDLE, provides())
    book: Any = open_workbook(plan.workbook, "sparse", KEEP_ALL)
    context = context_paths(plan)
    rng = random.Random(1)
    packer = Packer(refs=False)
    out = []
    for i in range(n):
        uid = f"u{i % 1000:04d}"
        entry = book.open(uid, f"{uid}-t{i // 1000}", "http-bulk-refresh")
        reference_pass(book, entry, context, 1.7e9 + i * 0.001, rng)
        state = hot_state(entry._h, packer)
        out.append(["h", uid, entry.task_id, entry.scenario, "closing.success", state, {}])
    return out


class SqliteWriter:
    """`DiskWriter`'s protocol (add, close, written) over SQLite."""

    def __init__(self, directory: Path, compress: bool) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "ledger.sqlite"
        self._encoder = msgspec.msgpack.Encoder(enc_hook=str)
        self._rows: list[tuple[str, str, str, str, bytes]] = []
        self._queue: queue.Queue[list[tuple[str, str, str, str, bytes]] | None]
        self._queue = queue.Queue(maxsize=DEPTH)
        self._compress = compress
        self.written = 0
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def add(self, record: list[Any]) -> None:
        self._rows.append(
            (record[3], record[1], record[2], record[4], self._encoder.encode(record))
        )
        self.written += 1
        if len(self._rows) >= BATCH:
            self._queue.put(self._rows)
            self._rows = []

    def _drain(self) -> None:
        db = sqlite3.connect(self.path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute(
            "CREATE TABLE entries (seq INTEGER PRIMARY KEY, scenario TEXT, user_id TEXT, "
            "task_id TEXT, phase TEXT, body BLOB)"
        )
        zstd = zstandard.ZstdCompressor(level=1)
        while (rows := self._queue.get()) is not None:
            if self._compress:
                rows = [(*r[:4], zstd.compress(r[4])) for r in rows]
            db.executemany(
                "INSERT INTO entries (scenario, user_id, task_id, phase, body) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            db.commit()
        db.close()

    def close(self) -> None:
        if self._rows:
            self._queue.put(self._rows)
        self._queue.put(None)
        self._thread.join()


def measure(kind: str, recs: list[list[Any]]) -> dict[str, float]:
    directory = Path(tempfile.mkdtemp(prefix=f"wbsrun-ledger-{kind}-"))
    try:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        writer: Any = (
            DiskWriter(directory, {"defaults": {}})
            if kind == "segments"
            else SqliteWriter(directory, compress=kind == "sqlite-z")
        )
        caller = 0.0
        for rec in recs:
            t = time.thread_time()
            writer.add(rec)
            caller += time.thread_time() - t
        writer.close()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        size = sum(f.stat().st_size for f in directory.iterdir())
        n = len(recs)
        assert writer.written == n
        return {
            "caller_us": caller / n * 1e6,
            "writer_us": (cpu - caller) / n * 1e6,
            "wall_us": wall / n * 1e6,
            "bytes": size / n,
        }
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--entries", type=int, default=50_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    recs = records(args.entries)
    raw = statistics.mean(len(msgspec.msgpack.encode(r)) for r in recs[:1000])
    print(f"{args.entries} entries, ~{raw:.0f} B of msgpack each")
    kinds = ("segments", "sqlite", "sqlite-z")
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    for rep in range(args.reps):
        for kind in kinds if rep % 2 == 0 else kinds[::-1]:
            runs[kind].append(measure(kind, recs))
    summary = {}
    for kind, rows in runs.items():
        med = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        summary[kind] = med
        print(
            f"{kind:<9} caller {med['caller_us']:5.2f} µs  writer {med['writer_us']:5.2f} µs  "
            f"wall {med['wall_us']:5.2f} µs  disk {med['bytes']:6.0f} B   per entry"
        )
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
