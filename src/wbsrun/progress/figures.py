"""The result's request figures: latency summaries, status codes and bytes, for all requests,
per action and per scenario (result-schema.json `requests`, `actions`, `scenarios`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wbsrun.core.stats import ActionStats, ArrivalStats, RunStats, merged

__all__ = [
    "action_figures",
    "check_figures",
    "request_figures",
    "scenario_figures",
    "status_classes",
    "status_codes",
]

# The class keys in the order a reader expects; `none`: no HTTP status (connection error,
# timeout), status 0.
_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "none")


def _class_of(code: int) -> str:
    return f"{code // 100}xx" if 100 <= code < 600 else "none"


def status_classes(status: Mapping[int, int]) -> dict[str, int]:
    """Requests per status class, the classes present only, in `_CLASSES` order."""
    found: dict[str, int] = {}
    for code, n in status.items():
        key = _class_of(code)
        found[key] = found.get(key, 0) + n
    return {key: found[key] for key in _CLASSES if key in found}


def status_codes(status: Mapping[int, int]) -> dict[str, int]:
    """Requests per exact HTTP status, sorted; those answered by none are `status.none`."""
    return {str(code): n for code, n in sorted(status.items()) if code}


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def _per_second(n: int, elapsed: float) -> float:
    return round(n / elapsed, 2) if elapsed > 0 else 0.0


def _traffic(st: ActionStats) -> dict[str, Any]:
    return {
        "latency_ms": st.latency.summary(),
        "status": status_classes(st.status),
        "status_codes": status_codes(st.status),
        "bytes": {"sent": st.bytes_sent, "received": st.bytes_received},
    }


def request_figures(stats: RunStats, elapsed: float) -> dict[str, Any]:
    """`requests`: the counters, and latency, status and bytes of every request (the actions
    that sent requests merged; health probes are counted apart, in `health_probes`)."""
    total = stats.requests_total
    return {
        "total": total,
        "ok": stats.requests_ok,
        "failed": stats.requests_failed,
        "interrupted": stats.requests_interrupted,
        "per_second": _per_second(total, elapsed),
        "health_probes": stats.health_probes,
        "failed_rate": _rate(stats.requests_failed, total),
        **_traffic(stats.all_requests()),
    }


def action_figures(stats: RunStats, elapsed: float) -> dict[str, Any]:
    """`actions`: per action over all scenarios; `per_second` counts its calls."""
    return {
        name: {
            "count": a.count,
            "ok": a.ok,
            "failed": a.failed,
            "interrupted": a.interrupted,
            "failed_rate": _rate(a.failed, a.count),
            "requests": a.requests,
            "per_second": _per_second(a.count, elapsed),
            **_traffic(a),
            **({"checks": _checks(a.checks)} if a.checks else {}),
        }
        for name, a in sorted(stats.actions.items())
    }


def _check(passes: int, fails: int) -> dict[str, Any]:
    return {"passes": passes, "fails": fails, "rate": _rate(passes, passes + fails)}


def _checks(counts: Mapping[str, list[int]]) -> dict[str, Any]:
    return {name: _check(p, f) for name, (p, f) in sorted(counts.items())}


def check_figures(stats: RunStats) -> dict[str, Any]:
    """`checks`: per check name, its passes and fails over every action that has it."""
    total: dict[str, list[int]] = {}
    for a in stats.actions.values():
        for name, (passes, fails) in a.checks.items():
            counts = total.setdefault(name, [0, 0])
            counts[0] += passes
            counts[1] += fails
    return _checks(total)


def scenario_figures(stats: RunStats, elapsed: float) -> dict[str, Any]:
    """`scenarios`: per scenario, its actions' requests merged, and its passes that ran past
    their pacing interval."""
    out: dict[str, Any] = {}
    for name in sorted({*stats.scenarios, *stats.arrivals}):
        st = merged(stats.scenarios.get(name, {}).values())
        total, failed = st.requests, st.requests_failed
        arrival = stats.arrivals.get(name)
        out[name] = {
            "requests": {
                "total": total,
                "ok": total - failed - st.requests_interrupted,
                "failed": failed,
                "interrupted": st.requests_interrupted,
                "failed_rate": _rate(failed, total),
                "per_second": _per_second(total, elapsed),
            },
            **_traffic(st),
            "pacing_missed": stats.pacing_missed.get(name, 0),
            "dropped_iterations": arrival.dropped if arrival is not None else 0,
            **({"arrival": arrival_figures(arrival)} if arrival is not None else {}),
        }
    return out


def arrival_figures(a: ArrivalStats) -> dict[str, Any]:
    """An arrival-rate scenario's schedule against what ran: iterations planned, started and
    dropped, the rates asked and achieved (over the schedule's duration), and the delays."""
    return {
        "planned": a.planned,
        "started": a.started,
        "dropped": a.dropped,
        **({"paused": a.paused} if a.paused else {}),
        "asked_per_second": round(a.asked_per_second, 3),
        "achieved_per_second": round(a.started / a.duration, 3) if a.duration else 0.0,
        "iteration_delay_ms": a.delay.summary(),
        "from_schedule_ms": a.from_schedule.summary(),
    }
