"""parse2wbs: bundle → YAML with positions → schema → references → plan → flow checks.

Every stage runs, each on the elements the earlier ones passed (see `_failed`), so one
validation reports every mistake, each once, where it is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from wbsrun.dsl._build import PlanBuilder, freeze
from wbsrun.dsl._failed import Failed
from wbsrun.dsl._flow import FlowChecker
from wbsrun.dsl._procurement import record_plugins
from wbsrun.dsl._retry import check_retry_budgets
from wbsrun.dsl._stubs import as_map, as_seq
from wbsrun.dsl._thresholds_check import check_thresholds, merge_thresholds
from wbsrun.dsl.bundle import Bundle, locate_bundle
from wbsrun.dsl.data import build_data
from wbsrun.dsl.plan import (
    ActionSpec,
    DataSpec,
    ExitSpec,
    Plan,
    ProfileSpec,
    ProgressSpec,
    ResourceSpec,
    ScenarioSpec,
    WorkbookSpec,
    WorkflowSpec,
)
from wbsrun.dsl.refs import reference_checks
from wbsrun.dsl.schema_check import check_schema
from wbsrun.dsl.source import SourceDoc, load_source
from wbsrun.dsl.thresholds import BUILTIN_ERROR_CODES, PlanNames, ThresholdRule
from wbsrun.dsl.wbs import build_wbs
from wbsrun.errors import Diagnostic, ScenarioError

__all__ = ["check_all", "compile_plan", "load_plan"]

# What building a plan from a partly failed document may still trip over; with earlier
# errors reported, they explain it (never a traceback for bad input).
_BUILD_ERRORS = (KeyError, TypeError, AttributeError, ValueError, IndexError)


@dataclass(frozen=True, slots=True)
class _Built:
    """The plan's parts, built from the elements that passed the earlier checks."""

    builder: PlanBuilder
    thresholds: tuple[ThresholdRule, ...]
    actions: dict[str, ActionSpec]
    workbook: WorkbookSpec
    workflows: dict[str, WorkflowSpec]
    profiles: dict[str, ProfileSpec]
    scenarios: tuple[ScenarioSpec, ...]
    exits: dict[str, ExitSpec]
    resources: dict[str, ResourceSpec]
    globals: Mapping[str, Any]
    progress: ProgressSpec
    data: Mapping[str, DataSpec] = field(default_factory=dict)


def load_plan(path: Path, provides: Mapping[str, frozenset[str]]) -> Plan:
    """Load, validate and compile a bundle (dir or file); raises ScenarioError / BundleError."""
    bundle = locate_bundle(path)
    doc = load_source(bundle.script, display_name=str(bundle.script))
    return compile_plan(doc, bundle, provides)


def compile_plan(doc: SourceDoc, bundle: Bundle, provides: Mapping[str, frozenset[str]]) -> Plan:
    diagnostics, built = _checked(doc, bundle, provides, guarded=True)
    if any(d.severity == "error" for d in diagnostics) or built is None:
        raise ScenarioError(diagnostics)
    return _plan(doc, bundle, built, diagnostics)


def check_all(
    doc: SourceDoc, bundle: Bundle, provides: Mapping[str, frozenset[str]]
) -> list[Diagnostic]:
    """Every finding of every stage, without the guard that hides a crash of the later
    stages behind the earlier findings (for tests: no input may need that guard)."""
    return _checked(doc, bundle, provides, guarded=False)[0]


def _checked(
    doc: SourceDoc, bundle: Bundle, provides: Mapping[str, frozenset[str]], *, guarded: bool
) -> tuple[list[Diagnostic], _Built | None]:
    diagnostics, failed = check_schema(doc)
    if failed.whole():
        return diagnostics, None  # not even a mapping: nothing later could read it
    found, open_edges = reference_checks(doc, bundle.res_dir, provides, failed)
    diagnostics += found
    built = None
    try:
        built, later = _build_and_flow(doc, bundle, failed, open_edges, diagnostics)
        diagnostics += later
    except _BUILD_ERRORS:
        if not guarded or not any(d.severity == "error" for d in diagnostics):
            raise
    unique = dict.fromkeys(diagnostics)
    # The scenario's findings first, then config.yaml's (its thresholds).
    order = sorted(unique, key=lambda d: (d.file != doc.file, d.line, d.column, d.code))
    return order, built


def _build_and_flow(
    doc: SourceDoc,
    bundle: Bundle,
    failed: Failed,
    open_edges: frozenset[str],
    earlier: list[Diagnostic],
) -> tuple[_Built, list[Diagnostic]]:
    try:
        raw_text = bundle.script.read_text(encoding="utf-8")
    except OSError:
        raw_text = ""
    reported = frozenset((d.path, d.code) for d in earlier)
    builder = PlanBuilder(doc, bundle.res_dir, raw_text, failed, reported)
    built = _build(builder, failed)
    thresholds, found = _thresholds(doc, bundle, raw_text, failed, _names(built, builder))
    data, data_found = build_data(doc, bundle.res_dir, failed)
    found += data_found + _data_clashes(doc, data, built.actions)
    built = replace(built, thresholds=thresholds, data=MappingProxyType(data))
    flow = FlowChecker(
        doc,
        built.workbook,
        built.resources,
        built.globals,
        failed,
        open_edges | builder.open_graphs,
        _unknown_roots(failed, builder),
        _data_fields(doc, built.data),
    )
    _check_flow(flow, built)
    retry = check_retry_budgets(
        doc, built.workbook, built.workflows, built.scenarios, flow.reachable
    )
    return built, [*builder.diagnostics, *flow.diagnostics, *retry, *found]


def _data_fields(
    doc: SourceDoc, data: Mapping[str, DataSpec]
) -> Mapping[str, frozenset[str] | None] | None:
    """What `data.NAME.field` may read: None without a `data:` section (then `data` is an
    ordinary variable name); a source's fields None when they are not known (JSON, JSONL)."""
    section = as_map(doc.data).get("data")
    if section is None:
        return None
    # A source that failed a check is still a name templates may read.
    known: dict[str, frozenset[str] | None] = dict.fromkeys(as_map(section))
    for name, spec in data.items():
        known[name] = None if spec.fields is None else frozenset(spec.fields)
    return known


def _data_clashes(
    doc: SourceDoc, data: Mapping[str, DataSpec], actions: Mapping[str, ActionSpec]
) -> list[Diagnostic]:
    """A variable saved as `data` would be hidden by the data sources."""
    if "data" not in as_map(doc.data):
        return []
    return [
        doc.diag(
            ("actions", name, "save-as"),
            "name-clash",
            f"action '{name}' saves a variable named 'data', which the data sources hide",
            value="data",
            hint="save it under another name",
        )
        for name, action in actions.items()
        if action.save_as is not None and action.save_as.var == "data"
    ]


def _names(built: _Built, builder: PlanBuilder) -> PlanNames:
    """What threshold metrics may name: the plan's actions, scenarios, milestones, codes."""
    errors = builder.section("progress", "errors")
    declared = {c for key in ("transient", "permanent") for c in as_seq(errors.get(key))}
    return PlanNames(
        actions=frozenset(built.actions),
        scenarios=frozenset(s.name for s in built.scenarios),
        milestones=frozenset(m.name for s in built.scenarios for m in s.milestones),
        error_codes=BUILTIN_ERROR_CODES | {c for c in declared if isinstance(c, str)},
        checks=frozenset(
            c.name
            for a in built.actions.values()
            if a.response is not None
            for c in a.response.checks
        ),
    )


def _thresholds(
    doc: SourceDoc, bundle: Bundle, raw_text: str, failed: Failed, names: PlanNames
) -> tuple[tuple[ThresholdRule, ...], list[Diagnostic]]:
    """The scenario's `thresholds:` and config.yaml's (added to them), checked in one pass."""
    rules, found = check_thresholds(doc, raw_text.splitlines(), names, failed)
    if bundle.config is None:
        return tuple(rules), found
    try:
        config = load_source(bundle.config)
        config_text = bundle.config.read_text(encoding="utf-8-sig")
    except ScenarioError as exc:
        return tuple(rules), [*found, *exc.diagnostics]
    except (OSError, UnicodeDecodeError):
        return tuple(rules), found  # the run options' reading of config.yaml reports it
    more, config_found = check_thresholds(config, config_text.splitlines(), names)
    return merge_thresholds(rules, more), [*found, *config_found]


def _build(builder: PlanBuilder, failed: Failed) -> _Built:
    data = builder.data
    actions = builder.all_actions()
    workbook = builder.workbook_spec()
    workflows = {
        name: builder.workflow(name, body)
        for name, body in builder.live(builder.section("workflows"), "workflows").items()
    }
    profiles = builder.profiles()
    scenarios = tuple(
        builder.scenario(body, i, profiles)
        for i, body in enumerate(as_seq(as_map(data.get("load")).get("scenarios")))
        if ("load", "scenarios", i) not in failed and ("load", "scenarios") not in failed
    )
    globals_ = freeze(data.get("globals") or {}) if ("globals",) not in failed else {}
    return _Built(
        builder,
        (),
        actions,
        workbook,
        workflows,
        profiles,
        scenarios,
        builder.exits(),
        builder.resources(),
        globals_,
        # Built with the rest, so its findings (a zero flush-interval) are reported.
        builder.progress_spec(),
    )


def _unknown_roots(failed: Failed, builder: PlanBuilder) -> frozenset[str]:
    """Template roots whose declarations failed: reads of them cannot be judged."""
    roots = set()
    if failed.under(("resources",)) or failed.under(("load", "scenarios")):
        roots.add("resource")  # which pools a workflow's users inherit is unknown
    if failed.under(("workbook",)):
        roots.add("workbook")
    if failed.under(("globals",)):
        roots.add("global")
    if ("data",) in failed:
        roots.add("data")
    lost_workflow = any(e[:1] == ("workflows",) and len(e) <= 2 for e in failed.elements)
    if builder.unknown_saves or ("actions",) in failed or lost_workflow:
        roots.add("*")  # which variables the actions (or a lost workflow) save is unknown
    return frozenset(roots)


def _plan(doc: SourceDoc, bundle: Bundle, built: _Built, diagnostics: list[Diagnostic]) -> Plan:
    data = built.builder.data
    name, version = str(data.get("name", bundle.script.stem)), str(data.get("version", ""))
    components = built.builder.components()
    workbook, scenarios = record_plugins(
        built.workbook, built.scenarios, components, bundle.res_dir
    )
    return Plan(
        name=name,
        version=version,
        source=str(bundle.script),
        res_dir=bundle.res_dir,
        globals=built.globals,
        components=MappingProxyType(components),
        resources=MappingProxyType(built.resources),
        workbook=workbook,
        progress=built.progress,
        actions=MappingProxyType(built.actions),
        workflows=MappingProxyType(built.workflows),
        scenarios=scenarios,
        exits=MappingProxyType(built.exits),
        wbs=build_wbs(str(data.get("name", "")), version, scenarios, built.workflows),
        warnings=tuple(d for d in diagnostics if d.severity == "warning"),
        thresholds=built.thresholds,
        data=built.data,
    )


def _check_flow(flow: FlowChecker, built: _Built) -> None:
    workflows, scenarios, resources = built.workflows, built.scenarios, built.resources
    saved = frozenset(
        v for wf in workflows.values() for pairs in flow.producers(wf).values() for v, _ in pairs
    )
    for wf in workflows.values():
        flow.reachability(wf)
        flow.check_workflow(wf, [s for s in scenarios if s.workflow == wf.name], saved)
    pools = tuple(resources[p] for s in scenarios for p in s.inherit if p in resources)
    flow.check_exits(saved, pools)
    flow.check_resources()
