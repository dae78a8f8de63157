"""The workbook: one ledger entry per user × task over shared section defaults (plain model)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final, final

from wbsrun.dsl.plan import WorkbookSpec

__all__ = ["Entry", "SectionView", "Workbook", "WorkbookView", "plain"]

_MISSING: Final = object()
IDS = ("user_id", "task_id")


def plain(value: Any) -> Any:
    """Frozen plan values (MappingProxy, tuples) to JSON-able dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _thaw(value: Any) -> Any:
    # Copy-on-write: a default is copied into the entry the first time it is changed.
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    # Scalars loaded from YAML (str, int, float, bool, None) are immutable: share them.
    return value


@final
class Entry:
    """One user × task. `fields` holds only what differs from the defaults, keyed 'section.key'."""

    __slots__ = ("fields", "scenario", "task_id", "trace", "user_id", "vars")

    def __init__(self, user_id: str, task_id: str, scenario: str) -> None:
        self.user_id = user_id
        self.task_id = task_id
        self.scenario = scenario
        self.fields: dict[str, Any] = {}
        # Transitions as tuples (from, to, at, trigger): cheaper than dicts on the hot path.
        self.trace: list[tuple[str, str, float, str]] = []
        self.vars: dict[str, Any] = {}


@final
class Workbook:
    """Reads and writes entries through section paths or `expose` aliases."""

    def __init__(self, spec: WorkbookSpec) -> None:
        self.spec = spec
        self.entries: list[Entry] = []
        self._defaults = spec.defaults

    def open(self, user_id: str, task_id: str, scenario: str) -> Entry:
        entry = Entry(user_id, task_id, scenario)
        self.entries.append(entry)
        return entry

    @staticmethod
    def split(path: str) -> tuple[str, str, tuple[str, ...]]:
        section, _, rest = path.partition(".")
        key, _, sub = rest.partition(".")
        return section, key, tuple(sub.split(".")) if sub else ()

    def get(self, entry: Entry, path: str, default: Any = None) -> Any:
        path = self.spec.expose.get(path, path)
        section, key, sub = self.split(path)
        if section == "timeline" and key == "transition_trace" and not sub:
            return [
                {"from": f, "to": t, "at": at, "trigger": trig} for f, t, at, trig in entry.trace
            ]
        value = entry.fields.get(f"{section}.{key}", _MISSING)
        if value is _MISSING:
            value = self._defaults.get(section, {}).get(key, default)
        for part in sub:
            if not isinstance(value, Mapping):
                return default
            value = value.get(part, default)
        return value

    def set(self, entry: Entry, path: str, value: Any) -> None:
        path = self.spec.expose.get(path, path)
        section, key, sub = self.split(path)
        top = f"{section}.{key}"
        if not sub:
            entry.fields[top] = value
            return
        current = entry.fields.get(top, _MISSING)
        if not isinstance(current, dict):
            if current is _MISSING:
                current = self._defaults.get(section, {}).get(key)
            # Shared values (defaults, user.context) are never written in place: copy them
            # into the entry before the first write (a fresh {} when there is no default).
            current = _thaw(current) if isinstance(current, Mapping) else {}
            entry.fields[top] = current
        for part in sub[:-1]:
            nxt = current.get(part)
            if not isinstance(nxt, dict):
                nxt = current[part] = _thaw(nxt) if isinstance(nxt, Mapping) else {}
            current = nxt
        current[sub[-1]] = value

    def append(self, entry: Entry, path: str, item: Any) -> None:
        self.list_at(entry, path).append(item)

    def list_at(self, entry: Entry, path: str) -> list[Any]:
        """The entry's own list at a section path (`execution.action_log`,
        `telemetry.milestones.achieved`), created or copied from the default on first use."""
        path = self.spec.expose.get(path, path)
        section, key, sub = self.split(path)
        top = f"{section}.{key}"
        if not sub:
            found: list[Any] = self.mutable(entry, top, list)
            return found
        container: dict[str, Any] = self.mutable(entry, top, dict)
        for part in sub[:-1]:
            nxt = container.get(part)
            if not isinstance(nxt, dict):
                nxt = container[part] = _thaw(nxt) if isinstance(nxt, Mapping) else {}
            container = nxt
        current = container.get(sub[-1])
        if not isinstance(current, list):
            current = container[sub[-1]] = list(current) if isinstance(current, tuple) else []
        return current

    def mutable(self, entry: Entry, key: str, kind: type[dict[str, Any] | list[Any]] = dict) -> Any:
        """The entry's own dict or list for the top-level field `section.key`, copying the
        shared default on first use. For the hot path: no path parsing after the first call."""
        current = entry.fields.get(key, _MISSING)
        if type(current) is kind:
            return current
        if current is _MISSING:
            section, _, name = key.partition(".")
            current = self._defaults.get(section, {}).get(name)
        if kind is dict and isinstance(current, Mapping):
            current = _thaw(current)
        elif kind is list and isinstance(current, list | tuple):
            current = list(current)
        else:
            current = kind()
        entry.fields[key] = current
        return current

    def bump(self, entry: Entry, path: str, by: int = 1) -> None:
        self.set(entry, path, (self.get(entry, path, 0) or 0) + by)

    def section(self, entry: Entry, name: str) -> dict[str, Any]:
        """The visible content of one section (defaults merged with the entry's fields)."""
        out = {k: plain(v) for k, v in self._defaults.get(name, {}).items()}
        prefix = name + "."
        for key, value in entry.fields.items():
            if key.startswith(prefix):
                out[key[len(prefix) :]] = plain(value)
        if name == "timeline":
            out["transition_trace"] = self.get(entry, "timeline.transition_trace")
        return out

    def export(self, entry: Entry) -> dict[str, Any]:
        out: dict[str, Any] = {"user_id": entry.user_id, "task_id": entry.task_id}
        # Sections without defaults in the scenario still hold what the run wrote to them.
        written = (key.partition(".")[0] for key in entry.fields)
        for name in dict.fromkeys((*self._defaults, *written)):
            out[name] = self.section(entry, name)
        if entry.vars:
            out["vars"] = {k: plain(v) for k, v in entry.vars.items() if not k.startswith("__")}
        return out


@final
class SectionView(Mapping[str, Any]):
    """`workbook.<section>` in expressions."""

    __slots__ = ("_book", "_entry", "_name")

    def __init__(self, book: Workbook, entry: Entry, name: str) -> None:
        self._book, self._entry, self._name = book, entry, name

    def __getitem__(self, key: str) -> Any:
        value = self._book.get(self._entry, f"{self._name}.{key}", _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._book.section(self._entry, self._name))

    def __len__(self) -> int:
        return len(self._book.section(self._entry, self._name))


@final
class WorkbookView(Mapping[str, Any]):
    """`workbook` in expressions: aliases, sections, ids and workbook-scoped saved variables."""

    __slots__ = ("_book", "_entry")

    def __init__(self, book: Workbook, entry: Entry) -> None:
        self._book, self._entry = book, entry

    def __getitem__(self, key: str) -> Any:
        book, entry = self._book, self._entry
        if key in book.spec.expose:
            return book.get(entry, key)
        if key in book.spec.defaults:
            return SectionView(book, entry, key)
        if key == "user_id":
            return entry.user_id
        if key == "task_id":
            return entry.task_id
        value = entry.vars.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        spec = self._book.spec
        yield from spec.expose
        yield from spec.defaults
        yield from IDS
        yield from self._entry.vars

    def __len__(self) -> int:
        spec = self._book.spec
        return len(spec.expose) + len(spec.defaults) + len(IDS) + len(self._entry.vars)
