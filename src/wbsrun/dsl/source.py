"""Scenario YAML loaded into plain data, keeping the line and column of every key and value."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from wbsrun.errors import Diagnostic, ScenarioError, Severity

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

# The loader `parse_source` uses: libyaml's CSafeLoader (the default when PyYAML has it) or the
# pure-Python SafeLoader; the results are the same.
YamlLoader = type[Any]

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "PathKey",
    "Position",
    "SourceDoc",
    "did_you_mean",
    "format_path",
    "iter_paths",
    "load_source",
    "parse_source",
    "render_value",
]

PathKey = tuple[str | int, ...]

MAX_FILE_BYTES: Final = 10 * 1024 * 1024
# Caps alias expansion ("billion laughs"): every expanded node gets a position entry.
MAX_NODES: Final = 1_000_000
# libyaml composes recursively in C and crashes the interpreter on very deep nesting, so
# the event stream (parsed iteratively) is checked first; real scenarios nest < 15 levels.
# libyaml (0.2.5+) refuses 1,000 levels itself, and may do so before delivering the events of
# level 65 (its scanner looks ahead through `[[[[…` on one line): `_deep_flow` then finds
# level 65 in the text, so the error is the same with or without libyaml.
MAX_DEPTH: Final = 64
MAX_EXPANDED_DEPTH: Final = 128

_TAG: Final = "tag:yaml.org,2002:"
_SIMPLE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_CONSTRUCTOR: Final = yaml.constructor.SafeConstructor()
_SCALARS: Final[Mapping[str, Callable[[ScalarNode], Any]]] = {
    _TAG + "str": lambda node: node.value,
    # Dates stay the ISO text the user wrote: a datetime would change type and format later.
    _TAG + "timestamp": lambda node: node.value,
    _TAG + "null": lambda node: None,
    _TAG + "bool": _CONSTRUCTOR.construct_yaml_bool,
    _TAG + "int": _CONSTRUCTOR.construct_yaml_int,
    _TAG + "float": _CONSTRUCTOR.construct_yaml_float,
}
_KEY_TAGS: Final = frozenset({_TAG + "str", _TAG + "timestamp"})


@dataclass(frozen=True, slots=True)
class Position:
    """A 1-based line and column in a scenario file."""

    line: int
    column: int


@dataclass(frozen=True, eq=False)
class SourceDoc:
    """A loaded scenario: plain data plus where each value, key and flow collection was written."""

    file: str
    data: Any
    positions: Mapping[PathKey, Position]
    key_positions: Mapping[PathKey, Position]
    raw_text: Mapping[PathKey, str] = field(default_factory=lambda: MappingProxyType({}))

    def where(self, path: Sequence[str | int], *, key: bool = False) -> Position:
        """Where ``path`` (its key if ``key``) was written, else its nearest known ancestor."""
        probe = tuple(path)
        if key and probe in self.key_positions:
            return self.key_positions[probe]
        while probe not in self.positions:
            if not probe:
                return Position(1, 1)
            probe = probe[:-1]
        return self.positions[probe]

    def diag(
        self,
        path: Sequence[str | int],
        code: str,
        message: str,
        *,
        value: object = None,
        expected: str | None = None,
        severity: Severity = "error",
        hint: str | None = None,
        key: bool = False,
    ) -> Diagnostic:
        """A diagnostic located at ``path`` in this document."""
        pos = self.where(path, key=key)
        return Diagnostic(
            code=code,
            message=message,
            file=self.file,
            line=pos.line,
            column=pos.column,
            path=format_path(path),
            value=None if value is None else render_value(value),
            expected=expected,
            severity=severity,
            hint=hint,
        )


def format_path(path: Sequence[str | int]) -> str:
    """``workflows.main.nodes[0].controls``; keys that are not plain names are bracket-quoted."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _SIMPLE_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def iter_paths(
    data: object, pattern: Sequence[str], path: PathKey = ()
) -> Iterator[tuple[PathKey, Any]]:
    """(path, value) of every value under ``pattern``, where ``"*"`` matches any key or index."""
    if not pattern:
        yield path, data
        return
    head, rest = pattern[0], pattern[1:]
    if isinstance(data, Mapping):
        keys = list(data) if head == "*" else [head] if head in data else []
        for key in keys:
            yield from iter_paths(data[key], rest, (*path, key))
    elif isinstance(data, list) and head == "*":
        for i, item in enumerate(data):
            yield from iter_paths(item, rest, (*path, i))


def render_value(value: object, limit: int = 120) -> str:
    """Short display text for a value found in a scenario (strings as written)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def did_you_mean(value: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean 'X'?" hint for a misspelt name, or None when nothing is close."""
    close = difflib.get_close_matches(value, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


class _Abort(Exception):
    """Stops building (too large, too deep, self-referencing); ``args[0]`` is the Diagnostic."""


class _TreeBuilder:
    """Turns a composed YAML node tree into plain data, recording positions by path."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.positions: dict[PathKey, Position] = {}
        self.key_positions: dict[PathKey, Position] = {}
        self.raw_text: dict[PathKey, str] = {}
        self.diagnostics: list[Diagnostic] = []
        self._count = 0
        self._active: set[int] = set()

    def error(self, node: Node, path: PathKey, code: str, message: str, **kw: Any) -> Diagnostic:
        mark = node.start_mark
        return Diagnostic(
            code, message, self.file, mark.line + 1, mark.column + 1, format_path(path), **kw
        )

    def build(self, node: Node, path: PathKey) -> Any:
        self._count += 1
        if self._count > MAX_NODES:
            raise _Abort(self.error(node, path, "yaml-too-large", _too_large_message()))
        if len(path) > MAX_EXPANDED_DEPTH or id(node) in self._active:
            message = "aliases nest too deeply or refer to themselves"
            raise _Abort(self.error(node, path, "yaml-recursive-alias", message))
        self.positions[path] = _position(node)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if getattr(node, "flow_style", False):
            self.raw_text[path] = self.text[node.start_mark.index : node.end_mark.index]
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            assert isinstance(node, MappingNode)
            result: dict[str, Any] = {}
            for key, key_node, value_node in self._pairs(node, path, report=True):
                self.key_positions[(*path, key)] = _position(key_node)
                result[key] = self.build(value_node, (*path, key))
            return result
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: ScalarNode, path: PathKey) -> Any:
        construct = _SCALARS.get(node.tag)
        if construct is None:
            message = f"unsupported YAML tag '{node.tag}'; write a plain value instead"
            self.diagnostics.append(self.error(node, path, "yaml-tag", message))
            return node.value
        try:
            return construct(node)
        except (ValueError, TypeError, yaml.YAMLError):
            message = f"cannot read {node.value!r} as {node.tag.removeprefix(_TAG)}"
            self.diagnostics.append(self.error(node, path, "yaml-bad-scalar", message))
            return node.value

    def _pairs(
        self, node: MappingNode, path: PathKey, *, report: bool
    ) -> list[tuple[str, Node, Node]]:
        """Merged pairs (``<<: *base``) first, then the mapping's own, which override them."""
        own: dict[str, tuple[Node, Node]] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                merges.append(value_node)
                continue
            key = self._key(key_node, path, report=report)
            if key is None:
                continue
            if key in own:
                if report:
                    self.diagnostics.append(self._duplicate(key, own[key][0], key_node, path))
                continue
            own[key] = (key_node, value_node)
        merged = self._merged(merges, path, set(own)) if merges else []
        return merged + [(key, kn, vn) for key, (kn, vn) in own.items()]

    def _merged(
        self, sources: list[Node], path: PathKey, taken: set[str]
    ) -> list[tuple[str, Node, Node]]:
        out: list[tuple[str, Node, Node]] = []
        for source in sources:
            targets = source.value if isinstance(source, SequenceNode) else [source]
            for target in targets:
                if not isinstance(target, MappingNode):
                    message = "'<<' merges a mapping or a list of mappings (aliases like *base)"
                    raise _Abort(self.error(target, path, "yaml-bad-merge", message))
                self._count += len(target.value)
                if self._count > MAX_NODES:
                    raise _Abort(self.error(target, path, "yaml-too-large", _too_large_message()))
                if id(target) in self._active:
                    message = "'<<' merges a mapping into itself"
                    raise _Abort(self.error(target, path, "yaml-recursive-alias", message))
                self._active.add(id(target))
                try:
                    pairs = self._pairs(target, path, report=False)
                finally:
                    self._active.discard(id(target))
                out.extend((k, kn, vn) for k, kn, vn in pairs if k not in taken)
                taken.update(k for k, _, _ in pairs)
        return out

    def _duplicate(self, key: str, first: Node, second: Node, path: PathKey) -> Diagnostic:
        where = f"line {first.start_mark.line + 1}, column {first.start_mark.column + 1}"
        message = f"duplicate key '{key}' (first defined at {where})"
        return self.error(second, (*path, key), "duplicate-key", message, value=key)

    def _key(self, node: Node, path: PathKey, *, report: bool) -> str | None:
        if isinstance(node, ScalarNode) and node.tag in _KEY_TAGS:
            return str(node.value)
        if report:
            if isinstance(node, ScalarNode):
                kind = node.tag.removeprefix(_TAG)
                message = f"mapping key {node.value!r} is not text (YAML reads it as {kind})"
                hint: str | None = f'quote it: "{node.value}": ...'
            else:
                message, hint = "mapping keys must be plain text, not collections", None
            self.diagnostics.append(self.error(node, path, "non-string-key", message, hint=hint))
        return None


def _position(node: Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _too_large_message() -> str:
    return f"document expands to more than {MAX_NODES:,} nodes (alias expansion is capped)"


def _syntax_diagnostic(exc: yaml.YAMLError, text: str, file: str) -> Diagnostic:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        message = exc.problem or "invalid YAML"
        if exc.context:
            started = exc.context_mark
            at = f" at line {started.line + 1}, column {started.column + 1}" if started else ""
            message = f"{message} ({exc.context}{at})"
        return Diagnostic("yaml-syntax", message, file, mark.line + 1, mark.column + 1)
    if isinstance(exc, yaml.reader.ReaderError):
        # libyaml reports a byte offset; find the offending character in the text instead.
        found = yaml.reader.Reader.NON_PRINTABLE.search(text)
        index = found.start() if found else 0
        line = text.count("\n", 0, index) + 1
        column = index - (text.rfind("\n", 0, index) + 1) + 1
        message = f"character #x{ord(text[index]) if found else 0:04x} is not allowed in YAML"
        return Diagnostic("yaml-syntax", message, file, line, column)
    return Diagnostic("yaml-syntax", str(exc).splitlines()[0] if str(exc) else "invalid YAML", file)


def _expanded_size(node: Node, memo: dict[int, int]) -> int:
    """Node count once aliases are expanded, computed on the shared graph (cheap for bombs)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 0  # a cycle adds nothing here; building reports it
    if isinstance(node, ScalarNode):
        size = 1
    elif isinstance(node, SequenceNode):
        size = 1 + sum(_expanded_size(item, memo) for item in node.value)
    else:
        size = 1 + sum(_expanded_size(value, memo) for _, value in node.value)
    memo[id(node)] = min(size, MAX_NODES + 1)
    return memo[id(node)]


_LIBYAML_TOO_DEEP: Final = "exceeded maximum nesting depth"


def _too_deep(file: str, line: int, column: int) -> Diagnostic:
    return Diagnostic(
        "yaml-too-deep", f"nesting deeper than {MAX_DEPTH} levels", file, line, column
    )


def _check_depth(text: str, file: str, loader: YamlLoader) -> Diagnostic | None:
    depth = 0
    resume = 0  # where the text after the last event delivered starts
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
                    return _too_deep(file, line, column)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            if event.end_mark is not None:
                resume = event.end_mark.index
    except yaml.MarkedYAMLError as exc:
        if exc.problem != _LIBYAML_TOO_DEEP:
            raise
        mark = exc.problem_mark
        index = _deep_flow(text, resume, depth)
        if index is None:  # not found in the text: libyaml's place, our message
            return _too_deep(file, mark.line + 1 if mark else 0, mark.column + 1 if mark else 0)
        line = text.count("\n", 0, index) + 1
        return _too_deep(file, line, index - (text.rfind("\n", 0, index) + 1) + 1)
    return None


_FLOW_MARKS: Final = re.compile(r"[\[\]{}'\"#]")
# A quoted scalar, or the rest of the text when it never closes.
_QUOTED: Final = {
    "'": re.compile(r"'(?:[^']|'')*'?"),
    '"': re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL),
}


def _deep_flow(text: str, start: int, depth: int) -> int | None:
    """Index of the bracket that opens level MAX_DEPTH + 1, counting from `depth` at `start`.

    Only used where libyaml stopped inside flow collections (`[…]`, `{…}`), where brackets
    outside quoted scalars and comments are exactly the collections (a plain scalar in a
    flow collection cannot hold one).
    """
    found = _FLOW_MARKS.search(text, start)
    while found is not None:
        i = found.start()
        char = text[i]
        before = text[i - 1] if i > start else " "
        after = i + 1
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return i
        elif char in "]}":
            depth -= 1
        elif char == "#":
            if before in " \t\r\n":
                end = text.find("\n", i)
                after = len(text) if end < 0 else end
        elif before in " \t\r\n[{,:":  # a quote that opens a scalar
            quoted = _QUOTED[char].match(text, i)
            after = quoted.end() if quoted else after
        found = _FLOW_MARKS.search(text, after)
    return None


def parse_source(text: str, file: str, loader: YamlLoader = _Loader) -> SourceDoc:
    """Parse scenario text; raises ScenarioError with every YAML-level problem found.

    `loader` is libyaml's when PyYAML has it (the tests also pass the pure-Python one).
    """
    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        message = f"scenario is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB"
        raise ScenarioError([Diagnostic("file-too-large", message, file)])
    text = text.removeprefix("\ufeff")
    try:
        too_deep = _check_depth(text, file, loader)
        if too_deep is not None:
            raise ScenarioError([too_deep])
        root = yaml.compose(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise ScenarioError([_syntax_diagnostic(exc, text, file)]) from None
    builder = _TreeBuilder(text, file)
    data: Any = None
    if root is not None and _expanded_size(root, {}) > MAX_NODES:
        raise ScenarioError([builder.error(root, (), "yaml-too-large", _too_large_message())])
    if root is not None:
        try:
            data = builder.build(root, ())
        except _Abort as abort:
            builder.diagnostics.append(abort.args[0])
    if builder.diagnostics:
        raise ScenarioError(sorted(builder.diagnostics, key=lambda d: (d.line, d.column)))
    return SourceDoc(
        file=file,
        data=data,
        positions=MappingProxyType(builder.positions),
        key_positions=MappingProxyType(builder.key_positions),
        raw_text=MappingProxyType(builder.raw_text),
    )


def _read_error(file: str, code: str, message: str, **kw: Any) -> ScenarioError:
    return ScenarioError([Diagnostic(code, message, file, **kw)])


def load_source(path: Path, display_name: str | None = None) -> SourceDoc:
    """Read and parse a scenario file; raises ScenarioError (never a traceback) on any problem."""
    file = display_name if display_name is not None else str(path)
    try:
        if path.is_dir():
            raise _read_error(
                file, "file-unreadable", "expected a scenario file, found a directory"
            )
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            message = f"scenario is {size:,} bytes; the limit is {MAX_FILE_BYTES:,} bytes (10 MiB)"
            raise _read_error(file, "file-too-large", message)
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _read_error(file, "file-unreadable", f"cannot read scenario file: {reason}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        start = raw.rfind(b"\n", 0, exc.start) + 1
        column = len(raw[start : exc.start].decode("utf-8", "replace")) + 1
        message = f"file is not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be decoded)"
        hint = "save the scenario as UTF-8"
        raise _read_error(file, "not-utf8", message, line=line, column=column, hint=hint) from None
    return parse_source(text, file)
