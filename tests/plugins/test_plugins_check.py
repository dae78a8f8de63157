"""`wbsrun plugins check` (and `wbsrun validate`): every component with its entry in the
bundle against its WIT world, with wasm-tools; a wrong type, a renamed export or an extra
import is refused with wasm-tools' reason at the file:line:col of the component's entry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from plugin_kit import Built, plugin_component, put
from scenario_kit import BASE, Doc, document, on, routes, write_bundle
from wbsrun.plugins.check import check_bundle
from wbsrun.target import TargetProcess


def wbsrun(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wbsrun", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _bundle(tmp_path: Path, wasm: dict[str, Path], items: list[tuple[str, int]]) -> Path:
    """One action per plugin (call `get` with a URL), each plugin's entry in the bundle."""
    bundle = tmp_path / "bundle"
    actions: Doc = {
        name: {"component": name, "call": "get", "with": {"url": BASE + "/asset"}} for name in wasm
    }
    doc = document(actions, {"steps": [{"ref": name} for name in wasm]})
    for name, path in wasm.items():
        doc["components"].append(plugin_component(name, put(bundle, path, name), "get"))
    return write_bundle(tmp_path, doc, items)


def _entry_line(bundle: Path, name: str) -> int:
    lines = (bundle / "script.yaml").read_text("utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if f"entry: plugins/{name}.wasm" in line)


def test_the_examples_target_their_worlds(tmp_path: Path, built_plugins: Built) -> None:
    bundle = _bundle(tmp_path, {"ping": built_plugins.ping, "fetch": built_plugins.fetch}, [])
    script = bundle / "script.yaml"
    lease = put(bundle, built_plugins.lease, "lease")
    watch = put(bundle, built_plugins.progress, "watch")
    script.write_text(
        script.read_text("utf-8").replace(
            "components:\n",
            f"components:\n- {{name: leases, kind: wasi-component, entry: {lease}}}\n"
            f"- {{name: watch, kind: wasi-component, entry: {watch}}}\n",
            1,
        ),
        "utf-8",
    )
    results = check_bundle(bundle)
    assert [(r.name, r.world, r.diagnostic) for r in results] == [
        ("leases", "lease-provider", None),
        ("watch", "progress-plugin", None),
        ("ping", "plugin", None),
        ("fetch", "plugin", None),
    ]


def test_wrong_type_renamed_export_and_extra_import_are_refused_where_declared(
    tmp_path: Path, built_plugins: Built
) -> None:
    wasm = {"wrong": built_plugins.wrong, "renamed": built_plugins.renamed,
            "extra": built_plugins.extra}  # fmt: skip
    bundle = _bundle(tmp_path, wasm, [])
    diags = {r.name: r.diagnostic for r in check_bundle(bundle)}
    found = {name: diag for name, diag in diags.items() if diag is not None}
    assert found.keys() == diags.keys()
    for name, diag in found.items():
        assert (diag.file, diag.line) == (str(bundle / "script.yaml"), _entry_line(bundle, name))
        assert diag.code == "plugin-interface"
        assert diag.path == f"components[{2 + list(wasm).index(name)}].entry"
    assert "type mismatch in instance export `run-action`" in found["wrong"].message
    assert "expected variant, found u32" in found["wrong"].message
    assert "missing expected export `release-user`" in found["renamed"].message
    assert "wbsrun:plugin/host@0.1.0" in found["extra"].message
    assert "`spawn`" in found["extra"].message


def test_plugins_check_and_validate_exit_codes(tmp_path: Path, built_plugins: Built) -> None:
    good = _bundle(tmp_path / "good", {"ping": built_plugins.ping}, [("127.0.0.1", 9)])
    bad = _bundle(tmp_path / "bad", {"wrong": built_plugins.wrong}, [("127.0.0.1", 9)])

    ok = wbsrun("plugins", "check", str(good))
    assert (ok.returncode, ok.stdout.strip()) == (
        0,
        "ok: component 'ping': plugins/ping.wasm targets the world 'plugin'",
    )
    refused = wbsrun("plugins", "check", str(bad))
    assert refused.returncode == 2
    assert f"script.yaml:{_entry_line(bad, 'wrong')}:" in refused.stderr
    assert "expected variant, found u32" in refused.stderr

    assert wbsrun("validate", str(good)).returncode == 0
    invalid = wbsrun("validate", str(bad))
    assert invalid.returncode == 2
    assert "1 component(s) do not target their world; not valid" in invalid.stderr


def test_wbsrun_run_loads_the_plugin(
    tmp_path: Path, target: TargetProcess, built_plugins: Built
) -> None:
    bundle = _bundle(tmp_path, {"ping": built_plugins.ping}, on(target))
    done = wbsrun("run", str(bundle), "--quiet", "--out", str(tmp_path / "result.json"))
    assert done.returncode == 0, done.stderr
    assert routes(target) == {"GET /asset": 1}
