"""Where the sparse model keeps the fields every pass writes: slots, and compact records that
are turned into the plain model's dicts and lists only when read.

A "composite" field (counters, latency_ms, action_log, milestones, process_groups, health) has two
homes: its hot parts in slots while nothing else touched it, or an owned value in the cold
overlay once any cold write did (the overlay then stays authoritative and hot writes go there,
exactly as the plain model writes its dict). Both homes are never used at once. `Hot.cold`
has a bit per composite that lives in the overlay, so the hot writers test one int instead of
looking the overlay up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final, final

from wbsrun.core.ledger._packing import Packer
from wbsrun.core.ledger._state import GROUP_DONE, MISSING, Transition, owned_copy, thaw

__all__ = [
    "COLD_BITS",
    "COMPOSITES",
    "COUNTERS_BASE",
    "COUNTER_SLOTS",
    "LEAF_SLOTS",
    "LOG_KEYS",
    "SCALARS",
    "SCALAR_TYPES",
    "Composite",
    "Hot",
    "cold_bit",
    "copy_hot",
    "hot_state",
    "thaw_hot",
    "trace_list",
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
# A composite's scalar part that `set` itself writes to a slot (no other writer of its own):
# top-level path → (its key, slot). The poller scores every task about twice a pass, after
# the checkpoint has shared the overlay; in the overlay, each score copied it whole.
LEAF_SLOTS: Final[Mapping[str, tuple[str, str]]] = {"telemetry.health": ("score", "score")}
LOG_KEYS: Final = ("action", "result", "duration", "owner")
# What a slot holds unless a cold write put something else there (see `Hot.boxed`).
SCALAR_TYPES: Final = frozenset({str, int, float, bool, type(None), bytes})
# ... and MISSING (what a decoded slot may hold and still be unboxed).
_PLAIN: Final = SCALAR_TYPES | {type(MISSING)}
_GROUPS: Final = "timeline.process_groups"
# Composite field → its bit in `Hot.cold`.
COLD_BITS: Final[Mapping[str, int]] = {
    "telemetry.counters": 1,
    "telemetry.latency_ms": 2,
    "execution.action_log": 4,
    "telemetry.milestones": 8,
    _GROUPS: 16,
    "telemetry.health": 32,
}


def cold_bit(top: str, value: Any) -> int:
    """The `Hot.cold` bit of a composite field whose overlay value is now `value` (0: hot
    writes still go to the slots). Frozen process groups (user.context's) are only the base
    the hot records apply over: the plain model would copy them on its first write."""
    bit = COLD_BITS.get(top, 0)
    if bit and top == _GROUPS and type(value) is MappingProxyType:
        return 0
    return bit


@final
class Hot:
    """The live state of one sparse entry."""

    __slots__ = (
        "boxed",
        "cold",
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
        "score",
        "shared",
        "start_at",
        "timed_out",
        "timeout_at",
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
        self.score: Any = MISSING
        # Records appended flat, in order: (action, result, duration, owner) per log record;
        # turned into the plain model's shape when read.
        self.log: list[Any] | None = None
        self.milestones: list[str] | None = None
        self.groups: list[str] | None = None
        # Transitions flat, (from, to, at, trigger) each: one list, no tuple per transition.
        # Only ever appended to (a rollback keeps it), so a snapshot may hold it with a length.
        self.trace: list[Any] = []
        # Cold fields ("section.key" → value) that differ from the defaults.
        self.over: dict[str, Any] | None = None
        # `over` is shared with a snapshot (copy-on-write: most snapshots are never restored
        # and the overlay rarely changes after a checkpoint): copied before it is changed.
        self.shared = False
        # `COLD_BITS` of the composites whose writes go to `over`.
        self.cold = 0
        # Some slot holds more than a scalar (a cold write put it there): snapshots copy the
        # slots, packing checks them.
        self.boxed = False


def trace_of(h: Hot) -> list[Transition]:
    return trace_list(h.trace, len(h.trace))


def trace_list(flat: list[Any], n: int) -> list[Transition]:
    """The first `n` flat items of a trace as (from, to, at, trigger) tuples."""
    it = iter(flat[:n] if n < len(flat) else flat)
    return list(zip(it, it, it, it, strict=False))


def _values(h: Hot) -> list[Any]:
    # The value slots in the order the packed form lists them.
    return [
        h.phase,
        h.moved_at,
        h.start_at,
        h.progress,
        h.cur,
        h.cur_at,
        h.last,
        h.last_at,
        h.timeout_at,
        h.lease,
        h.ok,
        h.failed,
        h.timed_out,
        h.units,
        h.lat,
        h.score,
    ]


def _set_values(h: Hot, values: list[Any]) -> None:
    (
        h.phase,
        h.moved_at,
        h.start_at,
        h.progress,
        h.cur,
        h.cur_at,
        h.last,
        h.last_at,
        h.timeout_at,
        h.lease,
        h.ok,
        h.failed,
        h.timed_out,
        h.units,
        h.lat,
        h.score,
    ) = values


def copy_hot(h: Hot) -> Hot:
    """A copy sharing nothing mutable with `h` (snapshots) but the overlay, which both then
    copy before changing it; the trace is not copied."""
    out = Hot.__new__(Hot)  # every slot is set below: skip __init__'s defaults
    out.phase = h.phase
    out.moved_at = h.moved_at
    out.start_at = h.start_at
    out.progress = h.progress
    out.cur = h.cur
    out.cur_at = h.cur_at
    out.last = h.last
    out.last_at = h.last_at
    out.timeout_at = h.timeout_at
    out.lease = h.lease
    out.ok = h.ok
    out.failed = h.failed
    out.timed_out = h.timed_out
    out.units = h.units
    out.lat = h.lat
    out.score = h.score
    boxed = out.boxed = h.boxed
    if boxed:
        _set_values(out, [owned_copy(v) for v in _values(h)])
    # The records hold scalars (typed arguments of the hot writers): a shallow copy will do.
    log, milestones, groups, over = h.log, h.milestones, h.groups, h.over
    out.log = log[:] if log is not None else None
    out.milestones = milestones[:] if milestones is not None else None
    out.groups = groups[:] if groups is not None else None
    out.over = over
    out.shared = h.shared = over is not None
    out.cold = h.cold
    out.trace = []
    return out


def hot_state(h: Hot, packer: Packer) -> list[Any]:
    """The live state as plain lists for packing, prepared by `packer` (raises `Unpackable`
    as `Packer.prep` does): the slots as they are, nothing rebuilt into the plain model's shape
    (that is left to whoever reads the packed entry).

    The records (log, milestones, groups, trace) and the slots the hot writers fill hold those
    writers' arguments, typed str and float by the `Ledger` protocol and passed as such by
    every caller (mypy --strict): they are not checked item by item (~25 ns an item, more than
    the rest of packing). A slot a cold write filled is (`Hot.boxed`), and the overlay is."""
    values = _values(h)
    if h.boxed:
        values = packer.prep(values)
    over = h.over
    if over:
        over = packer.prep_fields(over)
    return [values, over, h.log, h.milestones, h.groups, h.trace]


def thaw_hot(state: list[Any]) -> Hot:
    """`hot_state`'s inverse: the same slots, records and overlay."""
    values, over, log, milestones, groups, trace = state
    h = Hot.__new__(Hot)
    _set_values(h, values)
    h.over, h.log, h.milestones, h.groups, h.trace = over, log, milestones, groups, trace
    h.shared = False
    cold = 0
    if over is not None:
        for top, value in over.items():
            cold |= cold_bit(top, value)
    h.cold = cold
    h.boxed = not _PLAIN.issuperset(map(type, values))
    return h


def _dict_base(default: Any) -> dict[str, Any]:
    # What the plain model's `mutable(..., dict)` starts from when the entry has no own value.
    # (The exact types first: the ABC check is the slow part of a read such as the poller's
    # counters on every health check.)
    kind = type(default)
    if kind is MappingProxyType or kind is dict or isinstance(default, Mapping):
        out: dict[str, Any] = thaw(default)
        return out
    return {}


def _list_at(container: dict[str, Any], key: str) -> list[Any]:
    # The plain model's `list_at` one level down a dict.
    current = container.get(key)
    if not isinstance(current, list):
        current = container[key] = list(current) if isinstance(current, tuple) else []
    return current


def _build_counters(h: Hot, default: Any) -> Any:
    # Unrolled `COUNTER_SLOTS`: the poller reads the counters on every health check.
    out = _dict_base(default)
    if h.ok is not MISSING:
        out["success"] = h.ok
    if h.failed is not MISSING:
        out["failure"] = h.failed
    if h.timed_out is not MISSING:
        out["timeout"] = h.timed_out
    if h.units is not MISSING:
        out["workload_units"] = h.units
    return out


def _build_latency(h: Hot, default: Any) -> Any:
    out = _dict_base(default)
    out["last"] = h.lat
    return out


def _build_health(h: Hot, default: Any) -> Any:
    out = _dict_base(default)
    out["score"] = h.score
    return out


def _build_log(h: Hot, default: Any) -> Any:
    out = list(default) if isinstance(default, list | tuple) else []
    it = iter(h.log or ())
    out.extend(dict(zip(LOG_KEYS, rec, strict=True)) for rec in zip(it, it, it, it, strict=False))
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


def _clear_health(h: Hot) -> None:
    h.score = MISSING


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
    _GROUPS: Composite(lambda h: h.groups is not None, _build_groups, _clear_groups),
    "telemetry.health": Composite(lambda h: h.score is not MISSING, _build_health, _clear_health),
}
# What the counters build on when the entry has no counters of its own: the default, thawed.
COUNTERS_BASE: Final[Callable[[Any], dict[str, Any]]] = _dict_base
