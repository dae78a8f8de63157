"""The parts of a scenario that failed a check, so that later checks run on the rest.

Validation runs in stages (schema → references → plan → flow). A stage that finds a
problem marks the *element* it is in — an action, a node, a scenario, a resource, … — and
later stages skip that element alone: one `wbsrun validate` reports every mistake, each
once, instead of one stage's worth per run. Names of failed elements stay known (a
reference to a broken action is not also "unknown"), and a section that failed as a whole
(`actions: []`) makes its names unknowable, so references into it are not judged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from wbsrun.dsl.source import PathKey

__all__ = ["NONE", "Failed", "element_of"]

# The elements of a scenario, most specific first ("*": any key or index).
_ELEMENTS: Final[tuple[tuple[str, ...], ...]] = (
    ("workflows", "*", "nodes", "*"),
    ("workflows", "*", "steps", "*"),
    ("workflows", "*", "controls"),
    ("workbook", "sections", "*"),
    ("load", "profiles", "*"),
    ("load", "scenarios", "*"),
    ("components", "*"),
    ("resources", "*"),
    ("progress", "*"),
    ("thresholds", "*", "*"),
    ("thresholds", "*"),
    ("actions", "*"),
    ("workflows", "*"),
    ("monitoring", "*"),
    ("workbook", "*"),
    ("load", "*"),
    ("*",),
)


def element_of(path: Sequence[str | int]) -> PathKey:
    """The element that holds ``path`` (the whole document for the root)."""
    for pattern in _ELEMENTS:
        if len(path) >= len(pattern) and all(
            p == "*" or p == key for p, key in zip(pattern, path, strict=False)
        ):
            return tuple(path[: len(pattern)])
    return ()


class Failed:
    """A set of failed elements; ``path in failed`` when ``path`` lies inside one."""

    __slots__ = ("elements",)

    def __init__(self, elements: Iterable[PathKey] = ()) -> None:
        self.elements: frozenset[PathKey] = frozenset(elements)

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, tuple):
            return False
        elements = self.elements
        return any(path[:n] in elements for n in range(len(path) + 1))

    def __bool__(self) -> bool:
        return bool(self.elements)

    def __or__(self, other: Failed) -> Failed:
        return Failed(self.elements | other.elements)

    def under(self, prefix: PathKey) -> bool:
        """Whether anything at or below ``prefix`` failed (or a container above it)."""
        return prefix in self or any(e[: len(prefix)] == prefix for e in self.elements)

    def whole(self) -> bool:
        """The document itself failed (not a mapping): no later check can run."""
        return () in self.elements


NONE: Final = Failed()
