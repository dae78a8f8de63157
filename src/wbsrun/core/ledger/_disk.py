"""The on-disk ledger of a `full` run: every closed entry, streamed to the run's output
directory instead of kept in memory.

Layout (`<out>/ledger/`): `meta.json` (format, the workbook spec the entries are read against,
and once the run ends the entry count) and `entries.bin`, a sequence of frames, each
`<count:u32><size:u32>`, `count` u32 end offsets, then `size` bytes of one zstd frame holding
`count` msgpack records back to back. A record is `[kind, user_id, task_id, scenario, phase,
state, vars]`: `kind` "h" is the sparse model's packed state, "f" the plain model's flat fields
and trace, "x" an export (an entry whose state could not be packed exactly).

The event loop only encodes (msgpack, ~2 µs an entry) into a batch; full batches go through a
bounded queue to a writer thread, which compresses (zstd releases the GIL) and writes. A full
queue blocks the loop: every entry is written, none dropped. The choice against SQLite and the
figures: docs/progress-model.md, "The on-disk ledger"; bench/ledger_disk.py.
"""

from __future__ import annotations

import json
import queue
import struct
import threading
from array import array
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final, final

import msgspec
import zstandard

from wbsrun.core.ledger._state import plain

__all__ = ["ENTRIES", "FORMAT", "META", "DiskWriter", "read_frames", "read_meta", "saved_form"]

FORMAT: Final = "wbsrun-ledger/1"
META: Final = "meta.json"
ENTRIES: Final = "entries.bin"
_HEAD: Final = struct.Struct("<II")
# Records per frame: ~64 KiB of msgpack for the reference scenario, compressed in one call.
BATCH: Final = 256
# Frames waiting for the writer: ~16 MiB of msgpack at most before the loop waits.
DEPTH: Final = 64
_LEVEL: Final = 1


_LEAVES: Final = frozenset({str, int, float, bool, type(None), bytes})


def saved_form(saved: Mapping[str, Any]) -> dict[str, Any]:
    """An entry's saved variables as the on-disk ledger keeps them: a value that offers
    `ledger_form()` (an HTTP result: status, latency, body bytes) in that form, which costs
    nothing to build, where its mapping view would decode the body, parse its JSON and map
    its headers (~10 µs a result, several a pass); anything else as `export()` shows it."""
    out: dict[str, Any] = {}
    for key, value in saved.items():
        if key.startswith("__"):
            continue
        if type(value) in _LEAVES:
            out[key] = value
            continue
        form = getattr(value, "ledger_form", None)
        out[key] = form() if callable(form) else plain(value)
    return out


def _text(value: Any) -> Any:
    # Saved variables may hold objects (an HTTP result): written as their text.
    return str(value)


@final
class DiskWriter:
    """Appends encoded records in batches; a thread compresses and writes them."""

    def __init__(self, directory: Path, spec: Mapping[str, Any]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._spec = dict(spec)
        self._write_meta(complete=False)
        self._file = (directory / ENTRIES).open("wb")
        self._encoder = msgspec.msgpack.Encoder(enc_hook=_text)
        self._buf = bytearray()
        self._ends = array("I")
        self._queue: queue.Queue[tuple[bytes, array[int]] | None] = queue.Queue(maxsize=DEPTH)
        self.written = 0
        self.error: str | None = None
        self._closed = False
        self._compressor = zstandard.ZstdCompressor(level=_LEVEL, write_checksum=True)
        self._worker = threading.Thread(target=self._drain, name="wbsrun-ledger", daemon=True)
        self._worker.start()

    def add(self, record: list[Any]) -> None:
        buf = self._buf
        start = len(buf)
        try:
            self._encoder.encode_into(record, buf, -1)
        except (TypeError, OverflowError, msgspec.EncodeError):
            del buf[start:]
            record = [*record[:5], "x", None]  # kept by its ids and phase at least
            self._encoder.encode_into(record, buf, -1)
        ends = self._ends
        ends.append(len(buf))
        self.written += 1
        if len(ends) >= BATCH:
            self._send()

    def _send(self) -> None:
        if self._ends:
            self._queue.put((bytes(self._buf), self._ends))
            self._buf = bytearray()
            self._ends = array("I")

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._frame(item[0], item[1])

    def _frame(self, raw: bytes, ends: array[int]) -> None:
        if self.error is not None:
            return  # keep taking batches: the loop must never wait on a dead writer
        try:
            data = self._compressor.compress(raw)
            self._file.write(_HEAD.pack(len(ends), len(data)))
            self._file.write(ends.tobytes())
            self._file.write(data)
        except OSError as exc:
            self.error = f"{self.directory / ENTRIES}: {exc}"

    def close(self) -> None:
        """Writes what is left, waits for the writer, completes the metadata (once)."""
        if self._closed:
            return
        self._closed = True
        self._send()
        self._queue.put(None)
        self._worker.join()
        try:
            self._file.close()
            self._write_meta(complete=True)
        except OSError as exc:
            self.error = self.error or str(exc)

    def _write_meta(self, *, complete: bool) -> None:
        meta = {
            "format": FORMAT,
            "complete": complete,
            "entries": self.written if complete else None,
            "workbook": plain(self._spec),
        }
        (self.directory / META).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")


def read_meta(directory: Path) -> dict[str, Any]:
    """`meta.json` of an on-disk ledger; ValueError when it is not one."""
    try:
        meta = json.loads((directory / META).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{directory}: no ledger here ({META} is missing)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{directory / META}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{directory / META}: not a {FORMAT} ledger")
    return meta


def read_frames(directory: Path) -> Iterator[tuple[bytes, array[int]]]:
    """Each frame's decompressed records and their end offsets, in the order written. A frame
    cut short (the run was killed mid-write) ends the iteration."""
    decompressor = zstandard.ZstdDecompressor()
    with (directory / ENTRIES).open("rb") as f:
        while True:
            head = f.read(_HEAD.size)
            if len(head) < _HEAD.size:
                return
            count, size = _HEAD.unpack(head)
            ends = array("I")
            raw_ends = f.read(4 * count)
            data = f.read(size)
            if len(raw_ends) < 4 * count or len(data) < size:
                return
            ends.frombytes(raw_ends)
            yield decompressor.decompress(data), ends
