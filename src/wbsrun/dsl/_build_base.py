"""The plan builder's base: diagnostics, values, units, components, actions and handlers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

from wbsrun.dsl._checks_build import response_rules
from wbsrun.dsl._failed import NONE, Failed
from wbsrun.dsl._stubs import as_map, stub_action
from wbsrun.dsl.expr import ExprSyntaxError
from wbsrun.dsl.plan import (
    LAST_STABLE_POINT,
    ActionSpec,
    ComponentSpec,
    GotoKind,
    Handler,
    HandlerCall,
    HandlerGoto,
    HandlerRelease,
    HandlerRollback,
    HandlerUpdate,
    Persist,
    SaveAs,
    TlsSpec,
)
from wbsrun.dsl.source import SourceDoc, format_path
from wbsrun.dsl.template import (
    CompiledValue,
    Template,
    TemplateSyntaxError,
    compile_template,
    compile_value,
)
from wbsrun.dsl.units import UnitError, parse_duration, parse_rate, parse_size
from wbsrun.errors import Diagnostic

__all__ = ["ALIASES", "BuilderBase", "Path_", "freeze"]

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


class BuilderBase:
    """What every part of the plan builder shares: the document, its diagnostics (collected,
    never raised) and how values, templates and units are read; components, actions and
    handlers, which every other part refers to.

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

    def positive_duration(self, path: Path_, value: Any, example: str = "5s") -> float | None:
        """A duration that must be longer than zero (an interval, a timeout): 0 is refused
        where it is written, never silently replaced by the default."""
        seconds = self.duration(path, value)
        if seconds is not None and seconds <= 0:
            self.error(
                path,
                "bad-duration",
                f"'{path[-1]}' must be longer than zero",
                value=repr(value),
                expected=f"a duration above zero, e.g. {example}",
            )
            return None
        return seconds

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

    def workbook_path(self, key: str) -> str:
        return str(self.section("workbook", "expose").get(key, key))

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
                fallback=item.get("fallback"),
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
        if "progress.rollback" in item:
            # `progress.rollback: {to: X}`, `progress.rollback: X` or a bare key (the contract's
            # form); `action: progress.rollback` with `to:` is the same step.
            rollback = item["progress.rollback"]
            to = rollback.get("to") if isinstance(rollback, Mapping) else rollback
            out.append(HandlerRollback(str(to or LAST_STABLE_POINT), when))
        release = item.get("resource.release")
        if isinstance(release, Mapping):
            hpath: Path_ = (*path, "resource.release", "handles")
            handles = self.value(hpath, release.get("handles") or [])
            out.append(HandlerRelease(handles=handles, when=when))
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
            return [HandlerRollback(str(item.get("to") or LAST_STABLE_POINT), when)]
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
