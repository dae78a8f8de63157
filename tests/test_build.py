"""The compiled hot path (setup.py, mypyc): what it holds, and the source rules it needs."""

from __future__ import annotations

import ast
import importlib
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def hot_path() -> tuple[str, ...]:
    """setup.py's HOT_PATH, read without running setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "HOT_PATH" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, tuple)
            return tuple(str(v) for v in value)
    raise AssertionError("setup.py has no HOT_PATH")


def module_name(rel: str) -> str:
    return "wbsrun." + rel.removesuffix(".py").replace("/", ".")


def test_every_hot_path_module_exists_and_imports() -> None:
    for rel in hot_path():
        assert (ROOT / "src" / "wbsrun" / rel).is_file(), rel
        importlib.import_module(module_name(rel))


@pytest.mark.skipif(os.environ.get("WBSRUN_BUILD") != "compiled", reason="compiled build only")
def test_the_compiled_build_holds_every_hot_path_module_and_no_other() -> None:
    compiled = {
        rel
        for rel in hot_path()
        if not str(importlib.import_module(module_name(rel)).__file__).endswith(".py")
    }
    assert compiled == set(hot_path())
    # Left out on purpose (setup.py): they must keep running as Python.
    for name in ("wbsrun.core.scheduler", "wbsrun.protocols.h1._errors"):
        assert str(importlib.import_module(name).__file__).endswith(".py"), name


def handler_names_of_two_types(source: str) -> list[str]:
    """Functions in which one name is bound by `except` clauses of different types: compiled,
    the name keeps the first clause's type and the second clause's exception fails it."""
    found = []
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        kinds: dict[str, set[str]] = {}
        for node in ast.walk(fn):
            if isinstance(node, ast.ExceptHandler) and node.name and node.type is not None:
                kinds.setdefault(node.name, set()).add(ast.unparse(node.type))
        found += [f"{fn.name}: {name}" for name, types in kinds.items() if len(types) > 1]
    return found


def test_hot_path_binds_each_exception_name_to_one_type() -> None:
    problems = {
        rel: found
        for rel in hot_path()
        if (found := handler_names_of_two_types((ROOT / "src/wbsrun" / rel).read_text()))
    }
    assert problems == {}


def test_the_exception_name_rule_finds_a_name_bound_by_two_handler_types() -> None:
    source = """
def f():
    try:
        pass
    except TimeoutError as exc:
        raise
    except OSError as exc:
        raise
"""
    assert handler_names_of_two_types(source) == ["f: exc"]
