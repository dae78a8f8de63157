"""`wbsrun demo --faults`: items of the demo pool go bad on a schedule while the run goes on.

One item fails its health check (its holders roll back onto spare items), one hangs (its
actions time out, its probe too: it leaves rotation), one answers 401 (permanent errors, routed
to the classified exit); the first one recovers and comes back. The run ends with every lease
returned, which the summary states from the result.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import yaml
from rich.console import Console

from wbsrun.core.task import RunContext

__all__ = ["FAULT_HEALTH", "FaultScript", "fault_plan", "shorten_health_checks", "spare_items"]

# The reference probes every 30 s; a 20 s demo would never see one.
FAULT_HEALTH: Final = {"interval": "1s", "timeout": "500ms"}


@dataclass(frozen=True, slots=True)
class Fault:
    at: float  # seconds into the run
    host: str
    knobs: dict[str, Any]
    says: str


def spare_items(users: int) -> int:
    """Items beyond one per user, so rolled-back tasks find a healthy free item."""
    return max(4, users // 10)


def fault_plan(hosts: list[str], duration: float) -> list[Fault]:
    """Three bad items over the run; times scale with the run window."""
    if len(hosts) < 3:
        return []
    fail, hang, deny = hosts[0], hosts[1], hosts[2]
    d = max(duration, 8.0)
    return [
        Fault(0.2 * d, fail, {"fail_health": True}, f"{fail}: /health answers 503"),
        Fault(0.3 * d, hang, {"hang": True}, f"{hang}: hangs (no answer at all)"),
        Fault(0.4 * d, deny, {"status": 401}, f"{deny}: answers 401 to /asset"),
        Fault(0.6 * d, fail, {"fail_health": False}, f"{fail}: healthy again"),
    ]


def shorten_health_checks(script: Path) -> None:
    """Probe every FAULT_HEALTH interval in the demo's copy of the scenario."""
    doc = yaml.safe_load(script.read_text(encoding="utf-8"))
    for body in (doc.get("resources") or {}).values():
        check = body.get("health-check") if isinstance(body, dict) else None
        if isinstance(check, dict):
            check.update(FAULT_HEALTH)
    script.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")


class FaultScript:
    """A run service: applies each fault through the target's /__control at its time."""

    def __init__(self, ctx: RunContext, base_url: str, faults: list[Fault], console: Console):
        self.ctx = ctx
        self.base_url = base_url
        self.faults = sorted(faults, key=lambda f: f.at)
        self.console = console
        self.applied: list[Fault] = []

    async def serve(self) -> None:
        finished = self.ctx.finished
        async with aiohttp.ClientSession() as session:
            for fault in self.faults:
                delay = self.ctx.t0 + fault.at - self.ctx.clock()
                if delay > 0:
                    try:
                        async with asyncio.timeout(delay):
                            await finished.wait()
                        return  # the run ended first
                    except TimeoutError:
                        pass
                body = json.dumps({"host": fault.host, **fault.knobs})
                try:
                    async with session.post(f"{self.base_url}/__control", data=body) as resp:
                        resp.raise_for_status()
                except (aiohttp.ClientError, OSError) as exc:
                    # The demo's target went away: say so, and let the run finish on its own.
                    self.console.print(f"[red]fault script stopped:[/red] {exc}")
                    return
                self.applied.append(fault)
                self.console.print(f"[magenta]fault at {fault.at:4.1f}s[/magenta] {fault.says}")
