"""The components the runner calls, behind one compiled base class.

`Component` (core/ports.py) is the port anyone may implement. The runner, though, calls its
components through a `ComponentBase`: a call on a compiled subclass (the built-in `http`,
`logger` and `resource-manager`) is then a native method call, not a method looked up by name
on the Protocol with its arguments boxed, ~6 times a pass. Any other `Component` is wrapped
in a `ForwardingComponent` by `as_component`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, final

from wbsrun.core.handles import UserHandle
from wbsrun.core.outcome import ActionOutcome

__all__ = ["ComponentBase", "ForwardingComponent", "as_component"]


class ComponentBase:
    """Base of the built-in components: the two calls the runner makes on every pass."""

    async def run_action(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome:
        raise NotImplementedError

    def run_action_nowait(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome | None:
        """The outcome without a coroutine, or None (having changed nothing) when the call
        would wait: then `run_action` is awaited (`ImmediateComponent` in core/ports.py)."""
        return None


@final
class ForwardingComponent(ComponentBase):
    """A `Component` that is not a `ComponentBase` (a third party's, a test's), called as one."""

    def __init__(self, target: Any) -> None:
        self.target = target
        nowait = getattr(target, "run_action_nowait", None)
        self._nowait: (
            Callable[[str, Mapping[str, Any], UserHandle], ActionOutcome | None] | None
        ) = nowait if callable(nowait) else None

    async def run_action(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome:
        out: ActionOutcome = await self.target.run_action(call, args, user)
        return out

    def run_action_nowait(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome | None:
        nowait = self._nowait
        return nowait(call, args, user) if nowait is not None else None


def as_component(component: Any) -> ComponentBase:
    """`component` as the runner calls it: itself when it is a `ComponentBase`, else wrapped."""
    if isinstance(component, ComponentBase):
        return component
    return ForwardingComponent(component)
