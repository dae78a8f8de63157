"""Instances of a compiled component, each in a store of its own (its fuel and memory limit),
handed out per user or per worker as the component's isolation says.

A trapped instance may not be entered again (the component model's rule): it is dropped and
the next call instantiates a fresh one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import wasmtime
from wasmtime.component import Component, Linker

from wbsrun.plugins.calls import TypedFunc, export
from wbsrun.plugins.engine import engine
from wbsrun.plugins.settings import PluginSettings

__all__ = ["Instance", "InstancePool"]

SHARED: Final = ""


@dataclass(slots=True)
class Instance:
    """One instantiated component: its store and its exports of `interface` (by name, with
    the signature its world gives each: one of another type fails every call of it)."""

    store: wasmtime.Store
    funcs: dict[str, TypedFunc]
    settings: PluginSettings

    def call(self, name: str, *args: Any) -> Any:
        """One call with a full fuel budget (a call's leftover is not carried over)."""
        self.store.set_fuel(self.settings.fuel)
        return self.funcs[name](self.store, *args)


class InstancePool:
    """Instances of one component: one for the worker, or one per user id."""

    def __init__(
        self,
        component: Component,
        linker: Linker,
        interface: str,
        names: Mapping[str, str],
        settings: PluginSettings,
        on_new: Callable[[Instance], None] | None = None,
        types_cached: bool = True,
    ) -> None:
        self.component = component
        self.linker = linker
        self.interface = interface
        self.names = names
        self.settings = settings
        self.on_new = on_new
        self.types_cached = types_cached
        self._live: dict[str, Instance] = {}
        self.instantiated = 0

    def new(self) -> Instance:
        """A fresh instance (raises what wasmtime raises: a missing import, a memory limit
        below the component's minimum, `MissingExport`)."""
        store = wasmtime.Store(engine())
        store.set_limits(memory_size=self.settings.memory)
        store.set_fuel(self.settings.fuel)
        inst = self.linker.instantiate(store, self.component)
        funcs = {
            name: export(inst, store, self.interface, name, self.types_cached, expected)
            for name, expected in self.names.items()
        }
        out = Instance(store, funcs, self.settings)
        self.instantiated += 1
        if self.on_new is not None:
            self.on_new(out)
        return out

    def adopt(self, inst: Instance, user_id: str = SHARED) -> None:
        """Keep `inst` (the one instantiated to check the component at load) for `user_id`."""
        self._live[self.key(user_id)] = inst

    def key(self, user_id: str) -> str:
        return user_id if self.settings.isolation == "per-user" else SHARED

    def get(self, user_id: str) -> Instance:
        key = self.key(user_id)
        inst = self._live.get(key)
        if inst is None:
            inst = self._live[key] = self.new()
        return inst

    def peek(self, user_id: str) -> Instance | None:
        return self._live.get(self.key(user_id))

    def drop(self, user_id: str) -> None:
        """Forget the instance `user_id` uses (after a trap, or the user finished)."""
        self._live.pop(self.key(user_id), None)

    def drop_user(self, user_id: str) -> Instance | None:
        """The user's own instance, forgotten (per-user isolation); None when shared."""
        if self.settings.isolation != "per-user":
            return None
        return self._live.pop(user_id, None)

    def all(self) -> list[Instance]:
        return list(self._live.values())

    def clear(self) -> None:
        self._live.clear()

    def __len__(self) -> int:
        return len(self._live)
