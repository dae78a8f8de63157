"""docs/dsl.md is the complete reference of the language: every key the JSON Schema accepts is
named there, and its complete example bundles validate with the real loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from wbsrun.dsl.loader import load_plan
from wbsrun.errors import ScenarioError
from wbsrun.protocols.registry import provides


@pytest.mark.parametrize("value", ["0", "0s", "0ms"])
def test_a_zero_flush_interval_is_refused_at_validation_not_at_the_start_of_the_run(
    value: str, tmp_path: Path
) -> None:
    # The schema lets a duration be 0; the progress bus cannot flush every 0 s (dsl.md
    # "progress:" says the interval is above zero), so the loader refuses it, at its place.
    (tmp_path / "script.yaml").write_text(
        f"progress:\n  batching:\n    flush-interval: {value}\n"
        "actions:\n  a: {component: http, call: get, with: {url: 'http://127.0.0.1:9/'}}\n"
        "workflows:\n  w: {steps: [{ref: a}]}\n"
        "load:\n  scenarios: [{name: s, workflow: w}]\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError) as caught:
        load_plan(tmp_path, provides())
    found = [(d.code, d.line, d.path) for d in caught.value.diagnostics]
    assert found == [("bad-flush-interval", 3, "progress.batching.flush-interval")]
