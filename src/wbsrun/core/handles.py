"""Handles components are given and give back: a virtual user, a lease on a pooled item.
Compiled with the hot path (a lease and its reads on every pass); `ports`, which mypyc cannot
compile, re-exports them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Lease", "UserHandle"]


@dataclass(slots=True, eq=False)
class UserHandle:
    """One virtual user as components see it; `state` holds component-private per-user data."""

    user_id: str
    scenario: str
    private_session: bool
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class Lease:
    """A handle on one pooled item held by one task."""

    pool: str
    handle: str
    item: Mapping[str, Any]
    holder: str
    acquired_at: float
    index: int = -1
    released: bool = False
