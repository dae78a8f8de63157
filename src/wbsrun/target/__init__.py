"""The embedded asset server that demos, tests and benchmarks load, run in its own process."""

from __future__ import annotations

from wbsrun.target.process import TargetKnobs, TargetProcess, loopback_hosts, normalize_hosts

__all__ = ["TargetKnobs", "TargetProcess", "loopback_hosts", "normalize_hosts"]
