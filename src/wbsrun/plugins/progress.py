"""The host side of `wbsrun:progress/pollable` (docs/wasi.md "The progress pollable"): the
`progress-pollable` resource and `subscribe` / `ack`, backed by the run's change feed
(`wbsrun.poller.ProgressFeed`, reached through the duck-typed `ProgressSource`: adapters do
not import each other).

A pollable's handle is an index (`rep`) into the plugin's table of subscriptions. The table
is bounded (MAX_HANDLES a plugin); a subscription is closed when the plugin drops its handle,
when the instance that made it is dropped (a trap, a per-user instance's user finished) and
at the plugin's release.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol

from wasmtime.component import Linker, ResourceHost, ResourceType

from wbsrun.plugins.calls import add_host_func

__all__ = ["MAX_HANDLES", "PROGRESS", "PollableHost", "ProgressSource", "imports_progress"]

PROGRESS: Final = "wbsrun:progress/pollable@0.1.0"
RESOURCE: Final = "progress-pollable"
# The host resource type's id (wasmtime's: any number the host does not use for another).
_TYPE_ID: Final = 0x57B5_0001
MAX_HANDLES: Final = 1024
MAX_BLOCK: Final = 4096


class _Change(Protocol):
    sequence: int
    task: str
    field: str
    progress: float
    phase: str


class _Sub(Protocol):
    def ready(self) -> bool: ...
    def done(self) -> bool: ...
    def block(self, limit: int) -> list[Any]: ...
    def ack(self, sequence: int) -> int: ...
    def close(self) -> None: ...


class ProgressSource(Protocol):
    """What the host needs of the feed: `ProgressFeed.subscribe(ChangeFilter(...))`, with the
    filter built by `make_filter(tasks, fields, min_priority)`."""

    def subscribe_with(self, tasks: list[str], fields: list[str], min_priority: float) -> _Sub: ...


def imports_progress(component: Any, engine: Any) -> bool:
    """Does the component import the progress pollable?"""
    return PROGRESS in component.type.imports(engine)


class _Rec:
    """A `change` record handed to the plugin (wasmtime-py reads fields by name)."""

    __slots__ = ("field", "phase", "progress", "sequence", "task")

    def __init__(self, ch: _Change) -> None:
        self.sequence = ch.sequence
        self.task = ch.task
        self.field = ch.field
        self.progress = ch.progress
        self.phase = ch.phase


class PollableHost:
    """The subscriptions of one plugin, by handle, and the owner (an instance key) of each."""

    def __init__(self, name: str, owner: Callable[[], str]) -> None:
        self.name = name
        self.source: ProgressSource | None = None
        self._owner = owner
        self._subs: dict[int, tuple[_Sub, str]] = {}
        self._next = 1

    def define(self, linker: Linker) -> None:
        """Define the interface in `linker` (harmless for a component that does not import
        it: a component importing it without a source fails at its first `subscribe`)."""
        with linker.root() as root, root.add_instance(PROGRESS) as inst:
            inst.add_resource(RESOURCE, ResourceType.host(_TYPE_ID), self._drop)
            add_host_func(inst, "subscribe", self._subscribe)
            add_host_func(inst, "ack", self._ack)
            add_host_func(inst, f"[method]{RESOURCE}.ready", self._ready)
            add_host_func(inst, f"[method]{RESOURCE}.done", self._done)
            add_host_func(inst, f"[method]{RESOURCE}.block", self._block)

    def _sub(self, store: Any, handle: Any) -> _Sub:
        rep = handle.to_host(store).rep if not isinstance(handle, ResourceHost) else handle.rep
        got = self._subs.get(rep)
        if got is None:
            raise RuntimeError(f"plugin '{self.name}': no progress pollable {rep}")
        return got[0]

    def _subscribe(self, _store: Any, flt: Any) -> ResourceHost:
        source = self.source
        if source is None:
            raise RuntimeError(
                f"plugin '{self.name}': the progress pollable is not offered in this run "
                "(progress.poller.progress_pollable: true)"
            )
        if len(self._subs) >= MAX_HANDLES:
            raise RuntimeError(f"plugin '{self.name}': more than {MAX_HANDLES} pollables")
        sub = source.subscribe_with(
            [str(t) for t in getattr(flt, "tasks", [])],
            [str(f) for f in getattr(flt, "fields", [])],
            float(getattr(flt, "min-priority", 0.0)),
        )
        rep = self._next
        self._next += 1
        self._subs[rep] = (sub, self._owner())
        return ResourceHost.own(rep, _TYPE_ID)

    def _ready(self, store: Any, handle: Any) -> bool:
        return self._sub(store, handle).ready()

    def _done(self, store: Any, handle: Any) -> bool:
        return self._sub(store, handle).done()

    def _block(self, store: Any, handle: Any, limit: int) -> list[_Rec]:
        return [_Rec(ch) for ch in self._sub(store, handle).block(min(limit, MAX_BLOCK))]

    def _ack(self, store: Any, handle: Any, sequence: int) -> None:
        self._sub(store, handle).ack(sequence)

    def _drop(self, _store: Any, rep: int) -> None:
        got = self._subs.pop(rep, None)
        if got is not None:
            got[0].close()

    def drop_owner(self, owner: str) -> None:
        """Close the subscriptions the instance `owner` made (it was dropped)."""
        for rep in [r for r, (_s, o) in self._subs.items() if o == owner]:
            self._subs.pop(rep)[0].close()

    def close_all(self) -> None:
        for sub, _owner in self._subs.values():
            sub.close()
        self._subs.clear()

    def __len__(self) -> int:
        return len(self._subs)
