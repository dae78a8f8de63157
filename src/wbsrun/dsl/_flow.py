"""Flow checks on a built plan: reachability and the variable graph (read only after produced)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wbsrun.dsl._failed import NONE, Failed
from wbsrun.dsl._stubs import as_map
from wbsrun.dsl.plan import (
    ActionSpec,
    Handler,
    HandlerCall,
    HandlerGoto,
    NodeSpec,
    ResourceSpec,
    ScenarioSpec,
    WorkbookSpec,
    WorkflowSpec,
)
from wbsrun.dsl.source import SourceDoc
from wbsrun.dsl.template import TemplateSyntaxError, compile_template, iter_templates
from wbsrun.errors import Diagnostic

__all__ = ["ENV_NAMES", "ERROR_NAMES", "FlowChecker", "successors"]

ENV_NAMES = frozenset({"tick", "user_id", "task_id", "iteration", "scenario", "phase"})
ERROR_NAMES = frozenset({"code", "class", "message"})
WORKBOOK_IDS = frozenset({"user_id", "task_id"})
_RUNTIME_ROOTS = frozenset({"env", "global", "error", "resource", "workbook"})
Path_ = tuple[str | int, ...]


def _handler_gotos(handlers: Iterable[Handler]) -> Iterable[str]:
    for h in handlers:
        if isinstance(h, HandlerGoto) and h.kind == "node":
            yield h.target


def successors(node: NodeSpec) -> set[str]:
    out = {t.to for t in node.transitions if t.target_kind == "node"}
    out.update(node.branches)
    if node.join_to:
        out.add(node.join_to)
    out.update(_handler_gotos(node.on_error))
    out.update(_handler_gotos(node.on_timeout))
    return out


def saved_vars(action: ActionSpec) -> tuple[tuple[str, str], ...]:
    """(variable, scope) of what an action saves: its save-as, then its captures."""
    out: list[tuple[str, str]] = []
    if action.save_as is not None:
        out.append((action.save_as.var, action.save_as.scope))
    if action.response is not None:
        out.extend((c.name, c.scope) for c in action.response.captures)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _Context:
    """What a template at some place may read."""

    vars: frozenset[str]
    all_vars: frozenset[str]
    pools: tuple[ResourceSpec, ...]
    resource_ok: bool
    error_ok: bool
    # False where the workflow's graph is incomplete: "read before produced" is not judged.
    ordered: bool = True


class FlowChecker:
    """Collects diagnostics for unreachable nodes and names read before they are produced.

    Elements in ``failed`` failed an earlier check: nothing is reported inside them.
    Workflows in ``open_edges`` have a target no check could resolve (their reachability
    and variable order are not judged); roots in ``unknown_roots`` (`resource`, `workbook`,
    `global`, or `*` for saved variables) had their declarations fail, so reads of them are
    not judged either."""

    def __init__(
        self,
        doc: SourceDoc,
        workbook: WorkbookSpec,
        resources: Mapping[str, ResourceSpec],
        globals_: Mapping[str, Any],
        failed: Failed = NONE,
        open_edges: frozenset[str] = frozenset(),
        unknown_roots: frozenset[str] = frozenset(),
        data: Mapping[str, frozenset[str] | None] | None = None,
    ) -> None:
        self.doc = doc
        self.workbook = workbook
        self.resources = resources
        self.globals = globals_
        self.failed = failed
        self.open_edges = open_edges
        self.unknown_roots = unknown_roots
        # `data:` sources and their fields (None: unknown); None: no `data:` section.
        self.data = data
        self.diagnostics: list[Diagnostic] = []
        self._seen: set[tuple[Path_, str]] = set()
        # Per workflow: the node ids reachable from its entry (filled by `reachability`).
        self.reachable: dict[str, frozenset[str]] = {}
        self.actions_raw: Mapping[str, Any] = as_map(as_map(doc.data).get("actions"))

    def _add(self, path: Path_, code: str, message: str, **kw: Any) -> None:
        if path not in self.failed:
            self.diagnostics.append(self.doc.diag(path, code, message, **kw))

    # -- reachability ------------------------------------------------------------------------
    def reachability(self, wf: WorkflowSpec) -> None:
        self.reachable[wf.name] = frozenset(wf.nodes)
        if wf.linear or not wf.nodes or wf.name in self.open_edges:
            return
        seen = {wf.entry}
        stack = [wf.entry]
        for h in _handler_gotos((*wf.on_error, *wf.on_timeout)):
            if h in wf.nodes and h not in seen:
                seen.add(h)
                stack.append(h)
        while stack:
            node = wf.nodes.get(stack.pop())
            if node is None:
                continue
            for nxt in successors(node):
                if nxt in wf.nodes and nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        self.reachable[wf.name] = frozenset(seen)
        for node in wf.nodes.values():
            path: Path_ = ("workflows", wf.name, "nodes", node.index)
            if node.id not in seen:
                self._add(
                    (*path, "id"),
                    "unreachable-node",
                    f"node '{node.id}' can never run: no transition, branch, join or goto "
                    f"leads to it from the entry node '{wf.entry}'",
                    value=node.id,
                    expected="a node reachable from the first node of the workflow",
                )
            if node.type in ("action", "checkpoint") and not node.transitions:
                self._add(
                    path,
                    "no-transitions",
                    f"{node.type} node '{node.id}' has no transitions, so every task reaching "
                    "it would fail with 'no-transition'",
                    expected="controls.exec.transitions or controls.flow.transitions",
                )

    # -- variable graph -------------------------------------------------------------------------
    def producers(self, wf: WorkflowSpec) -> dict[str, tuple[tuple[str, str], ...]]:
        """Per node: the (variable, scope) pairs its action saves (save-as, capture)."""
        out: dict[str, tuple[tuple[str, str], ...]] = {}
        for node in wf.nodes.values():
            if node.action is not None:
                saved = saved_vars(node.action)
                if saved:
                    out[node.id] = saved
        return out

    def available(self, wf: WorkflowSpec) -> dict[str, frozenset[str]]:
        """Per node: the variables some earlier node on some path may have produced."""
        avail: dict[str, set[str]] = {n: set() for n in wf.nodes}
        for producer, pairs in self.producers(wf).items():
            for var, scope in pairs:
                if scope in ("user-local", "global"):
                    # These outlive the pass: any node may read what the user's earlier pass
                    # (or, for global, another user) saved; only the node order of one pass
                    # limits workbook and task-local variables.
                    for names in avail.values():
                        names.add(var)
                    continue
                stack = list(successors(wf.nodes[producer]))
                seen: set[str] = set()
                while stack:
                    nid = stack.pop()
                    if nid in seen or nid not in wf.nodes:
                        continue
                    seen.add(nid)
                    avail[nid].add(var)
                    stack.extend(successors(wf.nodes[nid]))
        return {k: frozenset(v) for k, v in avail.items()}

    def check_workflow(
        self, wf: WorkflowSpec, scenarios: Iterable[ScenarioSpec], saved_anywhere: frozenset[str]
    ) -> None:
        scenarios = list(scenarios)
        pools = tuple(
            self.resources[p] for s in scenarios for p in s.inherit if p in self.resources
        )
        # `user.context` keys that are no workbook field are the entry's variables from the
        # pass's start (`{{KEY}}`, `{{workbook.KEY}}`): defined where every scenario running
        # this workflow sets them.
        given = self._context_vars(scenarios)
        avail = {k: v | given for k, v in self.available(wf).items()}
        saved_anywhere = saved_anywhere | given
        all_vars = given | frozenset(v for pairs in self.producers(wf).values() for v, _ in pairs)
        base: Path_ = ("workflows", wf.name)
        ordered = wf.name not in self.open_edges
        reachable = self.reachable.get(wf.name, frozenset(wf.nodes))
        for node in wf.nodes.values():
            if node.id not in reachable:
                continue  # reported as unreachable; what it reads is not a second finding
            own = (
                frozenset(v for v, _ in saved_vars(node.action))
                if node.action is not None
                else frozenset[str]()
            )
            ctx = _Context(avail[node.id], saved_anywhere, pools, bool(pools), False, ordered)
            if node.action is not None:
                self._check_action(node.action, ctx)
            if (*base, "nodes", node.index) in self.failed:
                continue  # a stub: its own transitions and handlers failed the schema
            after = _Context(
                avail[node.id] | own, saved_anywhere, pools, bool(pools), False, ordered
            )
            raw_tr, tr_path = self._node_transitions(wf, node)
            self._check_raw(raw_tr, tr_path, after)
            handler_ctx = _Context(after.vars, saved_anywhere, pools, bool(pools), True, ordered)
            for key in ("on-error", "on-timeout"):
                raw, path = self._node_handlers(wf, node, key)
                self._check_raw(raw, path, handler_ctx)
            self._check_handler_actions((*node.on_error, *node.on_timeout), handler_ctx)
        if (*base, "controls") in self.failed:
            return
        wf_ctx = _Context(all_vars, saved_anywhere, pools, bool(pools), True, ordered)
        controls = self._raw(base)
        for key in ("on-error", "on-timeout"):
            sub = (controls.get("controls") or {}) if not wf.linear else controls
            self._check_raw(
                sub.get(key), (*base, *(() if wf.linear else ("controls",)), key), wf_ctx
            )

    def _context_vars(self, scenarios: list[ScenarioSpec]) -> frozenset[str]:
        sets = [
            frozenset(k for k in s.context if self.workbook.context_path(k).startswith("vars."))
            for s in scenarios
        ]
        return frozenset.intersection(*sets) if sets else frozenset()

    def check_exits(self, all_vars: frozenset[str], pools: tuple[ResourceSpec, ...]) -> None:
        ctx = _Context(all_vars, all_vars, pools, bool(pools), True)
        for name, body in as_map(as_map(self.doc.data).get("monitoring")).items():
            self._check_raw(body, ("monitoring", name), ctx)

    def check_resources(self) -> None:
        for name, spec in self.resources.items():
            raw = as_map(as_map(as_map(self.doc.data).get("resources")).get(name))
            hc = raw.get("health-check")
            if isinstance(hc, Mapping):
                ctx = _Context(frozenset(), frozenset(), (spec,), True, True)
                self._check_raw(hc, ("resources", name, "health-check"), ctx)

    # -- internals ---------------------------------------------------------------------------------
    def _raw(self, path: Path_) -> Mapping[str, Any]:
        node: Any = self.doc.data
        for key in path:
            node = node[key]
        return node if isinstance(node, Mapping) else {}

    def _node_transitions(self, wf: WorkflowSpec, node: NodeSpec) -> tuple[Any, Path_]:
        if wf.linear:
            return None, ()
        base: Path_ = ("workflows", wf.name, "nodes", node.index, "controls")
        controls = self._raw(("workflows", wf.name, "nodes", node.index)).get("controls") or {}
        for key in ("exec", "flow"):
            block = controls.get(key) or {}
            if "transitions" in block:
                return block["transitions"], (*base, key, "transitions")
        return None, ()

    def _node_handlers(self, wf: WorkflowSpec, node: NodeSpec, key: str) -> tuple[Any, Path_]:
        if wf.linear:
            return None, ()
        controls = self._raw(("workflows", wf.name, "nodes", node.index)).get("controls") or {}
        exec_ = controls.get("exec") or {}
        path: Path_ = ("workflows", wf.name, "nodes", node.index, "controls", "exec", key)
        return exec_.get(key), path

    def _check_action(self, action: ActionSpec, ctx: _Context) -> None:
        raw = self.actions_raw.get(action.name)
        if isinstance(raw, Mapping):
            self._check_raw(raw.get("with"), ("actions", action.name, "with"), ctx)
            save = raw.get("save-as")
            if isinstance(save, Mapping) and action.save_as is not None:
                own = _Context(
                    ctx.vars | {action.save_as.var}, ctx.all_vars, ctx.pools, ctx.resource_ok, False
                )
                self._check_raw(save, ("actions", action.name, "save-as"), own)

    def _check_handler_actions(self, handlers: Iterable[Handler], ctx: _Context) -> None:
        for h in handlers:
            if isinstance(h, HandlerCall) and h.action.name in self.actions_raw:
                self._check_action(h.action, ctx)

    def _check_raw(self, raw: Any, path: Path_, ctx: _Context) -> None:
        if raw is None or path in self.failed:
            return
        for sub, text in iter_templates(raw):
            if "{{" not in text:
                continue
            try:
                tpl = compile_template(text)
            except TemplateSyntaxError:
                continue  # reported by the builder
            for name in sorted(tpl.names):
                self._check_name(name, (*path, *sub), ctx)

    def _check_name(self, name: tuple[str, ...], path: Path_, ctx: _Context) -> None:
        problem = self._name_problem(name, ctx)
        if problem is None:
            return
        dotted = ".".join(name)
        if (path, dotted) in self._seen:
            return
        self._seen.add((path, dotted))
        message, expected, candidates = problem
        hint = None
        # Match the part that is wrong: the root when it is unknown, else the field under it.
        known_root = name[0] in _RUNTIME_ROOTS or name[0] in ctx.all_vars
        word = name[1] if known_root and len(name) > 1 else name[0]
        if name[0] == "data" and self.data is not None and len(name) > 1:
            word = name[2] if len(name) > 2 and name[1] in self.data else name[1]
        close = difflib.get_close_matches(word, candidates, n=1)
        if close:
            hint = f"did you mean '{close[0]}'?"
        self._add(path, "undefined-variable", message, value=dotted, expected=expected, hint=hint)

    def _name_problem(
        self, name: tuple[str, ...], ctx: _Context
    ) -> tuple[str, str, list[str]] | None:
        root = name[0]
        rest = name[1:]
        if root in self.unknown_roots or (root not in _RUNTIME_ROOTS and "*" in self.unknown_roots):
            return None  # what declares these failed an earlier check
        if root == "env":
            if rest and rest[0] not in ENV_NAMES:
                return (
                    f"'env.{rest[0]}' is not a runtime value",
                    "env.<one of " + ", ".join(sorted(ENV_NAMES)) + ">",
                    sorted(ENV_NAMES),
                )
            return None
        if root == "global":
            allowed = {"name", "version", *self.globals}
            if rest and rest[0] not in allowed:
                return (
                    f"'global.{rest[0]}' is not defined",
                    "global.name, global.version or a key of the top-level 'globals' mapping",
                    sorted(allowed),
                )
            return None
        if root == "error":
            if not ctx.error_ok:
                return (
                    "'error.*' is only defined inside error handlers",
                    "a name produced earlier in the workflow",
                    [],
                )
            if rest and rest[0] not in ERROR_NAMES:
                return (
                    f"'error.{rest[0]}' does not exist",
                    "error.code, error.class or error.message",
                    sorted(ERROR_NAMES),
                )
            return None
        if root == "data" and self.data is not None:
            return self._data_problem(rest)
        if root == "resource":
            return self._resource_problem(rest, ctx)
        if root == "workbook":
            return self._workbook_problem(rest, ctx)
        if root in ctx.vars or (root in ctx.all_vars and not ctx.ordered):
            return None
        if root in ctx.all_vars:
            return (
                f"'{root}' is read before any earlier node can produce it (save-as, capture)",
                f"'{root}' saved by a node that runs before this one",
                sorted(ctx.vars),
            )
        known = sorted({*ctx.all_vars, "resource", "workbook", "env", "global"})
        return (
            f"undefined variable '{root}': no action saves it (save-as, capture) and it is "
            "not a runtime root",
            "a save-as or capture variable or one of resource, workbook, env, global",
            known,
        )

    def _data_problem(self, rest: tuple[str, ...]) -> tuple[str, str, list[str]] | None:
        sources = self.data or {}
        if not rest:
            return None
        if rest[0] not in sources:
            return (
                f"'data.{rest[0]}' is not a data source",
                "data.<one of the sources under data:>",
                sorted(sources),
            )
        fields = sources[rest[0]]
        if len(rest) > 1 and fields is not None and rest[1] not in fields:
            return (
                f"'data.{rest[0]}.{rest[1]}' is not a field of data source '{rest[0]}'",
                "one of the header's fields: " + ", ".join(sorted(fields)),
                sorted(fields),
            )
        return None

    def _resource_problem(
        self, rest: tuple[str, ...], ctx: _Context
    ) -> tuple[str, str, list[str]] | None:
        if not ctx.resource_ok:
            return (
                "'resource.*' is read but no scenario running this workflow inherits a "
                "resource pool",
                "user.inherit: [POOL] on the scenario",
                [],
            )
        if not rest:
            return None
        fields = {f for p in ctx.pools for f in p.parser_fields}
        names = {p.name for p in ctx.pools}
        if any(p.parser_format == "yaml" or p.type == "file_blob" for p in ctx.pools):
            return None  # yaml manifests and blobs carry fields only known at run time
        if rest[0] in fields or rest[0] in names:
            return None
        return (
            f"'resource.{rest[0]}' is not a field of the leased item",
            "one of the manifest fields: " + ", ".join(sorted(fields)),
            sorted(fields | names),
        )

    def _workbook_problem(
        self, rest: tuple[str, ...], ctx: _Context
    ) -> tuple[str, str, list[str]] | None:
        if not rest:
            return None
        head = rest[0]
        sections = self.workbook.defaults
        allowed = {*self.workbook.expose, *sections, *WORKBOOK_IDS, *ctx.all_vars}
        if head not in allowed:
            return (
                f"'workbook.{head}' is neither an expose alias, a section, user_id/task_id "
                "nor a saved variable",
                "an alias from workbook.expose or a section name",
                sorted(allowed),
            )
        if head in sections and len(rest) > 1:
            fields = set(sections[head]) | {
                k.split(".", 2)[1] for k in self.workbook.descriptions if k.startswith(head + ".")
            }
            if rest[1] not in fields:
                return (
                    f"'workbook.{head}.{rest[1]}' is not a field of section '{head}'",
                    "a field listed in the section's defaults or fields",
                    sorted(fields),
                )
        return None
