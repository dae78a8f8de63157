"""Build the immutable plan objects from a schema-valid, reference-checked scenario document."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from wbsrun.dsl._build_base import Path_, freeze
from wbsrun.dsl._build_load import LoadBuilder, sampling_spec
from wbsrun.dsl._stubs import as_map, node_type, stub_node
from wbsrun.dsl.expr import ExprSyntaxError, compile_expr
from wbsrun.dsl.plan import (
    ExitSpec,
    NodeSpec,
    ProgressSpec,
    Transition,
    WorkbookSpec,
    WorkflowSpec,
)

__all__ = ["PlanBuilder", "freeze", "sampling_spec"]


class PlanBuilder(LoadBuilder):
    """Turns one document into plan objects, collecting diagnostics instead of raising.

    Elements in ``failed`` (they failed the schema) are left out, or stood in for by stubs
    (actions, nodes) the flow checks can still follow; ``reported`` holds the (path, code)
    pairs an earlier stage reported, which are not reported again."""

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

    # -- progress ---------------------------------------------------------------------------
    def progress_spec(self) -> ProgressSpec:
        # Built with the rest of the plan: parts that failed the schema read as absent.
        prog = self.section("progress")
        batching = self.section("progress", "batching")
        errors = self.section("progress", "errors")
        prios = []
        poller = self.section("progress", "poller")
        for item in poller.get("priorities") or ():
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
            progress_pollable=poller.get("progress_pollable") is True,
            rebuild_future=poller.get("rebuild-future-each-iteration") is not False,
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
