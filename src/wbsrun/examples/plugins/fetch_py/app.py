"""A wbsrun plugin in Python (docs/wasi.md), built with componentize-py into a component of
the world wbsrun:plugin/plugin.

`fetch` sends one request (`with`: url, method (default GET), body, headers) through the
host and saves {"status", "json", "count", "served"}: `count` is how many actions this
instance has answered for the user, `served` how many it has answered in all (the same with
`isolation: per-user`, one instance a user; every user's with `per-worker`). An answer of 4xx
or 5xx fails the action with `http-4xx` / `http-5xx`, as the built-in `http` would.
`with.rate` (per second) paces the calls through the run's rate guard first.
"""

from __future__ import annotations

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types


def _done(value: object = None, code: str = "", message: str = "") -> types.Step:
    error = types.Failure(code, message) if code else None
    return types.Step_Done(types.Outcome(json.dumps(value) if value is not None else "", error))


class _State:
    """The instance's state: module-level, since componentize-py makes a new `Frame` for
    every call into the component."""

    counts: dict[str, int] = {}  # noqa: RUF012 - one instance a component instance
    served = 0
    pending: dict[str, dict[str, object]] = {}  # noqa: RUF012


class Frame(exports.Frame):
    def __init__(self) -> None:
        self.counts = _State.counts
        self.pending = _State.pending

    def init(self, config_json: str) -> None:
        config = json.loads(config_json)
        if not isinstance(config, dict):
            raise Err(types.Failure("invalid-configuration", "metadata is not a mapping"))

    def run_action(self, user: str, call: str, args_json: str) -> types.Step:
        if call != "fetch":
            return _done(code="invalid-configuration", message=f"no call {call!r}")
        args = json.loads(args_json)
        url = args.get("url")
        if not isinstance(url, str):
            return _done(code="invalid-configuration", message="fetch needs with.url")
        self.pending[user] = args
        rate = args.get("rate")
        if isinstance(rate, int | float) and rate > 0:
            wait = host.rate_reserve("fetch", float(rate))
            if wait > 0:
                return types.Step_Sleep(wait)
        return self._send(user, args)

    def _send(self, user: str, args: dict[str, object]) -> types.Step:
        headers = args.get("headers") or {}
        body = args.get("body")
        host.send(
            types.Request(
                method=str(args.get("method", "GET")),
                url=str(args["url"]),
                headers=[(str(k), str(v)) for k, v in dict(headers).items()],
                body=body if isinstance(body, str) else json.dumps(body) if body else "",
                timeout_ms=0,
            )
        )
        args["sent"] = True
        return types.Step_Wait()

    def resume(self, user: str, responses: list[types.Response]) -> types.Step:
        args = self.pending.get(user)
        if args is None:
            return _done(code="schema-violation", message="resume without an action")
        if not args.get("sent"):  # woken from the rate guard's sleep
            return self._send(user, args)
        del self.pending[user]
        answer = responses[0]
        if answer.error is not None:
            return _done(code=answer.error.code, message=answer.error.message)
        count = self.counts[user] = self.counts.get(user, 0) + 1
        _State.served += 1
        try:
            parsed = json.loads(answer.body) if answer.body else None
        except ValueError:
            parsed = None
        value = {"status": answer.status, "json": parsed, "count": count, "served": _State.served}
        if answer.status >= 400:
            code = "http-5xx" if answer.status >= 500 else "http-4xx"
            return _done(value, code, f"HTTP {answer.status} from {args['url']}")
        if count == 1:
            host.log(host.Level.DEBUG, user, f"first fetch: HTTP {answer.status}")
        return _done(value)

    def release_user(self, user: str) -> None:
        self.counts.pop(user, None)
        self.pending.pop(user, None)

    def release(self) -> None:
        self.counts.clear()
        self.pending.clear()
