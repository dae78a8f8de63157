"""save-as persist, bounded and honest, through real runs: a file name from the run must be a
single safe name (absolute, `..`, separators, empty → the action fails with `persist-error`,
nothing is created), a value over max-body is not written and fails its action, and the
counters say what reached the disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scenario_kit import Doc, act, document, edge, end, graph, log, on, run
from wbsrun.core import codes
from wbsrun.core.persist import PersistBuffer, bad_file_name
from wbsrun.core.runner import RunOptions
from wbsrun.core.stats import RunStats
from wbsrun.target import TargetProcess

GOOD = ["ok-1.json", "ok-2.json", "ok-1.json"]
HOSTILE = ["/abs/dir/NAME.json", "../escape.json", "nested/dir/x.json", "", "..", "a\\b.json"]


def persisting(filename: str, message: str = "pass {{env.iteration}}", **scenario: Any) -> Doc:
    persist = {"type": "file", "dir": "./out", "filename": filename}
    actions = {"mark": log("info", message, save={"var": "m", "persist": persist})}
    return document(actions, graph(act("set", "mark", edge("done")), end()), **scenario)


def on_disk(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_file_names_that_are_not_one_safe_name_fail_the_action_and_create_nothing(
    tmp_path: Path, target: TargetProcess
) -> None:
    names = [GOOD[0], *HOSTILE, *GOOD[1:]]
    doc = persisting("{{global.names[env.iteration]}}", users=1, iterations=len(names))
    doc["globals"] = {"names": names}
    ran = run(tmp_path, doc, on(target))

    bad = len(HOSTILE)
    mark = ran.result["actions"]["mark"]
    assert (mark["count"], mark["ok"], mark["failed"]) == (len(names), len(GOOD), bad)
    assert ran.result["errors"] == {codes.PERSIST_ERROR: bad}
    assert ran.result["tasks"]["failed"] == bad
    persist = ran.result["persist"]
    assert persist["failed"] == len(persist["errors"]) == bad
    text = "\n".join(persist["errors"])
    for why in ("absolute path", "path separator", "is empty", "is not a file name"):
        assert why in text
    # Only the two good names exist, in persist.dir itself; nothing nested, nothing outside.
    assert on_disk(ran.bundle) == [
        "out",
        "out/ok-1.json",
        "out/ok-2.json",
        "resource.yaml",
        "script.yaml",
    ]
    assert not (tmp_path / "escape.json").exists()
    assert persist["files_written"] == 2
    assert persist["writes"] >= 2
    sizes = sum(p.stat().st_size for p in (ran.bundle / "out").iterdir())
    assert persist["bytes_written"] >= sizes > 0


def test_files_written_counts_distinct_files_writes_count_every_write(
    tmp_path: Path, target: TargetProcess
) -> None:
    doc = persisting("{{workbook.user_id}}.json", users=2, iterations=4, think_time="150ms")
    options = RunOptions(persist_flush_interval=0.05)
    ran = run(tmp_path, doc, on(target), options)

    files = sorted(p.name for p in (ran.bundle / "out").iterdir())
    assert files == ["u0001.json", "u0002.json"]
    persist = ran.result["persist"]
    assert persist["files_written"] == len(files)
    assert persist["writes"] > len(files)  # rewritten between flushes: more writes than files
    assert persist["failed"] == 0
    assert persist["errors"] == []


def test_a_value_whose_file_would_exceed_max_body_is_not_written_and_fails_its_action(
    tmp_path: Path, target: TargetProcess
) -> None:
    doc = persisting("{{workbook.user_id}}.json", message="x" * 500, users=2)
    ran = run(tmp_path, doc, on(target), RunOptions(max_body=200))

    persist = ran.result["persist"]
    assert (persist["files_written"], persist["writes"], persist["bytes_written"]) == (0, 0, 0)
    assert persist["failed"] == 2
    assert all("over the max-body limit of 200 bytes" in e for e in persist["errors"])
    assert ran.result["errors"] == {codes.BODY_TOO_LARGE: 2}
    mark = ran.result["actions"]["mark"]
    assert (mark["ok"], mark["failed"]) == (0, 2)
    assert on_disk(ran.bundle / "out") == []  # no partial file either


def test_bad_file_name_accepts_one_name_and_refuses_the_rest() -> None:
    assert bad_file_name("u0001-asset.json") is None
    assert bad_file_name("..hidden") is None
    for name in ["", ".", "..", "/etc/passwd", "a/b", "a\\b", "nul\0", "x" * 256]:
        assert bad_file_name(name) is not None, name
    whole_body = "/" + "x" * 10_000_000  # a name rendered from a response body
    assert len(bad_file_name(whole_body) or "") < 200


def test_a_refused_write_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    buffer = PersistBuffer(limit=100)
    target = tmp_path / "f.json"
    buffer.put(target, {"v": "small"})
    buffer.flush()
    before = target.read_text(encoding="utf-8")
    buffer.put(target, {"v": "y" * 200})
    buffer.flush()
    assert target.read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]
    assert (buffer.files_written, buffer.writes, buffer.failed) == (1, 1, 1)
    assert buffer.bytes_written == len(before.encode())


def test_a_write_that_fails_at_flush_time_is_charged_to_the_action_that_saved_it(
    tmp_path: Path,
) -> None:
    stats = RunStats()
    mark = stats.action("mark")
    mark.count, mark.ok = 3, 3
    (tmp_path / "not-a-dir").write_text("", encoding="utf-8")
    buffer = PersistBuffer(stats=stats)
    buffer.put(tmp_path / "not-a-dir" / "f.json", {"v": 1}, "mark", True)
    buffer.put(tmp_path / "ok.json", {"v": 2}, "mark", True)
    buffer.flush()
    assert (buffer.failed, buffer.files_written, buffer.writes) == (1, 1, 1)
    assert "not-a-dir" in buffer.errors[0]
    assert stats.errors == {codes.PERSIST_ERROR: 1}
    assert (mark.count, mark.ok, mark.failed) == (3, 2, 1)
