"""The compiled hot path (setup.py, mypyc): what it holds, and the source rules it needs."""

from __future__ import annotations

import ast
import dataclasses
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


def suspends_while_handling(source: str) -> list[int]:
    """Lines of an await (or async with / for) inside an `except` or `finally` block."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Try | ast.TryStar):
            continue
        blocks = [h.body for h in node.handlers] + [node.finalbody]
        found += [
            sub.lineno
            for body in blocks
            for stmt in body
            for sub in ast.walk(stmt)
            if isinstance(sub, ast.Await | ast.AsyncWith | ast.AsyncFor)
        ]
    return sorted(set(found))


def test_hot_path_never_suspends_while_an_exception_is_handled() -> None:
    """A compiled coroutine keeps no exception state of its own: suspended in an `except` or
    `finally` block, it leaves the exception it handles as the thread's handled exception for
    whatever the loop runs next, and a bare `raise` there raises it again (a user cut by the
    graceful stop made the next run's passes fail with its CancelledError)."""
    problems = {
        rel: found
        for rel in hot_path()
        if (found := suspends_while_handling((ROOT / "src/wbsrun" / rel).read_text()))
    }
    assert problems == {}


def test_the_suspension_rule_finds_an_await_in_a_handler_and_in_a_finally() -> None:
    source = """
async def f():
    try:
        await g()
    except OSError:
        await h()
    finally:
        async with lock:
            pass
    await after()
"""
    assert suspends_while_handling(source) == [6, 8]


def test_plan_objects_stay_frozen_in_either_build() -> None:
    # dsl/plan.py is compiled: its dataclasses are native classes there, and must still refuse
    # assignment, hash and compare by value, and be copied by `dataclasses.replace`.
    from wbsrun.dsl.loader import load_plan
    from wbsrun.protocols.registry import provides

    plan = load_plan(ROOT / "src" / "wbsrun" / "examples" / "http_tri_phase", provides())
    action = plan.actions["probe-get"]
    node = next(iter(plan.workflows[plan.scenarios[0].workflow].nodes.values()))
    for obj, attr in ((plan, "name"), (action, "name"), (node, "id")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attr, "changed")
    assert action.name == "probe-get"
    copy = dataclasses.replace(action, name="other")
    assert (copy.name, copy.component) == ("other", action.component)
    assert copy != action
    assert dataclasses.replace(copy, name="probe-get") == action
    assert hash(dataclasses.replace(copy, name="probe-get")) == hash(action)
