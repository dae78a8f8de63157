"""Reference, unit and path checks on a schema-valid scenario, all problems in one pass."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from wbsrun.dsl._failed import NONE, Failed
from wbsrun.dsl._stubs import node_type
from wbsrun.dsl.bundle import check_bundle_paths
from wbsrun.dsl.plan import LAST_STABLE_POINT, RUNNER_FIELDS
from wbsrun.dsl.source import PathKey, SourceDoc, did_you_mean, render_value
from wbsrun.dsl.units import check_units
from wbsrun.errors import Diagnostic

__all__ = [
    "BUILTIN_PROVIDES",
    "CLOSING_STATES",
    "SPECIAL_ACTIONS",
    "SPECIAL_TARGETS",
    "WORKBOOK_FIELDS",
    "check_references",
    "reference_checks",
]

BUILTIN_PROVIDES: Final[Mapping[str, frozenset[str]]] = {
    "http": frozenset({"get", "post", "put", "patch", "delete", "head", "health"}),
    "logger": frozenset({"debug", "info", "warn", "error", "log"}),
    "resource-manager": frozenset({"allocate_pair", "release_pair", "mount_file", "track_lease"}),
}
SPECIAL_ACTIONS: Final = frozenset({"progress.rollback", "resource.release"})
SPECIAL_TARGETS: Final = frozenset({"monitoring.retry", "closing.rollback"})
CLOSING_STATES: Final = ("closing.success", "closing.timeout", "closing.error", "closing.rollback")
ERROR_CATALOG: Final = "progress.errors"
WORKBOOK_FIELDS: Final = RUNNER_FIELDS


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _seq(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _hint(value: str, candidates: Iterable[str]) -> str | None:
    names = sorted(set(candidates))
    close = did_you_mean(value, names)
    if close or not names:
        return close
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return f"known: {shown}"


def _with_wasm_entries(
    provides: Mapping[str, frozenset[str]], data: Mapping[str, Any], res_dir: Path
) -> Mapping[str, frozenset[str]]:
    """A wasi-component whose entry is in the bundle provides the calls it lists under
    `capabilities` (a plugin answers any call it is given; the list is the contract), and
    with `fallback: builtin` those of the built-in too (docs/wasi.md)."""
    out = dict(provides)
    for comp in map(_map, _seq(data.get("components"))):
        name, entry = comp.get("name"), comp.get("entry")
        if comp.get("kind") != "wasi-component" or not isinstance(name, str):
            continue
        if not isinstance(entry, str) or not (res_dir / entry).is_file():
            continue
        calls = frozenset(str(c) for c in _seq(comp.get("capabilities")))
        if comp.get("fallback") == "builtin":
            calls |= provides.get(name, frozenset())
        out[name] = calls
    return out


class _Ctx:
    """The document's name tables and the diagnostics found so far."""

    def __init__(
        self,
        doc: SourceDoc,
        res_dir: Path,
        provides: Mapping[str, frozenset[str]],
        failed: Failed = NONE,
    ):
        self.doc = doc
        self.failed = failed
        self.res_dir = res_dir
        self.data = _map(doc.data)
        self.provides = _with_wasm_entries(provides, self.data, res_dir)
        self.components: dict[str, Mapping[str, Any]] = {}
        for comp in _seq(self.data.get("components")):
            name = _map(comp).get("name")
            if isinstance(name, str):
                self.components.setdefault(name, _map(comp))
        # The built-ins need no declaration; undeclared, they list no capabilities (so none
        # of their calls is warned about). Declaring one pins its version and capabilities.
        for name in BUILTIN_PROVIDES:
            if name in provides:
                self.components.setdefault(name, {})
        self.actions = _map(self.data.get("actions"))
        self.workflows = _map(self.data.get("workflows"))
        self.resources = _map(self.data.get("resources"))
        self.exits = frozenset(_map(self.data.get("monitoring")))
        self.out: list[Diagnostic] = []
        self.capability_uses: dict[tuple[str, str], list[PathKey]] = {}
        # Workflows with a transition, branch or goto to an unknown target: their graph
        # is incomplete, so the flow checks do not judge reachability there.
        self.open_edges: set[str] = set()
        # A failed component without a readable name hides which names are declared.
        self.components_open = ("components",) in failed or any(
            ("components", i) in failed and not isinstance(_map(c).get("name"), str)
            for i, c in enumerate(_seq(self.data.get("components")))
        )

    def add(self, path: PathKey, code: str, message: str, value: object, **kw: Any) -> None:
        if path in self.failed:
            return  # inside an element an earlier check already reported
        self.out.append(self.doc.diag(path, code, message, value=value, **kw))

    def unknowable(self, section: PathKey) -> bool:
        """A section that failed as a whole: which names it declares cannot be told."""
        return section in self.failed

    def nodes_open(self, workflow: str) -> bool:
        """Whether a failed node (or workflow) hides a node id of ``workflow``."""
        if ("workflows", workflow) in self.failed:
            return True
        body = _map(self.workflows.get(workflow))
        key, items = ("id", "nodes") if "nodes" in body else ("ref", "steps")
        return any(
            ("workflows", workflow, items, i) in self.failed
            and not isinstance(_map(node).get(key), str)
            for i, node in enumerate(_seq(body.get(items)))
        )

    def nodes(self, workflow: str) -> dict[str, Mapping[str, Any]]:
        """Node ids of a graph workflow (step refs of a linear one) to their bodies."""
        body = _map(self.workflows.get(workflow))
        key, items = ("id", "nodes") if "nodes" in body else ("ref", "steps")
        out: dict[str, Mapping[str, Any]] = {}
        for node in map(_map, _seq(body.get(items))):
            if isinstance(node.get(key), str):
                out.setdefault(node[key], node)
        return out


def _edges(node: Mapping[str, Any]) -> list[str]:
    controls = _map(node.get("controls"))
    parts = [_seq(_map(controls.get(part)).get("transitions")) for part in ("exec", "flow")]
    return [str(_map(t)["edge"]) for items in parts for t in items if "edge" in _map(t)]


# -- components and calls ---------------------------------------------------------------------
def _check_components(ctx: _Ctx) -> None:
    seen: set[str] = set()
    for i, comp in enumerate(_seq(ctx.data.get("components"))):
        name = _map(comp).get("name")
        if not isinstance(name, str):
            continue
        path = ("components", i, "name")
        if name in seen:
            ctx.add(path, "duplicate-name", f"component '{name}' is declared twice", name)
        seen.add(name)
        if name not in ctx.provides:
            builtins = ", ".join(sorted(ctx.provides))
            message = f"component '{name}' has no registered implementation (known: {builtins})"
            ctx.add(path, "unknown-component", message, name, hint=_hint(name, ctx.provides))


def _check_call(
    ctx: _Ctx, comp: object, call: object, comp_path: PathKey, call_path: PathKey
) -> None:
    if not isinstance(comp, str) or not isinstance(call, str):
        return
    if comp not in ctx.components:
        if ctx.components_open:
            return
        message = (
            f"component '{comp}' is neither built in ({', '.join(BUILTIN_PROVIDES)}) "
            "nor declared under components"
        )
        ctx.add(comp_path, "unknown-component", message, comp, hint=_hint(comp, ctx.components))
        return
    provided = ctx.provides.get(comp)
    if provided is None:
        return  # the component entry itself is already reported
    if call not in provided:
        message = f"component '{comp}' has no call '{call}'"
        kw = {"expected": ", ".join(sorted(provided)), "hint": _hint(call, provided)}
        ctx.add(call_path, "unknown-call", message, call, **kw)
        return
    capabilities = ctx.components[comp].get("capabilities")
    if isinstance(capabilities, list) and call not in capabilities:
        ctx.capability_uses.setdefault((comp, call), []).append(call_path)


def _report_capabilities(ctx: _Ctx) -> None:
    # One warning per (component, call), at its first use: the reference relies on this.
    for (comp, call), paths in ctx.capability_uses.items():
        first = min(paths, key=lambda p: (ctx.doc.where(p).line, ctx.doc.where(p).column))
        caps = ", ".join(str(c) for c in _seq(ctx.components[comp].get("capabilities")))
        uses = f" (used {len(paths)} times)" if len(paths) > 1 else ""
        message = f"call '{call}' of component '{comp}' is not listed in its capabilities{uses}"
        kw = {"expected": caps, "severity": "warning"}
        hint = f"add '{call}' to the capabilities of component '{comp}'"
        ctx.add(first, "capability-not-declared", message, call, hint=hint, **kw)


def _check_declared_action(ctx: _Ctx, ref: object, path: PathKey) -> None:
    if isinstance(ref, str) and ref not in ctx.actions and not ctx.unknowable(("actions",)):
        message = f"action '{ref}' is not declared under actions"
        ctx.add(path, "unknown-action", message, ref, hint=_hint(ref, ctx.actions))


def _check_action_ref(ctx: _Ctx, ref: object, path: PathKey) -> None:
    """A handler or probe action: a declared action, component.call, or a built-in step."""
    if not isinstance(ref, str) or ref in ctx.actions or ref in SPECIAL_ACTIONS:
        return
    comp, dot, call = ref.partition(".")
    comp = "logger" if comp == "log" else comp
    if dot and comp in ctx.components:
        _check_call(ctx, comp, call, path, path)
        return
    if ctx.unknowable(("actions",)) or ctx.components_open:
        return
    known = [*ctx.actions, *SPECIAL_ACTIONS]
    known += [f"{c}.{k}" for c in ctx.components for k in ctx.provides.get(c, ())]
    message = (
        f"'{ref}' is not a declared action, a call of a declared component (component.call), "
        "progress.rollback or resource.release"
    )
    ctx.add(path, "unknown-action", message, ref, hint=_hint(ref, known))


def _check_target(
    ctx: _Ctx, target: object, path: PathKey, nodes: Iterable[str] | None, what: str
) -> None:
    """``nodes`` None: the workflow's node ids cannot all be told (a node failed)."""
    if not isinstance(target, str) or nodes is None or ctx.unknowable(("monitoring",)):
        return
    known = {*nodes, *ctx.exits, *SPECIAL_TARGETS}
    if target not in known:
        if path[0] == "workflows" and path not in ctx.failed:
            ctx.open_edges.add(str(path[1]))
        message = (
            f"{what} '{target}' is not a node of this workflow, a monitoring exit, "
            "monitoring.retry or closing.rollback"
        )
        ctx.add(path, "unknown-target", message, target, hint=_hint(target, known))


# -- actions, handlers, workflows ---------------------------------------------------------------
def _check_actions(ctx: _Ctx) -> None:
    for name, action in ctx.actions.items():
        body, base = _map(action), ("actions", name)
        comp, call = body.get("component"), body.get("call")
        _check_call(ctx, comp, call, (*base, "component"), (*base, "call"))
        if comp == "http":
            _check_blobs(ctx, _map(body.get("with")), (*base, "with"))


def _check_blobs(ctx: _Ctx, args: Mapping[str, Any], base: PathKey) -> None:
    """http `body-from` and multipart `file` name a file_blob resource (unless templated)."""
    if ctx.unknowable(("resources",)):
        return
    blobs = [n for n, r in ctx.resources.items() if _map(r).get("type") == "file_blob"]
    found = [((*base, "body-from"), args.get("body-from"))]
    parts = args.get("multipart")
    if isinstance(parts, list):
        found += [
            ((*base, "multipart", i, "file"), _map(p).get("file")) for i, p in enumerate(parts)
        ]
    for path, value in found:
        if isinstance(value, str) and "{{" not in value:
            _check_name(ctx, value, path, blobs, "unknown-resource", "file_blob resource")


def _handler_lists(ctx: _Ctx) -> Iterator[tuple[PathKey, Any, frozenset[str] | None]]:
    for wf_name, wf in ctx.workflows.items():
        nodes = None if ctx.nodes_open(wf_name) else frozenset(ctx.nodes(wf_name))
        body, base = _map(wf), ("workflows", wf_name)
        for key in ("on-error", "on-timeout"):
            yield (*base, key), body.get(key), nodes
            yield (*base, "controls", key), _map(body.get("controls")).get(key), nodes
            for i, node in enumerate(_seq(body.get("nodes"))):
                exec_ = _map(_map(_map(node).get("controls")).get("exec"))
                yield (*base, "nodes", i, "controls", "exec", key), exec_.get(key), nodes
    for name, res in ctx.resources.items():
        handlers = _map(_map(res).get("health-check")).get("on-failure")
        yield ("resources", name, "health-check", "on-failure"), handlers, frozenset()
    for name, exit_ in _map(ctx.data.get("monitoring")).items():
        yield ("monitoring", name, "actions"), _map(exit_).get("actions"), frozenset()


def _check_handlers(ctx: _Ctx) -> None:
    for path, handlers, nodes in _handler_lists(ctx):
        for i, item in enumerate(_seq(handlers)):
            body = _map(item)
            _check_action_ref(ctx, body.get("action"), (*path, i, "action"))
            _check_target(ctx, body.get("goto"), (*path, i, "goto"), nodes, "goto target")
            _check_rollback_to(ctx, body, (*path, i))


def _checkpoints(ctx: _Ctx, path: PathKey) -> list[str] | None:
    """The checkpoint node ids a rollback written at `path` may name: its workflow's, or
    every workflow's for a resource's on-failure and an exit's actions (any task may run
    those); None when a workflow's nodes cannot all be told."""
    names = [str(path[1])] if path[0] == "workflows" else list(ctx.workflows)
    out: list[str] = []
    for name in names:
        if ctx.nodes_open(name):
            return None
        nodes = map(_map, _seq(_map(ctx.workflows.get(name)).get("nodes")))
        out.extend(
            n["id"] for n in nodes if n.get("type") == "checkpoint" and isinstance(n.get("id"), str)
        )
    return out


def _check_rollback_to(ctx: _Ctx, body: Mapping[str, Any], path: PathKey) -> None:
    """`progress.rollback`'s `to`: the last stable point or a checkpoint node."""
    if body.get("action") == "progress.rollback":
        to, where = body.get("to"), (*path, "to")
    elif "progress.rollback" in body:
        value = body["progress.rollback"]
        if isinstance(value, Mapping):
            to, where = value.get("to"), (*path, "progress.rollback", "to")
        else:
            to, where = value, (*path, "progress.rollback")
    else:
        return
    if not isinstance(to, str) or to == LAST_STABLE_POINT:
        return
    known = _checkpoints(ctx, path)
    if known is None or to in known:
        return
    message = f"rollback target '{to}' is neither {LAST_STABLE_POINT} nor a checkpoint node" + (
        " of this workflow" if path[0] == "workflows" else " of any workflow"
    )
    options = [LAST_STABLE_POINT, *known]
    ctx.add(
        where, "unknown-target", message, to, expected=", ".join(options), hint=_hint(to, options)
    )


def _check_workflows(ctx: _Ctx) -> None:
    for wf_name, wf in ctx.workflows.items():
        body, base = _map(wf), ("workflows", wf_name)
        for i, step in enumerate(_seq(body.get("steps"))):
            _check_declared_action(ctx, _map(step).get("ref"), (*base, "steps", i, "ref"))
        ids = None if ctx.nodes_open(wf_name) else ctx.nodes(wf_name)
        first_seen: dict[str, int] = {}
        for i, node in enumerate(map(_map, _seq(body.get("nodes")))):
            path = (*base, "nodes", i)
            node_id = node.get("id")
            if isinstance(node_id, str) and first_seen.setdefault(node_id, i) != i:
                line = ctx.doc.where((*base, "nodes", first_seen[node_id], "id")).line
                message = (
                    f"node id '{node_id}' is used twice in this workflow (first at line {line})"
                )
                ctx.add((*path, "id"), "duplicate-node", message, node_id)
            if node_type(node) == "action":
                _check_declared_action(ctx, node.get("action"), (*path, "action"))
            if node.get("type") == "terminus" and node.get("state") not in CLOSING_STATES:
                state = str(node.get("state"))
                kw = {"expected": ", ".join(CLOSING_STATES), "hint": _hint(state, CLOSING_STATES)}
                message = f"terminus state '{state}' is not a closing state"
                ctx.add((*path, "state"), "bad-state", message, state, **kw)
            _check_node_targets(ctx, node, path, ids)


def _check_node_targets(
    ctx: _Ctx, node: Mapping[str, Any], path: PathKey, ids: Iterable[str] | None
) -> None:
    controls = _map(node.get("controls"))
    for part in ("exec", "flow"):
        for j, item in enumerate(_seq(_map(controls.get(part)).get("transitions"))):
            where = (*path, "controls", part, "transitions", j, "to")
            _check_target(ctx, _map(item).get("to"), where, ids, "transition target")
    flow = _map(controls.get("flow"))
    for j, branch in enumerate(_seq(flow.get("branches"))):
        where = (*path, "controls", "flow", "branches", j, "to")
        _check_target(ctx, _map(branch).get("to"), where, ids, "branch target")
    join_to = _map(flow.get("join")).get("to")
    _check_target(ctx, join_to, (*path, "controls", "flow", "join", "to"), ids, "join target")


# -- load, resources, monitoring --------------------------------------------------------------
def _check_scenarios(ctx: _Ctx) -> None:
    profiles = _map(_map(ctx.data.get("load")).get("profiles"))
    names: set[str] = set()
    for i, scenario in enumerate(map(_map, _seq(_map(ctx.data.get("load")).get("scenarios")))):
        base = ("load", "scenarios", i)
        name = scenario.get("name")
        if isinstance(name, str) and name in names:
            ctx.add((*base, "name"), "duplicate-name", f"scenario '{name}' is defined twice", name)
        names.add(str(name))
        profile = scenario.get("profile")
        if not ctx.unknowable(("load", "profiles")):
            _check_name(ctx, profile, (*base, "profile"), profiles, "unknown-profile", "profile")
        for key, exit_ in _map(scenario.get("exits")).items():
            where: PathKey = (*base, "exits", key)
            if not ctx.unknowable(("monitoring",)):
                _check_name(ctx, exit_, where, ctx.exits, "unknown-exit", "monitoring exit")
        for j, pool in enumerate(_seq(_map(scenario.get("user")).get("inherit"))):
            where = (*base, "user", "inherit", j)
            if not ctx.unknowable(("resources",)):
                _check_name(ctx, pool, where, ctx.resources, "unknown-resource", "resource")
        wf = scenario.get("workflow")
        if ctx.unknowable(("workflows",)) or not isinstance(wf, str):
            continue
        if _check_name(ctx, wf, (*base, "workflow"), ctx.workflows, "unknown-workflow", "workflow"):
            _check_scenario_nodes(ctx, scenario, base, wf)


def _check_name(
    ctx: _Ctx, value: object, path: PathKey, known: Iterable[str], code: str, what: str
) -> bool:
    """True when ``value`` is absent or names one of ``known``; reports it otherwise."""
    names = set(known)
    if not isinstance(value, str) or value in names:
        return True
    ctx.add(path, code, f"{what} '{value}' is not defined", value, hint=_hint(value, names))
    return False


def _check_scenario_nodes(ctx: _Ctx, scenario: Mapping[str, Any], base: PathKey, wf: str) -> None:
    if ctx.nodes_open(wf):
        return  # a failed node (or workflow) hides which node ids exist
    nodes = ctx.nodes(wf)
    what = f"node of workflow '{wf}'"
    for j, milestone in enumerate(map(_map, _seq(scenario.get("milestones")))):
        where = (*base, "milestones", j)
        node = milestone.get("node")
        if not _check_name(ctx, node, (*where, "node"), nodes, "unknown-node", what):
            continue
        edge = milestone.get("edge")
        graph = "nodes" in _map(ctx.workflows[wf])
        if isinstance(node, str) and isinstance(edge, str) and graph:
            edges = _edges(nodes[node])
            if edge not in edges:
                message = f"edge '{edge}' is not a transition of node '{node}'"
                kw = {
                    "expected": ", ".join(edges) or "(no transitions)",
                    "hint": _hint(edge, edges),
                }
                ctx.add((*where, "edge"), "unknown-edge", message, edge, **kw)
    sources = _seq(_map(scenario.get("progress-aggregation")).get("sources"))
    for j, source in enumerate(map(_map, sources)):
        where = (*base, "progress-aggregation", "sources", j, "node")
        _check_name(ctx, source.get("node"), where, nodes, "unknown-node", what)


def _check_resources(ctx: _Ctx) -> None:
    for name, res in ctx.resources.items():
        body, base = _map(res), ("resources", name)
        provider = _map(body.get("provider"))
        comp = provider.get("component")
        if isinstance(comp, str):
            comp_path = (*base, "provider", "component")
            for role, call in _map(provider.get("calls")).items():
                _check_call(ctx, comp, call, comp_path, (*base, "provider", "calls", role))
            if not _map(provider.get("calls")):
                _check_name(ctx, comp, comp_path, ctx.components, "unknown-component", "component")
        probe = _map(_map(body.get("health-check")).get("probe"))
        _check_action_ref(ctx, probe.get("action"), (*base, "health-check", "probe", "action"))


def _check_monitoring(ctx: _Ctx) -> None:
    for name, exit_ in _map(ctx.data.get("monitoring")).items():
        catalog = _map(_map(exit_).get("classification")).get("catalog")
        if isinstance(catalog, str) and catalog != ERROR_CATALOG:
            message = f"error catalogue '{catalog}' is unknown; the catalogue is '{ERROR_CATALOG}'"
            path = ("monitoring", name, "classification", "catalog")
            ctx.add(path, "unknown-catalog", message, catalog, expected=ERROR_CATALOG)


# -- workbook ---------------------------------------------------------------------------------
def _known_paths(section: str, body: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """(exact paths from defaults, field paths whose sub-paths are also accepted)."""
    exact: set[str] = set()
    stack: list[tuple[str, object]] = [("", body.get("defaults"))]
    while stack:
        prefix, value = stack.pop()
        for key, sub in _map(value).items():
            exact.add(prefix + str(key))
            stack.append((f"{prefix}{key}.", sub))
    fields = {str(_map(f).get("name")) for f in _seq(body.get("fields"))}
    return exact, fields | set(WORKBOOK_FIELDS.get(section, ()))


def _check_workbook(ctx: _Ctx) -> None:
    workbook = _map(ctx.data.get("workbook"))
    sections = _map(workbook.get("sections"))
    for alias, target in _map(workbook.get("expose")).items():
        if not isinstance(target, str):
            continue
        section, _, rest = target.partition(".")
        if ("workbook", "sections", section) in ctx.failed:
            continue
        exact, fields = _known_paths(section, _map(sections.get(section)))
        prefixes = {".".join(rest.split(".")[:n]) for n in range(1, rest.count(".") + 2)}
        if rest not in exact and not prefixes & fields:
            message = f"expose alias '{alias}' points to '{target}', not a known section field"
            kw = {"hint": _hint(rest, exact | fields), "severity": "warning"}
            ctx.add(("workbook", "expose", alias), "unknown-workbook-path", message, target, **kw)
    for section, body in sections.items():
        for i, field in enumerate(map(_map, _seq(_map(body).get("fields")))):
            path = ("workbook", "sections", section, "fields", i, "description")
            _check_description(ctx, field, path)


def _check_description(ctx: _Ctx, field: Mapping[str, Any], path: PathKey) -> None:
    value = field.get("description")
    if value is None or isinstance(value, str):
        return
    kind = "list" if isinstance(value, list) else "mapping"
    written = ctx.doc.raw_text.get(path, render_value(value))
    message = f"description of '{field.get('name')}' reads as a YAML {kind}; kept as written"
    hint = f'quote it to make it plain text: description: "{written}"'
    ctx.add(path, "description-not-text", message, written, hint=hint, severity="warning")


_CHECKS: Final[tuple[Callable[[_Ctx], None], ...]] = (
    _check_components,
    _check_actions,
    _check_handlers,
    _check_workflows,
    _check_scenarios,
    _check_resources,
    _check_monitoring,
    _check_workbook,
    _report_capabilities,
)


def check_references(
    doc: SourceDoc, res_dir: Path, provides: Mapping[str, frozenset[str]]
) -> list[Diagnostic]:
    """Every unresolved name, bad unit and out-of-bundle path in a schema-valid ``doc``."""
    return reference_checks(doc, res_dir, provides)[0]


def reference_checks(
    doc: SourceDoc,
    res_dir: Path,
    provides: Mapping[str, frozenset[str]],
    failed: Failed = NONE,
) -> tuple[list[Diagnostic], frozenset[str]]:
    """`check_references` on the elements that passed the schema (``failed`` holds the
    others), and the workflows whose graph has an unknown target."""
    ctx = _Ctx(doc, res_dir, provides, failed)
    for check in _CHECKS:
        check(ctx)
    ctx.out += check_units(doc, skip=failed.__contains__)
    ctx.out += check_bundle_paths(doc, res_dir, skip=failed.__contains__)
    unique = dict.fromkeys(ctx.out)
    return sorted(unique, key=lambda d: (d.line, d.column, d.code)), frozenset(ctx.open_edges)
