"""The plan builder's load part: resources, profiles, scenarios, think time, sampling."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from wbsrun.dsl._build_base import BuilderBase, Path_, freeze
from wbsrun.dsl.plan import (
    SAMPLING_MODES,
    HealthCheckSpec,
    HealthThreshold,
    Milestone,
    ProfileSpec,
    ResourceSpec,
    SamplingMode,
    SamplingSpec,
    ScenarioSpec,
    ThinkSpec,
)
from wbsrun.dsl.think import ThinkError, parse_think

__all__ = ["LoadBuilder", "sampling_spec"]


class LoadBuilder(BuilderBase):
    """Resources, load profiles and scenarios of one document."""

    def resources(self) -> dict[str, ResourceSpec]:
        out: dict[str, ResourceSpec] = {}
        for name, body in self.live(self.section("resources"), "resources").items():
            out[name] = self._resource(name, body, ("resources", name))
        return out

    def _resource(self, name: str, body: Mapping[str, Any], path: Path_) -> ResourceSpec:
        provider = body.get("provider") or {}
        leasing = provider.get("leasing") or {}
        config = body.get("config") or {}
        parser = config.get("parser") or {}
        capacity = body.get("capacity") or {}
        hc = body.get("health-check")
        health = None
        if isinstance(hc, Mapping):
            probe = hc.get("probe") or {}
            probe_action = self.inline_action(
                str(probe.get("action", "http.health")),
                probe.get("with"),
                (*path, "health-check", "probe"),
            )
            if probe_action is not None:
                health = HealthCheckSpec(
                    interval=self.positive_duration(
                        (*path, "health-check", "interval"), hc.get("interval"), "30s"
                    )
                    or 30.0,
                    timeout=self.positive_duration(
                        (*path, "health-check", "timeout"), hc.get("timeout"), "5s"
                    )
                    or 5.0,
                    probe=probe_action,
                    on_failure=self.handlers(
                        hc.get("on-failure"), (*path, "health-check", "on-failure"), {}
                    ),
                )
        manifest = config.get("manifest")
        file = config.get("file")
        return ResourceSpec(
            name=name,
            type=body["type"],
            provider_component=provider.get("component"),
            provider_calls=MappingProxyType(dict(provider.get("calls") or {})),
            ttl=self.duration((*path, "provider", "leasing", "ttl"), leasing.get("ttl")),
            auto_renew=bool(leasing.get("auto-renew", False)),
            strategy=leasing.get("strategy", "round-robin"),
            read_only=leasing.get("mode") == "read-only",
            manifest=(self.res_dir / manifest).resolve() if manifest else None,
            parser_format=parser.get("format", "csv"),
            parser_fields=tuple(parser.get("fields") or ("ip", "port")),
            file=(self.res_dir / file).resolve() if file else None,
            checksum=config.get("checksum"),
            capacity=capacity.get("size"),
            exclusive=capacity.get("guard") == "exclusive",
            health_check=health,
            metadata=freeze(body.get("metadata") or {}),
            scheduling=leasing.get("scheduling", "fcfs"),
        )

    def profiles(self) -> dict[str, ProfileSpec]:
        out: dict[str, ProfileSpec] = {}
        profiles = self.section("load", "profiles")
        for name, body in self.live(profiles, "load", "profiles").items():
            path: Path_ = ("load", "profiles", name)
            phases = tuple(
                (
                    self.duration((*path, "phases", i, "at"), p.get("at")) or 0.0,
                    int(p["spawn-users"]),
                )
                for i, p in enumerate(body.get("phases") or ())
            )
            kind = body.get("type", "constant")
            unit = self.time_unit(path, body)
            per = 1.0 if kind == "stages" else 1.0 / unit
            out[name] = ProfileSpec(
                name=name,
                kind=kind,
                start_users=int(body.get("start-users", 0)),
                end_users=int(body.get("end-users", 0)),
                users=int(body.get("users", 0)),
                duration=self.duration((*path, "duration"), body.get("duration")) or 0.0,
                phases=phases,
                stages=self.stages(path, body.get("stages") or (), per),
                rate=float(body.get("rate", body.get("start-rate", 0))) * per,
                pre_allocated=int(body.get("pre-allocated-users", 0)),
                max_users=int(body.get("max-users", body.get("pre-allocated-users", 0))),
            )
            self.check_users(path, out[name], body)
        return out

    def time_unit(self, path: Path_, body: Mapping[str, Any]) -> float:
        """An arrival-rate profile's `time-unit` in seconds (default 1s; never zero)."""
        unit = self.duration((*path, "time-unit"), body.get("time-unit"))
        if unit is not None and unit <= 0:
            self.error(
                (*path, "time-unit"),
                "bad-time-unit",
                "a time-unit must be longer than zero",
                value=repr(body.get("time-unit")),
                expected="e.g. 1s, 1m",
            )
        return unit if unit else 1.0

    def stages(self, path: Path_, raw: Any, per: float) -> tuple[tuple[float, float], ...]:
        """`stages: [{duration, target}]`, targets scaled by `per` (rates to per second)."""
        return tuple(
            (
                self.duration((*path, "stages", i, "duration"), st.get("duration")) or 0.0,
                float(st.get("target", 0)) * per,
            )
            for i, st in enumerate(raw)
        )

    def check_users(self, path: Path_, p: ProfileSpec, body: Mapping[str, Any]) -> None:
        if p.arrival and p.max_users < p.pre_allocated:
            self.error(
                (*path, "max-users"),
                "bad-max-users",
                f"max-users ({p.max_users}) is below pre-allocated-users ({p.pre_allocated})",
                value=repr(body.get("max-users")),
                expected=f"at least {p.pre_allocated}",
            )
        if p.arrival and p.max_users <= 0:
            self.error(
                (*path, "max-users" if "max-users" in body else "pre-allocated-users"),
                "bad-max-users",
                "an arrival-rate profile needs users to run its iterations",
                value=repr(body.get("max-users", body.get("pre-allocated-users"))),
                expected="pre-allocated-users or max-users of 1 or more",
            )

    def scenario(
        self, body: Mapping[str, Any], index: int, profiles: Mapping[str, ProfileSpec]
    ) -> ScenarioSpec:
        path: Path_ = ("load", "scenarios", index)
        user = body.get("user") or {}
        agg = body.get("progress-aggregation") or {}
        ht = body.get("health_threshold")
        get: Callable[..., Any] = body.get
        think, pacing = self.pacing(path, body)
        return ScenarioSpec(
            name=str(get("name")),
            workflow=str(get("workflow")),
            user_count=int(get("user-count", 1)),
            spawn_rate=self.rate((*path, "spawn-rate"), get("spawn-rate")),
            profile=profiles.get(get("profile")) if get("profile") else None,
            task_duration=self.duration((*path, "task-duration"), get("task-duration")),
            iterations=int(get("iterations")) if get("iterations") is not None else None,
            think_time=think.mean if think is not None else 0.0,
            inherit=tuple(user.get("inherit") or ()),
            session_new=(user.get("resources") or {}).get("session") == "new",
            context=freeze(user.get("context") or {}),
            exits=MappingProxyType({str(k): str(v) for k, v in (get("exits") or {}).items()}),
            milestones=tuple(
                Milestone(m["name"], m["node"], m["edge"], float(m.get("weight", 1.0)))
                for m in get("milestones") or ()
            ),
            aggregation=tuple(
                (str(s["node"]), float(s.get("weight", 1.0))) for s in agg.get("sources") or ()
            ),
            health_threshold=HealthThreshold(
                telemetry_field=str(ht.get("telemetry_field", "telemetry.health.score")),
                min_score=float(ht.get("min_score", 0.0)),
                consecutive_breach=int(ht.get("consecutive_breach", 1)),
            )
            if isinstance(ht, Mapping)
            else None,
            max_duration=self.duration((*path, "max-duration"), get("max-duration")),
            wbs_level=str(get("wbs-level", "L2")),
            graceful_stop=self.duration((*path, "graceful-stop"), get("graceful-stop")),
            think=think,
            pacing=pacing,
            start_after=self.duration((*path, "start-after"), get("start-after")) or 0.0,
            cookies=get("cookies") is not False,
            business_value=float(get("business-value", 1.0)),
        )

    def pacing(self, path: Path_, body: Mapping[str, Any]) -> tuple[ThinkSpec | None, float | None]:
        """A scenario's `think-time` distribution and `pacing` (dsl/think.py); they exclude
        each other (pacing sets the whole wait between passes)."""
        think = None
        try:
            think = parse_think(body.get("think-time"))
        except ThinkError as exc:
            kw = {"value": repr(body.get("think-time")), "expected": exc.expected}
            self.error((*path, "think-time"), "bad-think-time", exc.message, **kw)
        pacing = self.duration((*path, "pacing"), body.get("pacing"))
        if pacing is not None and pacing <= 0:
            kw = {"value": repr(body.get("pacing")), "expected": "a duration > 0, e.g. 5s"}
            self.error((*path, "pacing"), "bad-pacing", "pacing must be more than 0", **kw)
            pacing = None
        if pacing is not None and "think-time" in body:
            message = "pacing and think-time exclude each other: pacing sets the whole wait"
            kw = {"value": repr(body.get("think-time")), "expected": "one of them"}
            self.error((*path, "think-time"), "pacing-and-think-time", message, **kw)
        return think, pacing


def sampling_spec(raw: Any) -> SamplingSpec:
    """`progress.sampling`: a mode name, or {mode, keep-failed, keep-succeeded, every} (the
    schema has checked the types and bounds)."""
    if raw is None:
        return SamplingSpec()
    if isinstance(raw, str):
        return SamplingSpec(mode=_sampling_mode(raw))
    base = SamplingSpec()
    return SamplingSpec(
        mode=_sampling_mode(raw.get("mode", base.mode)),
        keep_failed=int(raw.get("keep-failed", base.keep_failed)),
        keep_succeeded=int(raw.get("keep-succeeded", base.keep_succeeded)),
        every=int(raw.get("every", base.every)),
    )


def _sampling_mode(raw: Any) -> SamplingMode:
    for mode in SAMPLING_MODES:
        if raw == mode:
            return mode
    return "aggregated"
