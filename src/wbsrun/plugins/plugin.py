"""A component of the world `wbsrun:plugin/plugin` as a wbsrun component.

One coarse call a scenario action (`run-action`); the plugin never does I/O itself: it queues
requests with the `send` import and answers `wait` (or `sleep`), the host sends them with the
built-in `http` component's transport — counted, timed and bounded like any request — and
`resume`s the plugin with the answers, until it answers `done`. A call that traps, runs out of
fuel, outgrows its memory or answers the wrong type fails its action (core/codes.py); the run
goes on, with a fresh instance for the next call.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from wasmtime.component import Component as WasmComponent
from wasmtime.component import Linker, Variant

from wbsrun.core import codes
from wbsrun.core.ports import ActionOutcome, Component, Runtime, UserHandle
from wbsrun.dsl.plan import ComponentSpec
from wbsrun.errors import RunError
from wbsrun.plugins.engine import engine
from wbsrun.plugins.instances import Instance, InstancePool
from wbsrun.plugins.progress import PollableHost, ProgressSource, imports_progress
from wbsrun.plugins.settings import PluginSettings, failure_of, to_json

__all__ = ["FRAME", "HOST", "WasmPlugin"]

FRAME: Final = "wbsrun:plugin/frame@0.1.0"
HOST: Final = "wbsrun:plugin/host@0.1.0"
_FAILURE: Final = "record{code: string, message: string}"
_STEP: Final = (
    f"variant{{done(record{{value-json: string, error: option<{_FAILURE}>}}), wait, sleep(u32)}}"
)
_RESPONSE: Final = (
    "record{ticket: u32, status: u16, headers: list<tuple<string, string>>, body: string, "
    f"latency-ms: f64, error: option<{_FAILURE}>}}"
)
# The frame's exports and their signatures in the world (calls.signature's notation).
FRAME_FUNCS: Final = {
    "init": f"func(config-json: string) -> result<_, {_FAILURE}>",
    "run-action": f"func(user: string, call: string, args-json: string) -> {_STEP}",
    "resume": f"func(user: string, responses: list<{_RESPONSE}>) -> {_STEP}",
    "release-user": "func(user: string) -> _",
    "release": "func() -> _",
}
# Bounds of one action: rounds of wait/sleep, and requests queued in one round.
MAX_ROUNDS: Final = 1_000
MAX_QUEUED: Final = 256
_METHODS: Final = frozenset({"get", "post", "put", "patch", "delete", "head"})


class Rec:
    """A WIT record handed to the plugin (wasmtime-py reads its fields by name)."""

    def __init__(self, **fields: Any) -> None:
        for key, value in fields.items():
            setattr(self, key.replace("_", "-"), value)


class _Failed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _field(rec: Any, name: str, kind: type) -> Any:
    value = getattr(rec, name, None)
    if not isinstance(value, kind):
        raise _Failed(codes.PLUGIN_WRONG_TYPE, f"field '{name}' is {value!r}, not {kind.__name__}")
    return value


class WasmPlugin:
    """`run_action` → the plugin's `run-action`, `resume`d until `done`.

    A plain `Component` (core/ports.py), not a `ComponentBase`: that base is compiled with
    the hot path, and interpreted code cannot subclass a compiled class; the runner wraps
    it in a `ForwardingComponent`."""

    CALLS: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        spec: ComponentSpec,
        component: WasmComponent,
        sender: Component,
        settings: PluginSettings,
        types_cached: bool = True,
        progress: ProgressSource | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.settings = settings
        self.sender = sender
        self._runtime: Runtime | None = None
        # What the plugin queued with `send` during the call in progress (calls never
        # overlap: each runs to its end on the loop's thread).
        self._queue: list[tuple[int, Any]] = []
        self._tickets = 0
        # The progress pollable (wbsrun:progress): its subscriptions belong to the instance
        # whose call (or init) made them, `owner` (a pool key) at the time.
        self.owner = ""
        self.progress = PollableHost(self.name, lambda: self.owner)
        self.progress.source = progress
        self.imports_progress = imports_progress(component, engine())
        linker = Linker(engine())
        self._define_host(linker)
        self.pool = InstancePool(
            component, linker, FRAME, FRAME_FUNCS, settings, self._init_instance, types_cached
        )

    # -- host imports: called by the plugin during one of its calls ----------------------
    def _define_host(self, linker: Linker) -> None:
        with linker.root() as root, root.add_instance(HOST) as host:
            host.add_func("log", self._log)
            host.add_func("now", self._now)
            host.add_func("rate-reserve", self._rate_reserve)
            host.add_func("send", self._send)
        self.progress.define(linker)

    def _log(self, _store: Any, level: str, user: str, message: str) -> None:
        if self._runtime is not None:
            self._runtime.log.log(level, f"{self.name}: {message}", user or None)

    def _now(self, _store: Any) -> float:
        return self._runtime.clock() if self._runtime is not None else 0.0

    def _rate_reserve(self, _store: Any, key: str, per_second: float) -> int:
        if self._runtime is None or not per_second > 0:
            return 0
        wait = self._runtime.rate_guard.reserve(("plugin", self.name, key), per_second)
        return math.ceil(wait * 1000)

    def _send(self, _store: Any, request: Any) -> int:
        if len(self._queue) >= MAX_QUEUED:
            raise _Failed(codes.PLUGIN_WRONG_TYPE, f"more than {MAX_QUEUED} requests queued")
        self._tickets += 1
        self._queue.append((self._tickets, request))
        return self._tickets

    # -- the frame ----------------------------------------------------------------------
    def _init_instance(self, inst: Instance) -> None:
        result = inst.call("init", to_json(dict(self.spec.metadata)))
        failure = result.payload if isinstance(result, Variant) else result
        if failure is not None:
            code = getattr(failure, "code", "invalid-configuration")
            raise RunError(
                f"plugin '{self.name}' refused its init: [{code}] "
                f"{getattr(failure, 'message', failure)}"
            )

    async def init(self, runtime: Runtime) -> None:
        self._runtime = runtime
        await self.sender.init(runtime)
        if self.settings.isolation == "per-worker":
            self.pool.get("")  # instantiated (and init) before the first user starts

    async def run_action(
        self, call: str, args: Mapping[str, Any], user: UserHandle
    ) -> ActionOutcome:
        uid = user.user_id
        totals = _Totals()
        try:
            step, queued = self._enter(uid, "run-action", uid, call, to_json(dict(args)))
            for _ in range(MAX_ROUNDS):
                if step is None:  # wait: send what this call queued
                    answers = await asyncio.gather(*(self._one(r, user, totals) for r in queued))
                    step, queued = self._enter(uid, "resume", uid, list(answers))
                elif isinstance(step, int) and not isinstance(step, bool):
                    await asyncio.sleep(step / 1000)
                    step, queued = self._enter(uid, "resume", uid, [])
                else:
                    return totals.outcome(self._done(step))
            raise _Failed(codes.STEP_LIMIT, f"no answer after {MAX_ROUNDS} wait/sleep rounds")
        except _Failed as exc:
            return totals.outcome((None, exc.code, f"plugin '{self.name}': {exc.message}"))

    def _enter(self, uid: str, func: str, *args: Any) -> tuple[Any, list[tuple[int, Any]]]:
        """One call into the user's instance: its step, and the requests it queued (sent
        only when the step is `wait`). A failure is data (`_Failed`), never raised past
        the action."""
        self.owner = self.pool.key(uid)  # a pollable subscribed now is this instance's
        try:
            inst = self.pool.get(uid)
        except RunError as exc:
            raise _Failed(codes.INVALID_CONFIGURATION, str(exc)) from exc
        except Exception as exc:
            code, message = failure_of(self.name, exc, self.settings)
            raise _Failed(code, f"cannot instantiate: {message}") from exc
        self._queue = []
        try:
            step = inst.call(func, *args)
        except _Failed:
            self._drop(uid)
            raise
        except Exception as exc:
            self._drop(uid)  # a trapped instance may not be entered again
            code, message = failure_of(self.name, exc, self.settings)
            raise _Failed(code, message) from exc
        finally:
            queued, self._queue = self._queue, []
        if isinstance(step, Variant):  # wasmtime-py tags a variant only when it must
            step = None if step.tag == "wait" else step.payload
        return step, queued

    def _drop(self, uid: str) -> None:
        self.pool.drop(uid)
        self.progress.drop_owner(self.pool.key(uid))

    def _done(self, outcome: Any) -> tuple[Mapping[str, Any] | None, str | None, str]:
        text = _field(outcome, "value-json", str)
        value: Any = None
        if text:
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise _Failed(codes.PLUGIN_WRONG_TYPE, f"value-json is not JSON: {exc}") from exc
            if not isinstance(value, dict):
                raise _Failed(
                    codes.PLUGIN_WRONG_TYPE, f"value-json is {text[:80]!r}, not an object"
                )
        error = getattr(outcome, "error", None)
        if error is None:
            return value, None, ""
        code = _field(error, "code", str) or codes.SCHEMA_VIOLATION
        return value, code, _field(error, "message", str)

    async def _one(self, request: Any, user: UserHandle, totals: _Totals) -> Rec:
        ticket, req = request
        method = str(getattr(req, "method", "")).lower()
        if method not in _METHODS:
            return _answer(ticket, codes.INVALID_CONFIGURATION, f"method {method!r} not sent")
        args: dict[str, Any] = {"url": str(getattr(req, "url", ""))}
        headers = getattr(req, "headers", None) or []
        if headers:
            args["headers"] = {str(k): str(v) for k, v in headers}
        body = getattr(req, "body", "")
        if body:
            args["body"] = str(body)
        timeout = getattr(req, "timeout-ms", 0)
        if timeout:
            args["timeout"] = timeout / 1000
        out = await self.sender.run_action(method, args, user)
        totals.add(out)
        value = out.value or {}
        status = out.status or int(value.get("status", 0) or 0)
        if status == 0:
            return _answer(ticket, out.error or codes.RESOURCE_UNAVAILABLE, out.message)
        headers_out = value.get("headers") or {}
        return Rec(
            ticket=ticket,
            status=status,
            headers=[(str(k), str(v)) for k, v in headers_out.items()],
            body=str(value.get("body") or ""),
            latency_ms=float(out.latency_ms),
            error=None,
        )

    async def release_user(self, user: UserHandle) -> None:
        inst = self.pool.peek(user.user_id)
        if inst is not None:
            self.owner = self.pool.key(user.user_id)
            try:
                inst.call("release-user", user.user_id)
            except Exception:  # a plugin's bug at the end of a user fails nothing
                self._drop(user.user_id)
        if self.pool.drop_user(user.user_id) is not None:
            self.progress.drop_owner(user.user_id)

    async def release(self) -> None:
        for inst in self.pool.all():
            try:
                inst.call("release")
            except Exception:  # noqa: S112 - the run is over; nothing to fail
                continue
        self.pool.clear()
        self.progress.close_all()
        await self.sender.release()


def _answer(ticket: int, code: str, message: str) -> Rec:
    return Rec(
        ticket=ticket,
        status=0,
        headers=[],
        body="",
        latency_ms=0.0,
        error=Rec(code=code, message=message or code),
    )


class _Totals:
    """What the requests of one action add up to, for its outcome."""

    __slots__ = ("latency", "received", "requests", "sent", "status")

    def __init__(self) -> None:
        self.requests = 0
        self.latency = 0.0
        self.status = 0
        self.sent = 0
        self.received = 0

    def add(self, out: ActionOutcome) -> None:
        self.requests += out.requests
        self.latency += out.latency_ms
        self.status = out.status or self.status
        self.sent += out.bytes_sent
        self.received += out.bytes_received

    def outcome(self, done: tuple[Mapping[str, Any] | None, str | None, str]) -> ActionOutcome:
        value, error, message = done
        return ActionOutcome(
            value,
            error,
            message,
            self.latency,
            self.requests,
            self.status,
            self.sent,
            self.received,
        )
