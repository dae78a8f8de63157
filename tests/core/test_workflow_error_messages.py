"""Errors keep their messages: a bounded sample per (action, code) with counts and first/last
time, in the JSON result (`error_messages`) and in the end summary's table."""

from __future__ import annotations

import io
import json
import re
import socket
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from property_kit import examples
from scenario_kit import BASE, Doc, act, document, edge, end, graph, http, on, run, write_bundle
from wbsrun.cli.session import execute
from wbsrun.core.runner import RunOptions
from wbsrun.core.stats import MAX_MESSAGES, MAX_MESSAGES_PER_CODE, MESSAGE_CHARS, RunStats
from wbsrun.dsl.loader import load_plan
from wbsrun.protocols.registry import provides
from wbsrun.target import TargetProcess

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "result-schema.json").read_text()
)
HANDLED = {"on_error": [{"goto": "error_out"}]}
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def closed_ports(n: int) -> list[int]:
    """Ports nobody listens on once their sockets are closed (all bound at once: distinct)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def fetch_doc(users: int) -> Doc:
    flow = graph(act("probe", "fetch", edge("done")), end(), **HANDLED)
    return document({"fetch": http("get")}, flow, users=users)


def counts_by_code(messages: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for m in messages:
        out[m["code"]] += m["count"]
    return dict(out)


# -- what the result carries -----------------------------------------------------------------------


def test_a_run_against_a_closed_port_keeps_the_refusal_with_its_address_and_count(
    tmp_path: Path,
) -> None:
    (port,) = closed_ports(1)
    ran = run(tmp_path, fetch_doc(users=4), [("127.0.0.1", port)])

    jsonschema.validate(ran.result, SCHEMA)
    assert ran.result["errors"] == {"resource-unavailable": 4}
    (sample,) = ran.result["error_messages"]
    assert (sample["action"], sample["code"], sample["count"]) == (
        "fetch",
        "resource-unavailable",
        4,
    )
    assert f"GET http://127.0.0.1:{port}/asset" in sample["message"]
    assert "Connection refused" in sample["message"]
    assert ISO_MS.match(sample["first_at"])
    assert ISO_MS.match(sample["last_at"])
    assert sample["first_at"] <= sample["last_at"]
    assert 0.0 <= sample["first_s"] <= sample["last_s"] <= ran.result["duration_s"] + 0.01


@pytest.mark.parametrize("where", ["args", "transition"])
def test_a_missing_json_field_names_the_field_in_the_expression_error(
    tmp_path: Path, target: TargetProcess, where: str
) -> None:
    # The asset the target serves is JSON without `tokn`: a misspelt `token`.
    actions = {"probe": http("get", save="asset"), "use": http("get", "/asset")}
    if where == "args":
        actions["use"]["with"]["url"] = BASE + "/asset?token={{asset.json.tokn}}"
        probe = act("probe", "probe", edge("use"))
    else:
        probe = act("probe", "probe", edge("use", "{{asset.json.tokn == 'x'}}"))
    flow = graph(probe, act("use", "use", edge("done")), end(), **HANDLED)
    ran = run(tmp_path, document(actions, flow, users=3), on(target))

    jsonschema.validate(ran.result, SCHEMA)
    assert ran.result["errors"] == {"expression-error": 3}
    (sample,) = ran.result["error_messages"]
    # In the arguments, the action that could not be called; in a transition, the action
    # whose result it read.
    assert sample["action"] == ("use" if where == "args" else "probe")
    assert (sample["code"], sample["count"]) == ("expression-error", 3)
    assert "'asset.json' has no field 'tokn'" in sample["message"]


def test_pass_timeouts_and_lease_waits_carry_their_messages(
    tmp_path: Path, target: TargetProcess
) -> None:
    # One exclusive item, two users, both passes time out at 300 ms: the holder's, in its
    # action, then keeps the item through its slow timeout exit; the other's, still waiting.
    target.control(latency_ms=800)
    on_timeout = [{"goto": "timeout_out"}]
    flow = graph(
        act("probe", "fetch", edge("done")),
        end(),
        timeout="300ms",
        on_timeout=on_timeout,
        **HANDLED,
    )
    doc = document({"fetch": http("get")}, flow, users=2)
    doc["resources"]["pool"]["capacity"] = {"guard": "exclusive"}
    doc["monitoring"]["timeout_out"]["actions"] = [
        {"action": "http.get", "with": {"url": BASE + "/asset"}}
    ]
    ran = run(tmp_path, doc, on(target))

    jsonschema.validate(ran.result, SCHEMA)
    assert ran.result["errors"] == {"network-timeout": 1, "resource-unavailable": 1}
    texts = {(m["action"], m["code"], m["message"]) for m in ran.result["error_messages"]}
    assert texts == {
        (None, "network-timeout", "pass exceeded its 0.3s timeout"),
        (None, "resource-unavailable", "no resource free within 0.3s"),
    }


# -- bounds ----------------------------------------------------------------------------------------


def test_distinct_messages_beyond_the_cap_are_counted_as_other(tmp_path: Path) -> None:
    # 30 items, each a different closed port, 30 users at once: 30 distinct refusals.
    ports = closed_ports(MAX_MESSAGES_PER_CODE + 10)
    ran = run(tmp_path, fetch_doc(users=len(ports)), [("127.0.0.1", p) for p in ports])

    jsonschema.validate(ran.result, SCHEMA)
    messages = ran.result["error_messages"]
    assert ran.result["errors"] == {"resource-unavailable": len(ports)}
    kept = [m for m in messages if m["message"] is not None]
    (other,) = [m for m in messages if m["message"] is None]
    assert len(kept) == MAX_MESSAGES_PER_CODE
    assert len({m["message"] for m in kept}) == MAX_MESSAGES_PER_CODE
    assert other["count"] == len(ports) - MAX_MESSAGES_PER_CODE
    assert sum(m["count"] for m in messages) == len(ports)
    assert [m["count"] for m in messages] == sorted((m["count"] for m in messages), reverse=True)


@settings(max_examples=examples(60), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", None]),
            st.sampled_from(["x-code", "y-code"]),
            st.integers(0, 40),
        ),
        max_size=400,
    )
)
def test_samples_stay_within_the_caps_and_add_up_to_the_error_counts(
    errors: list[tuple[str | None, str, int]],
) -> None:
    stats = RunStats()
    for i, (action, code, variant) in enumerate(errors):
        stats.count_error(code, action, f"failure {variant}", float(i))
    per_pair: Counter[tuple[str | None, str]] = Counter()
    totals: Counter[str] = Counter()
    for (action, code, message), sample in stats.error_samples.items():
        assert (sample.action, sample.code, sample.message) == (action, code, message)
        assert sample.first_at <= sample.last_at
        per_pair[(action, code)] += message is not None
        totals[code] += sample.count
    assert all(n <= MAX_MESSAGES_PER_CODE for n in per_pair.values())
    assert dict(totals) == stats.errors


def test_the_stats_keep_at_most_the_global_number_of_messages_and_cut_long_ones() -> None:
    stats = RunStats()
    actions = MAX_MESSAGES // MAX_MESSAGES_PER_CODE + 5
    for a in range(actions):
        for m in range(MAX_MESSAGES_PER_CODE + 3):
            stats.count_error("e", f"act{a}", f"{m}:" + "x" * (2 * MESSAGE_CHARS), 0.0)

    kept = [s for s in stats.error_samples.values() if s.message is not None]
    assert len(kept) == MAX_MESSAGES
    assert all(len(s.message or "") == MESSAGE_CHARS for s in kept)
    assert sum(s.count for s in stats.error_samples.values()) == stats.errors["e"]
    assert stats.errors["e"] == actions * (MAX_MESSAGES_PER_CODE + 3)


# -- the end summary -------------------------------------------------------------------------------


def test_the_summary_prints_the_error_messages_table_of_a_run(tmp_path: Path) -> None:
    (port,) = closed_ports(1)
    bundle = write_bundle(tmp_path, fetch_doc(users=3), [("127.0.0.1", port)])
    out = io.StringIO()
    console = Console(file=out, width=250, color_system=None)

    execute(
        load_plan(bundle, provides()),
        RunOptions(),
        json_out=None,
        log_file=None,
        console=console,
        live=False,
    )

    text = out.getvalue()
    assert "error messages" in text
    row = next(line for line in text.splitlines() if f"127.0.0.1:{port}" in line)
    assert re.search(r"\b3\b.*\bfetch\b.*\bresource-unavailable\b.*Connection refused", row)
