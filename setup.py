"""Build hook: compiles the per-request hot path with mypyc, or leaves it pure Python.

Everything else lives in pyproject.toml. The modules below run for every request (executor,
workbook, progress bus and poller, leases, the fast HTTP transport); compiled they cost ~30%
less CPU a request (docs/benchmarks.md, "Compiled hot path"). The same sources run unchanged
as plain Python: set WBSRUN_PURE=1, or build where mypy or a C compiler is missing, and the
build says so and installs pure Python instead of failing.

Developers: `make` compiles in place (src/wbsrun/**/*.so) whenever one of these sources
changed; tests/conftest.py refuses to run against a compiled module older than its source.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

# Paths under src/wbsrun/. Kept out, on purpose (docs/architecture.md, "Compiled hot path"):
# core/scheduler.py (compiled with the executor, an exception a pass had handled resurfaced
# when the pass returned: tests/core/test_workflow_errors.py fails) and h1/_errors.py
# (exception classes with per-class `code` attributes, which compiled classes do not keep).
HOT_PATH = (
    "core/ledger/_disk.py",
    "core/ledger/_packing.py",
    "core/ledger/_retention.py",
    "core/ledger/_sparse_parts.py",
    "core/ledger/_sparse_store.py",
    "core/ledger/_state.py",
    "core/bus.py",
    "core/components.py",
    "core/deadlines.py",
    "core/executor.py",
    "core/guards.py",
    "core/handlers.py",
    "core/handles.py",
    "core/leases.py",
    "core/ledger/_base.py",
    "core/log.py",
    "core/outcome.py",
    "core/persist.py",
    "core/provider.py",
    "core/rate.py",
    "core/scope.py",
    "core/sinks.py",
    "core/ledger/sparse.py",
    "core/stats.py",
    "core/task.py",
    "core/ledger/dense.py",
    "dsl/bounds.py",
    "dsl/_closures.py",
    "dsl/expr.py",
    "dsl/plan.py",
    "dsl/template.py",
    "poller/_health.py",
    "poller/_poller.py",
    "poller/_queue.py",
    "progress/_tally.py",
    "progress/aggregate.py",
    "protocols/h1/_client.py",
    "protocols/h1/_connection.py",
    "protocols/h1/_head.py",
    "protocols/h1/_pool.py",
    "protocols/_transport.py",
    "protocols/http.py",
    "protocols/logger.py",
    "protocols/resource_manager.py",
    "resources/pool.py",
)


def _say(message: str) -> None:
    print(f"wbsrun build: {message}", file=sys.stderr)


def _extensions() -> list[Any]:
    if os.environ.get("WBSRUN_PURE", "") not in ("", "0"):
        _say("WBSRUN_PURE is set: pure Python")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _say("mypy (mypyc) is not installed in the build environment: pure Python")
        return []
    root = Path(__file__).resolve().parent
    try:
        return list(
            mypycify(
                # Third-party types are only hints here; where a package is missing from the
                # build environment its values are compiled as `Any`.
                ["--ignore-missing-imports", *(f"src/wbsrun/{p}" for p in HOT_PATH)],
                opt_level="3",
                multi_file=True,
                group_name="wbsrun_native",
                target_dir=str(root / "build" / "mypyc"),
            )
        )
    except (Exception, SystemExit) as exc:  # mypyc reports type errors by exiting
        _say(f"mypyc could not compile the hot path ({exc!r}): pure Python")
        return []


class OptionalBuildExt(build_ext):
    """All or nothing: a compiled module needs the group's shared library, so when any part
    fails to build (no C compiler, no Python headers) every part is removed and the pure
    Python sources are what gets installed."""

    def run(self) -> None:
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1
        try:
            super().run()
        except Exception as exc:
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            _say(f"the C build failed ({exc}): pure Python")


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
