"""`wbsrun init DIR`: a bundle that validates and runs as written, with its schema beside it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from wbsrun.target import TargetProcess


def wbsrun(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wbsrun", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_scaffold_validates_runs_and_passes_its_thresholds(
    target: TargetProcess, tmp_path: Path
) -> None:
    bundle = tmp_path / "first"
    made = wbsrun("init", str(bundle), "--url", target.url() + "/health")
    assert made.returncode == 0, made.stderr
    script = (bundle / "script.yaml").read_text(encoding="utf-8")
    assert script.startswith("# yaml-language-server: $schema=./wbsrun.schema.json\n")
    schema = json.loads((bundle / "wbsrun.schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert wbsrun("validate", str(bundle)).stdout.endswith("valid (0 warning(s))\n")
    out = tmp_path / "r.json"
    ran = wbsrun("run", str(bundle), "--quiet", "--json", str(out))
    assert ran.returncode == 0, ran.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["requests"]["total"] == 50 == target.stats()["received"]
    assert [t["ok"] for t in result["thresholds"]] == [True, True]
    assert result["checks"]["answered"]["rate"] == 1.0


def test_init_never_writes_into_a_directory_that_holds_something(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep", encoding="utf-8")
    proc = wbsrun("init", str(tmp_path))
    assert proc.returncode == 2
    assert "exists and is not an empty directory" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_init_refuses_a_url_that_is_not_http(tmp_path: Path) -> None:
    proc = wbsrun("init", str(tmp_path / "b"), "--url", "ftp://example")
    assert proc.returncode == 2
    assert "expected an http:// or https:// URL" in proc.stderr
    assert not (tmp_path / "b").exists()
