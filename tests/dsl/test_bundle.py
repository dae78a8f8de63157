"""Finding the scenario of a bundle, and keeping every bundle path inside the bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from wbsrun.dsl.bundle import Bundle, PathEscapeError, locate_bundle, resolve_in_bundle
from wbsrun.errors import BundleError

REFERENCE = Path(__file__).parent / "data" / "reference"
SCENARIO = "workflows: {}\nload: {scenarios: []}\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_reference_directory_finds_its_one_scenario_and_skips_the_csv_manifest(
    tmp_path: Path,
) -> None:
    bundle_dir = tmp_path / "reference"
    shutil.copytree(REFERENCE, bundle_dir)
    bundle = locate_bundle(bundle_dir)
    assert bundle == Bundle(bundle_dir, bundle_dir / "http_scenario.yaml", None)


def test_script_yaml_wins_over_other_scenario_files(tmp_path: Path) -> None:
    _write(tmp_path / "script.yaml", SCENARIO)
    _write(tmp_path / "other.yaml", SCENARIO)
    assert locate_bundle(tmp_path).script == tmp_path / "script.yaml"


def test_a_file_path_makes_its_directory_the_bundle(tmp_path: Path) -> None:
    script = _write(tmp_path / "any-name.yml", SCENARIO)
    config = _write(tmp_path / "config.yaml", "telemetry: {}\n")
    assert locate_bundle(script) == Bundle(tmp_path, script, config)


def test_config_yaml_is_picked_up_next_to_script_yaml(tmp_path: Path) -> None:
    _write(tmp_path / "script.yaml", SCENARIO)
    _write(tmp_path / "config.yaml", "flags: {}\n")
    assert locate_bundle(tmp_path).config == tmp_path / "config.yaml"


def test_several_scenario_files_are_ambiguous_and_listed(tmp_path: Path) -> None:
    _write(tmp_path / "b.yaml", SCENARIO)
    _write(tmp_path / "a.yml", "load: {}\n")
    _write(tmp_path / "notes.yaml", "title: not a scenario\n")
    with pytest.raises(BundleError) as info:
        locate_bundle(tmp_path)
    assert str(info.value) == (
        f"ambiguous bundle {tmp_path}: several files look like scenarios: a.yml, b.yaml; "
        "pass one of them, or name the scenario script.yaml"
    )


def test_directory_without_a_scenario_says_what_it_looked_at(tmp_path: Path) -> None:
    _write(tmp_path / "resource.yaml", "ip,port\n127.0.0.1,80\n")
    _write(tmp_path / "notes.yaml", "- a list\n")
    with pytest.raises(BundleError) as info:
        locate_bundle(tmp_path)
    assert str(info.value) == (
        f"no scenario found in {tmp_path}: expected script.yaml or one YAML file with a "
        "top-level 'workflows' or 'load' key (not scenarios: notes.yaml, resource.yaml)"
    )


def test_a_lone_unparsable_yaml_file_is_taken_so_its_errors_can_be_shown(tmp_path: Path) -> None:
    broken = _write(tmp_path / "broken.yaml", "workflows: [\n")
    assert locate_bundle(tmp_path).script == broken


def test_nested_keys_named_workflows_do_not_make_a_scenario(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", "meta:\n  workflows: 1\n")
    _write(tmp_path / "b.yaml", SCENARIO)
    assert locate_bundle(tmp_path).script == tmp_path / "b.yaml"


def test_missing_path_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"^bundle path not found: .*nowhere$"):
        locate_bundle(tmp_path / "nowhere")


def test_resolve_in_bundle_returns_the_absolute_path_inside(tmp_path: Path) -> None:
    assert resolve_in_bundle(tmp_path, "./payloads/../payloads/a.json") == (
        tmp_path.resolve() / "payloads" / "a.json"
    )


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("/etc/passwd", "absolute path '/etc/passwd' is not allowed"),
        ("C:\\data\\x", "absolute path 'C:\\data\\x' is not allowed"),
        ("~/x", "absolute path '~/x' is not allowed"),
        ("../x", "path '../x' leaves the bundle directory through '..'"),
        ("a/../../x", "path 'a/../../x' leaves the bundle directory through '..'"),
        ("..\\x", "path '..\\x' leaves the bundle directory through '..'"),
        ("a\0b", "contains a NUL character"),
    ],
)
def test_resolve_in_bundle_refuses_escapes(tmp_path: Path, relative: str, message: str) -> None:
    with pytest.raises(PathEscapeError) as info:
        resolve_in_bundle(tmp_path, relative)
    assert message in str(info.value)


def test_resolve_in_bundle_refuses_symlinks_that_point_outside(tmp_path: Path) -> None:
    bundle_dir, outside = tmp_path / "bundle", tmp_path / "outside"
    bundle_dir.mkdir()
    outside.mkdir()
    (bundle_dir / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathEscapeError) as info:
        resolve_in_bundle(bundle_dir, "link/data.csv")
    assert str(info.value) == (
        "path 'link/data.csv' resolves outside the bundle directory "
        f"(through a symbolic link) to {outside.resolve() / 'data.csv'}"
    )


def test_symlinks_that_stay_inside_the_bundle_are_fine(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    assert resolve_in_bundle(tmp_path, "alias/x") == tmp_path.resolve() / "real" / "x"


def test_path_escape_error_is_a_bundle_error() -> None:
    assert issubclass(PathEscapeError, BundleError)
