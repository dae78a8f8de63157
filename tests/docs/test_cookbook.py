"""docs/cookbook.md: every wbsrun form on the page loads with the real loader without an error
or a warning, and runs briefly (a 1 s window, 2 users) against a real target with the demo API,
making requests that all succeed. The page's `http://127.0.0.1:8080` is replaced by the test
target's address (the only change made to what the page shows)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from doc_kit import DOCS, Block, blocks, wbsrun
from wbsrun.dsl.loader import load_plan
from wbsrun.protocols.registry import provides
from wbsrun.target import TargetProcess

COOKBOOK = DOCS / "cookbook.md"
DOC_BASE = "http://127.0.0.1:8080"
PAGE = blocks(COOKBOOK)
RECIPES = [b for b in PAGE if b.kind == "recipe"]
FILES = [b for b in PAGE if b.kind == "file"]


@pytest.fixture(scope="module")
def shared_target() -> Iterator[TargetProcess]:
    with TargetProcess.start() as proc:
        yield proc


def bundle(tmp_path: Path, recipe: Block, base: str) -> Path:
    """The recipe as a bundle directory: its script.yaml and the page's data files."""
    where = tmp_path / recipe.name
    for block in (*FILES, recipe):
        path = where / ("script.yaml" if block is recipe else block.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.text.replace(DOC_BASE, base), encoding="utf-8")
    return where


def test_the_cookbook_has_its_eleven_recipes_and_every_yaml_block_is_one() -> None:
    assert [r.name for r in RECIPES] == [
        "fixed-users",
        "stages",
        "arrival-rate",
        "think-time",
        "pacing",
        "checks",
        "thresholds",
        "login-once",
        "csv-data",
        "headers-auth",
        "weighted",
    ]
    assert all(b.kind == "recipe" for b in PAGE if b.lang == "yaml")
    # Each recipe sits beside its k6 and Locust forms.
    assert sum(b.lang == "js" for b in PAGE) >= len(RECIPES) - 1
    assert sum(b.lang == "python" for b in PAGE) >= len(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_each_recipe_validates_cleanly_and_runs_against_the_demo_target(
    recipe: Block, tmp_path: Path, shared_target: TargetProcess
) -> None:
    where = bundle(tmp_path, recipe, shared_target.url())
    plan = load_plan(where, provides())  # raises ScenarioError on any error
    assert not plan.warnings, [w.format() for w in plan.warnings]
    assert plan.name == recipe.name
    before = shared_target.stats()
    out = tmp_path / "result.json"
    argv = ["run", str(where), "--duration", "1s", "--users", "2", "--quiet", "--json", str(out)]
    proc = wbsrun(argv, tmp_path, timeout=60)
    assert proc.returncode == 0, f"cookbook.md:{recipe.line}\n{proc.stderr}"
    result = json.loads(out.read_text(encoding="utf-8"))
    sent = result["requests"]["total"]
    assert sent > 0
    assert result["requests"]["failed"] == 0, result["errors"]
    after = shared_target.stats()
    assert after["received"] - before["received"] == sent
    routes = {k: v - before["by_route"].get(k, 0) for k, v in after["by_route"].items()}
    routes = {k: v for k, v in routes.items() if v}
    assert routes.get("other", 0) == 0, routes
    # What a recipe's prose claims beyond "it ran".
    if recipe.name == "login-once":  # one login per user (2), then only /api/me
        assert routes["POST /api/login"] == 2
        assert routes["GET /api/me"] > 2
    if recipe.name == "weighted":  # both scenarios ran, side by side
        assert set(routes) == {"GET /asset", "GET /health"}
    for name, check in result.get("checks", {}).items():
        assert check["fails"] == 0, (name, check)
