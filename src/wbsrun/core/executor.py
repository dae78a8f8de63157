"""Runs one task (user × pass) through its workflow graph: nodes, transitions, timeouts, exits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Final

from wbsrun.core import codes
from wbsrun.core.checks import respond
from wbsrun.core.events import PRIORITY_HIGH, PRIORITY_NORMAL
from wbsrun.core.feeds import Feed, FeedProblem
from wbsrun.core.guards import EVALUATE, NodeMachine, machines
from wbsrun.core.handlers import HandlerRunner, Jump, copy_state
from wbsrun.core.leases import RESOURCE_FAILED
from wbsrun.core.ledger import Snapshot
from wbsrun.core.ports import ActionOutcome
from wbsrun.core.scope import scope_of
from wbsrun.core.task import Checkpoint, RunContext, Task, UserState
from wbsrun.dsl.data import sources_read
from wbsrun.dsl.expr import ExprError
from wbsrun.dsl.plan import (
    ActionSpec,
    Milestone,
    NodeSpec,
    ScenarioSpec,
    Transition,
    WorkflowSpec,
)

__all__ = ["JOINED", "MAX_STEPS", "WOULD_WAIT", "Executor"]

# Node visits per pass before a cycle without progress is called a runaway.
MAX_STEPS = 10_000
# How long exit handlers may take after a pass already timed out.
EXIT_GRACE = 5.0
JOINED: Jump = ("joined", "")
# `lease_nowait`'s answer when a pool has nothing free now (compared by identity).
WOULD_WAIT: Final = ActionOutcome(None, error="would-wait", message="no item free now")
# (action, per-user rate, global rate, timeout) of one action node.
_ActionPlan = tuple[ActionSpec, float | None, float | None, float | None]
# Values that never carry `shrink` (see _close): skipped without a failing attribute lookup.
_PLAIN: frozenset[type] = frozenset({dict, list, tuple, str, bytes, int, float, bool, type(None)})
# A failed pass without an error code of its own is counted under this one.
_CODE_BY_STATE = {
    "closing.timeout": codes.NETWORK_TIMEOUT,
    "closing.rollback": "rolled-back",
}
_OUTCOME_BY_STATE = {
    "closing.success": "tasks_succeeded",
    "closing.timeout": "tasks_timed_out",
    "closing.rollback": "tasks_rolled_back",
    "closing.interrupted": "tasks_interrupted",
}


def _cancelling() -> bool:
    """Whether the running task is being cancelled (a cancellation not taken back)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Executor(HandlerRunner):
    """Executes passes of one scenario; one instance per scenario, shared by its users."""

    def __init__(self, run: RunContext, scenario: ScenarioSpec) -> None:
        super().__init__(run, scenario)
        self.workflow: WorkflowSpec = run.plan.workflows[scenario.workflow]
        self.milestones: Mapping[tuple[str, str], Milestone] = {
            (m.node, m.edge): m for m in scenario.milestones
        }
        self.milestone_total = sum(m.weight for m in scenario.milestones) or 1.0
        self.sources: Mapping[str, float] = dict(scenario.aggregation)
        self.source_total = sum(self.sources.values()) or 1.0
        self.action_nodes = sum(1 for n in self.workflow.nodes.values() if n.type == "action") or 1
        context = self._context_paths()
        # One tuple object for every pass: set_many caches what the paths imply by its identity.
        self._book_context = tuple((p, v) for p, v in context if not p.startswith("vars."))
        self._var_context = tuple((p[5:], v) for p, v in context if p.startswith("vars."))
        self.fork_plans = self._fork_plans()
        # Nodes whose conditions all compare a workbook field or a saved variable with a
        # literal: chosen by a state machine of direct reads (core/guards.py).
        self.machines: dict[str, NodeMachine] = machines(self.workflow.nodes, run.plan.workbook)
        # Per action node, what `walk` reads on every visit: the node's values over its
        # action's, resolved once (plan objects are frozen) instead of ~8 loads a visit.
        self._action_plans: dict[str, _ActionPlan] = {
            n.id: (
                n.action,
                n.rate_limit or n.action.rate_limit,
                n.rate_limit_global or n.action.rate_limit_global,
                n.timeout or n.action.timeout,
            )
            for n in self.workflow.nodes.values()
            if n.type == "action" and n.action is not None
        }
        # Per checkpoint node: (metric, where its component's last result is kept, field).
        self._metric_plans: dict[str, tuple[tuple[str, str, str], ...]] = {
            n.id: tuple(self._metric_plan(m) for m in n.metrics)
            for n in self.workflow.nodes.values()
            if n.type == "checkpoint"
        }
        self._start: Snapshot | None = None
        # The data sources this scenario's templates read (None: the plan has none), and
        # whether one ran out: then no user of the scenario starts another pass.
        self.feeds: tuple[Feed, ...] | None = None
        if run.plan.data:
            read = sources_read(self.workflow, run.plan.exits.values(), run.plan.data)
            self.feeds = tuple(run.feeds[name] for name in read if name in run.feeds)
        self.data_done = False
        # The pause gate (core/control.py): while `held`, a user waits on `gate` before its
        # next action. One attribute test an action node when not paused.
        self.held = False
        self.gate = asyncio.Event()
        self.gate.set()

    def bind_limits(self) -> None:
        """Action nodes without a timeout get their component's request timeout (`limit_of`);
        called once the components are initialised (they resolve it in `init`)."""
        self._action_plans = {
            nid: (action, rate, shared, self.limit_of(action, limit))
            for nid, (action, rate, shared, limit) in self._action_plans.items()
        }

    def _context_paths(self) -> tuple[tuple[str, Any], ...]:
        """user.context keys mapped to workbook paths once, not per task."""
        spec = self.run.plan.workbook
        return tuple((spec.context_path(k), v) for k, v in self.scenario.context.items())

    # -- one pass ---------------------------------------------------------------------------------
    def pick_rows(self, user: UserState) -> tuple[dict[str, Any], FeedProblem | None]:
        """This pass's row of each source the scenario reads, once, before its first node
        (every action of the pass sees the same rows); the first problem met, if any."""
        rows: dict[str, Any] = {}
        assert self.feeds is not None
        for feed in self.feeds:
            got = feed.pick(user.rows, user.index)
            if isinstance(got, FeedProblem):
                if got.exhausted:
                    self.data_done = True
                return rows, got
            rows[feed.spec.name] = got
        return rows, None

    async def run_task(self, user: UserState, iteration: int) -> str:
        run = self.run
        rows: dict[str, Any] | None = None
        problem: FeedProblem | None = None
        if self.feeds is not None:
            rows, problem = self.pick_rows(user)
            if problem is not None and problem.stop:
                return "closing.exhausted"  # no pass: the scheduler ends the user
        entry = run.workbook.open(
            user.handle.user_id, f"{user.handle.user_id}-t{iteration}", self.scenario.name
        )
        task = Task(run, self.scenario, self.workflow, user, entry, iteration)
        task.data = rows
        for name, value in self._var_context:
            entry.vars[name] = value
        if self._book_context:
            run.workbook.set_many(entry, self._book_context)
        if self._start is None:
            # Every pass of a scenario starts from the same state (its user.context): one
            # snapshot serves them all (restore copies it; ~3 µs a pass saved).
            self._start = run.workbook.snapshot(entry)
        task.start = self._start
        opened = run.clock()
        run.stats.tasks_started += 1
        run.inflight[entry.task_id] = 0.0
        self.transition(task, "planning.ready", "plan")
        state = "closing.error"
        failure: BaseException | None = None
        try:
            # The pass body is inline here rather than in helper coroutines: every response
            # resumes the whole chain of coroutine frames, ~1 µs a level (py-spy, 1,000 users).
            timeout = self.workflow.timeout
            deadline = None
            deadline_at = 0.0
            if timeout is not None:
                deadline_at = run.clock() + timeout
                run.workbook.put(entry, "execution.timeout_at", run.wall() + timeout)
                deadline = run.deadlines.arm(timeout)
            jump: Jump | None = None
            timed_out = False
            try:
                if problem is not None:
                    jump = await self.fail(task, None, problem.code, problem.message)
                elif self.scenario.inherit and run.leases is not None:
                    self.transition(task, "executing.waiting_resource", "lease")
                    failed = self.lease_nowait(task, self.scenario.inherit)
                    if failed is WOULD_WAIT:
                        failed = await self.lease(task, self.scenario.inherit, tried=True)
                    if failed is not None:
                        code = failed.error or codes.RESOURCE_UNAVAILABLE
                        jump = await self.fail(task, None, code, failed.message)
                if jump is None:
                    run.workbook.put(entry, "timeline.start_at", run.wall())
                    jump = await self.walk(task, self.workflow.entry, None)
            except asyncio.CancelledError:
                if deadline is None or not deadline.claim():
                    raise
                timed_out = True  # handled below: no await while an exception is handled
            except BaseException:
                if deadline is not None:
                    deadline.disarm()
                raise
            else:
                if deadline is not None:
                    deadline.disarm()
            if timed_out:
                assert timeout is not None
                jump = await self._pass_timed_out(task, timeout)
            assert jump is not None
            if deadline is None or jump[0] != "exit":
                state = await self.finish(task, jump)  # only an exit runs handlers that wait
            else:
                state = await self._exit_within(task, jump, deadline_at)
        except BaseException as exc:
            failure = exc
            if _cancelling():
                # No deadline of the pass claimed it: the user is being cancelled (its
                # graceful stop ran out, or the run was aborted). Interrupted, never failed or
                # uncounted.
                state = "closing.interrupted"
        # Closed outside the handler, not in a `finally`: a compiled coroutine that suspends
        # while an exception is being handled leaves it as the thread's handled exception for
        # whatever runs next (a bare `raise` elsewhere then raised this CancelledError again).
        await self._close(task, state)
        self._impact(task, state, run.clock() - opened)
        if failure is not None:
            try:
                raise failure
            finally:
                failure = None  # the frame would hold its own traceback: a cycle
        return state

    def _impact(self, task: Task, state: str, seconds: float) -> None:
        """Error impact: every pass's time, and a failed pass's cost under its error code."""
        stats = self.run.stats
        stats.pass_seconds += seconds
        if state == "closing.success" or state == "closing.interrupted":
            return
        error = task.error
        code = error.get("code", "") if error is not None else ""
        if not code:
            code = _CODE_BY_STATE.get(state, state)
        stats.count_impact(code, task.progress, seconds)

    async def _exit_within(self, task: Task, jump: Jump, deadline_at: float) -> str:
        """Exit handlers run after the pass deadline; bounded so a stuck exit cannot hang a
        user."""
        run = self.run
        grace = run.deadlines.arm(max(EXIT_GRACE, deadline_at - run.clock()))
        try:
            state = await self.finish(task, jump)
        except asyncio.CancelledError:
            if not grace.claim():
                raise
            return "closing.timeout"
        except BaseException:
            grace.disarm()
            raise
        grace.disarm()
        return state

    async def _pass_timed_out(self, task: Task, limit: float) -> Jump:
        if task.phase == "executing.waiting_resource":
            # Waiting for a lease is bounded by the pass timeout and fails as unavailability.
            return await self.fail(
                task, None, codes.RESOURCE_UNAVAILABLE, f"no resource free within {limit:g}s"
            )
        message = f"pass exceeded its {limit:g}s timeout"
        self.set_error(task, codes.NETWORK_TIMEOUT, message)
        self.run.stats.count_error(codes.NETWORK_TIMEOUT, None, message, self.run.wall())
        self.transition(task, "monitoring.timeout", "task-timeout")
        jump = await self.run_handlers(task, self.workflow.on_timeout, None)
        if jump is not None:
            return jump
        exit_ = self.timeout_exit
        return ("exit", exit_) if exit_ is not None else ("end", "closing.timeout")

    async def lease(
        self,
        task: Task,
        pools: tuple[str, ...],
        *,
        wait_for_health: bool = True,
        tried: bool = False,
    ) -> ActionOutcome | None:
        """Lease one item of each pool the task lacks; the provider's error outcome if any.
        `tried`: the caller's `lease_nowait` just answered WOULD_WAIT (not asked again)."""
        book = self.run.leases
        assert book is not None
        got = WOULD_WAIT if tried else self.lease_nowait(task, pools, wait_for_health)
        while got is WOULD_WAIT:
            # A pool with nothing free: wait for its item, then lease the rest at once.
            held = {h.pool for h in task.holdings if not h.released}
            pool = next(p for p in pools if p not in held)
            waited = await book.acquire_waiting(task, pool, wait_for_health=wait_for_health)
            if isinstance(waited, ActionOutcome):
                return waited
            task.holdings.append(waited)
            got = self.lease_nowait(task, pools, wait_for_health)
        return got

    def lease_nowait(
        self, task: Task, pools: tuple[str, ...], wait_for_health: bool = True
    ) -> ActionOutcome | None:
        """`lease` without a coroutine: None once every pool's item is held, the provider's
        error outcome, or WOULD_WAIT when a pool has nothing free now (items granted so far
        stay held; `lease` waits for the rest)."""
        book = self.run.leases
        assert book is not None
        held = {h.pool for h in task.holdings if not h.released} if task.holdings else ()
        for pool in pools:
            if pool in held:
                continue
            got = book.acquire_nowait(task, pool, wait_for_health=wait_for_health)
            if got is None:
                return WOULD_WAIT
            if isinstance(got, ActionOutcome):
                return got
            task.holdings.append(got)
        live = [h for h in task.holdings if not h.released]
        if len(live) == 1:
            # The usual case (one pool), without the joins and merges below.
            task.resource = dict(live[0].item)
            handles = live[0].handle
        else:
            items = {h.pool: h.item for h in live}
            # One pool: `resource.ip`; several: `resource.<pool>.ip` (and the first pool's
            # fields).
            task.resource = {**live[0].item, **items} if len(items) > 1 else dict(live[0].item)
            handles = ",".join([h.handle for h in live])
        self.run.workbook.put(task.entry, "execution.resource_lease", handles)
        self.run.events.publish(task, "lease", PRIORITY_NORMAL)
        return None

    async def _close(self, task: Task, state: str) -> None:
        run = self.run
        if task.phase != state:
            # No event of its own: the `closed` event below carries the final phase.
            self.transition(task, state, "close", publish=False)
        book = run.leases
        if book is not None:
            # Progress-aware release: the holder reached `closing`; nothing is mid-action now.
            for h in task.holdings:
                if not h.released and book.release_nowait(h, "task-closed", force=True) is None:
                    await book.release(h, "task-closed", force=True)
        # A holding and the scope refer to their task: dropped here, the pass is freed by
        # reference counting instead of waiting for the cyclic collector (core/runner.py).
        task.holdings = []
        task.scope = None
        # Nothing rolls a closed task back or renders with it: its last stable point, task-local
        # variables and resource go now, while in cache, rather than when the last progress
        # event about the task is dropped (the poller holds the task until its close check,
        # ~50-100 ms later; 1-3.5 µs of CPU a request less in five pairs, bench/wiring.py).
        task.checkpoint = None
        task.vars.clear()
        task.resource = None
        if state == "closing.success":
            task.progress = 1.0
        attr = _OUTCOME_BY_STATE.get(state, "tasks_failed")
        setattr(run.stats, attr, getattr(run.stats, attr) + 1)
        run.inflight.pop(task.task_id, None)
        run.progress_done += task.progress
        run.events.publish(task, "closed", PRIORITY_HIGH)
        # The last result per component only serves checkpoint metrics during the pass;
        # a closed entry keeping it would hold every response's body and headers.
        saved = task.entry.vars
        for key in self.last_keys.values():
            saved.pop(key, None)
        # Results decoded during the pass (body text, JSON, headers) shrink back to their
        # bytes: thousands of closed entries otherwise hold every decoded response.
        for value in saved.values():
            if type(value) in _PLAIN:
                continue  # getattr with a default raises and catches inside: ~0.3 µs each
            shrink = getattr(value, "shrink", None)
            if shrink is not None:
                shrink()

    # -- graph walk -----------------------------------------------------------------------------
    async def walk(self, task: Task, start: str, stop_at: str | None) -> Jump:
        nodes = self.workflow.nodes
        plans = self._action_plans
        run = self.run
        nid = start
        for _ in range(MAX_STEPS):
            if nid == stop_at:
                return JOINED
            task.steps += 1
            if task.fault is not None:
                jump = await self.on_fault(task)
                # Inside a parallel branch the jump leaves the branch; the node walks on.
                if jump[0] != "node" or stop_at is not None:
                    return jump
                nid = jump[1]
                continue
            node = nodes[nid]
            # Dispatch inline: checkpoints and termini need no coroutine of their own.
            kind = node.type
            if kind == "action":
                if self.held:
                    # Paused: the action before this one has ended; wait for the resume.
                    await self.gate.wait()
                # The action node, inline (see run_task: a coroutine level less per response).
                action, rate, shared, limit = plans[nid]
                if rate:
                    delay = task.user.rate_guard.reserve(nid, rate)
                    if delay > 0:
                        await self._throttled(task, nid, delay)
                if shared:
                    delay = run.rate_guard.reserve((self.scenario.name, nid), shared)
                    if delay > 0:
                        await self._throttled(task, nid, delay)
                if task.phase != "executing.running_action":
                    self.transition(task, "executing.running_action", nid)
                # `call`, inline: the same steps, one coroutine level less.
                started = run.wall()
                t0 = time.perf_counter()
                args = self._begin_call(task, action, started)
                if isinstance(args, ActionOutcome):
                    outcome = args
                else:
                    deadline = run.deadlines.arm(limit) if limit is not None else None
                    task.in_action += 1
                    try:
                        outcome = await run.calls[action.component].run_action(
                            action.call, args, task.user.handle
                        )
                    except asyncio.CancelledError:
                        if deadline is None or not deadline.claim():
                            self._interrupted(action)
                            raise
                        outcome = self._timed_out(action, limit)
                    except BaseException:
                        if deadline is not None:
                            deadline.disarm()
                        raise
                    else:
                        if deadline is not None:
                            deadline.disarm()
                    finally:
                        task.in_action -= 1
                    if task.deferred and run.leases is not None:
                        await run.leases.settle(task)
                outcome = self._end_call(task, action, outcome, started, t0)
                if outcome.error is not None:
                    jump = await self._action_failed(task, node, outcome)
                else:
                    picked = self._succeeded(task, node)
                    jump = picked if picked is not None else await self.follow(task, node)
            elif kind == "checkpoint":
                self._checkpoint(task, node)
                picked = self._next(task, node)
                jump = picked if picked is not None else await self.follow(task, node)
            elif kind == "parallel":
                jump = await self._parallel_node(task, node)
            else:
                return ("end", node.state or "closing.success")
            if jump[0] != "node":
                return jump
            nid = jump[1]
        return await self.fail(task, None, codes.STEP_LIMIT, f"over {MAX_STEPS} node visits")

    async def fail(self, task: Task, node: NodeSpec | None, code: str, message: str) -> Jump:
        """A failure no action outcome recorded: count its code, then route it like one. It is
        counted against the node's action (a transition that failed after it), the node for
        other nodes, None for the pass itself (lease wait, lease fault, step limit)."""
        where = None if node is None else node.action.name if node.action else node.id
        self.run.stats.count_error(code, where, message, self.run.wall())
        return await self.on_error(task, node, code, message)

    async def _action_failed(self, task: Task, node: NodeSpec, outcome: ActionOutcome) -> Jump:
        assert outcome.error is not None
        fault = task.fault
        if fault is not None and fault.code == RESOURCE_FAILED:
            # The item failed under the action: its failure, not the action's, decides.
            self.set_error(task, outcome.error, outcome.message)
            return await self.on_fault(task)
        return await self.on_error(task, node, outcome.error, outcome.message)

    def _succeeded(self, task: Task, node: NodeSpec) -> Jump | None:
        """Progress for a successful action node, then its transition (None: see `_next`)."""
        sources = self.sources
        if not sources or node.id not in sources:
            if self.milestones or sources:
                return self._next(task, node)
            self._advance(task, 1.0 / self.action_nodes)
        else:
            self._advance(task, sources[node.id] / self.source_total)
        # One `progress` publish for the node: a milestone its transition reaches publishes
        # it (after its own), otherwise it goes out here. Every publish of a step coalesces
        # into the same pending update anyway; each one costs a sink and a bus call.
        reached = len(task.milestones)
        picked = self._next(task, node)
        if len(task.milestones) == reached:
            self.run.events.publish(task, "progress", PRIORITY_NORMAL)
        return picked

    async def _throttled(self, task: Task, trigger: str, delay: float) -> None:
        """Wait for a reserved slot of a 1/rate schedule in executing.throttled."""
        previous = task.phase
        self.transition(task, "executing.throttled", trigger)
        await asyncio.sleep(delay)
        self.transition(task, previous, trigger)

    async def call(self, task: Task, action: ActionSpec, limit: float | None) -> ActionOutcome:
        """One component call with its bookkeeping; errors come back as data. (`walk` has
        the same sequence inline for action nodes.)"""
        run = self.run
        started = run.wall()
        t0 = time.perf_counter()
        args = self._begin_call(task, action, started)
        if isinstance(args, ActionOutcome):
            outcome = args
        else:
            component = run.calls[action.component]
            deadline = run.deadlines.arm(limit) if limit is not None else None
            task.in_action += 1
            try:
                outcome = await component.run_action(action.call, args, task.user.handle)
            except asyncio.CancelledError:
                if deadline is None or not deadline.claim():
                    self._interrupted(action)
                    raise
                outcome = self._timed_out(action, limit)
            except BaseException:
                if deadline is not None:
                    deadline.disarm()
                raise
            else:
                if deadline is not None:
                    deadline.disarm()
            finally:
                task.in_action -= 1
            if task.deferred and run.leases is not None:
                await run.leases.settle(task)
        return self._end_call(task, action, outcome, started, t0)

    def _begin_call(
        self, task: Task, action: ActionSpec, started: float
    ) -> Mapping[str, Any] | ActionOutcome:
        """Mark the action started and render its arguments (an outcome when they fail)."""
        self.run.workbook.begin_action(task.entry, action.name, started)
        try:
            args: Mapping[str, Any] = action.args.render(scope_of(task))
        except ExprError as exc:
            return ActionOutcome(None, error=codes.code_for_expression(exc), message=str(exc))
        return args

    def _interrupted(self, action: ActionSpec) -> None:
        """A call cancelled in flight (the pass is being interrupted): its requests were
        sent, so they are counted, as interrupted."""
        stats = self.run.stats
        name = action.name
        sent = getattr(self.run.components[action.component], "REQUESTS_PER_CALL", 0)
        for st in self.stats_of.get(name) or self._stats_pair(name):
            st.count += 1
            st.interrupted += 1
            st.requests += sent  # no answer, no status, bytes unknown
            st.requests_interrupted += sent
        stats.requests_total += sent
        stats.requests_interrupted += sent

    def _timed_out(self, action: ActionSpec, limit: float | None) -> ActionOutcome:
        return ActionOutcome(
            None,
            error=codes.NETWORK_TIMEOUT,
            message=f"{action.name}: no answer within {limit:g}s",
            latency_ms=(limit or 0.0) * 1000.0,
            requests=getattr(self.run.components[action.component], "REQUESTS_PER_CALL", 0),
        )

    def _end_call(
        self, task: Task, action: ActionSpec, outcome: ActionOutcome, started: float, t0: float
    ) -> ActionOutcome:
        """Save and record the outcome; a save-as persist that is refused (its file name)
        fails an action that had succeeded, with `persist-error`."""
        ms = outcome.latency_ms or (time.perf_counter() - t0) * 1000.0
        value = outcome.value
        if value is not None and action.save_as is not None:
            problem = self.save(task, action, value, outcome.error is None)
            if problem is not None and outcome.error is None:
                outcome = ActionOutcome(
                    value,
                    codes.PERSIST_ERROR,
                    problem,
                    outcome.latency_ms,
                    outcome.requests,
                    outcome.status,
                    outcome.bytes_sent,
                    outcome.bytes_received,
                )
        rules = action.response
        if rules is not None:
            figures = (self.stats_of.get(action.name) or self._stats_pair(action.name))[0]
            outcome = respond(task, action.name, rules, outcome, ms, figures)
        self.record(task, action, outcome, ms, started)
        return outcome

    def _checkpoint(self, task: Task, node: NodeSpec) -> None:
        entry = task.entry
        saved = entry.vars
        # A loop, not a comprehension: no function frame per checkpoint visit (3.11).
        metrics: dict[str, Any] = {}
        for name, key, fld in self._metric_plans[node.id]:
            last = saved.get(key)
            # Duck-typed: isinstance against the Mapping ABC costs ~1 µs a metric (py-spy).
            # None first: a getattr that fails raises and catches inside.
            get = getattr(last, "get", None) if last is not None else None
            metrics[name] = get(fld) if get is not None else None
        # Built here for this write alone: the entry may keep it as it is (owned).
        evidence = {"checkpoint": node.id, "metrics": metrics}
        self.run.workbook.set(entry, "execution.evidence.snapshot", evidence, owned=True)
        # The last stable point: what `progress.rollback → last-stable-point` restores.
        earlier = task.checkpoint
        if earlier is not None:
            # Back at a checkpoint already passed (a loop): it and what followed it are gone.
            again = earlier.reached(node.id)
            if again is not None:
                earlier = again.earlier
        task.checkpoint = Checkpoint(
            node.id,
            self.run.workbook.snapshot(entry),
            copy_state(task.vars),
            task.progress,
            task.milestones,
            earlier,
        )

    def _metric_plan(self, name: str) -> tuple[str, str, str]:
        """`component.field` resolved once per checkpoint node: the key of the component's
        last result and the field read from it (`latency` is its `latency_ms`)."""
        component, _, fld = name.partition(".")
        key = self.last_keys.get(component) or f"__last_{component}"
        return (name, key, "latency_ms" if fld == "latency" else fld)

    def _fork_plans(self) -> Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        """Per parallel node: its quiet branches (no action or parallel node before the join,
        so they never wait on the loop on their way) and the rest, in declared order."""
        nodes = self.workflow.nodes
        plans: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        for node in nodes.values():
            if node.type != "parallel":
                continue
            quiet: list[str] = []
            loud: list[str] = []
            for start in node.branches:
                seen: set[str] = set()
                todo = [start]
                calm = True
                while todo and calm:
                    nid = todo.pop()
                    if nid in seen or nid == node.join_to or nid not in nodes:
                        continue
                    seen.add(nid)
                    n = nodes[nid]
                    calm = n.type in ("checkpoint", "terminus")
                    todo.extend(t.to for t in n.transitions if t.target_kind == "node")
                (quiet if calm else loud).append(start)
            plans[node.id] = (tuple(quiet), tuple(loud))
        return plans

    async def _parallel_node(self, task: Task, node: NodeSpec) -> Jump:
        join_to = node.join_to
        wait_any = node.join_policy == "wait-any"
        joined: Jump = ("node", join_to) if join_to else ("end", "closing.success")
        quiet, loud = self.fork_plans[node.id]
        # Quiet branches first, in the parent task: a task group costs ~7 µs a pass for
        # branches that would finish in their first step anyway. The first to end decides a
        # wait-any join, and an exit stops the fork, before the other branches start.
        for start in quiet:
            jump = await self.walk(task, start, join_to)
            if jump != JOINED:
                return jump
            if wait_any:
                return joined
        if len(loud) == 1:
            jump = await self.walk(task, loud[0], join_to)
            return joined if jump == JOINED else jump
        if not loud:
            return joined
        results: list[Jump] = []

        async def branch(start: str) -> None:
            jump = await self.walk(task, start, join_to)
            results.append(jump)
            if jump != JOINED or wait_any:
                raise _BranchDone

        try:
            async with asyncio.TaskGroup() as tg:
                for start in loud:
                    tg.create_task(branch(start))
        except BaseExceptionGroup as group:
            # An exit or a wait-any winner raised _BranchDone (siblings were cancelled by the
            # group); anything else goes on up. Not `except*`: mypyc does not compile it.
            _, rest = group.split(_BranchDone)
            if rest is not None:
                raise rest from None
        exit_jump = next((j for j in results if j != JOINED), None)
        return exit_jump if exit_jump is not None else joined

    # -- transitions ----------------------------------------------------------------------------
    def _choose(self, task: Task, node: NodeSpec) -> Transition | tuple[str, str] | None:
        """The transition the node takes: by its state machine (core/guards.py: direct reads)
        when it has one and the values are plain, else its conditions evaluated in order
        (the first that holds, an `always` met first, else the first `otherwise`). None when
        nothing matches; (code, message) when a condition failed."""
        machine = self.machines.get(node.id)
        if machine is not None:
            i = machine.choose(task)
            if i != EVALUATE:
                return node.transitions[i] if i >= 0 else None
        fallback = None
        scope = None
        for t in node.transitions:
            how = t.kind
            if how == "always":
                return t
            if how == "otherwise":
                fallback = fallback or t
                continue
            assert t.condition is not None
            if scope is None:
                scope = scope_of(task)
            try:
                if t.condition.evaluate(scope):
                    return t
            except ExprError as exc:
                return (codes.code_for_expression(exc), str(exc))
        return fallback

    def _next(self, task: Task, node: NodeSpec) -> Jump | None:
        """The transition taken, without a coroutine; None when only `follow` can answer (an
        expression error, no match, a retry), which then decides from scratch."""
        chosen = self._choose(task, node)
        if chosen is None or isinstance(chosen, tuple) or chosen.target_kind == "retry":
            return None
        milestone = self.milestones.get((node.id, chosen.edge))
        if milestone is not None:
            self._milestone(task, milestone)
        kind = chosen.target_kind
        if kind == "node":
            return ("node", chosen.to)
        if kind == "rollback":
            return ("end", "closing.rollback")
        return ("exit", chosen.to)

    async def follow(self, task: Task, node: NodeSpec) -> Jump:
        chosen = self._choose(task, node)
        if isinstance(chosen, tuple):
            return await self.fail(task, node, chosen[0], chosen[1])
        if chosen is None:
            return await self.fail(
                task, node, codes.NO_TRANSITION, f"no transition of node '{node.id}' matched"
            )
        milestone = self.milestones.get((node.id, chosen.edge))
        if milestone is not None:
            self._milestone(task, milestone)
        kind = chosen.target_kind
        if kind == "node":
            return ("node", chosen.to)
        if kind == "retry":
            return await self.retry(task, node)
        if kind == "rollback":
            return ("end", "closing.rollback")
        return ("exit", chosen.to)

    def _milestone(self, task: Task, m: Milestone) -> None:
        if m.name in task.milestones:
            return
        task.milestones = task.milestones.union((m.name,))
        stats = self.run.stats
        stats.milestones[m.name] = stats.milestones.get(m.name, 0) + 1
        self.run.workbook.reach_milestone(task.entry, m.name)
        events = self.run.events
        events.publish(task, "milestone", PRIORITY_NORMAL)
        self._advance(task, m.weight / self.milestone_total)
        events.publish(task, "progress", PRIORITY_NORMAL)

    def _advance(self, task: Task, by: float) -> None:
        """Move the task's progress; the caller publishes it."""
        progress = task.progress + by
        # Not min(): a builtin call costs more than the comparison, several times a pass.
        task.progress = progress if progress < 1.0 else 1.0
        self.run.inflight[task.task_id] = task.progress


class _BranchDone(Exception):
    """A branch reached an exit (or won a wait-any join): cancel its siblings."""
