"""Failures as data, end to end: action and pass timeouts, error classification, refused
connections, monitoring.retry, and the per-user rate limit."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

import pytest

from scenario_kit import (
    Doc,
    act,
    document,
    edge,
    end,
    graph,
    http,
    log,
    on,
    phases,
    routes,
    run,
)
from wbsrun.target import TargetProcess

# -- timeouts ------------------------------------------------------------------------------------

HANDLED = {"on_error": [{"goto": "error_out"}], "on_timeout": [{"goto": "timeout_out"}]}


def test_action_timeout_is_network_timeout_handled_by_the_node_on_error(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(latency_ms=600)
    node_handlers = [{"update-workbook": {"risk_flag": "{{error.code}}"}}, {"goto": "error_out"}]
    probe = act("probe", "fetch", edge("done"), timeout="100ms", on_error=node_handlers)
    # The workflow's own handlers would take the timeout exit: the node's must win.
    ran = run(
        tmp_path, document({"fetch": http("get")}, graph(probe, end(), **HANDLED)), on(target)
    )

    entry = ran.entries[0]
    assert ran.result["errors"] == {"network-timeout": 1}
    assert ran.result["exits"] == {"error_out": 1}
    assert ran.result["tasks"]["failed"] == 1
    assert ran.book.get(entry, "risk_flag") == "network-timeout"
    assert ran.book.get(entry, "execution.evidence.last_event") == "network-timeout"
    assert phases(entry)[-2:] == ["monitoring.timeout", "closing.error"]
    assert ran.runner.elapsed < 0.5  # gave up after 100 ms, did not wait 600
    assert routes(target) == {"GET /asset": 1}


def test_pass_timeout_runs_on_timeout_and_takes_the_timeout_exit(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(latency_ms=1500)
    flow = graph(act("probe", "fetch", edge("done")), end(), timeout="300ms", **HANDLED)
    ran = run(tmp_path, document({"fetch": http("get")}, flow, users=2), on(target))

    assert ran.result["tasks"]["timed_out"] == 2
    assert ran.result["tasks"]["succeeded"] == ran.result["tasks"]["failed"] == 0
    assert ran.result["exits"] == {"timeout_out": 2}
    assert ran.result["errors"] == {"network-timeout": 2}
    assert ran.log.counts == {"warn": 2}
    for entry in ran.entries:
        assert phases(entry)[-2:] == ["monitoring.timeout", "closing.timeout"]
    assert ran.runner.elapsed < 1.0


# -- error classification --------------------------------------------------------------------------


def classified(doc: Doc) -> Doc:
    doc["progress"] = {"errors": {"transient": ["network-timeout"], "permanent": ["unauthorized"]}}
    doc["monitoring"]["error_out"] = {
        "classification": {
            "catalog": "progress.errors",
            "field": "{{workbook.execution.evidence.last_event}}",
            "default": "transient",
        },
        "actions": [
            {"when": "transient", "action": "logger.warn", "with": {"message": "retry later"}},
            {"when": "permanent", "action": "logger.error", "with": {"message": "give up"}},
            {"when": "any", "action": "logger.info", "with": {"message": "{{error.code}}"}},
        ],
    }
    return doc


@pytest.mark.parametrize(
    ("status", "code", "level"),
    [(500, "http-5xx", "warn"), (503, "http-5xx", "warn"), (401, "unauthorized", "error")],
)
def test_exit_classification_picks_transient_or_permanent_actions(
    tmp_path: Path, target: TargetProcess, status: int, code: str, level: str
) -> None:
    target.control(status=status)
    flow = graph(act("probe", "fetch", edge("done")), end(), **HANDLED)
    ran = run(tmp_path, classified(document({"fetch": http("get")}, flow)), on(target))

    assert ran.result["errors"] == {code: 1}
    assert ran.result["exits"] == {"error_out": 1}
    assert ran.log.counts == {level: 1, "info": 1}
    assert list(ran.log.recent)[-1].endswith(f"u0001 {code}")


def test_refused_connection_is_resource_unavailable(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    flow = graph(act("probe", "fetch", edge("done")), end(), **HANDLED)
    ran = run(tmp_path, classified(document({"fetch": http("get")}, flow)), [("127.0.0.1", port)])

    entry = ran.entries[0]
    assert ran.result["errors"] == {"resource-unavailable": 1}
    requests = ran.result["requests"]
    assert (requests["total"], requests["ok"], requests["failed"]) == (1, 0, 1)
    assert ran.book.get(entry, "execution.evidence.last_event") == "resource-unavailable"
    assert ran.result["exits"] == {"error_out": 1}
    assert ran.log.counts == {"warn": 1, "info": 1}  # transient by default


# -- monitoring.retry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "budget"), [({}, 2), ({"retry_left": 0}, 0), ({"retry_budget": 4}, 4)]
)
def test_retry_reruns_the_failed_node_while_the_budget_lasts(
    tmp_path: Path, target: TargetProcess, context: Doc, budget: int
) -> None:
    target.control(status=500)
    probe = act("probe", "fetch", edge("done"), on_error=[{"goto": "monitoring.retry"}])
    doc = document({"fetch": http("get")}, graph(probe, end(), **HANDLED))
    doc["load"]["scenarios"][0]["user"]["context"] = context
    ran = run(tmp_path, doc, on(target))

    entry = ran.entries[0]
    assert routes(target) == {"GET /asset": 1 + budget}
    assert ran.result["errors"] == {"http-5xx": 1 + budget}
    assert ran.book.get(entry, "retry_left") == 0
    assert [t for _, _, _, t in entry.trace].count("monitoring.retry") == budget
    # The budget spent, the node's handlers give way to the workflow's on-error.
    assert ran.result["exits"] == {"error_out": 1}
    assert ran.result["tasks"]["failed"] == 1


def test_retry_budget_from_user_context_works_without_a_workbook_default(
    tmp_path: Path, target: TargetProcess
) -> None:
    target.control(status=500)
    probe = act("probe", "fetch", edge("done"), on_error=[{"goto": "monitoring.retry"}])
    doc = document({"fetch": http("get")}, graph(probe, end(), **HANDLED))
    doc["workbook"] = {"sections": {"timeline": {"defaults": {"phase": "initiating.idle"}}}}
    doc["load"]["scenarios"][0]["user"]["context"] = {"retry_budget": 2}
    ran = run(tmp_path, doc, on(target))

    entry = ran.entries[0]
    assert routes(target) == {"GET /asset": 3}
    assert [t for _, _, _, t in entry.trace].count("monitoring.retry") == 2
    assert ran.book.get(entry, "execution.retry_budget") == 0
    assert ran.result["exits"] == {"error_out": 1}


@pytest.mark.parametrize(("status", "retries"), [(500, 0), (401, 2)])
def test_when_filters_a_goto_by_the_error_class(
    tmp_path: Path, target: TargetProcess, status: int, retries: int
) -> None:
    # http-5xx is transient, unauthorized permanent: only the permanent failure is retried.
    target.control(status=status)
    retry = {"when": "permanent", "goto": "monitoring.retry"}
    mark = {"when": "transient", "update-workbook": {"risk_flag": "transient"}}
    probe = act("probe", "fetch", edge("done"), on_error=[mark, retry])
    doc = document({"fetch": http("get")}, graph(probe, end(), **HANDLED))
    ran = run(tmp_path, doc, on(target))

    entry = ran.entries[0]
    assert routes(target) == {"GET /asset": 1 + retries}
    assert [t for _, _, _, t in entry.trace].count("monitoring.retry") == retries
    assert ran.book.get(entry, "risk_flag") == ("transient" if status == 500 else "none")
    assert ran.result["exits"] == {"error_out": 1}


# -- expression limits -----------------------------------------------------------------------------

NOWHERE = [("127.0.0.1", 9)]  # no request is sent: the failures happen before any


@pytest.mark.parametrize(
    ("message", "condition"),
    [
        ("{{ str([['y'] * 1000] * 1000) }}", "always"),  # an action's argument
        ("hello", "{{ len('x' * 2000000) > 0 }}"),  # a transition's condition
    ],
)
def test_an_expression_past_its_limits_fails_the_node_as_permanent_expression_limit(
    tmp_path: Path, message: str, condition: str
) -> None:
    flow = graph(act("say", "say", edge("done", condition)), end(), **HANDLED)
    doc = classified(document({"say": log("info", message)}, flow))
    ran = run(tmp_path, doc, NOWHERE)

    entry = ran.entries[0]
    assert ran.result["errors"] == {"expression-limit": 1}
    assert ran.result["exits"] == {"error_out": 1}
    assert ran.book.get(entry, "execution.evidence.last_event") == "expression-limit"
    # Unlisted in progress.errors, it is permanent, like expression-error.
    assert ran.log.counts == {"error": 1, "info": 1 if condition == "always" else 2}
    assert list(ran.log.recent)[-1].endswith("u0001 expression-limit")


# -- rate limit ------------------------------------------------------------------------------------


def test_per_user_rate_limit_throttles_each_user(tmp_path: Path, target: TargetProcess) -> None:
    probe = act("probe", "fetch", edge("done"), rate_limit={"per-user": "5/s"})
    doc = document({"fetch": http("get")}, graph(probe, end()), users=2, task_duration="1s")
    ran = run(tmp_path, doc, on(target))

    per_user: dict[str, int] = {}
    for entry in ran.entries:
        per_user[entry.user_id] = per_user.get(entry.user_id, 0) + 1
    assert sorted(per_user) == ["u0001", "u0002"]
    assert all(4 <= n <= 6 for n in per_user.values()), per_user
    assert routes(target) == {"GET /asset": sum(per_user.values())}
    throttled = [e for e in ran.entries if "executing.throttled" in phases(e)]
    assert len(throttled) >= len(ran.entries) - 2  # all but each user's first pass waited
    assert all(phases(e)[-1] == "closing.success" for e in ran.entries)


def test_global_rate_limit_is_shared_by_all_users(tmp_path: Path, target: TargetProcess) -> None:
    probe = act("probe", "fetch", edge("done"), rate_limit={"global": "5/s"})
    doc = document({"fetch": http("get")}, graph(probe, end()), users=3, task_duration="1s")
    ran = run(tmp_path, doc, on(target))

    # Three users, one shared 5/s schedule: request starts are at least 200 ms apart, so
    # about 5-8 requests (passes reserved before each user's second ran out), not ~15.
    total = routes(target)["GET /asset"]
    assert 4 <= total <= 9, total
    assert total == len(ran.entries)
    book = ran.runner.ctx.workbook
    starts = sorted(book.get(e, "execution.last_action_at") for e in ran.entries)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.18, gaps
    assert sum("executing.throttled" in phases(e) for e in ran.entries) >= total - 1
