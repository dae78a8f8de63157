"""Which implementation runs a wasi-component: its entry when present and loadable; the
built-in with a notice when the entry is absent (DSL §3) or, with `fallback: builtin`, when
it cannot be loaded; else the run refuses to start, saying why. And the compile cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from plugin_kit import Built, plugin_component
from scenario_kit import BASE, Doc, document, on, routes, run, write_bundle
from wbsrun.cli.plugins import wasm_loader
from wbsrun.core.log import RunLog
from wbsrun.dsl.loader import load_plan
from wbsrun.errors import RunError
from wbsrun.plugins import engine
from wbsrun.protocols.http import HttpComponent
from wbsrun.protocols.registry import build_components, provides
from wbsrun.target import TargetProcess


def _http_as_plugin(tmp_path: Path, wasm: Path | bytes, **extra: object) -> Doc:
    """A scenario whose `http` is a wasi-component with its entry in the bundle."""
    target = tmp_path / "bundle" / "plugins" / "http.wasm"
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(wasm, bytes):
        target.write_bytes(wasm)
    else:
        shutil.copyfile(wasm, target)
    actions = {"get": {"component": "http", "call": "get", "with": {"url": BASE + "/asset"}}}
    doc = document(actions, {"steps": [{"ref": "get"}]}, users=2)
    doc["components"][0] = {**plugin_component("http", "plugins/http.wasm", "get"), **extra}
    return doc


def _components(tmp_path: Path, doc: Doc, wasm: bool = True) -> tuple[dict[str, object], RunLog]:
    bundle = write_bundle(tmp_path, doc, [("127.0.0.1", 9)])
    plan = load_plan(bundle, provides())
    log = RunLog()
    return dict(build_components(plan, log, wasm=wasm_loader() if wasm else None)), log


def test_a_present_entry_is_loaded_not_the_builtin(tmp_path: Path, built_plugins: Built) -> None:
    doc = _http_as_plugin(tmp_path, built_plugins.ping)
    components, log = _components(tmp_path, doc)
    assert type(components["http"]).__name__ == "WasmPlugin"
    assert not any("built-in" in line for line in log.recent)


def test_an_entry_that_is_no_component_refuses_the_start(tmp_path: Path) -> None:
    doc = _http_as_plugin(tmp_path, b"\0asm not really")
    with pytest.raises(RunError) as caught:
        _components(tmp_path, doc)
    text = str(caught.value)
    assert "component 'http': plugins/http.wasm cannot be loaded" in text
    assert "not a WebAssembly component wasmtime can compile" in text
    assert "`fallback: builtin` would run the built-in instead" in text


def test_fallback_builtin_runs_the_builtin_with_a_notice(
    tmp_path: Path, target: TargetProcess
) -> None:
    doc = _http_as_plugin(tmp_path, b"\0asm not really", fallback="builtin")
    ran = run(tmp_path, doc, on(target), wasm=wasm_loader())
    assert routes(target) == {"GET /asset": 2}
    (notice,) = [line for line in ran.log.recent if "fallback: builtin" in line]
    assert "plugins/http.wasm cannot be loaded (not a WebAssembly component" in notice


def test_without_a_webassembly_host_a_present_entry_refuses_the_start(
    tmp_path: Path, built_plugins: Built
) -> None:
    doc = _http_as_plugin(tmp_path, built_plugins.ping)
    with pytest.raises(RunError, match=r"no WebAssembly host \(install the `wasi` extra"):
        _components(tmp_path, doc, wasm=False)
    doc = _http_as_plugin(tmp_path, built_plugins.ping, fallback="builtin")
    components, _log = _components(tmp_path, doc, wasm=False)
    assert isinstance(components["http"], HttpComponent)


def test_a_renamed_export_refuses_the_start_naming_it(tmp_path: Path, built_plugins: Built) -> None:
    doc = _http_as_plugin(tmp_path, built_plugins.renamed)
    with pytest.raises(RunError, match=r"exports no function 'release-user'"):
        _components(tmp_path, doc)


def test_an_import_the_host_does_not_offer_refuses_the_start(
    tmp_path: Path, built_plugins: Built
) -> None:
    doc = _http_as_plugin(tmp_path, built_plugins.extra)
    with pytest.raises(RunError, match=r"cannot be instantiated: .*spawn"):
        _components(tmp_path, doc)


def test_an_absent_entry_runs_the_builtin_with_a_notice(
    tmp_path: Path, target: TargetProcess
) -> None:
    doc = _http_as_plugin(tmp_path, b"")
    (tmp_path / "bundle" / "plugins" / "http.wasm").unlink()
    ran = run(tmp_path, doc, on(target), wasm=wasm_loader())
    assert routes(target) == {"GET /asset": 2}
    assert any("plugins/http.wasm not in the bundle" in line for line in ran.log.recent)


def test_compiled_components_are_cached_by_version_config_and_hash(
    tmp_path: Path, built_plugins: Built
) -> None:
    wasm = built_plugins.ping.read_bytes()
    first = engine.compile_component(wasm, tmp_path)
    again = engine.compile_component(wasm, tmp_path)
    assert (first.cached, again.cached) == (False, True)
    (artifact,) = tmp_path.glob("*.cwasm")
    # A damaged artifact is compiled again (and rewritten), never the run's failure.
    artifact.write_bytes(b"garbage")
    assert engine.compile_component(wasm, tmp_path).cached is False
    assert engine.compile_component(wasm, tmp_path).cached is True
    # Another wasm is another key.
    other = engine.compile_component(built_plugins.hostile.read_bytes(), tmp_path)
    assert other.cached is False
    assert len(list(tmp_path.glob("*.cwasm"))) == 2


def test_the_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WBSRUN_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    assert engine.cache_dir() == Path("/x/cache/wbsrun/wasm")
    monkeypatch.setenv("WBSRUN_CACHE_DIR", "/y")
    assert engine.cache_dir() == Path("/y/wasm")


def test_bad_isolation_metadata_refuses_the_start(tmp_path: Path, built_plugins: Built) -> None:
    doc = _http_as_plugin(tmp_path, built_plugins.ping)
    doc["components"][0]["metadata"] = {"isolation": "per-galaxy"}
    with pytest.raises(RunError, match=r"metadata\.isolation is 'per-galaxy', expected per-worker"):
        _components(tmp_path, doc)


def test_a_memory_limit_below_the_plugins_minimum_refuses_the_start(
    tmp_path: Path, built_plugins: Built
) -> None:
    doc = _http_as_plugin(tmp_path, built_plugins.fetch)
    doc["components"][0]["metadata"] = {"memory-limit": "1MiB"}
    with pytest.raises(RunError) as caught:
        _components(tmp_path, doc)
    assert "cannot be instantiated: memory minimum size of 199 pages exceeds memory limits" \
        " (metadata.memory-limit: 1048576 bytes)" in str(caught.value)  # fmt: skip
