"""Handler lists (on-error, on-timeout, exits), phase transitions and per-action bookkeeping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from wbsrun.core import codes
from wbsrun.core.events import PRIORITY_HIGH, PRIORITY_NORMAL
from wbsrun.core.leases import RESOURCE_FAILED
from wbsrun.core.persist import bad_file_name
from wbsrun.core.ports import ActionOutcome
from wbsrun.core.scope import scope_of
from wbsrun.core.stats import ActionStats, round_to
from wbsrun.core.task import RunContext, Task
from wbsrun.dsl.bundle import PathEscapeError, resolve_in_bundle
from wbsrun.dsl.expr import ExprError
from wbsrun.dsl.plan import (
    LAST_STABLE_POINT,
    ActionSpec,
    ExitSpec,
    Handler,
    HandlerCall,
    HandlerGoto,
    HandlerRelease,
    HandlerRollback,
    HandlerUpdate,
    NodeSpec,
    ScenarioSpec,
)

__all__ = ["HISTORY", "MAX_ROLLBACKS", "HandlerRunner", "Jump", "copy_state"]

# ("node", id) | ("exit", name) | ("end", closing state) | ("joined", "")
Jump = tuple[Literal["node", "exit", "end", "joined"], str]
MAX_ROLLBACKS = 3
# What a rollback keeps: the record of what happened (actions, counts, latencies), the
# pass's clocks and budget, and the lease it holds now. Everything else returns to the
# last stable point.
HISTORY = frozenset(
    {
        "execution.action_log",
        "execution.resource_lease",
        "execution.retry_budget",
        "execution.timeout_at",
        "telemetry.counters",
        "telemetry.latency_ms",
        "timeline.last_transition_at",
        "timeline.phase",
        "timeline.start_at",
    }
)


def _copy(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {k: _copy(v) for k, v in value.items()}
    if kind is list:
        return [_copy(v) for v in value]
    return value  # scalars, frozen plan values, lazily decoded results: shared


def copy_state(state: Mapping[str, Any], skip: frozenset[str] = HISTORY) -> dict[str, Any]:
    """A copy of entry fields or variables that later in-place writes cannot reach."""
    return {k: _copy(v) for k, v in state.items() if k not in skip}


class HandlerRunner:
    """The parts of the executor that react: errors, handlers, exits, transitions, records."""

    def __init__(self, run: RunContext, scenario: ScenarioSpec) -> None:
        self.run = run
        self.scenario = scenario
        progress = run.plan.progress
        self.transient = progress.transient
        self.permanent = progress.permanent
        # The scenario's `exits`: where a failure no handler routed goes (the contract's
        # `exits: {timeout, error}`), and the exit whose passes end `closing.timeout`.
        self.timeout_exit = scenario.exits.get("timeout")
        self.error_exit = scenario.exits.get("error")
        # Where each component's last result is kept during a pass (checkpoint metrics).
        self.last_keys = {name: f"__last_{name}" for name in run.components}
        # Per component: the request timeout it asks for calls without one (read after init).
        self._request_limits: dict[str, float | None] = {}
        # Per action name: its figures over all scenarios and this scenario's
        # (RunStats.actions[name], RunStats.scenarios[scenario][name]), one look-up a call.
        self.stats_of: dict[str, tuple[ActionStats, ActionStats]] = {}

    def _stats_pair(self, name: str) -> tuple[ActionStats, ActionStats]:
        stats = self.run.stats
        pair = (stats.action(name), stats.scenario_action(self.scenario.name, name))
        self.stats_of[name] = pair
        return pair

    # implemented by the executor
    async def call(self, task: Task, action: ActionSpec, limit: float | None) -> ActionOutcome:
        raise NotImplementedError

    async def walk(self, task: Task, start: str, stop_at: str | None) -> Jump:
        raise NotImplementedError

    # -- phases ---------------------------------------------------------------------------------
    def transition(self, task: Task, to: str, trigger: str, *, publish: bool = True) -> None:
        frm = task.phase
        if frm == to:
            return
        now = self.run.wall()
        task.phase = to
        # Trace, phase, last_transition_at and process-group completion, in the workbook.
        self.run.workbook.transition(task.entry, frm, to, now, trigger)
        if publish:
            high = to.startswith(("monitoring", "closing"))
            priority = PRIORITY_HIGH if high else PRIORITY_NORMAL
            self.run.events.publish(task, "timeline.phase", priority)

    # -- errors ---------------------------------------------------------------------------------
    def set_error(self, task: Task, code: str, message: str) -> None:
        cls = codes.classify(code, self.transient, self.permanent)
        task.error = {"code": code, "class": cls, "message": message}
        book = self.run.workbook
        book.set(task.entry, "execution.evidence.last_event", code)
        book.set(task.entry, "execution.evidence.reason", message)
        self.run.events.publish(task, "error", PRIORITY_HIGH)

    async def on_error(self, task: Task, node: NodeSpec | None, code: str, message: str) -> Jump:
        self.set_error(task, code, message)
        timeout = code == codes.NETWORK_TIMEOUT
        self.transition(
            task, "monitoring.timeout" if timeout else "monitoring.error_detected", code
        )
        if node is not None:
            handlers = node.on_timeout if timeout and node.on_timeout else node.on_error
            jump = await self.run_handlers(task, handlers, node)
            if jump is not None:
                return jump
        jump = await self.run_handlers(task, task.workflow.on_error, node)
        if jump is not None:
            return jump
        # No handler routed it: the scenario's error exit (an action's timeout is an error of
        # the pass: the timeout exit is the pass timeout's, `_pass_timed_out`).
        exit_ = self.error_exit
        return ("exit", exit_) if exit_ is not None else ("end", "closing.error")

    async def retry(self, task: Task, node: NodeSpec | None) -> Jump:
        budget = self.run.workbook.get(task.entry, "execution.retry_budget", 0)
        if node is None or not isinstance(budget, int) or budget <= 0:
            return ("end", "closing.error")
        self.run.workbook.set(task.entry, "execution.retry_budget", budget - 1)
        self.transition(task, "executing.running_action", "monitoring.retry")
        return ("node", node.id)

    def limit_of(self, action: ActionSpec, given: float | None) -> float | None:
        """How long a call of `action` may take: its node's or its own `timeout` (`given`),
        else, unless its `with` sets a `timeout` the component applies itself, the request
        timeout its component declares (`request_timeout`: http's, after init; docs/
        operations.md "Limits"). None: unbounded."""
        if given is not None or action.own_timeout:
            return given
        name = action.component
        try:
            return self._request_limits[name]
        except KeyError:
            pass
        component = self.run.components.get(name)
        found = getattr(component, "request_timeout", None)
        limit = float(found) if isinstance(found, int | float) and found > 0 else None
        self._request_limits[name] = limit
        return limit

    # -- handler lists -----------------------------------------------------------------------------
    async def run_handlers(
        self, task: Task, handlers: Sequence[Handler], node: NodeSpec | None
    ) -> Jump | None:
        for h in handlers:
            # `when` filters every kind of step by the current error's class.
            if h.when is not None and not self._when(task, h.when):
                continue
            if isinstance(h, HandlerGoto):
                jump = await self._goto(task, h, node)
                if jump is not None:
                    return jump
            elif isinstance(h, HandlerUpdate):
                self._update(task, h)
            elif isinstance(h, HandlerCall):
                await self.call(task, h.action, self.limit_of(h.action, h.action.timeout))
            elif isinstance(h, HandlerRelease):
                await self._release(task, h)
            elif isinstance(h, HandlerRollback):
                return self._rollback(task, h.to)
        return None

    async def _goto(self, task: Task, h: HandlerGoto, node: NodeSpec | None) -> Jump | None:
        if h.kind == "node":
            return ("node", h.target)
        if h.kind == "exit":
            return ("exit", h.target)
        if h.kind == "rollback":
            return ("end", "closing.rollback")
        budget = self.run.workbook.get(task.entry, "execution.retry_budget", 0)
        if node is None or not isinstance(budget, int) or budget <= 0:
            return None  # budget spent: the next handler (or the workflow's) decides
        return await self.retry(task, node)

    def _when(self, task: Task, when: str | None) -> bool:
        if when is None or when == "any":
            return True
        return task.error is not None and task.error.get("class") == when

    def _update(self, task: Task, h: HandlerUpdate) -> None:
        scope = scope_of(task)
        for path, value in h.assignments:
            try:
                rendered = value.render(scope)
            except ExprError as exc:
                self.run.log.log("warn", f"update-workbook {path}: {exc}", task.user_id)
                continue
            if path == "timeline.phase":
                self.transition(task, str(rendered), "update-workbook")
            else:
                self.run.workbook.set(task.entry, path, rendered)

    async def _release(self, task: Task, h: HandlerRelease) -> None:
        book = self.run.leases
        if book is None:
            return
        try:
            handles = h.handles.render(scope_of(task))
        except ExprError:
            handles = []
        wanted = {str(x) for x in (handles if isinstance(handles, list | tuple) else [handles])}
        wanted = {part for w in wanted for part in w.split(",") if part}
        for held in task.holdings:
            if not held.released and held.handle in wanted:
                await book.release(held, "resource.release")

    def _rollback(self, task: Task, to: str = LAST_STABLE_POINT) -> Jump:
        """Back to the last stable point (the last checkpoint's state, or the pass start), or
        to the checkpoint node `to` when the pass reached it (else the last stable point)."""
        task.rollbacks += 1
        if task.rollbacks > MAX_ROLLBACKS:
            return ("end", "closing.rollback")
        run = self.run
        run.stats.rollbacks += 1
        entry = task.entry
        cp = task.checkpoint
        if cp is not None and to != LAST_STABLE_POINT:
            target = cp.reached(to)
            if target is not None:
                cp = task.checkpoint = target  # the checkpoints after it are undone too
        book = run.workbook
        if cp is None:
            assert task.start is not None
            book.restore(entry, task.start, keep=HISTORY, variables=True)
            task.vars = {}
            progress, milestones, node = 0.0, frozenset[str](), task.workflow.entry
        else:
            book.restore(entry, cp.snapshot, keep=HISTORY, variables=True)
            task.vars = copy_state(cp.task_vars, frozenset())
            progress, milestones, node = cp.progress, cp.milestones, cp.node
        for lost in task.milestones - milestones:
            run.stats.milestones[lost] -= 1
        task.milestones = milestones
        task.progress = progress
        task.error = None  # the failure that led here is history (evidence, action_log)
        if entry.task_id in run.inflight:
            run.inflight[entry.task_id] = progress
        self.transition(task, "executing.running_action", "progress.rollback")
        run.events.publish(task, "rollback", PRIORITY_HIGH)
        return ("node", node)

    async def on_fault(self, task: Task) -> Jump:
        """The task's lease expired or its item failed: handle it at this node boundary."""
        fault = task.fault
        assert fault is not None
        task.fault = None
        run = self.run
        book = run.leases
        if fault.code != RESOURCE_FAILED:
            return await self.fail(task, None, fault.code, fault.reason)
        run.log.log("warn", f"{task.task_id}: {fault.reason}; running on-failure", task.user_id)
        jump = await self.run_handlers(task, fault.handlers, None)
        if book is not None:
            # The item failed: whatever on-failure said, the task does not keep it.
            for h in task.holdings:
                if h.failed and not h.released:
                    await book.release(h, "resource-failed", force=True)
        if jump is None:
            return await self.fail(task, None, codes.RESOURCE_UNAVAILABLE, fault.reason)
        if jump[0] != "node" or book is None:
            return jump
        # Resume from the stable point on another healthy item, or close as rolled back.
        self.transition(task, "executing.waiting_resource", "progress.rollback")
        missing = await self.lease(task, task.scenario.inherit, wait_for_health=False)
        if missing is not None:
            run.log.log(
                "warn", f"{task.task_id}: {missing.message}; closing as rolled back", task.user_id
            )
            return ("end", "closing.rollback")
        self.transition(task, "executing.running_action", "progress.rollback")
        return jump

    async def fail(self, task: Task, node: NodeSpec | None, code: str, message: str) -> Jump:
        raise NotImplementedError

    async def lease(
        self, task: Task, pools: tuple[str, ...], *, wait_for_health: bool = True
    ) -> ActionOutcome | None:
        raise NotImplementedError

    # -- exits and the end of a pass ------------------------------------------------------------
    async def finish(self, task: Task, jump: Jump) -> str:
        kind, target = jump
        if kind == "exit":
            spec = self.run.plan.exits.get(target)
            self.run.stats.count_exit(target)
            state = "closing.timeout" if target == self.timeout_exit else "closing.error"
            if spec is not None:
                self._classify(task, spec)
                await self.run_handlers(task, spec.actions, None)
            return state
        if kind == "end":
            return target
        return "closing.success"

    def _classify(self, task: Task, spec: ExitSpec) -> None:
        code = task.error["code"] if task.error else None
        if spec.classify_field is not None:
            try:
                value = spec.classify_field.render(scope_of(task))
            except ExprError:
                value = None
            if isinstance(value, str) and value and value != "null":
                code = value
        cls = (
            codes.classify(code, self.transient, self.permanent, spec.classify_default)
            if code
            else spec.classify_default
        )
        if task.error is None:
            task.error = {"code": code or "", "class": cls, "message": ""}
        else:
            task.error["class"] = cls

    # -- per action bookkeeping -------------------------------------------------------------------
    def record(
        self, task: Task, action: ActionSpec, outcome: ActionOutcome, ms: float, started: float
    ) -> None:
        stats = self.run.stats
        name = action.name
        # The action's figures over all scenarios, and this scenario's: both fed (SPEC-19),
        # written out twice rather than through a helper (a call each, interpreted).
        st, per = self.stats_of.get(name) or self._stats_pair(name)
        error = outcome.error
        st.count += 1
        per.count += 1
        st.latency.record(ms)
        per.latency.record(ms)
        if error is None:
            st.ok += 1
            per.ok += 1
        else:
            st.failed += 1
            per.failed += 1
        book = self.run.workbook
        entry = task.entry
        sent = outcome.requests
        if sent:
            stats.requests_total += sent
            # A persist failure is the action's, not its request's (answered in full).
            failed = 0 if error is None or error == codes.PERSIST_ERROR else sent
            stats.requests_ok += sent - failed
            stats.requests_failed += failed
            st.requests += sent
            per.requests += sent
            if failed:
                st.requests_failed += failed
                per.requests_failed += failed
            # The status of its (last) answer, 0 when none; the bytes on the wire.
            code = outcome.status
            status = st.status
            status[code] = status.get(code, 0) + sent
            status = per.status
            status[code] = status.get(code, 0) + sent
            out = outcome.bytes_sent
            came = outcome.bytes_received
            st.bytes_sent += out
            per.bytes_sent += out
            st.bytes_received += came
            per.bytes_received += came
        if error is None:
            counter = "success"
        else:
            # When it ended, from what was measured anyway (no clock read).
            stats.count_error(error, name, outcome.message, started + ms / 1000.0)
            counter = "timeout" if error == codes.NETWORK_TIMEOUT else "failure"
        result = "ok" if error is None else error
        book.end_action(entry, name, action.component, started, result, round_to(ms, 3), counter)
        if outcome.value is not None:
            entry.vars[self.last_keys[action.component]] = outcome.value

    def save(
        self, task: Task, action: ActionSpec, value: Mapping[str, Any], ok: bool = True
    ) -> str | None:
        """Save the value where `save-as` says; why persisting it failed, or None."""
        save_as = action.save_as
        assert save_as is not None
        scope = save_as.scope
        if scope == "workbook":
            task.entry.vars[save_as.var] = value
        elif scope == "task-local":
            task.vars[save_as.var] = value
        elif scope == "user-local":
            task.user.vars[save_as.var] = value
        else:
            self.run.global_vars[save_as.var] = value
        if save_as.persist is not None:
            return self._persist(task, action, value, ok)
        return None

    def _persist(
        self, task: Task, action: ActionSpec, value: Mapping[str, Any], ok: bool
    ) -> str | None:
        """Queue the value for its file (written behind, persist.py); the problem when the
        file name does not render to a single safe name inside persist.dir."""
        persist = action.save_as.persist if action.save_as else None
        assert persist is not None
        run = self.run
        try:
            name = persist.filename.render_text(scope_of(task))
        except ExprError as exc:
            return self._not_persisted(action, f"file name: {exc}")
        key = (persist.dir, name)
        path = run.persist_paths.get(key)
        if path is None:
            problem = bad_file_name(name)
            if problem is not None:
                return self._not_persisted(action, problem)
            try:
                resolved = resolve_in_bundle(run.plan.res_dir, f"{persist.dir}/{name}")
            except PathEscapeError as escape:  # a name of its own: see _pool._connect
                return self._not_persisted(action, str(escape))
            path = run.persist_paths[key] = str(resolved)
        run.persist.put(path, value, action.name, ok)
        return None

    def _not_persisted(self, action: ActionSpec, problem: str) -> str:
        message = f"persist {action.name}: {problem}; not written"
        self.run.persist.refuse(message)
        return message
