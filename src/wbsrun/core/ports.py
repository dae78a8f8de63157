"""Ports: the Protocols adapters implement (protocol components, log sinks), and the lease
provider's base class (core/provider.py), re-exported."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from wbsrun.core.handles import Lease, UserHandle
from wbsrun.core.outcome import ActionOutcome
from wbsrun.core.provider import LeaseProvider
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
    lease provider and options (`extras`: `transport`, `request-timeout` in seconds and
    `max-body` in bytes, each only when the run sets it)."""

    log: LogSink
    connection_limit: int
    clock: Callable[[], float]
    rate_guard: RateGuard
    leases: LeaseProvider | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Component(Protocol):
    """The plan's ProtocolFrame: init / run_action / release (+ per-user release).

    Optional: a `request_timeout` attribute (seconds, read after `init`) bounds every call
    whose action, node and `with` set no `timeout` (the runner arms it, as an action's own;
    `http` has one, docs/operations.md "Limits")."""

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
