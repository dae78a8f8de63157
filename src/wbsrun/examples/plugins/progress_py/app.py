"""A wbsrun plugin that follows the run's progress through the progress pollable (docs/wasi.md
"The progress pollable"), built with componentize-py into a component of the world
wbsrun:progress/progress-plugin (the plugin frame + `import pollable`).

`init` subscribes (metadata `fields`: the fields to follow, default all). The call `poll`
drains what is waiting (`ready` → `block(32)` → `ack`) and saves {"seen": changes so far,
"milestones": milestone changes so far}. At `release` the plugin drains the rest and logs one
line, `progress-seen {json}`: changes by field, the closed tasks with their final phase and
progress, whether `done()` said the run was over and whether the sequences it got were
unique. The call `bench` is bench/wasm_calls.py's: `n` calls of ready() or block(max) in one
action; `boom` traps (a plugin bug, for the tests).
"""

from __future__ import annotations

import json

from wit_world import exports
from wit_world.imports import host, pollable, wbsrun_plugin_types, wbsrun_progress_types

types = wbsrun_plugin_types


class _State:
    """The instance's state (componentize-py makes a new `Frame` for every call)."""

    sub: pollable.ProgressPollable | None = None
    by_field: dict[str, int] = {}  # noqa: RUF012 - one instance a component instance
    closed: dict[str, list[object]] = {}  # noqa: RUF012
    sequences: list[int] = []  # noqa: RUF012
    batches = 0


def _drain() -> None:
    sub = _State.sub
    if sub is None:
        return
    while sub.ready():
        batch = sub.block(32)
        if not batch:
            break
        _State.batches += 1
        for ch in batch:
            _State.by_field[ch.field] = _State.by_field.get(ch.field, 0) + 1
            _State.sequences.append(ch.sequence)
            if ch.field == "closed":
                _State.closed[ch.task] = [ch.phase, round(ch.progress, 6)]
        pollable.ack(sub, max(ch.sequence for ch in batch))


def _bench(args: dict[str, object]) -> types.Step:
    """bench/wasm_calls.py: `n` calls of `what` (ready, block(`max`), or none) in one action."""
    sub, n, what = _State.sub, int(str(args.get("n", 1))), args.get("what")
    limit = int(str(args.get("max", 16)))
    got = 0
    for _ in range(n):
        if sub is not None and what == "ready":
            got += sub.ready()
        elif sub is not None and what == "block":
            got += len(sub.block(limit))
    return types.Step_Done(types.Outcome(json.dumps({"n": n, "got": got}), None))


def _seen() -> int:
    return sum(_State.by_field.values())


class Frame(exports.Frame):
    def init(self, config_json: str) -> None:
        config = json.loads(config_json)
        fields = config.get("fields") if isinstance(config, dict) else None
        flt = wbsrun_progress_types.Filter(
            tasks=[], fields=[str(f) for f in fields or []], min_priority=0.0
        )
        _State.sub = pollable.subscribe(flt)

    def run_action(self, user: str, call: str, args_json: str) -> types.Step:
        if call == "bench":
            return _bench(json.loads(args_json))
        if call == "boom":  # a plugin bug (tests: a trapped instance's pollables are closed)
            raise RuntimeError("boom")
        if call != "poll":
            error = types.Failure("invalid-configuration", f"no call {call!r}")
            return types.Step_Done(types.Outcome("", error))
        _drain()
        value = {"seen": _seen(), "milestones": _State.by_field.get("milestone", 0)}
        return types.Step_Done(types.Outcome(json.dumps(value), None))

    def resume(self, user: str, responses: list[types.Response]) -> types.Step:
        return types.Step_Done(types.Outcome("", types.Failure("schema-violation", "no wait")))

    def release_user(self, user: str) -> None:
        pass

    def release(self) -> None:
        sub = _State.sub
        done = sub.done() if sub is not None else False
        _drain()
        seqs = _State.sequences
        report = {
            "by_field": _State.by_field,
            "closed": _State.closed,
            "done": done,
            "unique": len(set(seqs)) == len(seqs),
            "batches": _State.batches,
        }
        host.log(host.Level.INFO, "", "progress-seen " + json.dumps(report, sort_keys=True))
