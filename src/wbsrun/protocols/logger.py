"""The built-in `logger` component: scenario log lines to the run's log sink."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from wbsrun.core.components import ComponentBase
from wbsrun.core.log import RunLog
from wbsrun.core.ports import ActionOutcome, LogSink, Runtime, UserHandle
from wbsrun.dsl.plan import ComponentSpec
from wbsrun.dsl.template import to_text

__all__ = ["LoggerComponent"]

_LEVELS = {"debug": "debug", "info": "info", "warn": "warn", "error": "error"}


class LoggerComponent(ComponentBase):
    """debug / info / warn / error / log(level=…) with `message`."""

    CALLS: ClassVar[frozenset[str]] = frozenset({*_LEVELS, "log"})
    REQUESTS_PER_CALL: ClassVar[int] = 0

    def __init__(self, spec: ComponentSpec | None = None) -> None:
        self.spec = spec
        self._sink: LogSink | None = None
        # The run's own log by its class: a native call (LogSink is a Protocol: looked up by
        # name, once a logged line).
        self._run_log: RunLog | None = None

    async def init(self, runtime: Runtime) -> None:
        self._sink = runtime.log
        self._run_log = runtime.log if isinstance(runtime.log, RunLog) else None

    async def run_action(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome:
        level = _LEVELS.get(call) or _LEVELS.get(str(args.get("level", "info")).lower(), "info")
        message = to_text(args.get("message", ""))
        run_log = self._run_log
        if run_log is not None:
            run_log.log(level, message, user.user_id)
        elif self._sink is not None:
            self._sink.log(level, message, user.user_id)
        return ActionOutcome({"level": level, "message": message})

    async def release_user(self, user: UserHandle) -> None:
        return None

    async def release(self) -> None:
        return None
