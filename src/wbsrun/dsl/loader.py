"""parse2wbs: bundle → YAML with positions → schema → references → plan → flow checks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from wbsrun.dsl._build import PlanBuilder, freeze
from wbsrun.dsl._flow import FlowChecker
from wbsrun.dsl._retry import check_retry_budgets
from wbsrun.dsl.bundle import Bundle, locate_bundle
from wbsrun.dsl.plan import Plan, ResourceSpec, ScenarioSpec, WorkflowSpec
from wbsrun.dsl.refs import check_references
from wbsrun.dsl.schema_check import validate_schema
from wbsrun.dsl.source import SourceDoc, load_source
from wbsrun.dsl.wbs import build_wbs
from wbsrun.errors import Diagnostic, ScenarioError

__all__ = ["compile_plan", "load_plan"]


def _raise_if_errors(diagnostics: list[Diagnostic]) -> None:
    if any(d.severity == "error" for d in diagnostics):
        raise ScenarioError(diagnostics)


def load_plan(path: Path, provides: Mapping[str, frozenset[str]]) -> Plan:
    """Load, validate and compile a bundle (dir or file); raises ScenarioError / BundleError."""
    bundle = locate_bundle(path)
    doc = load_source(bundle.script, display_name=str(bundle.script))
    return compile_plan(doc, bundle, provides)


def compile_plan(doc: SourceDoc, bundle: Bundle, provides: Mapping[str, frozenset[str]]) -> Plan:
    diagnostics = list(validate_schema(doc))
    # Reference checks assume the schema's shapes; running them on a malformed tree would
    # only add noise to the real problem.
    _raise_if_errors(diagnostics)
    diagnostics.extend(check_references(doc, bundle.res_dir, provides))
    _raise_if_errors(diagnostics)

    try:
        raw_text = bundle.script.read_text(encoding="utf-8")
    except OSError:
        raw_text = ""
    builder = PlanBuilder(doc, bundle.res_dir, raw_text)
    data = doc.data
    actions = builder.all_actions()
    workbook = builder.workbook_spec()
    workflows = {name: builder.workflow(name, body) for name, body in data["workflows"].items()}
    profiles = builder.profiles()
    scenarios = tuple(
        builder.scenario(body, i, profiles) for i, body in enumerate(data["load"]["scenarios"])
    )
    exits = builder.exits()
    resources = builder.resources()
    globals_ = freeze(data.get("globals") or {})
    diagnostics.extend(builder.diagnostics)

    flow = FlowChecker(doc, workbook, resources, globals_)
    _check_flow(flow, workflows, scenarios, resources)
    diagnostics.extend(flow.diagnostics)
    diagnostics.extend(check_retry_budgets(doc, workbook, workflows, scenarios, flow.reachable))
    _raise_if_errors(diagnostics)

    return Plan(
        name=str(data.get("name", bundle.script.stem)),
        version=str(data.get("version", "")),
        source=str(bundle.script),
        res_dir=bundle.res_dir,
        globals=globals_,
        components=MappingProxyType(builder.components()),
        resources=MappingProxyType(resources),
        workbook=workbook,
        progress=builder.progress_spec(),
        actions=MappingProxyType(actions),
        workflows=MappingProxyType(workflows),
        scenarios=scenarios,
        exits=MappingProxyType(exits),
        wbs=build_wbs(
            str(data.get("name", "")), str(data.get("version", "")), scenarios, workflows
        ),
        warnings=tuple(d for d in diagnostics if d.severity == "warning"),
    )


def _check_flow(
    flow: FlowChecker,
    workflows: Mapping[str, WorkflowSpec],
    scenarios: tuple[ScenarioSpec, ...],
    resources: Mapping[str, ResourceSpec],
) -> None:
    saved = frozenset(v for wf in workflows.values() for v in flow.producers(wf).values())
    for wf in workflows.values():
        flow.reachability(wf)
        flow.check_workflow(wf, [s for s in scenarios if s.workflow == wf.name], saved)
    pools = tuple(resources[p] for s in scenarios for p in s.inherit if p in resources)
    flow.check_exits(saved, pools)
    flow.check_resources()
