"""Scenario DSL: load with positions, schema, semantic checks, expressions, plan (parse2wbs)."""

from wbsrun.dsl.bundle import Bundle, PathEscapeError, locate_bundle, resolve_in_bundle
from wbsrun.dsl.expr import Expr, ExprError, ExprEvalError, ExprSyntaxError, compile_expr
from wbsrun.dsl.loader import compile_plan, load_plan
from wbsrun.dsl.plan import Plan
from wbsrun.dsl.schema_check import load_schema, validate_schema
from wbsrun.dsl.source import Position, SourceDoc, load_source, parse_source
from wbsrun.dsl.template import (
    CompiledValue,
    Template,
    TemplateSyntaxError,
    compile_template,
    compile_value,
    to_text,
)
from wbsrun.dsl.units import UnitError, format_duration, parse_duration, parse_rate
from wbsrun.dsl.wbs import build_wbs, render_wbs

__all__ = [
    "Bundle",
    "CompiledValue",
    "Expr",
    "ExprError",
    "ExprEvalError",
    "ExprSyntaxError",
    "PathEscapeError",
    "Plan",
    "Position",
    "SourceDoc",
    "Template",
    "TemplateSyntaxError",
    "UnitError",
    "build_wbs",
    "compile_expr",
    "compile_plan",
    "compile_template",
    "compile_value",
    "format_duration",
    "load_plan",
    "load_schema",
    "load_source",
    "locate_bundle",
    "parse_duration",
    "parse_rate",
    "parse_source",
    "render_wbs",
    "resolve_in_bundle",
    "to_text",
    "validate_schema",
]
