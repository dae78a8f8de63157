"""Transition conditions as a lightweight state machine (issue 22 item 7).

Most conditions on a node's transitions compare one workbook field or saved variable with a
literal (`{{workbook.state == 'monitoring.timeout'}}`, `{{asset.status == 200}}`). The
expression compiler records that shape (`Expr.shape`); here each such condition becomes a
`Guard` that reads its path straight from the task — the workbook through the ledger, a
variable through the task → workbook → user → global stores — with no scope object and no
closure chain. A node whose conditions all compare the same path for equality becomes a
`NodeMachine` with a table from the field's value to the transition: one read and one
dictionary look-up choose the edge, however many edges there are.

Same answers as the closures, always: whenever a guard meets anything but the plain case (a
missing name or field, a value that is not a mapping on the way, values that do not order),
it answers `EVALUATE` and the executor evaluates the node's conditions as expressions, in
order, which raise or answer exactly as before. Guards have no side effects, so that second
look is always safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, final

from wbsrun.dsl.bounds import is_mapping
from wbsrun.dsl.plan import Transition, WorkbookSpec

if TYPE_CHECKING:
    from wbsrun.core.task import Task

__all__ = ["EVALUATE", "NONE", "Guard", "NodeMachine", "guard_for", "machine_for", "machines"]

# `NodeMachine.choose` answers: a transition's index, or one of these.
NONE: Final = -1  # no condition held (an `otherwise` or a failure decides)
EVALUATE: Final = -2  # not the plain case: evaluate the conditions as expressions

# The roots the template scope resolves before saved variables (core/scope.py `_ROOTS`, and
# `data` while the scenario reads data sources): a guard never reads those as variables.
_SCOPE_ROOTS: Final = frozenset({"resource", "workbook", "env", "global", "error", "data"})
_MISSING: Final = object()

# Values whose equality with a literal the table's hashing decides exactly as `==` does.
_PLAIN: Final = frozenset({str, int, float, bool, type(None)})
_TRUE: Final = 1
_FALSE: Final = 0


@final
class Guard:
    """One condition `path OP literal`, read directly. `test` answers 1 (holds), 0 (does not)
    or `EVALUATE`."""

    __slots__ = ("book_path", "keys", "literal", "op", "root")

    def __init__(
        self, root: str, book_path: str | None, keys: tuple[str, ...], op: str, literal: Any
    ) -> None:
        self.root = root  # a variable's name; "" for the workbook
        self.book_path = book_path  # the ledger path read for the workbook
        self.keys = keys  # the steps after the root (or after the ledger path)
        self.op = op
        self.literal = literal

    def read(self, task: Task) -> Any:
        """The path's value, or `_MISSING` where the closures would have to say why not."""
        if self.book_path is not None:
            value = task.run.workbook.get(task.entry, self.book_path, _MISSING)
        else:
            name = self.root
            value = task.vars.get(name, _MISSING)
            if value is _MISSING:
                value = task.entry.vars.get(name, _MISSING)
                if value is _MISSING:
                    value = task.user.vars.get(name, _MISSING)
                    if value is _MISSING:
                        value = task.run.global_vars.get(name, _MISSING)
        for key in self.keys:
            if value is _MISSING:
                return value
            if type(value) is dict:
                value = value.get(key, _MISSING)
            elif is_mapping(value):
                try:
                    value = value[key]
                except KeyError:
                    return _MISSING
            else:
                return _MISSING
        return value

    def test(self, task: Task) -> int:
        value = self.read(task)
        if value is _MISSING:
            return EVALUATE
        return self.compare(value)

    def compare(self, value: Any) -> int:
        literal, op = self.literal, self.op
        try:
            if op == "==":
                held = value == literal
            elif op == "!=":
                held = value != literal
            elif op == "<":
                held = value < literal
            elif op == "<=":
                held = value <= literal
            elif op == ">":
                held = value > literal
            else:
                held = value >= literal
            return _TRUE if held else _FALSE
        except Exception:
            return EVALUATE  # the closures say why (types that do not order, say)

    def same_read(self, other: Guard) -> bool:
        return (self.root, self.book_path, self.keys) == (other.root, other.book_path, other.keys)


def guard_for(shape: tuple[tuple[str, ...], str, Any] | None, spec: WorkbookSpec) -> Guard | None:
    """The guard of a condition's shape, or None when its path is not a workbook field or a
    saved variable read the plain way."""
    if shape is None:
        return None
    path, op, literal = shape
    root = path[0]
    if root == "workbook":
        if len(path) < 2:
            return None
        first = path[1]
        if first in spec.expose:
            # `Ledger.get` resolves the alias; a sub-path of an alias is walked here.
            return Guard("", first, path[2:], op, literal)
        if first in spec.defaults and len(path) >= 3:
            return Guard("", f"{first}.{path[2]}", path[3:], op, literal)
        return None  # ids, workbook-scoped variables, unknown names: the closures
    if root in _SCOPE_ROOTS:
        return None
    return Guard(root, None, path[1:], op, literal)


@final
class NodeMachine:
    """A node's transitions as a state machine: `choose(task)` is the index of the transition
    taken (the first condition that holds, an `always` met first, else the first
    `otherwise`), `NONE` or `EVALUATE`. Built only when every condition has a guard."""

    __slots__ = ("always", "first", "guards", "otherwise", "table")

    def __init__(
        self,
        guards: tuple[Guard | None, ...],
        always: int,
        otherwise: int,
        table: dict[Any, int] | None,
    ) -> None:
        self.guards = guards  # per transition: its guard, None for always/otherwise
        self.always = always  # the first `always` transition's index, or len(guards)
        self.otherwise = otherwise  # the first `otherwise` transition's index, or NONE
        # value → the first `==` transition on it, when every guard reads one path; looked up
        # with plain values only (their `==` is the dictionary's), others go in order.
        self.table = table
        self.first: Guard | None = next((g for g in guards if g is not None), None)

    def choose(self, task: Task) -> int:
        guards = self.guards
        table = self.table
        if table is not None:
            first = self.first
            assert first is not None
            value = first.read(task)
            if value is _MISSING:
                return EVALUATE
            if type(value) in _PLAIN:
                found = table.get(value, NONE)
                always = self.always
                if found == NONE or found > always:
                    return always if always < len(guards) else self.otherwise
                return found
        for i, g in enumerate(guards):
            if g is None:
                if i == self.always:
                    return i
            else:
                held = g.test(task)
                if held == _TRUE:
                    return i
                if held == EVALUATE:
                    return EVALUATE
        return self.otherwise


def machine_for(transitions: Sequence[Transition], spec: WorkbookSpec) -> NodeMachine | None:
    """The node's machine, or None when a condition has no guard (or there is none to test)."""
    guards: list[Guard | None] = []
    always = len(transitions)
    otherwise = NONE
    for i, t in enumerate(transitions):
        if t.kind == "always":
            always = min(always, i)
            guards.append(None)
        elif t.kind == "otherwise":
            otherwise = i if otherwise == NONE else otherwise
            guards.append(None)
        else:
            guard = guard_for(t.condition.shape if t.condition is not None else None, spec)
            if guard is None:
                return None
            guards.append(guard)
    tested = [g for g in guards if g is not None]
    if not tested:
        return None  # always/otherwise only: nothing evaluated today either
    table: dict[Any, int] | None = None
    if len(tested) > 1 and all(g.op == "==" and g.same_read(tested[0]) for g in tested):
        table = {}
        for i, g in enumerate(guards):
            if g is not None and i < always:
                _first_key(table, g.literal, i)
    return NodeMachine(tuple(guards), always, otherwise, table)


def _first_key(table: dict[Any, int], literal: Any, index: int) -> None:
    # `1 == 1.0 == True` and they hash alike: the dictionary keeps the first, as the
    # in-order tests would take the first that holds.
    if literal not in table:
        table[literal] = index


def machines(nodes: Mapping[str, Any], spec: WorkbookSpec) -> dict[str, NodeMachine]:
    """Every node of a workflow that gets a machine, by node id."""
    out: dict[str, NodeMachine] = {}
    for node_id, node in nodes.items():
        m = machine_for(node.transitions, spec)
        if m is not None:
            out[node_id] = m
    return out
