"""Stand-ins for actions and nodes that failed the schema, read defensively.

They never run (a scenario with errors yields no plan); they keep what the flow checks need
from a broken element — a node's id and where it leads, an action's saved variable — so
that the rest of the workflow is judged as written, not as if the element were missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, cast

from wbsrun.dsl.checks import CaptureSpec, ResponseRules
from wbsrun.dsl.plan import (
    ActionSpec,
    GotoKind,
    HandlerGoto,
    NodeSpec,
    NodeType,
    SaveAs,
    SaveScope,
    Transition,
)
from wbsrun.dsl.template import compile_value

__all__ = ["as_map", "as_seq", "node_type", "save_var", "stub_action", "stub_node"]

_NODE_TYPES: Final = frozenset({"action", "parallel", "checkpoint", "terminus"})


def node_type(node: Mapping[str, Any]) -> Any:
    """A graph node's `type`; without one, a node with `action:` is an action node (the
    explicit type wins); None when it has neither (the schema reports that)."""
    kind = node.get("type")
    if kind is None and "action" in node:
        return "action"
    return kind


_SCOPES: Final = frozenset({"workbook", "user-local", "task-local", "global"})
_HANDLERS: Final = ("on-error", "on-timeout")


def as_map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_seq(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def save_var(body: Mapping[str, Any]) -> tuple[str, SaveScope] | None:
    """The variable an action's `save-as` names, and its scope, when they can be read."""
    save = body.get("save-as")
    var = save if isinstance(save, str) else as_map(save).get("var")
    if not isinstance(var, str):
        return None
    scope = as_map(save).get("scope", "workbook")
    known = isinstance(scope, str) and scope in _SCOPES
    return var, cast(SaveScope, scope if known else "workbook")


def stub_action(name: str, raw: object) -> ActionSpec:
    body = as_map(raw)
    saved = save_var(body)
    component, call = body.get("component"), body.get("call")
    return ActionSpec(
        name=name,
        component=component if isinstance(component, str) else "",
        call=call if isinstance(call, str) else "",
        args=compile_value(None),
        save_as=SaveAs(saved[0], saved[1], None) if saved else None,
        wbs_level="L5",
        timeout=None,
        rate_limit=None,
        response=stub_rules(body),
    )


def stub_rules(body: Mapping[str, Any]) -> ResponseRules | None:
    """The captures whose names (and scopes) can be read: the flow check knows what they
    save, as for `save-as` (a stub never runs)."""
    items = body.get("capture")
    captures = tuple(
        CaptureSpec(
            item["name"],
            "json",
            "",
            scope=cast(
                SaveScope, item.get("scope") if item.get("scope") in _SCOPES else "workbook"
            ),
        )
        for item in (items if isinstance(items, list) else ())
        if isinstance(item, Mapping) and isinstance(item.get("name"), str)
    )
    return ResponseRules(captures) if captures else None


def stub_node(
    raw: object,
    index: int,
    actions: Mapping[str, ActionSpec],
    goto_kind: Callable[[str], GotoKind],
) -> NodeSpec:
    """The node's id, action and every target it names. Without a readable id, the node
    is `#INDEX` (no id of a scenario starts with '#'): still a producer of its variable."""
    body = as_map(raw)
    node_id = body.get("id")
    if not isinstance(node_id, str):
        node_id = f"#{index}"
    controls = as_map(body.get("controls"))
    flow, exec_ = as_map(controls.get("flow")), as_map(controls.get("exec"))
    targets = [
        to
        for part in (exec_, flow)
        for item in as_seq(part.get("transitions"))
        if isinstance(to := as_map(item).get("to"), str)
    ]
    gotos = [
        goto
        for key in _HANDLERS
        for item in as_seq(exec_.get(key, controls.get(key)))
        if isinstance(goto := as_map(item).get("goto"), str)
    ]
    join_to = as_map(flow.get("join")).get("to")
    action = body.get("action")
    kind = body.get("type")
    return NodeSpec(
        id=node_id,
        type=cast(NodeType, kind if isinstance(kind, str) and kind in _NODE_TYPES else "action"),
        index=index,
        action=actions.get(action) if isinstance(action, str) else None,
        transitions=tuple(
            Transition(f"{node_id}->{to}", to, "always", None, goto_kind(to)) for to in targets
        ),
        branches=tuple(
            to for b in as_seq(flow.get("branches")) if isinstance(to := as_map(b).get("to"), str)
        ),
        join_to=join_to if isinstance(join_to, str) else None,
        on_error=tuple(HandlerGoto(g, goto_kind(g)) for g in gotos),
    )
