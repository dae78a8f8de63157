"""The names a template sees while a task runs: resource, workbook, env, global, error, vars."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, final

if TYPE_CHECKING:
    from wbsrun.core.task import Task

__all__ = ["EnvView", "TaskScope", "scope_of"]

_MISSING: Final = object()
_ENV_KEYS = ("tick", "user_id", "task_id", "iteration", "scenario", "phase")


@final
class EnvView(Mapping[str, Any]):
    """`env.*`: runtime values computed on read, so nothing is built per task."""

    __slots__ = ("_task",)

    def __init__(self, task: Task) -> None:
        self._task = task

    def __getitem__(self, key: str) -> Any:
        t = self._task
        if key == "tick":
            return round(t.run.clock() - t.run.t0, 6)
        if key == "user_id":
            return t.entry.user_id
        if key == "task_id":
            return t.entry.task_id
        if key == "iteration":
            return t.iteration
        if key == "scenario":
            return t.scenario.name
        if key == "phase":
            return t.phase
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(_ENV_KEYS)

    def __len__(self) -> int:
        return len(_ENV_KEYS)


def _resource(t: Task) -> Any:
    if t.resource is None:
        raise KeyError("resource")
    return t.resource


def _workbook(t: Task) -> Any:
    return t.wb_view


def _env(t: Task) -> Any:
    return EnvView(t)


def _global(t: Task) -> Any:
    return t.run.globals_view


def _error(t: Task) -> Any:
    return t.error if t.error is not None else {}


_ROOTS: Mapping[str, Callable[[Task], Any]] = {
    "resource": _resource,
    "workbook": _workbook,
    "env": _env,
    "global": _global,
    "error": _error,
}


@final
class TaskScope(Mapping[str, Any]):
    """Root lookup for expressions; saved variables resolve task → workbook → user → global."""

    __slots__ = ("_task",)

    def __init__(self, task: Task) -> None:
        self._task = task

    def __getitem__(self, key: str) -> Any:
        root = _ROOTS.get(key)
        t = self._task
        if root is not None:
            return root(t)
        if key == "data" and t.data is not None:
            return t.data
        for store in (t.vars, t.entry.vars, t.user.vars, t.run.global_vars):
            value = store.get(key, _MISSING)
            if value is not _MISSING:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        t = self._task
        yield from _ROOTS
        if t.data is not None:
            yield "data"
        yield from {**t.run.global_vars, **t.user.vars, **t.entry.vars, **t.vars}

    def __len__(self) -> int:
        return sum(1 for _ in self)


def scope_of(task: Task) -> TaskScope:
    """The task's scope, one per pass: it holds nothing but the task, and a pass renders ~8
    templates and conditions. `Executor._close` drops it (a cycle through the task)."""
    scope = task.scope
    if scope is None:
        scope = task.scope = TaskScope(task)
    return scope
