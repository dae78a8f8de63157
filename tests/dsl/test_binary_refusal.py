"""A compiled plan that is stale (a source changed, another wbsrun or format wrote it) or
corrupt (truncated, any bit flipped) is refused with one line, never a traceback; `wbsrun
run` exits 2 on it."""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from property_kit import examples
from wbsrun.dsl.binary import CompiledPlanError, read_plan, write_plan
from wbsrun.dsl.bundle import locate_bundle
from wbsrun.dsl.loader import load_plan
from wbsrun.protocols.registry import provides

_SHARED = Path(__file__).resolve().parents[3] / "shared" / "reference"
# The canonical bundle from ../shared (CI clones the repo beside it), else its copy in the
# package (the same scenario).
REFERENCE = (
    _SHARED
    if (_SHARED / "http_scenario.yaml").is_file()
    else Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "examples" / "http_tri_phase"
)
PROVIDES = provides()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable copy of the reference bundle."""
    where = tmp_path_factory.mktemp("ref") / "bundle"
    shutil.copytree(REFERENCE, where)
    for path in [where, *where.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return where


@pytest.fixture(scope="module")
def blob(bundle: Path) -> bytes:
    return write_plan(load_plan(bundle, PROVIDES), locate_bundle(bundle), PROVIDES)


def _refusal(data: bytes) -> str:
    with pytest.raises(CompiledPlanError) as caught:
        read_plan(data, "plan.wbsc", PROVIDES)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("plan.wbsc: ")
    return text


def _rewritten(data: bytes, version: int | None = None, **changes: Any) -> bytes:
    """`data` with its body changed and the checksum made right again: a well-formed file
    that another wbsrun could have written."""
    _, fmt, size = struct.unpack_from(">4sHI", data)
    body = msgspec.msgpack.decode(data[10 : 10 + size])
    body.update(changes)
    payload = msgspec.msgpack.encode(body)
    head = struct.pack(">4sHI", b"WBSC", fmt if version is None else version, len(payload))
    return head + payload + hashlib.sha256(head + payload).digest()


def test_a_fresh_file_is_read(blob: bytes) -> None:
    assert read_plan(blob, "plan.wbsc", PROVIDES).plan.name == "http_tri_phase_demo"


def test_a_file_written_by_another_wbsrun_version_is_refused(blob: bytes) -> None:
    text = _refusal(_rewritten(blob, wbsrun="0.0.9"))
    assert "compiled by wbsrun 0.0.9, this is wbsrun" in text


def test_a_file_of_another_format_version_is_refused(blob: bytes) -> None:
    assert "compiled plan format 99, this wbsrun reads format 1" in _refusal(
        _rewritten(blob, version=99)
    )


def test_a_changed_source_makes_the_file_stale(bundle: Path, blob: bytes) -> None:
    payload = bundle / "payloads" / "asset.json"
    before = payload.read_bytes()
    try:
        payload.write_bytes(before + b" ")
        assert f"stale compiled plan: {payload} changed since it was compiled" in _refusal(blob)
        payload.unlink()
        assert f"{payload} is gone" in _refusal(blob)
    finally:
        payload.write_bytes(before)
    read_plan(blob, "plan.wbsc", PROVIDES)


def test_other_installed_components_make_the_file_stale(blob: bytes) -> None:
    more = {**PROVIDES, "extra": frozenset({"go"})}
    with pytest.raises(CompiledPlanError, match="the installed components changed"):
        read_plan(blob, "plan.wbsc", more)


@settings(max_examples=examples(60))
@given(cut=st.integers(min_value=0, max_value=2**31))
def test_a_truncated_file_is_refused(blob: bytes, cut: int) -> None:
    kept = cut % len(blob)
    text = _refusal(blob[:kept])
    assert "corrupt compiled plan" in text if kept >= 4 else "not a compiled" in text


@settings(max_examples=examples(100))
@given(position=st.integers(min_value=0), bit=st.integers(0, 7))
def test_a_file_with_any_bit_flipped_is_refused(blob: bytes, position: int, bit: int) -> None:
    data = bytearray(blob)
    data[position % len(data)] ^= 1 << bit
    text = _refusal(bytes(data))
    assert any(w in text for w in ("corrupt", "not a compiled", "format"))


def test_run_refuses_a_corrupt_file_in_one_line_exit_2(tmp_path: Path, blob: bytes) -> None:
    plan = tmp_path / "plan.wbsc"
    plan.write_bytes(blob[:-5])
    done = subprocess.run(
        [sys.executable, "-m", "wbsrun", "run", str(plan), "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: {plan}: corrupt compiled plan (truncated or altered: its checksum does not "
        "match); compile the bundle again (wbsrun compile)"
    )
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    "changes",
    [
        {"sources": 7},
        {"types": {"a": 1}},
        {"workflows": [1, 2]},
        {"plan": b"\x93\x0b\x00\x01"},
        {"scenarios": [["x"]]},
        {"bundle": None},
    ],
)
def test_a_whole_file_of_the_wrong_shape_is_refused(blob: bytes, changes: dict[str, Any]) -> None:
    assert "unreadable compiled plan" in _refusal(_rewritten(blob, **changes))
