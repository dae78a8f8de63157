"""Build the immutable plan objects from a schema-valid, reference-checked scenario document."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

from wbsrun.dsl._checks_build import response_rules
from wbsrun.dsl._failed import NONE, Failed
from wbsrun.dsl._stubs import as_map, node_type, stub_action, stub_node
from wbsrun.dsl.expr import ExprSyntaxError, compile_expr
from wbsrun.dsl.plan import (
    SAMPLING_MODES,
    ActionSpec,
    ComponentSpec,
    ExitSpec,
    GotoKind,
    Handler,
    HandlerCall,
    HandlerGoto,
    HandlerRelease,
    HandlerRollback,
    HandlerUpdate,
    HealthCheckSpec,
    HealthThreshold,
    Milestone,
    NodeSpec,
    Persist,
    ProfileSpec,
    ProgressSpec,
    ResourceSpec,
    SamplingMode,
    SamplingSpec,
    SaveAs,
    ScenarioSpec,
    ThinkSpec,
    TlsSpec,
    Transition,
    WorkbookSpec,
    WorkflowSpec,
)
from wbsrun.dsl.source import SourceDoc, format_path
from wbsrun.dsl.template import (
    CompiledValue,
    Template,
    TemplateSyntaxError,
    compile_template,
    compile_value,
)
from wbsrun.dsl.think import ThinkError, parse_think
from wbsrun.dsl.units import UnitError, parse_duration, parse_rate, parse_size
from wbsrun.errors import Diagnostic

__all__ = ["PlanBuilder", "freeze", "sampling_spec"]

Path_ = tuple[str | int, ...]
SPECIAL_TARGETS: Mapping[str, GotoKind] = {
    "monitoring.retry": "retry",
    "closing.rollback": "rollback",
}
ALIASES = {"log": "logger"}


def freeze(value: Any) -> Any:
    """Deep-freeze loaded YAML so plan objects can be shared without copying."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def _sets_timeout(with_: Any) -> bool:
    """The call's `with` has a `timeout` of its own: the run's request timeout is not armed
    around it (the component bounds the request itself, docs/operations.md "Limits")."""
    return isinstance(with_, Mapping) and "timeout" in with_


def _split_call(text: str) -> tuple[str, str] | None:
    head, dot, tail = text.partition(".")
    if not dot or not tail:
        return None
    return ALIASES.get(head, head), tail


class PlanBuilder:
    """Turns one document into plan objects, collecting diagnostics instead of raising.

    Elements in ``failed`` (they failed the schema) are left out, or stood in for by stubs
    (actions, nodes) the flow checks can still follow; ``reported`` holds the (path, code)
    pairs an earlier stage reported, which are not reported again."""

    def __init__(
        self,
        doc: SourceDoc,
        res_dir: Path,
        raw_text: str,
        failed: Failed = NONE,
        reported: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        self.doc = doc
        self.data: Mapping[str, Any] = as_map(doc.data)
        self.res_dir = res_dir
        self.lines = raw_text.splitlines()
        self.failed = failed
        self.reported = reported
        self.diagnostics: list[Diagnostic] = []
        self.actions: dict[str, ActionSpec] = {}
        self.exit_names = frozenset(self.section("monitoring"))
        # Failed actions whose saved variable cannot be read: which names the scenario
        # saves is then unknown. Workflows with a failed node that has no readable id:
        # where their edges lead is unknown.
        self.unknown_saves = False
        self.open_graphs: set[str] = set()

    # -- helpers -------------------------------------------------------------------------
    def section(self, *path: str) -> Mapping[str, Any]:
        """A mapping of the document, {} when it is absent or failed as a whole."""
        value: Any = self.data
        for key in path:
            value = as_map(value).get(key)
        return {} if path in self.failed else as_map(value)

    def live(self, items: Mapping[str, Any], *base: str | int) -> dict[str, Any]:
        """The entries of ``items`` (at ``base``) that did not fail."""
        return {k: v for k, v in items.items() if (*base, k) not in self.failed}

    def _silenced(self, path: Path_, code: str) -> bool:
        return path in self.failed or (format_path(path), code) in self.reported

    def error(self, path: Path_, code: str, message: str, **kw: Any) -> None:
        if not self._silenced(path, code):
            self.diagnostics.append(self.doc.diag(path, code, message, **kw))

    def _string_column(self, path: Path_, offset: int) -> tuple[int, int]:
        pos = self.doc.where(path)
        line, col = pos.line, pos.column
        if 0 < line <= len(self.lines):
            text = self.lines[line - 1]
            if 0 < col <= len(text) and text[col - 1] in "\"'":
                col += 1
        return line, col + offset

    def _template_error(self, path: Path_, exc: TemplateSyntaxError | ExprSyntaxError) -> None:
        full = path + tuple(getattr(exc, "path", ()))
        if self._silenced(full, "template-syntax"):
            return
        line, col = self._string_column(full, exc.column)
        base = self.doc.diag(full, "template-syntax", f"invalid expression: {exc.message}")
        self.diagnostics.append(
            Diagnostic(
                code=base.code,
                message=base.message,
                file=base.file,
                line=line,
                column=col,
                path=base.path,
                value=exc.text,
                expected="an expression of the DSL (section 5): names, literals, comparisons, "
                "and/or/not, arithmetic, in, len/int/float/str/lower/upper",
            )
        )

    def value(self, path: Path_, value: Any) -> CompiledValue:
        try:
            return compile_value(value)
        except TemplateSyntaxError as exc:
            self._template_error(path, exc)
            return compile_value(None)

    def template(self, path: Path_, text: str) -> Template:
        try:
            return compile_template(text)
        except TemplateSyntaxError as exc:
            self._template_error(path, exc)
            return compile_template("")

    def duration(self, path: Path_, value: Any) -> float | None:
        if value is None:
            return None
        try:
            return parse_duration(value)
        except UnitError as exc:
            self.error(path, "bad-duration", str(exc), value=repr(value), expected="e.g. 500ms, 5s")
            return None

    def size(self, path: Path_, value: Any) -> int | None:
        if value is None:
            return None
        try:
            return parse_size(value)
        except UnitError as exc:
            self.error(path, "bad-size", str(exc), value=repr(value), expected="e.g. 10MiB")
            return None

    def rate(self, path: Path_, value: Any, scope: str = "per-user") -> float | None:
        """A rate-limit: a bare rate is per user; a mapping has `per-user` and/or `global`."""
        if value is None:
            return None
        if isinstance(value, Mapping):
            value = value.get(scope)
            path = (*path, scope)
            if value is None:
                return None
        elif scope != "per-user":
            return None
        try:
            return parse_rate(value)
        except UnitError as exc:
            self.error(path, "bad-rate", str(exc), value=repr(value), expected="e.g. 50/s")
            return None

    # -- components and actions ---------------------------------------------------------
    def components(self) -> dict[str, ComponentSpec]:
        out: dict[str, ComponentSpec] = {}
        for index, item in enumerate(self.data.get("components") or []):
            path: Path_ = ("components", index)
            out[item["name"]] = ComponentSpec(
                name=item["name"],
                version=str(item.get("version", "0.0.0")),
                kind=item.get("kind", "native"),
                entry=item.get("entry"),
                wit=item.get("wit"),
                capabilities=tuple(item.get("capabilities") or ()),
                metadata=freeze(item.get("metadata") or {}),
                transport=item.get("transport"),
                timeout=self.duration((*path, "timeout"), item.get("timeout")),
                max_body=self.size((*path, "max-body"), item.get("max-body")),
                tls=self.tls(item.get("tls")),
            )
        return out

    def tls(self, raw: Any) -> TlsSpec | None:
        """An http component's `tls:` (the schema checked its keys; the bundle checks, its
        files: inside the bundle and present)."""
        if not isinstance(raw, Mapping):
            return None

        def file(key: str) -> Path | None:
            value = raw.get(key)
            return (self.res_dir / value).resolve() if isinstance(value, str) else None

        return TlsSpec(
            ca_file=file("ca-file"),
            cert_file=file("cert-file"),
            key_file=file("key-file"),
            verify=raw.get("verify") is not False,
        )

    def action(self, name: str, body: Mapping[str, Any], path: Path_) -> ActionSpec:
        component = ALIASES.get(body.get("component", ""), body.get("component", ""))
        save = body.get("save-as")
        save_as: SaveAs | None = None
        if isinstance(save, str):
            save_as = SaveAs(var=save, scope="workbook", persist=None)
        elif isinstance(save, Mapping):
            persist = save.get("persist")
            persist_spec = None
            if isinstance(persist, Mapping):
                persist_spec = Persist(
                    dir=str(persist.get("dir", ".")),
                    filename=self.template(
                        (*path, "save-as", "persist", "filename"),
                        str(persist.get("filename", f"{save['var']}.json")),
                    ),
                )
            scope = cast(
                Literal["workbook", "user-local", "task-local", "global"],
                save.get("scope", "workbook"),
            )
            save_as = SaveAs(var=save["var"], scope=scope, persist=persist_spec)
        return ActionSpec(
            name=name,
            component=component,
            call=body.get("call", ""),
            args=self.value((*path, "with"), body.get("with") or {}),
            save_as=save_as,
            wbs_level=str(body.get("wbs-level", "L5")),
            timeout=self.duration((*path, "timeout"), body.get("timeout")),
            rate_limit=self.rate((*path, "rate-limit"), body.get("rate-limit")),
            rate_limit_global=self.rate((*path, "rate-limit"), body.get("rate-limit"), "global"),
            own_timeout=_sets_timeout(body.get("with")),
            response=response_rules(self.error, body, path),
        )

    def all_actions(self) -> dict[str, ActionSpec]:
        for name, body in self.section("actions").items():
            path = ("actions", name)
            if path not in self.failed:
                self.actions[name] = self.action(name, body, path)
                continue
            self.actions[name] = stub_action(name, body)
            readable = isinstance(body, Mapping) and "save-as" not in body
            if self.actions[name].save_as is None and not readable:
                self.unknown_saves = True
        return self.actions

    def inline_action(self, ref: str, with_: Any, path: Path_) -> ActionSpec | None:
        declared = self.actions.get(ref)
        if declared is not None:
            if with_ is None:
                return declared
            merged = dict(declared.args.render({})) if declared.args.is_constant else None
            args = self.value((*path, "with"), {**(merged or {}), **with_})
            if merged is None:
                # Templated declared args cannot be merged statically: the handler's own wins.
                args = self.value((*path, "with"), with_)
            return ActionSpec(
                name=ref,
                component=declared.component,
                call=declared.call,
                args=args,
                save_as=declared.save_as,
                wbs_level=declared.wbs_level,
                timeout=declared.timeout,
                rate_limit=declared.rate_limit,
                rate_limit_global=declared.rate_limit_global,
                own_timeout=_sets_timeout(with_) or (merged is not None and declared.own_timeout),
                response=declared.response,
            )
        split = _split_call(ref)
        if split is None:
            return None
        return ActionSpec(
            name=ref,
            component=split[0],
            call=split[1],
            args=self.value((*path, "with"), with_ or {}),
            save_as=None,
            wbs_level="L5",
            timeout=None,
            rate_limit=None,
            own_timeout=_sets_timeout(with_),
        )

    # -- handlers -------------------------------------------------------------------------
    def goto_kind(self, target: str, nodes: Mapping[str, Any]) -> GotoKind:
        if target in SPECIAL_TARGETS:
            return SPECIAL_TARGETS[target]
        if target in nodes:
            return "node"
        return "exit"

    def handlers(
        self, items: Sequence[Mapping[str, Any]] | None, path: Path_, nodes: Mapping[str, Any]
    ) -> tuple[Handler, ...]:
        out: list[Handler] = []
        for i, item in enumerate(items or ()):
            out.extend(self._handler(item, (*path, i), nodes))
        return tuple(out)

    def _handler(
        self, item: Mapping[str, Any], path: Path_, nodes: Mapping[str, Any]
    ) -> list[Handler]:
        out: list[Handler] = []
        when = item.get("when")
        update = item.get("update-workbook")
        if isinstance(update, Mapping):
            assignments = tuple(
                (self.workbook_path(key), self.value((*path, "update-workbook", key), val))
                for key, val in update.items()
            )
            out.append(HandlerUpdate(assignments, when))
        rollback = item.get("progress.rollback")
        if isinstance(rollback, Mapping):
            out.append(HandlerRollback(str(rollback.get("to", "last-stable-point")), when))
        ref = item.get("action")
        if isinstance(ref, str):
            out.extend(self._action_handler(ref, item, path, when))
        goto = item.get("goto")
        if isinstance(goto, str):
            out.append(HandlerGoto(goto, self.goto_kind(goto, nodes), when))
        return out

    def _action_handler(
        self, ref: str, item: Mapping[str, Any], path: Path_, when: str | None
    ) -> list[Handler]:
        if ref == "progress.rollback":
            return [HandlerRollback(str(item.get("to", "last-stable-point")), when)]
        if ref == "resource.release":
            with_ = item.get("with")
            handles = item.get("handles")
            if handles is None and isinstance(with_, Mapping):
                handles = with_.get("handles")
                hpath: Path_ = (*path, "with", "handles")
            else:
                hpath = (*path, "handles")
            return [HandlerRelease(handles=self.value(hpath, handles or []), when=when)]
        spec = self.inline_action(ref, item.get("with"), path)
        if spec is None:
            return []  # refs.py already reported the unknown action
        return [HandlerCall(action=spec, when=when)]

    # -- workbook ---------------------------------------------------------------------------
    def workbook_spec(self) -> WorkbookSpec:
        # Unknown section names are reported by the schema and skipped here.
        raw = self.live(self.section("workbook", "sections"), "workbook", "sections")
        sections = {name: body for name, body in raw.items() if isinstance(body, Mapping)}
        defaults = {name: freeze(body.get("defaults") or {}) for name, body in sections.items()}
        descriptions: dict[str, str] = {}
        for name, body in sections.items():
            for i, fld in enumerate(body.get("fields") or ()):
                descriptions[f"{name}.{fld['name']}"] = self._description_text(
                    ("workbook", "sections", name, "fields", i, "description"),
                    fld.get("description"),
                )
        return WorkbookSpec(
            defaults=MappingProxyType(defaults),
            process_groups=MappingProxyType(
                {n: str(b.get("process-group", "")) for n, b in sections.items()}
            ),
            descriptions=MappingProxyType(descriptions),
            expose=MappingProxyType(dict(self.section("workbook", "expose"))),
        )

    def _description_text(self, path: Path_, value: Any) -> str:
        if isinstance(value, str) or value is None:
            return value or ""
        raw = getattr(self.doc, "raw_text", {}).get(path)
        return str(raw) if raw is not None else str(value)

    def workbook_path(self, key: str) -> str:
        return str(self.section("workbook", "expose").get(key, key))

    # -- progress ---------------------------------------------------------------------------
    def progress_spec(self) -> ProgressSpec:
        # Built with the rest of the plan: parts that failed the schema read as absent.
        prog = self.section("progress")
        batching = self.section("progress", "batching")
        errors = self.section("progress", "errors")
        prios = []
        for item in self.section("progress", "poller").get("priorities") or ():
            match = {k: tuple(str(x) for x in v) for k, v in (item.get("match") or {}).items()}
            prios.append(
                (str(item.get("name", "")), MappingProxyType(match), float(item["weight"]))
            )
        flush = self.duration(
            ("progress", "batching", "flush-interval"), batching.get("flush-interval")
        )
        if flush is not None and flush <= 0:
            # The progress bus cannot flush every 0 s: refused here, not a crash at start.
            self.error(
                ("progress", "batching", "flush-interval"),
                "bad-flush-interval",
                "a flush-interval must be longer than zero",
                value=repr(batching.get("flush-interval")),
                expected="e.g. 100ms",
            )
            flush = None
        return ProgressSpec(
            max_batch_size=int(batching.get("max-batch-size", 100)),
            flush_interval=flush if flush is not None else 0.1,
            priority_threshold=float(batching.get("priority-threshold", 0.7)),
            transient=frozenset(errors.get("transient") or ()),
            permanent=frozenset(errors.get("permanent") or ()),
            poller_priorities=tuple(prios),
            model="dense" if prog.get("model") == "dense" else "sparse",
            sampling=sampling_spec(
                None if ("progress", "sampling") in self.failed else prog.get("sampling")
            ),
        )

    # -- workflows ------------------------------------------------------------------------------
    def workflow(self, name: str, body: Mapping[str, Any]) -> WorkflowSpec:
        path: Path_ = ("workflows", name)
        if "steps" in body:
            return self._linear(name, body, path)
        controls = self.section("workflows", name, "controls")
        raw_nodes: list[Any] = body.get("nodes") or []
        by_id = {n["id"]: n for n in map(as_map, raw_nodes) if isinstance(n.get("id"), str)}
        nodes: dict[str, NodeSpec] = {}
        for i, raw in enumerate(raw_nodes):
            node_path = (*path, "nodes", i)
            if node_path not in self.failed:
                nodes[raw["id"]] = self.node(raw, i, node_path, by_id)
                continue
            stub = stub_node(raw, i, self.actions, lambda to: self.goto_kind(to, by_id))
            if stub.id.startswith("#"):
                self.open_graphs.add(name)  # no readable id: what leads to it is unknown
            nodes.setdefault(stub.id, stub)
        first = as_map(raw_nodes[0]).get("id") if raw_nodes else ""
        return WorkflowSpec(
            name=name,
            entry=first if isinstance(first, str) else "",
            nodes=MappingProxyType(nodes),
            timeout=self.duration((*path, "controls", "timeout"), controls.get("timeout")),
            on_error=self.handlers(
                controls.get("on-error"), (*path, "controls", "on-error"), by_id
            ),
            on_timeout=self.handlers(
                controls.get("on-timeout"), (*path, "controls", "on-timeout"), by_id
            ),
            wbs_level=str(body.get("wbs-level", "L3")),
            linear=False,
        )

    def _linear(self, name: str, body: Mapping[str, Any], path: Path_) -> WorkflowSpec:
        steps = [as_map(step) for step in body.get("steps") or ()]
        ids = [f"step{i + 1}-{s.get('ref', '')}" for i, s in enumerate(steps)]
        nodes: dict[str, NodeSpec] = {}
        for i, step in enumerate(steps):
            to = ids[i + 1] if i + 1 < len(steps) else "end"
            nodes[ids[i]] = NodeSpec(
                id=ids[i],
                type="action",
                index=i,
                action=self.actions.get(ref) if isinstance(ref := step.get("ref"), str) else None,
                transitions=(
                    Transition(edge=f"{ids[i]}-done", to=to, kind="always", condition=None),
                ),
            )
        nodes["end"] = NodeSpec(
            id="end", type="terminus", index=len(steps), state="closing.success"
        )
        return WorkflowSpec(
            name=name,
            entry=ids[0] if ids else "end",
            nodes=MappingProxyType(nodes),
            timeout=self.duration((*path, "timeout"), body.get("timeout")),
            on_error=self.handlers(body.get("on-error"), (*path, "on-error"), nodes),
            on_timeout=self.handlers(body.get("on-timeout"), (*path, "on-timeout"), nodes),
            wbs_level=str(body.get("wbs-level", "L3")),
            linear=True,
        )

    def node(
        self, raw: Mapping[str, Any], index: int, path: Path_, nodes: Mapping[str, Any]
    ) -> NodeSpec:
        controls = raw.get("controls") or {}
        flow = controls.get("flow") or {}
        exec_ = controls.get("exec") or {}
        tr_path: Path_ = (*path, "controls", "exec", "transitions")
        raw_tr = exec_.get("transitions")
        if raw_tr is None:
            raw_tr, tr_path = flow.get("transitions"), (*path, "controls", "flow", "transitions")
        join = flow.get("join") or {}
        action = self.actions.get(raw.get("action", "")) if raw.get("action") else None
        on_error = exec_.get("on-error", controls.get("on-error"))
        on_timeout = exec_.get("on-timeout", controls.get("on-timeout"))
        return NodeSpec(
            id=raw["id"],
            type=node_type(raw),
            index=index,
            action=action,
            timeout=self.duration((*path, "controls", "exec", "timeout"), exec_.get("timeout")),
            rate_limit=self.rate(
                (*path, "controls", "exec", "rate-limit"), exec_.get("rate-limit")
            ),
            rate_limit_global=self.rate(
                (*path, "controls", "exec", "rate-limit"), exec_.get("rate-limit"), "global"
            ),
            on_error=self.handlers(on_error, (*path, "controls", "exec", "on-error"), nodes),
            on_timeout=self.handlers(on_timeout, (*path, "controls", "exec", "on-timeout"), nodes),
            transitions=self.transitions(raw_tr or (), tr_path, nodes, raw["id"]),
            branches=tuple(str(b["to"]) for b in flow.get("branches") or ()),
            join_policy=join.get("policy", "wait-all"),
            join_to=join.get("to"),
            metrics=tuple(str(m) for m in raw.get("metrics") or ()),
            state=raw.get("state"),
        )

    def transitions(
        self, items: Sequence[Mapping[str, Any]], path: Path_, nodes: Mapping[str, Any], node: str
    ) -> tuple[Transition, ...]:
        out = []
        for i, item in enumerate(items):
            cond = item.get("condition", "always")
            edge = str(item.get("edge") or f"{node}->{item['to']}")
            target = str(item["to"])
            kind = self.goto_kind(target, nodes)
            if cond in ("always", "otherwise", True):
                out.append(
                    Transition(
                        edge, target, "otherwise" if cond == "otherwise" else "always", None, kind
                    )
                )
                continue
            text = str(cond).strip()
            if text.startswith("{{") and text.endswith("}}"):
                text = text[2:-2]
            try:
                expr = compile_expr(text.strip())
            except ExprSyntaxError as exc:
                self._template_error((*path, i, "condition"), exc)
                continue
            out.append(Transition(edge, target, "expr", expr, kind))
        return tuple(out)

    # -- exits, resources, load -----------------------------------------------------------------
    def exits(self) -> dict[str, ExitSpec]:
        out: dict[str, ExitSpec] = {}
        for name, body in self.live(self.section("monitoring"), "monitoring").items():
            cls = body.get("classification") or {}
            fld = cls.get("field")
            out[name] = ExitSpec(
                name=name,
                owner=str(body.get("owner", "closing")),
                classify_default=cls.get("default", "transient"),
                classify_field=self.template(("monitoring", name, "classification", "field"), fld)
                if isinstance(fld, str)
                else None,
                actions=self.handlers(body.get("actions"), ("monitoring", name, "actions"), {}),
            )
        return out

    def resources(self) -> dict[str, ResourceSpec]:
        out: dict[str, ResourceSpec] = {}
        for name, body in self.live(self.section("resources"), "resources").items():
            out[name] = self._resource(name, body, ("resources", name))
        return out

    def _resource(self, name: str, body: Mapping[str, Any], path: Path_) -> ResourceSpec:
        provider = body.get("provider") or {}
        leasing = provider.get("leasing") or {}
        config = body.get("config") or {}
        parser = config.get("parser") or {}
        capacity = body.get("capacity") or {}
        hc = body.get("health-check")
        health = None
        if isinstance(hc, Mapping):
            probe = hc.get("probe") or {}
            probe_action = self.inline_action(
                str(probe.get("action", "http.health")),
                probe.get("with"),
                (*path, "health-check", "probe"),
            )
            if probe_action is not None:
                health = HealthCheckSpec(
                    interval=self.duration((*path, "health-check", "interval"), hc.get("interval"))
                    or 30.0,
                    timeout=self.duration((*path, "health-check", "timeout"), hc.get("timeout"))
                    or 5.0,
                    probe=probe_action,
                    on_failure=self.handlers(
                        hc.get("on-failure"), (*path, "health-check", "on-failure"), {}
                    ),
                )
        manifest = config.get("manifest")
        file = config.get("file")
        return ResourceSpec(
            name=name,
            type=body["type"],
            provider_component=provider.get("component"),
            provider_calls=MappingProxyType(dict(provider.get("calls") or {})),
            ttl=self.duration((*path, "provider", "leasing", "ttl"), leasing.get("ttl")),
            auto_renew=bool(leasing.get("auto-renew", False)),
            strategy=leasing.get("strategy", "round-robin"),
            read_only=leasing.get("mode") == "read-only",
            manifest=(self.res_dir / manifest).resolve() if manifest else None,
            parser_format=parser.get("format", "csv"),
            parser_fields=tuple(parser.get("fields") or ("ip", "port")),
            file=(self.res_dir / file).resolve() if file else None,
            checksum=config.get("checksum"),
            capacity=capacity.get("size"),
            exclusive=capacity.get("guard") == "exclusive",
            health_check=health,
            metadata=freeze(body.get("metadata") or {}),
        )

    def profiles(self) -> dict[str, ProfileSpec]:
        out: dict[str, ProfileSpec] = {}
        profiles = self.section("load", "profiles")
        for name, body in self.live(profiles, "load", "profiles").items():
            path: Path_ = ("load", "profiles", name)
            phases = tuple(
                (
                    self.duration((*path, "phases", i, "at"), p.get("at")) or 0.0,
                    int(p["spawn-users"]),
                )
                for i, p in enumerate(body.get("phases") or ())
            )
            kind = body.get("type", "constant")
            unit = self.time_unit(path, body)
            per = 1.0 if kind == "stages" else 1.0 / unit
            out[name] = ProfileSpec(
                name=name,
                kind=kind,
                start_users=int(body.get("start-users", 0)),
                end_users=int(body.get("end-users", 0)),
                users=int(body.get("users", 0)),
                duration=self.duration((*path, "duration"), body.get("duration")) or 0.0,
                phases=phases,
                stages=self.stages(path, body.get("stages") or (), per),
                rate=float(body.get("rate", body.get("start-rate", 0))) * per,
                pre_allocated=int(body.get("pre-allocated-users", 0)),
                max_users=int(body.get("max-users", body.get("pre-allocated-users", 0))),
            )
            self.check_users(path, out[name], body)
        return out

    def time_unit(self, path: Path_, body: Mapping[str, Any]) -> float:
        """An arrival-rate profile's `time-unit` in seconds (default 1s; never zero)."""
        unit = self.duration((*path, "time-unit"), body.get("time-unit"))
        if unit is not None and unit <= 0:
            self.error(
                (*path, "time-unit"),
                "bad-time-unit",
                "a time-unit must be longer than zero",
                value=repr(body.get("time-unit")),
                expected="e.g. 1s, 1m",
            )
        return unit if unit else 1.0

    def stages(self, path: Path_, raw: Any, per: float) -> tuple[tuple[float, float], ...]:
        """`stages: [{duration, target}]`, targets scaled by `per` (rates to per second)."""
        return tuple(
            (
                self.duration((*path, "stages", i, "duration"), st.get("duration")) or 0.0,
                float(st.get("target", 0)) * per,
            )
            for i, st in enumerate(raw)
        )

    def check_users(self, path: Path_, p: ProfileSpec, body: Mapping[str, Any]) -> None:
        if p.arrival and p.max_users < p.pre_allocated:
            self.error(
                (*path, "max-users"),
                "bad-max-users",
                f"max-users ({p.max_users}) is below pre-allocated-users ({p.pre_allocated})",
                value=repr(body.get("max-users")),
                expected=f"at least {p.pre_allocated}",
            )
        if p.arrival and p.max_users <= 0:
            self.error(
                (*path, "max-users" if "max-users" in body else "pre-allocated-users"),
                "bad-max-users",
                "an arrival-rate profile needs users to run its iterations",
                value=repr(body.get("max-users", body.get("pre-allocated-users"))),
                expected="pre-allocated-users or max-users of 1 or more",
            )

    def scenario(
        self, body: Mapping[str, Any], index: int, profiles: Mapping[str, ProfileSpec]
    ) -> ScenarioSpec:
        path: Path_ = ("load", "scenarios", index)
        user = body.get("user") or {}
        agg = body.get("progress-aggregation") or {}
        ht = body.get("health_threshold")
        get: Callable[..., Any] = body.get
        think, pacing = self.pacing(path, body)
        return ScenarioSpec(
            name=str(get("name")),
            workflow=str(get("workflow")),
            user_count=int(get("user-count", 1)),
            spawn_rate=self.rate((*path, "spawn-rate"), get("spawn-rate")),
            profile=profiles.get(get("profile")) if get("profile") else None,
            task_duration=self.duration((*path, "task-duration"), get("task-duration")),
            iterations=int(get("iterations")) if get("iterations") is not None else None,
            think_time=think.mean if think is not None else 0.0,
            inherit=tuple(user.get("inherit") or ()),
            session_new=(user.get("resources") or {}).get("session") == "new",
            context=freeze(user.get("context") or {}),
            exits=MappingProxyType({str(k): str(v) for k, v in (get("exits") or {}).items()}),
            milestones=tuple(
                Milestone(m["name"], m["node"], m["edge"], float(m.get("weight", 1.0)))
                for m in get("milestones") or ()
            ),
            aggregation=tuple(
                (str(s["node"]), float(s.get("weight", 1.0))) for s in agg.get("sources") or ()
            ),
            health_threshold=HealthThreshold(
                telemetry_field=str(ht.get("telemetry_field", "telemetry.health.score")),
                min_score=float(ht.get("min_score", 0.0)),
                consecutive_breach=int(ht.get("consecutive_breach", 1)),
            )
            if isinstance(ht, Mapping)
            else None,
            max_duration=self.duration((*path, "max-duration"), get("max-duration")),
            wbs_level=str(get("wbs-level", "L2")),
            graceful_stop=self.duration((*path, "graceful-stop"), get("graceful-stop")),
            think=think,
            pacing=pacing,
            start_after=self.duration((*path, "start-after"), get("start-after")) or 0.0,
            cookies=get("cookies") is not False,
        )

    def pacing(self, path: Path_, body: Mapping[str, Any]) -> tuple[ThinkSpec | None, float | None]:
        """A scenario's `think-time` distribution and `pacing` (dsl/think.py); they exclude
        each other (pacing sets the whole wait between passes)."""
        think = None
        try:
            think = parse_think(body.get("think-time"))
        except ThinkError as exc:
            kw = {"value": repr(body.get("think-time")), "expected": exc.expected}
            self.error((*path, "think-time"), "bad-think-time", exc.message, **kw)
        pacing = self.duration((*path, "pacing"), body.get("pacing"))
        if pacing is not None and pacing <= 0:
            kw = {"value": repr(body.get("pacing")), "expected": "a duration > 0, e.g. 5s"}
            self.error((*path, "pacing"), "bad-pacing", "pacing must be more than 0", **kw)
            pacing = None
        if pacing is not None and "think-time" in body:
            message = "pacing and think-time exclude each other: pacing sets the whole wait"
            kw = {"value": repr(body.get("think-time")), "expected": "one of them"}
            self.error((*path, "think-time"), "pacing-and-think-time", message, **kw)
        return think, pacing


def sampling_spec(raw: Any) -> SamplingSpec:
    """`progress.sampling`: a mode name, or {mode, keep-failed, keep-succeeded, every} (the
    schema has checked the types and bounds)."""
    if raw is None:
        return SamplingSpec()
    if isinstance(raw, str):
        return SamplingSpec(mode=_sampling_mode(raw))
    base = SamplingSpec()
    return SamplingSpec(
        mode=_sampling_mode(raw.get("mode", base.mode)),
        keep_failed=int(raw.get("keep-failed", base.keep_failed)),
        keep_succeeded=int(raw.get("keep-succeeded", base.keep_succeeded)),
        every=int(raw.get("every", base.every)),
    )


def _sampling_mode(raw: Any) -> SamplingMode:
    for mode in SAMPLING_MODES:
        if raw == mode:
            return mode
    return "aggregated"
