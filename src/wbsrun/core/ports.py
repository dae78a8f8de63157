"""Ports: the Protocols adapters implement (protocol components, lease providers, log sinks)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from wbsrun.core.handles import Lease, UserHandle
from wbsrun.core.outcome import ActionOutcome
from wbsrun.core.rate import RateGuard
from wbsrun.dsl.plan import ComponentSpec
from wbsrun.errors import WbsrunError

__all__ = [
    "ActionOutcome",
    "Component",
    "ComponentFactory",
    "ImmediateComponent",
    "Lease",
    "LeaseError",
    "LeaseProvider",
    "LogSink",
    "Runtime",
    "UserHandle",
]


class LogSink(Protocol):
    """Where scenario log lines (logger component, lease notices) go."""

    def log(self, level: str, message: str, user_id: str | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class Runtime:
    """What the runner hands a component at init: the run's log, clock (timer), rate guard,
    lease provider and options."""

    log: LogSink
    connection_limit: int
    clock: Callable[[], float]
    rate_guard: RateGuard
    leases: LeaseProvider | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Component(Protocol):
    """The plan's ProtocolFrame: init / run_action / release (+ per-user release)."""

    CALLS: ClassVar[frozenset[str]]

    async def init(self, runtime: Runtime) -> None: ...

    async def run_action(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome: ...

    async def release_user(self, user: UserHandle) -> None: ...

    async def release(self) -> None: ...


@runtime_checkable
class ImmediateComponent(Protocol):
    """Optional for a `Component`: answers that need no waiting, without a coroutine.

    `run_action_nowait` does what `run_action` would do and returns its outcome, or None,
    having changed nothing, when the call would have to wait; the core then awaits
    `run_action`. The lease book calls providers this way first (`allocate_pair`,
    `release_pair`): about five coroutine levels a pass that never suspend."""

    def run_action_nowait(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome | None: ...


class ComponentFactory(Protocol):
    CALLS: ClassVar[frozenset[str]]

    def __call__(self, spec: ComponentSpec) -> Component: ...


class LeaseError(WbsrunError):
    """A lease provider could not do what was asked; `code` is the DSL §9 error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class LeaseProvider(Protocol):
    """The built-in pools behind the `resource-manager` component. Waits are cancellable
    (bounded by the task timeout); failures raise LeaseError."""

    def item_count(self, pool: str) -> int: ...

    def is_exclusive(self, pool: str) -> bool: ...

    def items(self, pool: str) -> list[tuple[str, Mapping[str, Any]]]: ...

    async def acquire(
        self, pool: str, holder: str, user_id: str, *, wait_for_health: bool = True
    ) -> Lease: ...

    def acquire_nowait(
        self, pool: str, holder: str, user_id: str, *, wait_for_health: bool = True
    ) -> Lease | None:
        """The lease `acquire` would give at once, or None when it would wait."""
        ...

    def release(self, lease: Lease, reason: str) -> bool: ...

    def release_handle(self, pool: str, handle: str) -> bool: ...

    def set_health(self, pool: str, handle: str, healthy: bool) -> bool: ...

    def mount(self, name: str) -> Mapping[str, Any]: ...

    def statistics(self) -> Mapping[str, Mapping[str, int]]: ...
