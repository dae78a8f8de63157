"""Shared pytest fixtures for the whole wbsrun test suite."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# -- HTTP transport: scenario and CLI tests run on both ---------------------------------------
# Servers for tests/protocols: hostile HTTP (plain and TLS) and nginx.
from http_kit import app, pki, tls_app  # noqa: F401

# WebAssembly plugins: the examples and test guests, built and compiled once a session.
from plugin_kit import built_plugins  # noqa: F401
from property_kit import load_profile

# The HTML report: a real demo run with `--report`, and headless Chromium (session-wide).
from report_kit import chromium, demo_report  # noqa: F401
from transport_kit import hostile, nginx, self_signed, tls_hostile  # noqa: F401
from wbsrun.target import TargetProcess, loopback_hosts

# Hypothesis: `dev` by default, `ci` when CI=true, `fuzz` for `make fuzz` (tests/property_kit.py).
load_profile()


def pytest_configure(config: pytest.Config) -> None:
    """A plan cache of the session's own (docs/binary-dsl.md), inherited by every `wbsrun`
    subprocess, so that runs never read or fill the user's. Then: test the build meant,
    never a stale one. `make` compiles the hot path in place
    (setup.py: src/wbsrun/**/*.so, which Python imports before the .py next to them), so a
    source edited since would otherwise be tested as its old compiled self."""
    import tempfile

    if "WBSRUN_CACHE_DIR" not in os.environ:
        cache = tempfile.mkdtemp(prefix="wbsrun-cache-")
        os.environ["WBSRUN_CACHE_DIR"] = cache
        config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))
    import wbsrun.core.executor as probe

    where = Path(probe.__file__)
    compiled = where.suffix != ".py"
    wanted = os.environ.get("WBSRUN_BUILD")
    if wanted and wanted != ("compiled" if compiled else "pure"):
        pytest.exit(f"WBSRUN_BUILD={wanted}, but wbsrun imports from {where}", returncode=2)
    if not compiled:
        return
    package = where.parents[1]
    built = min(so.stat().st_mtime for so in package.rglob("*.so"))
    newer = sorted(
        str(py.relative_to(package)) for py in package.rglob("*.py") if py.stat().st_mtime > built
    )
    if newer:
        pytest.exit(
            f"the compiled hot path in {package} is older than {', '.join(newer[:5])}: "
            "run `make compiled` (or `make pure` to test the sources as they are)",
            returncode=2,
        )


HTTP_TRANSPORTS = ("fast", "aiohttp")
# Modules whose HTTP-sending tests run once per transport (results must not depend on it):
# the workflow semantics, and the CLI runs where the transport's own limits and cancellation
# show (bodies, timeouts, the graceful stop, the demo). The other CLI tests (thresholds,
# checks, checkpoints, compare, init) drive the same runner on the default transport only.
_BOTH_TRANSPORTS = (
    "tests/core/test_workflow_",
    "tests/cli/test_cli.py",
    "tests/cli/test_body_limit_runs.py",
    "tests/cli/test_graceful_stop.py",
)
_SENDS_HTTP = ("target", "target_factory", "live_reference")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    where = Path(str(metafunc.definition.fspath)).as_posix()
    if not any(f"/{part}" in where for part in _BOTH_TRANSPORTS):
        return
    name = metafunc.definition.name
    if any(f in metafunc.fixturenames for f in _SENDS_HTTP) or any(
        word in name for word in ("run", "demo", "sigint")
    ):
        metafunc.parametrize("http_transport", HTTP_TRANSPORTS, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`WBSRUN_TEST_SCOPE=units` (the Makefile's pure-Python pass): leave out the tests that
    run the engine against the embedded target (`target`, `target_factory`, `live_reference`).
    They run in the compiled pass, on the same sources compiled; the pure pass keeps every
    unit and property test of the layers the hot path is compiled from (docs/testing.md)."""
    if os.environ.get("WBSRUN_TEST_SCOPE") != "units":
        return
    kept: list[pytest.Item] = []
    left: list[pytest.Item] = []
    for item in items:
        names = getattr(item, "fixturenames", ())
        (left if any(f in names for f in _SENDS_HTTP) else kept).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


@pytest.fixture(autouse=True)
def http_transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The transport a parametrized test runs on, through WBSRUN_TRANSPORT (which subprocesses
    inherit and scenario_kit.run reads); unparametrized tests get the default."""
    transport: str | None = getattr(request, "param", None)
    if transport is not None:
        monkeypatch.setenv("WBSRUN_TRANSPORT", transport)
    return transport


# -- embedded asset server (wbsrun.target) ----------------------------------------------------


@pytest.fixture
def target() -> Iterator[TargetProcess]:
    """A target process on 127.0.0.1, free port, no fault knobs; stopped after the test."""
    with TargetProcess.start() as proc:
        yield proc


@pytest.fixture
def target_factory() -> Iterator[Callable[..., TargetProcess]]:
    """Start targets with `TargetProcess.start` arguments; every one is stopped after the test."""
    started: list[TargetProcess] = []

    def start(**kwargs: Any) -> TargetProcess:
        proc = TargetProcess.start(**kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


# -- scenario bundles ----------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = REPO.parent / "shared" / "reference"
BUNDLED_REFERENCE = REPO / "src" / "wbsrun" / "examples" / "http_tri_phase"


@pytest.fixture
def reference_dir() -> Path:
    """The canonical bundle from ../shared (CI clones the repo beside it)."""
    if not (SHARED_REFERENCE / "http_scenario.yaml").is_file():
        pytest.skip(f"canonical bundle not found at {SHARED_REFERENCE}")
    return SHARED_REFERENCE


@pytest.fixture
def live_reference(
    tmp_path: Path, target_factory: Callable[..., TargetProcess]
) -> Callable[[int], tuple[Path, TargetProcess]]:
    """A copy of the bundled reference scenario whose manifest points at a fresh target
    (one loopback address per item, as the demo does)."""

    def make(items: int = 4) -> tuple[Path, TargetProcess]:
        hosts = loopback_hosts(items)
        proc = target_factory(hosts=hosts)
        bundle = tmp_path / "bundle"
        shutil.copytree(BUNDLED_REFERENCE, bundle)
        lines = ["ip,port", *(f"{h},{proc.port}" for h in hosts)]
        (bundle / "resource.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return bundle, proc

    return make
