"""The parts of a checkpoint (docs/operations.md, "Checkpoint and resume"): feeds continue
after the last row taken, save-as counters carry over, the progress sums leave the open
passes out, and the files are written atomically (a SIGKILL mid-write leaves the old file or
the new one, whole) and loaded only when whole and made of plain data."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wbsrun.cli.checkpoint import FORMAT, MANIFEST, load_checkpoint, write_atomic
from wbsrun.core.feeds import Feed
from wbsrun.core.persist import PersistBuffer
from wbsrun.dsl.plan import DataMode, DataSpec
from wbsrun.errors import RunError
from wbsrun.progress.aggregate import Aggregator
from wbsrun.progress.baseline import ScenarioBaseline

_OPEN: list[Feed] = []


@pytest.fixture(autouse=True)
def _close_feeds() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _feed(path: Path, mode: DataMode, seed: int) -> Feed:
    feed = Feed(DataSpec("rows", path, path.name, "csv", mode), random.Random(seed))
    _OPEN.append(feed)
    feed.open()
    return feed


def _ids(feed: Feed, n: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(n):
        row = feed.pick({})
        out.append(row["id"] if isinstance(row, dict) else row.code)
    return out


@pytest.mark.parametrize("mode", ["sequential", "unique", "circular", "shuffled", "random"])
def test_a_restored_feed_deals_the_rows_the_first_one_would_have_dealt_next(
    tmp_path: Path, mode: DataMode
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id\n" + "".join(f"{i}\n" for i in range(13)))
    first = _feed(path, mode, seed=5)
    _ids(first, 9)  # into the second shuffle cycle, past the middle of the file
    at = pickle.loads(pickle.dumps(first.position()))  # as a checkpoint carries it
    expected = _ids(first, 12)
    second = _feed(path, mode, seed=99)  # another life: another seed
    second.restore(at)
    assert _ids(second, 12) == expected


def test_persist_counters_and_files_written_carry_into_a_second_life(tmp_path: Path) -> None:
    first = PersistBuffer()
    first.put(tmp_path / "a.json", {"n": 1})
    first.put(tmp_path / "b.json", [1, 2, 3])
    first.flush()
    state = pickle.loads(pickle.dumps(first.state()))
    assert state["files"] == sorted([str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    second = PersistBuffer()
    second.restore(state)
    second.put(tmp_path / "a.json", {"n": 2})  # rewritten: still one file
    second.flush()
    assert second.files_written == 2
    assert second.writes == 3
    assert second.bytes_written > first.bytes_written


def test_settled_progress_leaves_the_open_passes_out_and_loads_back() -> None:
    base = ScenarioBaseline("s", 2, 4, 2, None, 0.0, milestones=(("m", 0.5),))
    agg = Aggregator([base])
    agg.record("u1-t0", "u1", "s", 1.0, frozenset({"m"}), True)
    agg.record("u1-t1", "u1", "s", 0.5, frozenset({"m"}), False)  # open: lost at a crash
    agg.record("u2-t0", "u2", "s", 0.25, frozenset(), False)  # open, the user's first
    settled = pickle.loads(pickle.dumps(agg.settled()))
    sums = settled.scenarios["s"]
    assert (sums.total, sums.started, sums.closed, sums.users) == (1.0, 1, 1, 2)
    assert sums.counts == {"m": 1}
    # (scenario, Σ progress, started, closed, Σ progress closed, closed with an error)
    assert settled.users == {"u1": ("s", 1.0, 1, 1, 1.0, 0), "u2": ("s", 0.0, 0, 0, 0.0, 0)}
    again = Aggregator([base])
    again.load_settled(settled)
    # The second life runs the open passes again, under the same ids: counted once.
    again.record("u1-t1", "u1", "s", 1.0, frozenset({"m"}), True)
    again.record("u2-t0", "u2", "s", 1.0, frozenset({"m"}), True)
    again.record("u2-t1", "u2", "s", 1.0, frozenset({"m"}), True)
    after = again.sums()["s"]
    assert (after.total, after.started, after.closed, after.users) == (4.0, 4, 4, 2)
    assert after.users_done == 2
    assert after.counts == {"m": 4}


_WRITER = """
import sys
from pathlib import Path
from wbsrun.cli.checkpoint import write_atomic
path, size = Path(sys.argv[1]), int(sys.argv[2])
print("ready", flush=True)
i = 0
while True:
    write_atomic(path, bytes([97 + i % 2]) * size)
    i += 1
"""


def test_a_kill_during_a_write_leaves_a_whole_file(tmp_path: Path) -> None:
    path, size = tmp_path / "state.pkl", 8 << 20
    for delay in (0.15, 0.3, 0.45):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(size)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        time.sleep(delay)  # mid-way through one of the writes
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        data = path.read_bytes()
        assert len(data) == size
        assert data in (b"a" * size, b"b" * size)


def _checkpoint_dir(tmp_path: Path, state: bytes) -> Path:
    (tmp_path / "state-000001.pkl").write_bytes(state)
    manifest = {
        "format": FORMAT,
        "state": "state-000001.pkl",
        "state_sha256": hashlib.sha256(state).hexdigest(),
    }
    write_atomic(tmp_path / MANIFEST, json.dumps(manifest).encode())
    return tmp_path


def test_a_damaged_state_file_is_refused(tmp_path: Path) -> None:
    directory = _checkpoint_dir(tmp_path, pickle.dumps({"format": FORMAT}))
    (directory / "state-000001.pkl").write_bytes(b"\x80\x05 truncated")
    with pytest.raises(RunError, match=r"does not match its manifest's SHA-256 \(damaged\)"):
        load_checkpoint(directory)


class _Code:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.getpid, ())


def test_a_state_that_would_run_code_is_refused(tmp_path: Path) -> None:
    directory = _checkpoint_dir(tmp_path, pickle.dumps({"format": FORMAT, "x": _Code()}))
    with pytest.raises(RunError, match=r"posix\.getpid is not allowed in a checkpoint"):
        load_checkpoint(directory)
