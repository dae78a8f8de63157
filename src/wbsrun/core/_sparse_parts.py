"""Where the sparse model keeps the fields every pass writes: slots, and compact records that
are turned into the plain model's dicts and lists only when read.

A "composite" field (counters, latency_ms, action_log, milestones, process_groups) has two
homes: its hot parts in slots while nothing else touched it, or an owned value in the cold
overlay once any cold write did (the overlay then stays authoritative and hot writes go there,
exactly as the plain model writes its dict). Both homes are never used at once.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Mapping
from typing import Any, Final, final

from wbsrun.core._state import GROUP_DONE, MISSING, Transition, owned_copy, thaw

__all__ = [
    "COMPOSITES",
    "COUNTER_SLOTS",
    "LOG_KEYS",
    "SCALARS",
    "Composite",
    "Hot",
    "copy_hot",
    "hot_state",
    "thaw_hot",
    "trace_of",
]

# Scalar hot fields: top-level path → slot of `Hot`. An unset slot holds MISSING.
SCALARS: Final[Mapping[str, str]] = {
    "timeline.phase": "phase",
    "timeline.last_transition_at": "moved_at",
    "timeline.start_at": "start_at",
    "timeline.progress": "progress",
    "execution.current_action": "cur",
    "execution.current_action_started_at": "cur_at",
    "execution.last_action": "last",
    "execution.last_action_at": "last_at",
    "execution.timeout_at": "timeout_at",
    "execution.resource_lease": "lease",
}
COUNTER_SLOTS: Final[Mapping[str, str]] = {
    "success": "ok",
    "failure": "failed",
    "timeout": "timed_out",
    "workload_units": "units",
}
LOG_KEYS: Final = ("action", "result", "duration", "owner")
_CONTAINERS: Final = frozenset({dict, list, tuple})
# Slots holding one value or MISSING, in the order the packed form lists them.
_VALUE_SLOTS: Final = (*SCALARS.values(), *COUNTER_SLOTS.values(), "lat")


@final
class Hot:
    """The live state of one sparse entry."""

    __slots__ = (
        "cur",
        "cur_at",
        "failed",
        "groups",
        "last",
        "last_at",
        "lat",
        "lease",
        "log",
        "milestones",
        "moved_at",
        "ok",
        "over",
        "phase",
        "progress",
        "start_at",
        "timed_out",
        "timeout_at",
        "times",
        "trace",
        "units",
    )

    def __init__(self) -> None:
        self.phase: Any = MISSING
        self.moved_at: Any = MISSING
        self.start_at: Any = MISSING
        self.progress: Any = MISSING
        self.cur: Any = MISSING
        self.cur_at: Any = MISSING
        self.last: Any = MISSING
        self.last_at: Any = MISSING
        self.timeout_at: Any = MISSING
        self.lease: Any = MISSING
        self.ok: Any = MISSING
        self.failed: Any = MISSING
        self.timed_out: Any = MISSING
        self.units: Any = MISSING
        self.lat: Any = MISSING
        # Records appended in order; turned into the plain model's shape when read.
        self.groups: list[str] | None = None
        self.log: list[tuple[Any, Any, Any, Any]] | None = None
        self.milestones: list[str] | None = None
        # Transitions as flat (from, to, trigger) triples and their times in a double array:
        # ~32 bytes per transition against ~100 for a tuple holding a float.
        self.trace: list[str] | None = None
        self.times: array[float] | list[Any] | None = None
        # Cold fields ("section.key" → value) that differ from the defaults.
        self.over: dict[str, Any] | None = None


def trace_of(h: Hot) -> list[Transition]:
    flat, times = h.trace, h.times
    if flat is None or times is None:
        return []
    return [(flat[3 * i], flat[3 * i + 1], times[i], flat[3 * i + 2]) for i in range(len(times))]


def copy_hot(h: Hot) -> Hot:
    """A copy sharing nothing mutable with `h` (snapshots); the trace is not copied."""
    out = Hot.__new__(Hot)  # every slot is set below: skip __init__'s defaults
    for slot in _VALUE_SLOTS:
        value = getattr(h, slot)
        setattr(out, slot, owned_copy(value) if type(value) in _CONTAINERS else value)
    out.log = list(h.log) if h.log is not None else None
    out.milestones = list(h.milestones) if h.milestones is not None else None
    out.groups = list(h.groups) if h.groups is not None else None
    over = h.over
    out.over = {k: owned_copy(v) for k, v in over.items()} if over is not None else None
    out.trace = out.times = None
    return out


def hot_state(h: Hot) -> list[Any]:
    """The live state as plain lists for packing: the slots as they are, nothing rebuilt into
    the plain model's shape (that is left to whoever reads the packed entry)."""
    mask = 0
    values = []
    for i, slot in enumerate(_VALUE_SLOTS):
        value = getattr(h, slot)
        if value is not MISSING:
            mask |= 1 << i
            values.append(value)
    log = [part for rec in h.log for part in rec] if h.log is not None else None
    times = list(h.times) if h.times is not None else None
    return [mask, values, h.over, log, h.milestones, h.groups, h.trace, times]


def thaw_hot(state: list[Any]) -> Hot:
    """`hot_state`'s inverse: the same slots, records and overlay."""
    mask, values, over, log, milestones, groups, trace, times = state
    h = Hot()
    it = iter(values)
    for i, slot in enumerate(_VALUE_SLOTS):
        if mask >> i & 1:
            setattr(h, slot, next(it))
    if log is not None:
        h.log = [(log[i], log[i + 1], log[i + 2], log[i + 3]) for i in range(0, len(log), 4)]
    h.over, h.milestones, h.groups, h.trace = over, milestones, groups, trace
    if times is not None:
        h.times = array("d", times) if all(type(t) is float for t in times) else times
    return h


def _dict_base(default: Any) -> dict[str, Any]:
    # What the plain model's `mutable(..., dict)` starts from when the entry has no own value.
    return thaw(default) if isinstance(default, Mapping) else {}


def _list_at(container: dict[str, Any], key: str) -> list[Any]:
    # The plain model's `list_at` one level down a dict.
    current = container.get(key)
    if not isinstance(current, list):
        current = container[key] = list(current) if isinstance(current, tuple) else []
    return current


def _build_counters(h: Hot, default: Any) -> Any:
    out = _dict_base(default)
    for key, slot in COUNTER_SLOTS.items():
        value = getattr(h, slot)
        if value is not MISSING:
            out[key] = value
    return out


def _build_latency(h: Hot, default: Any) -> Any:
    out = _dict_base(default)
    out["last"] = h.lat
    return out


def _build_log(h: Hot, default: Any) -> Any:
    out = list(default) if isinstance(default, list | tuple) else []
    out.extend(dict(zip(LOG_KEYS, rec, strict=True)) for rec in h.log or ())
    return out


def _build_milestones(h: Hot, default: Any) -> Any:
    out = _dict_base(default)
    for name in h.milestones or ():
        _list_at(out, "achieved").append(name)
        pending = _list_at(out, "pending")
        if name in pending:
            pending.remove(name)
    return out


def _build_groups(h: Hot, default: Any) -> Any:
    out = _dict_base(default)
    for group in h.groups or ():
        out[group] = GROUP_DONE
    return out


def _has_counters(h: Hot) -> bool:
    return not (h.ok is h.failed is h.timed_out is h.units is MISSING)


def _clear_counters(h: Hot) -> None:
    h.ok = h.failed = h.timed_out = h.units = MISSING


def _clear_latency(h: Hot) -> None:
    h.lat = MISSING


def _clear_log(h: Hot) -> None:
    h.log = None


def _clear_milestones(h: Hot) -> None:
    h.milestones = None


def _clear_groups(h: Hot) -> None:
    h.groups = None


@final
class Composite:
    """How one composite field's hot parts are detected, read back and dropped."""

    __slots__ = ("build", "clear", "has")

    def __init__(
        self,
        has: Callable[[Hot], bool],
        build: Callable[[Hot, Any], Any],
        clear: Callable[[Hot], None],
    ) -> None:
        self.has, self.build, self.clear = has, build, clear


COMPOSITES: Final[Mapping[str, Composite]] = {
    "telemetry.counters": Composite(_has_counters, _build_counters, _clear_counters),
    "telemetry.latency_ms": Composite(
        lambda h: h.lat is not MISSING, _build_latency, _clear_latency
    ),
    "execution.action_log": Composite(lambda h: h.log is not None, _build_log, _clear_log),
    "telemetry.milestones": Composite(
        lambda h: h.milestones is not None, _build_milestones, _clear_milestones
    ),
    "timeline.process_groups": Composite(
        lambda h: h.groups is not None, _build_groups, _clear_groups
    ),
}
