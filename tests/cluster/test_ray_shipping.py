"""The parts of the Ray transport that need no Ray: the bundle shipped to the actors (every
file, bounded, never written outside the actor's directory) and the coordinator's control
messages handed to the worker in the order sent, whatever order Ray runs the calls in."""

from __future__ import annotations

from pathlib import Path

import pytest

from wbsrun.cluster.raylink import ActorLink
from wbsrun.cluster.shipping import BundleFiles, pack_bundle, unpack_bundle
from wbsrun.errors import RunError


def _bundle(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    (root / "script.yaml").write_text("name: x\n", encoding="utf-8")
    (root / "data" / "users.csv").write_bytes(b"id\n1\n2\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref\n", encoding="utf-8")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "x.pyc").write_bytes(b"\0")
    return root


def test_the_bundle_directorys_files_reach_the_actor_as_they_are(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "b")
    packed = pack_bundle(root, root / "script.yaml")
    assert sorted(packed.files) == ["data/users.csv", "script.yaml"]  # no .git, __pycache__
    assert packed.entry == "script.yaml"
    assert packed.size == len("name: x\n") + len(b"id\n1\n2\n")
    where = unpack_bundle(packed, tmp_path / "actor")
    assert where == (tmp_path / "actor" / "script.yaml").resolve()
    assert (tmp_path / "actor" / "data" / "users.csv").read_bytes() == b"id\n1\n2\n"
    assert pack_bundle(root, root).entry == "."  # the directory given, not a file


def test_a_bundle_over_the_bounds_is_refused_with_the_limit(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "b")
    with pytest.raises(RunError, match=r"holds more than 10 bytes to ship .*data/users\.csv"):
        pack_bundle(root, root, max_bytes=10)
    with pytest.raises(RunError, match=r"has more than 1 files to ship"):
        pack_bundle(root, root, max_files=1)


def test_a_shipped_name_never_writes_outside_the_actors_directory(tmp_path: Path) -> None:
    for name in ("../escape.yaml", "/etc/escape.yaml"):
        with pytest.raises(RunError, match="outside the bundle"):
            unpack_bundle(BundleFiles({name: b"x"}, "."), tmp_path / "actor")
    assert not (tmp_path / "escape.yaml").exists()


def test_control_messages_reach_the_worker_in_the_order_sent() -> None:
    link = ActorLink()
    seen: list[object] = []
    link.listen(None, seen.append, lambda: None)  # type: ignore[arg-type]
    link.deliver(1, "drain")  # ran before the message sent first: held back
    assert seen == []
    link.deliver(0, "go")
    link.deliver(2, "abort")
    assert seen == ["go", "drain", "abort"]
