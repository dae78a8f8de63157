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


class Lease:
    """A handle on one pooled item held by one task. A plain class: compiled, a dataclass's
    `__init__` stays interpreted (the dataclasses module writes it), and one is built every
    pass."""

    __slots__ = ("acquired_at", "handle", "holder", "index", "item", "pool", "released")

    def __init__(
        self,
        pool: str,
        handle: str,
        item: Mapping[str, Any],
        holder: str,
        acquired_at: float,
        index: int = -1,
        released: bool = False,
    ) -> None:
        self.pool = pool
        self.handle = handle
        self.item = item
        self.holder = holder
        self.acquired_at = acquired_at
        self.index = index
        self.released = released

    def __repr__(self) -> str:
        return f"Lease({self.pool!r}, {self.handle!r}, holder={self.holder!r})"
