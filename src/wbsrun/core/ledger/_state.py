"""Pure helpers over workbook state shared by both models: thawing, owned copies, export views.

The "flat" form of an entry is what the plain model keeps in `Entry.fields`: top-level fields
keyed "section.key", holding only what differs from the scenario's defaults. Both models can
produce it, so snapshots, packed (compacted) entries and exports are computed from it the same
way whichever model wrote the entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

import msgspec

__all__ = [
    "GROUP_DONE",
    "MISSING",
    "Transition",
    "descend",
    "export_state",
    "owned_copy",
    "owned_list",
    "plain",
    "read_out",
    "restored_vars",
    "section_state",
    "thaw",
    "trace_dicts",
    "written",
]

# "No value" in slots and lookups. An msgpack extension value (code 4), so that a packed
# entry carries its unset slots as they are, with no encoder hook call for each; compared by
# identity only.
MISSING: Final = msgspec.msgpack.Ext(4, b"")
_LEAVES: Final = frozenset({str, int, float, bool, type(None), bytes})
# What `owned_copy` copies; anything else it shares (scalars, frozen plan values, and objects
# such as saved HTTP results, as the plain model always has).
_COPIED: Final = frozenset({dict, list, tuple})
# Leaving a process group completes it (PMP process-group completion).
GROUP_DONE: Final = 1.0

# (from, to, at, trigger)
Transition = tuple[str, str, float, str]


def plain(value: Any) -> Any:
    """Frozen plan values (MappingProxy, tuples) to JSON-able dicts and lists."""
    kind = type(value)
    # Exact types first: isinstance against the ABCs runs their __instancecheck__ in Python
    # (the persist buffer's flush calls this on every leaf of every saved result).
    if kind in _LEAVES:
        return value
    if kind is dict or kind is MappingProxyType:
        return {str(k): plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def thaw(value: Any) -> Any:
    # Copy-on-write: a default is copied into the entry the first time it is changed.
    kind = type(value)
    # Scalars loaded from YAML (str, int, float, bool, None) are immutable: share them.
    if kind in _LEAVES:
        return value
    if kind is MappingProxyType or kind is dict:
        # Frozen plan data: a C-level copy of the dict it wraps, then only what is nested.
        out = value.copy()
        if type(out) is dict:
            for k, v in value.items():
                if type(v) not in _LEAVES:
                    out[k] = thaw(v)
            return out
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [v if type(v) in _LEAVES else thaw(v) for v in value]
    return value


def descend(container: dict[str, Any], parts: tuple[str, ...]) -> dict[str, Any]:
    """The entry's own dict at `parts` below `container`, copying shared values on the way."""
    for part in parts:
        nxt = container.get(part)
        if not isinstance(nxt, dict):
            nxt = container[part] = thaw(nxt) if isinstance(nxt, Mapping) else {}
        container = nxt
    return container


def owned_list(container: dict[str, Any], key: str) -> list[Any]:
    """The entry's own list at `key` of `container` (a tuple default is copied, else new)."""
    current = container.get(key)
    if not isinstance(current, list):
        current = container[key] = list(current) if isinstance(current, tuple) else []
    return current


def owned_copy(value: Any) -> Any:
    """A copy that shares nothing mutable with `value` but keeps every type as it was (a
    MappingProxy or tuple from the plan stays one), so a restored entry reads back identical."""
    kind = type(value)
    if kind is dict:
        out = value.copy()
        for k, v in value.items():
            if type(v) in _COPIED:
                out[k] = owned_copy(v)
        return out
    if kind is list:
        return [owned_copy(v) if type(v) in _COPIED else v for v in value]
    if kind is tuple:
        if _COPIED.isdisjoint(map(type, value)):
            return value  # nothing inside can change: the tuple itself is as good as a copy
        return tuple([owned_copy(v) if type(v) in _COPIED else v for v in value])
    # Scalars and frozen plan values (MappingProxy over frozen data) are immutable: share them.
    return value


def written(value: Any) -> Any:
    """What a cold write stores: the entry's own version of a dict, list or tuple the writer
    handed over (the writer may change it afterwards, or give the same one to another entry:
    issue 22 item 6, no nested mutable aliasing); anything else as it is."""
    return owned_copy(value) if type(value) in _COPIED else value


def read_out(value: Any) -> Any:
    """What the expression view hands a template: the entry's own dict or list as a copy (a
    version that neither moves with the entry nor changes it when the reader scribbles on
    it); a scalar, a plan value (a MappingProxy or tuple, frozen all the way down by the
    plan builder, shared by every entry: a write replaces it, never changes it) or any other
    object as it is. Templates read scalars nearly always; a header reading a context list
    (`{{workbook.scope_trace}}`) on every request reads the plan's tuple, uncopied."""
    kind = type(value)
    if kind in _LEAVES or kind is MappingProxyType:
        return value
    if kind is dict or kind is list or kind is tuple:
        return owned_copy(value)  # a tuple of scalars: itself
    return value


def restored_vars(snapshot: Any, current: Mapping[str, Any]) -> dict[str, Any]:
    """A snapshot's saved variables, keeping the current internal ones (`__last_<component>`,
    the last result per component: a reading aid for checkpoints, not state)."""
    saved = snapshot.variables
    out: dict[str, Any] = {k: owned_copy(v) for k, v in saved.items() if not k.startswith("__")}
    out.update((k, v) for k, v in current.items() if k.startswith("__"))
    return out


def trace_dicts(trace: Iterable[Transition]) -> list[dict[str, Any]]:
    return [{"from": f, "to": t, "at": at, "trigger": trig} for f, t, at, trig in trace]


def section_state(
    defaults: Mapping[str, Mapping[str, Any]],
    fields: Mapping[str, Any],
    name: str,
    trace: Iterable[Transition],
) -> dict[str, Any]:
    """The visible content of one section: defaults merged with the entry's own fields."""
    out = {k: plain(v) for k, v in defaults.get(name, {}).items()}
    prefix = name + "."
    for key, value in fields.items():
        if key.startswith(prefix):
            out[key[len(prefix) :]] = plain(value)
    if name == "timeline":
        out["transition_trace"] = trace_dicts(trace)
    return out


def export_state(
    defaults: Mapping[str, Mapping[str, Any]],
    ids: tuple[str, str],
    fields: Mapping[str, Any],
    trace: Iterable[Transition],
    variables: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """What `export()` shows for an entry in flat form (the plain model's rules, verbatim)."""
    out: dict[str, Any] = {"user_id": ids[0], "task_id": ids[1]}
    trace = tuple(trace)
    # Sections without defaults in the scenario still hold what the run wrote to them.
    written = [key.partition(".")[0] for key in fields]
    for name in dict.fromkeys((*defaults, *written)):
        out[name] = section_state(defaults, fields, name, trace)
    if variables:
        out["vars"] = {k: plain(v) for k, v in variables.items() if not k.startswith("__")}
    return out
