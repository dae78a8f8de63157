"""A large data file is streamed, never loaded: a child process reads every row of a 200 MB
file, in file order and through the random-access index, and its peak RSS grows by a few MB
(docs/operations.md "Data feeders: memory")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SIZE = 200 * 1024 * 1024
ROW_BYTES = 2048

CHILD = textwrap.dedent(
    """
    import json, random, resource, sys
    from pathlib import Path
    from wbsrun.core.feeds import Feed
    from wbsrun.dsl.plan import DataSpec

    path, fmt, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    spec = DataSpec("big", path, path.name, fmt, mode)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    feed = Feed(spec, random.Random(7))
    feed.open()
    rows, checksum = 0, 0
    while True:
        row = feed.pick({})
        if not isinstance(row, dict):
            assert row.code == "data-exhausted", row.message
            break
        rows += 1
        checksum += int(row["id"])
        if mode == "shuffled" and rows == feed.count:
            break
    feed.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": rows, "checksum": checksum, "grew_kb": peak - base}))
    """
)


def _big_file(where: Path, fmt: str) -> tuple[Path, int]:
    path = where / f"big.{fmt}"
    pad = "x" * ROW_BYTES
    count = SIZE // ROW_BYTES
    with path.open("w", encoding="utf-8") as out:
        if fmt == "csv":
            out.write("id,pad\n")
        if fmt == "json":
            out.write("[\n")
        for start in range(0, count, 4096):
            if fmt == "csv":
                chunk = [f"{i},{pad}\n" for i in range(start, min(start + 4096, count))]
            else:
                sep = "," if fmt == "json" else ""
                chunk = [
                    f'{sep if i else ""}{{"id": "{i}", "pad": "{pad}"}}\n'
                    for i in range(start, min(start + 4096, count))
                ]
            out.write("".join(chunk))
        if fmt == "json":
            out.write("]\n")
    return path, count


@pytest.mark.parametrize(
    ("fmt", "mode"), [("csv", "unique"), ("jsonl", "shuffled"), ("json", "sequential")]
)
def test_a_200_mb_file_streams_with_bounded_memory(tmp_path: Path, fmt: str, mode: str) -> None:
    path, count = _big_file(tmp_path, fmt)
    assert path.stat().st_size >= SIZE
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), fmt, mode],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["rows"] == count
    assert figures["checksum"] == count * (count - 1) // 2  # every row exactly once
    # The file is 200 MB; the reader holds a buffer and a record, the index 16 bytes a row
    # (~1.6 MB for these 102,400 rows).
    assert figures["grew_kb"] < 24 * 1024, figures
