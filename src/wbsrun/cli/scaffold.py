"""`wbsrun init DIR`: a small working bundle to start from, with the JSON Schema for editors."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["SCHEMA_NAME", "scaffold"]

# Beside the scenario, so the YAML language server's modeline works offline and matches the
# wbsrun that wrote it.
SCHEMA_NAME = "wbsrun.schema.json"

SCRIPT = """\
# yaml-language-server: $schema=./{schema}
# A first wbsrun scenario: run it with `wbsrun run {dir}` (docs/dsl.md has every key).
name: {name}
actions:
  home:
    component: http            # built in: no `components:` entry needed
    call: get
    with: {{url: "{url}"}}
    checks:
      - {{name: answered, status-in: [200, 204, 301, 302, 304]}}
workflows:
  browse:
    steps:                     # the short form: these actions in order
      - ref: home
load:
  scenarios:
    - name: visitors
      workflow: browse
      user-count: 5
      iterations: 10
      think-time: "uniform(100ms, 300ms)"
thresholds:
  - http.failed_rate < 0.01
  - checks.rate > 0.99
"""


def scaffold(directory: Path, url: str) -> list[Path]:
    """Write the bundle into `directory` (made if missing; refused when it holds anything, so
    nothing of the user's is overwritten). The files written."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise FileExistsError(f"{directory} exists and is not an empty directory")
    directory.mkdir(parents=True, exist_ok=True)
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in directory.resolve().name)
    script = directory / "script.yaml"
    script.write_text(
        SCRIPT.format(schema=SCHEMA_NAME, dir=directory, name=name or "scenario", url=url),
        encoding="utf-8",
    )
    schema = directory / SCHEMA_NAME
    source = files("wbsrun.dsl").joinpath("schema", "v1.json")
    schema.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    return [script, schema]
