"""Mutation testing of one module against the tests that cover it (mutmut 3, pure sources).

    make mutate MODULE=core/deadlines.py
    .venv/bin/python bench/mutate.py core/deadlines.py     # the same, without make
    .venv/bin/python bench/mutate.py --list                # the modules and their tests

The run happens in a scratch copy, build/mutate/<module>/ (the sources without any compiled
.so, the tests, pyproject.toml plus a [tool.mutmut] section naming the module and its tests),
so the work tree stays as it is and mutmut's `mutants/` tree sees the plain Python. It prints
the score (killed / mutants) and every survivor with its diff; a survivor whose id is not
listed in docs/testing.md (## Mutation testing, with why it is equivalent) fails the run.
Run it under `nice` on a shared machine: it keeps `--jobs` (default 2) pytest workers busy.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Module (under src/wbsrun) -> the test files that cover it; only these run for its mutants.
_AGGREGATE = "tests/progress/test_aggregate.py::"
MODULES: dict[str, tuple[str, ...]] = {
    "progress/eta.py": (
        "tests/progress/test_eta.py",
        *(
            _AGGREGATE + name
            for name in (
                "test_eta_counts_down_steadily_at_a_constant_pace",
                "test_eta_of_a_ramp_sees_the_users_still_to_spawn",
                "test_eta_of_users_taking_turns_on_few_items_follows_the_throughput",
                "test_eta_of_a_stalled_scenario_is_unknown_not_huge",
                "test_eta_never_goes_below_what_the_plan_still_needs",
            )
        ),
    ),
    "progress/baseline.py": (
        "tests/progress/test_baseline.py",
        _AGGREGATE + "test_baseline_follows_the_schedulers_rules_for_passes",
        _AGGREGATE + "test_time_boxed_work_projects_the_planned_passes_from_the_profile_share",
        _AGGREGATE + "test_profile_user_time_equals_the_sum_over_user_windows",
    ),
    "core/deadlines.py": ("tests/core/test_deadlines.py",),
    "core/stats.py": (
        "tests/core/test_stats.py",
        "tests/core/test_round_to.py",
        "tests/core/test_histogram_accuracy.py",
        "tests/progress/test_request_figures.py",
    ),
    "resources/pool.py": (
        "tests/resources/test_pool.py",
        "tests/resources/test_pool_units.py",
        "tests/resources/test_pool_manager.py",
    ),
    "dsl/units.py": ("tests/dsl/test_units.py", "tests/dsl/test_schema.py"),
}


def _copy_tree(scratch: Path, module: str, tests: tuple[str, ...]) -> None:
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    ignore = shutil.ignore_patterns("*.so", "__pycache__", "*.pyc")
    shutil.copytree(ROOT / "src", scratch / "src", ignore=ignore)
    shutil.copytree(ROOT / "tests", scratch / "tests", ignore=ignore)
    compiled = sorted(str(p) for p in (scratch / "src").rglob("*.so"))
    if compiled:  # pragma: no cover - the ignore pattern drops them
        raise SystemExit(f"compiled modules in the scratch copy: {compiled}")
    config = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    selection = ", ".join(f'"{t}"' for t in tests)
    config += (
        "\n[tool.mutmut]\n"
        'source_paths = ["src"]\n'
        f'only_mutate = ["src/wbsrun/{module}"]\n'
        f"pytest_add_cli_args_test_selection = [{selection}]\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider"]\n'
        "use_git_change_detection = false\n"
    )
    (scratch / "pyproject.toml").write_text(config, encoding="utf-8")


def _mutmut(scratch: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["WBSRUN_BUILD"] = "pure"  # tests/conftest.py refuses a compiled wbsrun
    exe = Path(sys.executable).with_name("mutmut")
    return subprocess.run(
        [str(exe), *args], cwd=scratch, env=env, text=True, capture_output=True, check=False
    )


def _results(scratch: Path) -> dict[str, str]:
    out = _mutmut(scratch, "results", "--all", "true").stdout
    found = re.findall(r"^\s*(\S+__mutmut_\d+): (\w[\w ]*)$", out, flags=re.MULTILINE)
    return dict(found)


def _explained() -> set[str]:
    """Mutant ids docs/testing.md lists as equivalent (its ## Mutation testing section)."""
    doc = ROOT / "docs" / "testing.md"
    text = doc.read_text(encoding="utf-8") if doc.exists() else ""
    section = text.split("## Mutation testing", 1)[-1].split("\n## ", 1)[0]
    return set(re.findall(r"`([^`\s]+__mutmut_\d+)`", section))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", nargs="?", help="a module under src/wbsrun, e.g. core/rate.py")
    parser.add_argument("--list", action="store_true", help="the known modules and their tests")
    parser.add_argument("--jobs", type=int, default=2, help="mutmut's worker processes")
    args = parser.parse_args()
    if args.list or not args.module:
        for name, covering in MODULES.items():
            print(f"{name}: {' '.join(covering)}")
        return 0 if args.list else 2
    module = args.module.removeprefix("src/wbsrun/")
    tests = MODULES.get(module)
    if tests is None:
        print(f"no test table entry for {module}; known: {', '.join(MODULES)}", file=sys.stderr)
        return 2
    scratch = ROOT / "build" / "mutate" / module.replace("/", "-").removesuffix(".py")
    _copy_tree(scratch, module, tests)
    run = _mutmut(scratch, "run", "--max-children", str(args.jobs))
    (scratch / "run.log").write_text(run.stdout + run.stderr, encoding="utf-8")
    status = _results(scratch)
    if run.returncode or not status:
        print(f"mutmut failed ({run.returncode}); see {scratch / 'run.log'}", file=sys.stderr)
        return 1
    killed = sum(1 for s in status.values() if s in ("killed", "timeout"))
    survivors = sorted(k for k, s in status.items() if s not in ("killed", "timeout"))
    explained = _explained()
    score = 100 * killed / len(status)
    print(f"{module}: {killed} of {len(status)} mutants killed ({score:.1f} %)")
    for name in survivors:
        tag = "equivalent (docs/testing.md)" if name in explained else "NOT EXPLAINED"
        print(f"\n{name}: {status[name]}, {tag}")
        print(_mutmut(scratch, "show", name).stdout.rstrip())
    unexplained = [n for n in survivors if n not in explained]
    if unexplained:
        print(f"\n{len(unexplained)} survivor(s) not listed in docs/testing.md", file=sys.stderr)
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
