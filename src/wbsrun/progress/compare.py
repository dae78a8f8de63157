"""Two run results side by side (`wbsrun compare A.json B.json`): every figure both carry,
named as `--fail-on` addresses it, with the ratio B/A. Pure: dicts in, dataclasses out.

Names (docs/observability.md, "Comparing runs"): `requests`, `rps`, `failed`, `failed_rate`,
the all-requests latency stats (`min`, `mean`, `p50`, `p90`, `p95`, `p99`, `p99.9`, `max`, in
ms), `errors.CODE`, `status.CODE` (an exact code or a class: `5xx`, `none`), `work`, `time`,
`milestones`, `health`, `duration`, `eta_error_s`, and per action `actions.NAME.STAT` with
STAT one of `count`, `failed`, `failed_rate`, `rps` and the latency stats.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from wbsrun.progress.health import run_health

__all__ = [
    "ACTION_STATS",
    "LATENCY_STATS",
    "RUN_METRICS",
    "Comparison",
    "Row",
    "compare",
    "eta_error_s",
    "figures",
]

Better = Literal["lower", "higher"] | None
LATENCY_STATS = ("min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max")
ACTION_STATS = ("count", "failed", "failed_rate", "rps", *LATENCY_STATS)
# Per action, the table shows these (the JSON and --fail-on have them all).
ACTION_SHOWN = ("rps", "failed_rate", "p50", "p90", "p95", "p99", "max")

# Run-wide metric → (section, unit, which way is better). Units: "n" count, "/s" rate,
# "ms", "s", "share" (0..1 shown as %), "score".
RUN_METRICS: dict[str, tuple[str, str, Better]] = {
    "requests": ("throughput", "n", "higher"),
    "rps": ("throughput", "/s", "higher"),
    **dict.fromkeys(LATENCY_STATS, ("latency, all requests (ms)", "ms", "lower")),
    "failed": ("errors", "n", "lower"),
    "failed_rate": ("errors", "share", "lower"),
    "work": ("progress", "share", "higher"),
    "time": ("progress", "share", None),
    "milestones": ("progress", "share", "higher"),
    "health": ("progress", "score", "higher"),
    "duration": ("duration", "s", None),
    "eta_error_s": ("ETA accuracy", "s", "lower"),
}
_ACTION_UNITS: dict[str, tuple[str, Better]] = {
    "count": ("n", "higher"),
    "failed": ("n", "lower"),
    "failed_rate": ("share", "lower"),
    "rps": ("/s", "higher"),
    **dict.fromkeys(LATENCY_STATS, ("ms", "lower")),
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _rate(failed: Any, total: Any) -> float | None:
    f, t = _number(failed), _number(total)
    if f is None or t is None:
        return None
    return f / t if t else 0.0


def eta_error_s(result: Mapping[str, Any]) -> float | None:
    """How far the ETA was from the actual end over the run: the mean of |t + eta − duration|
    over the time series' points that had an ETA. None without `timeseries.eta_s`."""
    series = result.get("timeseries")
    duration = _number(result.get("duration_s"))
    if not isinstance(series, Mapping) or duration is None:
        return None
    times, etas = series.get("t"), series.get("eta_s")
    if not isinstance(times, list) or not isinstance(etas, list):
        return None
    errors = [
        abs(t + eta - duration)
        for t, eta in zip(times, etas, strict=False)
        if _number(t) is not None and _number(eta) is not None
    ]
    return round(sum(errors) / len(errors), 3) if errors else None


def _health(result: Mapping[str, Any]) -> float | None:
    """The health score of a result written before it carried one: computed as the run's."""
    prog = result.get("progress") or {}
    req = result.get("requests") or {}
    work, total = _number(prog.get("work")), _number(req.get("total"))
    failed = _number(req.get("failed"))
    if work is None or total is None or failed is None:
        return None
    return round(run_health(work, _number(prog.get("time")), int(total), int(failed)).score, 4)


def figures(result: Mapping[str, Any]) -> dict[str, float | None]:
    """Every comparable figure of one result by its metric name; None: not in this result
    (an older result, no requests, no time series)."""
    req = result.get("requests") or {}
    prog = result.get("progress") or {}
    health = result.get("health") or {}
    latency = req.get("latency_ms") or {}
    failed_rate = _number(req.get("failed_rate"))
    score = _number(health.get("score"))
    out: dict[str, float | None] = {
        "requests": _number(req.get("total")),
        "rps": _number(req.get("per_second")),
        **{s: _number(latency.get(s)) for s in LATENCY_STATS},
        "failed": _number(req.get("failed")),
        "failed_rate": failed_rate
        if failed_rate is not None
        else _rate(req.get("failed"), req.get("total")),
        "work": _number(prog.get("work")),
        "time": _number(prog.get("time")),
        "milestones": _number(prog.get("milestones_weighted")),
        "health": score if score is not None else _health(result),
        "duration": _number(result.get("duration_s")),
        "eta_error_s": eta_error_s(result),
    }
    for code, n in (result.get("errors") or {}).items():
        out[f"errors.{code}"] = _number(n)
    for key in ("status", "status_codes"):
        for code, n in (req.get(key) or {}).items():
            out[f"status.{'none' if code == '0' else code}"] = _number(n)
    for name, a in (result.get("actions") or {}).items():
        lat = a.get("latency_ms") or {}
        out[f"actions.{name}.count"] = _number(a.get("count"))
        out[f"actions.{name}.failed"] = _number(a.get("failed"))
        out[f"actions.{name}.failed_rate"] = _rate(a.get("failed"), a.get("count"))
        out[f"actions.{name}.rps"] = _number(a.get("per_second"))
        for s in LATENCY_STATS:
            out[f"actions.{name}.{s}"] = _number(lat.get(s))
    return out


def split_action(metric: str) -> tuple[str, str] | None:
    """`actions.NAME.STAT` → (NAME, STAT); NAME may hold dots (`http.get`), STAT `p99.9`."""
    if not metric.startswith("actions."):
        return None
    rest = metric[len("actions.") :]
    for stat in sorted(ACTION_STATS, key=len, reverse=True):
        if rest.endswith("." + stat) and len(rest) > len(stat) + 1:
            return rest[: -len(stat) - 1], stat
    return None


def describe(metric: str) -> tuple[str, str, Better]:
    """(section, unit, better) of a metric name."""
    if metric in RUN_METRICS:
        return RUN_METRICS[metric]
    action = split_action(metric)
    if action is not None:
        unit, better = _ACTION_UNITS[action[1]]
        return f"action {action[0]}", unit, better
    if metric.startswith("errors."):
        return "errors", "n", "lower"
    return "status codes", "n", None


@dataclass(frozen=True, slots=True)
class Row:
    """One figure of both runs."""

    metric: str
    section: str
    unit: str
    better: Better
    a: float | None
    b: float | None

    @property
    def ratio(self) -> float | None:
        """B/A; 1 when both are 0; None when either is n/a or only A is 0."""
        if self.a is None or self.b is None:
            return None
        if self.a == 0:
            return 1.0 if self.b == 0 else None
        return self.b / self.a

    def to_json(self) -> dict[str, Any]:
        ratio = self.ratio
        return {
            "section": self.section,
            "unit": self.unit,
            "better": self.better,
            "a": self.a,
            "b": self.b,
            "ratio": round(ratio, 4) if ratio is not None else None,
        }


def _identity(result: Mapping[str, Any], file: str) -> dict[str, Any]:
    return {
        "file": file,
        "scenario": result.get("scenario"),
        "started_at": result.get("started_at"),
        "status": result.get("status"),
    }


@dataclass(frozen=True, slots=True)
class Comparison:
    """Both runs' figures; `rows`: those to show (per action: actions both ran)."""

    a: Mapping[str, Any]
    b: Mapping[str, Any]
    a_name: str
    b_name: str
    fig_a: Mapping[str, float | None]
    fig_b: Mapping[str, float | None]

    def actions(self, which: Literal["both", "only_a", "only_b"]) -> list[str]:
        names_a = list(self.a.get("actions") or {})
        names_b = list(self.b.get("actions") or {})
        if which == "both":
            return [n for n in names_a if n in names_b]
        if which == "only_a":
            return [n for n in names_a if n not in names_b]
        return [n for n in names_b if n not in names_a]

    def value(self, metric: str, side: Literal["a", "b"]) -> float | None:
        """One run's figure; an error or status code the run never saw counts 0 (when the run
        counts codes at all)."""
        result, fig = (self.a, self.fig_a) if side == "a" else (self.b, self.fig_b)
        value = fig.get(metric)
        if value is not None:
            return value
        req = result.get("requests") or {}
        if metric.startswith("errors.") and isinstance(result.get("errors"), Mapping):
            return 0.0
        if metric.startswith("status.") and ("status_codes" in req or "status" in req):
            return 0.0
        return None

    def rows(self, *, brief: bool = False) -> Iterator[Row]:
        """Every figure either run has (headline ones even when n/a); `brief`: per action only
        ACTION_SHOWN."""
        both = set(self.actions("both"))
        seen = dict.fromkeys([*self.fig_a, *self.fig_b])
        run = [m for m in RUN_METRICS if m in seen or m in ("p95", "eta_error_s")]
        codes = sorted(m for m in seen if m.startswith("errors."))
        codes += sorted(m for m in seen if m.startswith("status."))
        first_error = run.index("failed")
        ordered = run[:first_error]
        for name in self.actions("both"):
            ordered += [f"actions.{name}.{s}" for s in (ACTION_SHOWN if brief else ACTION_STATS)]
        ordered += run[first_error : run.index("failed_rate") + 1] + codes
        ordered += run[run.index("failed_rate") + 1 :]
        for metric in ordered:
            action = split_action(metric)
            if action is not None and action[0] not in both:
                continue
            a, b = self.value(metric, "a"), self.value(metric, "b")
            if a is None and b is None and metric not in ("eta_error_s", "p95", "health"):
                continue  # keep the n/a of headline figures visible, drop the rest
            section, unit, better = describe(metric)
            yield Row(metric, section, unit, better, a, b)

    def to_json(self) -> dict[str, Any]:
        return {
            "a": _identity(self.a, self.a_name),
            "b": _identity(self.b, self.b_name),
            "metrics": {row.metric: row.to_json() for row in self.rows()},
            "actions_only_in_a": self.actions("only_a"),
            "actions_only_in_b": self.actions("only_b"),
        }


def compare(
    a: Mapping[str, Any], b: Mapping[str, Any], a_name: str = "A", b_name: str = "B"
) -> Comparison:
    return Comparison(a, b, a_name, b_name, figures(a), figures(b))
