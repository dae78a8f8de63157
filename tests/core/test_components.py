"""The runner's components: any `Component` reaches the runner as a compiled `ComponentBase`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from wbsrun.core.components import ComponentBase, ForwardingComponent, as_component
from wbsrun.core.outcome import ActionOutcome
from wbsrun.core.ports import UserHandle
from wbsrun.protocols.http import HttpComponent
from wbsrun.protocols.logger import LoggerComponent
from wbsrun.protocols.resource_manager import ResourceManagerComponent

USER = UserHandle("u1", "", private_session=False)


class Echo:
    """A third party's component: the Protocol's methods, no base class, no nowait."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any], UserHandle]] = []

    async def run_action(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome:
        self.seen.append((call, dict(args), user))
        await asyncio.sleep(0)
        return ActionOutcome({"call": call, **args})


class QuickEcho(Echo):
    """...and one that also answers at once."""

    def run_action_nowait(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome | None:
        return None if call == "slow" else ActionOutcome({"now": call})


def test_a_component_of_any_class_is_wrapped_and_called_through_unchanged() -> None:
    echo = Echo()
    wrapped = as_component(echo)
    assert isinstance(wrapped, ForwardingComponent)
    assert wrapped.target is echo
    out = asyncio.run(wrapped.run_action("get", {"url": "x"}, USER))
    assert out.value == {"call": "get", "url": "x"}
    assert echo.seen == [("get", {"url": "x"}, USER)]
    # Without run_action_nowait of its own it never answers at once.
    assert wrapped.run_action_nowait("get", {}, USER) is None


def test_a_third_partys_run_action_nowait_is_forwarded() -> None:
    wrapped = as_component(QuickEcho())
    now = wrapped.run_action_nowait("fast", {}, USER)
    assert now is not None
    assert now.value == {"now": "fast"}
    assert wrapped.run_action_nowait("slow", {}, USER) is None


def test_the_built_in_components_are_the_base_itself() -> None:
    for component in (HttpComponent(), LoggerComponent(), ResourceManagerComponent()):
        assert isinstance(component, ComponentBase)
        assert as_component(component) is component
    # The base's answer: no immediate path unless a component offers one.
    assert HttpComponent().run_action_nowait("get", {}, USER) is None


class ListSink:
    """A third party's log sink (the LogSink Protocol, not the run's RunLog)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str | None]] = []

    def log(self, level: str, message: str, user_id: str | None = None) -> None:
        self.lines.append((level, message, user_id))


def _runtime(log: Any) -> Any:
    from wbsrun.core.ports import Runtime
    from wbsrun.core.rate import RateGuard

    return Runtime(log, 1, lambda: 0.0, RateGuard())


def test_the_logger_writes_to_the_run_log_and_to_any_other_log_sink() -> None:
    from wbsrun.core.log import RunLog

    async def main() -> tuple[RunLog, ListSink]:
        run_log, other = RunLog(), ListSink()
        for sink in (run_log, other):
            logger = LoggerComponent()
            await logger.init(_runtime(sink))
            out = await logger.run_action("warn", {"message": ["a", 1]}, USER)
            assert out.value == {"level": "warn", "message": '["a",1]'}
        return run_log, other

    run_log, other = asyncio.run(main())
    assert run_log.counts == {"warn": 1}
    assert run_log.recent == ['WARN  u1 ["a",1]']
    assert other.lines == [("warn", '["a",1]', "u1")]
