"""The report's sections, each from its keys of the JSON result (docs/result.md).

A key the result lacks (an older result, a run without thresholds or leases) leaves its
figure as a dash or its section out; nothing here raises on a missing key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wbsrun.telemetry.html.fmt import DASH, at, cell, esc, figure, number, table

__all__ = [
    "LATENCY_KEYS",
    "actions",
    "errors",
    "header",
    "health",
    "progress",
    "requests",
    "resources",
    "scenarios",
    "thresholds",
]

LATENCY_KEYS = ("count", "min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max")
MAX_MESSAGES = 20


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _tile(label: str, content: str, cls: str = "") -> str:
    return (
        f'<div class="tile {cls}"><div class="label">{esc(label)}</div>'
        f'<div class="value">{content}</div></div>'
    )


def _status_class(status: Any) -> str:
    return {"completed": "good", "interrupted": "warn", "aborted": "bad"}.get(str(status), "")


def header(r: Mapping[str, Any]) -> str:
    status = r.get("status", "unknown")
    listed = r.get("thresholds")
    checks = [t for t in listed if isinstance(t, Mapping)] if isinstance(listed, list) else []
    failed = sum(1 for t in checks if not t.get("ok"))
    if "failed_rate" in _map(r.get("requests")):
        rate = figure(r, ["requests", "failed_rate"], "pct")
    else:  # results before failed_rate: the same share, computed here
        total, bad = at(r, ["requests", "total"]), at(r, ["requests", "failed"])
        share = bad / total if isinstance(total, int) and total and isinstance(bad, int) else None
        rate = f'<span class="derived">{esc(number(share, "pct"))}</span>'
    score = at(r, ["health", "score"])
    health_cls = "" if not isinstance(score, int | float) else ("good" if score >= 0.8 else "warn")
    verdict = DASH if not checks else f"{len(checks) - failed} / {len(checks)} passed"
    tiles = [
        _tile("status", f'<span id="status">{esc(status)}</span>', _status_class(status)),
        _tile("duration", figure(r, ["duration_s"], "s")),
        _tile(
            "users",
            f"{figure(r, ['users', 'started'], 'int')} / {figure(r, ['users', 'planned'], 'int')}",
        ),
        _tile("requests", figure(r, ["requests", "total"], "int")),
        _tile("requests/s", figure(r, ["requests", "per_second"])),
        _tile("error rate", rate, "bad" if at(r, ["requests", "failed"]) else "good"),
        _tile("p95 (ms)", figure(r, ["requests", "latency_ms", "p95"])),
        _tile("health", figure(r, ["health", "score"]), health_cls),
        _tile("work done", figure(r, ["progress", "work"], "pct")),
        _tile("thresholds", esc(verdict), "" if not checks else ("bad" if failed else "good")),
    ]
    title = f"wbsrun report: {r.get('scenario', '')}"
    where = " · ".join(esc(r.get(k, "")) for k in ("started_at", "source") if r.get(k))
    return (
        f'<header><h1>{esc(title)}</h1><p class="where">{where}</p>'
        f'<div class="tiles">{"".join(tiles)}</div></header>'
    )


def thresholds(r: Mapping[str, Any]) -> str:
    rules = r.get("thresholds")
    if not isinstance(rules, list) or not rules:
        return ""
    rows = []
    for i, t in enumerate(rules):
        ok = bool(_map(t).get("ok"))
        mark = '<span class="ok">✓</span>' if ok else '<span class="fail">✗</span>'
        rows.append(
            [
                cell(mark, "mark"),
                cell(esc(at(t, ["rule"]) or "")),
                cell(figure(r, ["thresholds", i, "observed"]), "num"),
                cell(figure(r, ["thresholds", i, "first_failed_s"], "s"), "num"),
                cell("yes" if at(t, ["abort_on_fail"]) else "no"),
            ]
        )
    head = ["", "rule", "observed", "first failed", "abort on fail"]
    return _section("thresholds", "Thresholds", table(head, rows, "thresholds"))


def _span(r: Mapping[str, Any], base: list[str | int], a: str, b: str, sep: str, kind: str) -> str:
    return f"{figure(r, [*base, a], kind)}{sep}{figure(r, [*base, b], kind)}"


def _section(id_: str, title: str, body: str) -> str:
    return f'<section id="{esc(id_)}"><h2>{esc(title)}</h2>{body}</section>'


def _codes(r: Mapping[str, Any], base: list[str | int], key: str) -> str:
    codes = _map(at(r, [*base, key]))
    parts = [f"{esc(code)}: {figure(r, [*base, key, code], 'int')}" for code in codes]
    return " · ".join(parts) or DASH


def _latency_cells(r: Mapping[str, Any], base: list[str | int]) -> list[str]:
    lat = [*base, "latency_ms"]
    return [
        cell(figure(r, [*lat, k], "int" if k == "count" else "num"), "num") for k in LATENCY_KEYS
    ]


def requests(r: Mapping[str, Any]) -> str:
    base: list[str | int] = ["requests"]
    head = ["requests", "ok", "failed", "interrupted", "per s", *LATENCY_KEYS]
    counts = [
        cell(figure(r, [*base, k], "int"), "num") for k in ("total", "ok", "failed", "interrupted")
    ]
    row = [*counts, cell(figure(r, [*base, "per_second"]), "num"), *_latency_cells(r, base)]
    latency = table(head, [row], "figures")
    sent, received = (figure(r, [*base, "bytes", k], "int") for k in ("sent", "received"))
    present = _map(r.get("requests"))
    lines = [
        f"Latency in ms, over all requests (health probes: "
        f"{figure(r, [*base, 'health_probes'], 'int')})."
    ]
    if "status" in present:  # results before issue 19 have no status or bytes
        lines.append(f"Status classes: {_codes(r, base, 'status')}")
    if "status_codes" in present:
        lines.append(f"Status codes: {_codes(r, base, 'status_codes')}")
    if "bytes" in present:
        lines.append(f"Bytes: sent {sent} · received {received}")
    body = latency + "".join(f"<p>{line}</p>" for line in lines)
    return _section("requests", "All requests", body)


def actions(r: Mapping[str, Any]) -> str:
    names = list(_map(r.get("actions")))
    if not names:
        return ""
    head = ["action", "count", "ok", "failed", "interrupted", *LATENCY_KEYS[1:], "status codes"]
    rows = []
    for name in names:
        base: list[str | int] = ["actions", name]
        counts = [
            cell(figure(r, [*base, k], "int"), "num")
            for k in ("count", "ok", "failed", "interrupted")
        ]
        latency = _latency_cells(r, base)[1:]  # count is the action's call count
        rows.append(
            [cell(esc(name), "name"), *counts, *latency, cell(_codes(r, base, "status_codes"))]
        )
    note = "<p>Latency in ms per call (handler calls included).</p>"
    return _section("actions", "Per action", table(head, rows, "figures") + note)


def scenarios(r: Mapping[str, Any]) -> str:
    names = list(_map(r.get("scenarios")))
    if not names:
        return ""
    head = ["scenario", "requests", "failed", "failed rate", "per s", *LATENCY_KEYS]
    rows = []
    for name in names:
        req: list[str | int] = ["scenarios", name, "requests"]
        cells = [
            cell(esc(name), "name"),
            cell(figure(r, [*req, "total"], "int"), "num"),
            cell(figure(r, [*req, "failed"], "int"), "num"),
            cell(figure(r, [*req, "failed_rate"], "pct"), "num"),
            cell(figure(r, [*req, "per_second"]), "num"),
            *_latency_cells(r, ["scenarios", name]),
        ]
        rows.append(cells)
    return _section("scenarios", "Per scenario", table(head, rows, "figures"))


def health(r: Mapping[str, Any]) -> str:
    """The health roll-up: the program and each scenario (score, inputs, trend), then the
    users summed up and the lowest of them (docs/progress-model.md)."""
    h = _map(r.get("health"))
    if "scenarios" not in h:
        return ""  # an older result: the header tile and the progress inputs say it all
    head = ["", "score", "progress", "error rate", "deviation", "trend / min"]
    rows = []
    for label, base in [
        ("program", ["health"]),
        *((name, ["health", "scenarios", name]) for name in _map(h.get("scenarios"))),
    ]:
        rows.append(
            [
                cell(esc(label), "name"),
                *(cell(figure(r, [*base, k]), "num") for k in ("score", "progress")),
                cell(figure(r, [*base, "error_rate"], "pct"), "num"),
                *(cell(figure(r, [*base, k]), "num") for k in ("deviation", "trend")),
            ]
        )
    body = table(head, rows, "figures")
    users = _map(h.get("users"))
    if users:
        u = ["health", "users"]
        body += (
            f"<p>{figure(r, [*u, 'count'], 'int')} users: min {figure(r, [*u, 'min'])}, "
            f"p10 {figure(r, [*u, 'p10'])}, p50 {figure(r, [*u, 'p50'])}, mean "
            f"{figure(r, [*u, 'mean'])}.</p>"
        )
        listed = users.get("worst")
        worst: list[Any] = listed if isinstance(listed, list) else []
        low = [
            [
                cell(esc(w.get("user_id", "")), "name"),
                cell(esc(w.get("scenario", ""))),
                cell(figure(r, [*u, "worst", i, "score"]), "num"),
            ]
            for i, w in enumerate(worst)
            if isinstance(w, Mapping)
        ]
        if low:
            body += table(["lowest users", "scenario", "score"], low, "figures")
    return _section("health", "Health", body)


def errors(r: Mapping[str, Any]) -> str:
    codes = list(_map(r.get("errors")))
    if not codes:
        return _section("errors", "Errors", "<p>No errors.</p>")
    by_code = table(
        ["code", "count"],
        [[cell(esc(c)), cell(figure(r, ["errors", c], "int"), "num")] for c in codes],
        "figures",
    )
    rows = []
    listed = r.get("error_messages")
    messages: list[Any] = listed if isinstance(listed, list) else []
    for i, m in enumerate(messages[:MAX_MESSAGES]):
        text = at(m, ["message"])
        shown = (
            esc(text) if text is not None else "<em>(other messages of this action and code)</em>"
        )
        rows.append(
            [
                cell(esc(at(m, ["action"]) or DASH)),
                cell(esc(at(m, ["code"]) or "")),
                cell(figure(r, ["error_messages", i, "count"], "int"), "num"),
                cell(
                    _span(r, ["error_messages", i], "first_s", "last_s", " – ", "s"),
                    "num",
                ),
                cell(shown, "message"),
            ]
        )
    more = (
        f"<p>{len(messages) - MAX_MESSAGES} more in the JSON result.</p>"
        if len(messages) > MAX_MESSAGES
        else ""
    )
    sample = (
        table(["action", "code", "count", "seen (since start)", "message"], rows, "messages")
        if rows
        else ""
    )
    return _section(
        "errors", "Errors", f"{by_code}<h3>Sample messages, most frequent first</h3>{sample}{more}"
    )


def progress(r: Mapping[str, Any]) -> str:
    p: list[str | int] = ["progress"]
    figures = (
        f"<p>work {figure(r, [*p, 'work'], 'pct')} · time {figure(r, [*p, 'time'], 'pct')} · "
        f"milestones (weighted) {figure(r, [*p, 'milestones_weighted'], 'pct')} · "
        f"ETA {figure(r, [*p, 'eta_s'], 's')} · health inputs: progress "
        f"{figure(r, ['health', 'progress'], 'pct')}"
        f" (error rate {figure(r, ['health', 'error_rate'], 'pct')}, deviation "
        f"{figure(r, ['health', 'deviation'])})</p>"
    )
    ms = list(_map(at(r, [*p, "milestones"])))
    rows = [
        [
            cell(esc(name), "name"),
            cell(figure(r, [*p, "milestones", name, "reached"], "int"), "num"),
            cell(figure(r, [*p, "milestones", name, "share"], "pct"), "num"),
            cell(figure(r, [*p, "milestones", name, "weight"]), "num"),
        ]
        for name in ms
    ]
    milestones = table(["milestone", "reached", "share", "weight"], rows, "figures") if rows else ""
    sc = list(_map(at(r, [*p, "scenarios"])))
    srows = []
    for name in sc:
        s: list[str | int] = [*p, "scenarios", name]
        srows.append(
            [
                cell(esc(name), "name"),
                *(
                    cell(figure(r, [*s, k], "pct"), "num")
                    for k in ("work", "time", "milestones_weighted")
                ),
                cell(figure(r, [*s, "eta_s"], "s"), "num"),
                cell(figure(r, [*s, "tasks", "closed"], "int"), "num"),
                cell(
                    _span(r, [*s, "users"], "seen", "planned", " / ", "int"),
                    "num",
                ),
                cell(figure(r, [*s, "mean_pass_s"], "s"), "num"),
            ]
        )
    head = ["scenario", "work", "time", "milestones", "ETA", "passes closed", "users", "mean pass"]
    per = table(head, srows, "figures") if srows else ""
    return _section("progress", "Progress and milestones", figures + milestones + per)


def _forecast_cells(r: Mapping[str, Any], f: list[str | int]) -> list[str]:
    """Progress at the plan's end (with its band), the miss, when warned, the method."""
    miss = at(r, [*f, "will_miss_plan"])
    return [
        cell(
            figure(r, [*f, "final_progress"], "pct")
            + " ("
            + _span(r, f, "final_progress_low", "final_progress_high", " – ", "pct")
            + ")",
            "num",
        ),
        cell("yes" if miss is True else "no" if miss is False else "–"),
        cell(figure(r, [*f, "warned_at_s"], "s"), "num"),
        cell(esc(str(at(r, [*f, "method"]) or "–"))),
    ]


def forecast(r: Mapping[str, Any]) -> str:
    """The prediction (`forecast`): the program's, then each scenario's; empty without one."""
    if not _map(at(r, ["forecast"])):
        return ""
    f: list[str | int] = ["forecast"]
    head = ["", "progress at the plan's end (band)", "misses its plan", "warned at", "method"]
    rows = [[cell("program", "name"), *_forecast_cells(r, f)]]
    rows += [
        [cell(esc(name), "name"), *_forecast_cells(r, [*f, "scenarios", name])]
        for name in _map(at(r, [*f, "scenarios"]))
    ]
    runs = figure(r, [*f, "history_runs"], "int")
    note = f"<p>earlier runs used (<code>--history</code>): {runs}</p>"
    return _section("forecast", "Forecast", table(head, rows, "figures") + note)


RESOURCE_KEYS = (
    ("items", "items"),
    ("healthy", "healthy"),
    ("capacity", "capacity"),
    ("leases", "leases"),
    ("released", "released"),
    ("held_at_end", "held at end"),
    ("expired", "expired"),
    ("renewed", "renewed"),
    ("health_checks", "health checks"),
    ("health_failures", "check failures"),
    ("items_failed", "items failed"),
    ("items_recovered", "recovered"),
)


def resources(r: Mapping[str, Any]) -> str:
    pools = list(_map(r.get("resources")))
    if not pools:
        return ""
    rows = [
        [
            cell(esc(name), "name"),
            *(cell(figure(r, ["resources", name, k], "int"), "num") for k, _ in RESOURCE_KEYS),
        ]
        for name in pools
    ]
    head = ["pool", *(label for _, label in RESOURCE_KEYS)]
    note = (
        "<p>Capacity 0: no <code>capacity.size</code> cap. After a clean run leases = released.</p>"
    )
    return _section("resources", "Leases and pool health", table(head, rows, "figures") + note)
