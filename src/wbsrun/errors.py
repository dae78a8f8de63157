"""The error tree of wbsrun, importable by every layer.

    WbsrunError
    ├── ScenarioError          a scenario bundle failed to load or validate (diagnostics inside)
    ├── BundleError            the bundle path itself is unusable (missing, ambiguous)
    └── RunError               the runner could not start or finish a run

Outcomes under load (HTTP 500, timeouts, refused connections) are *data*, never these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BundleError",
    "Diagnostic",
    "RunError",
    "ScenarioError",
    "Severity",
    "WbsrunError",
]

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding about a scenario: where it is, what was found, what was expected."""

    code: str
    message: str
    file: str = ""
    line: int = 0
    column: int = 0
    path: str = ""
    value: str | None = None
    expected: str | None = None
    severity: Severity = "error"
    hint: str | None = None

    def format(self) -> str:
        where = self.file or "<scenario>"
        if self.line:
            where = f"{where}:{self.line}:{self.column}"
        text = f"{where}: {self.severity} [{self.code}] {self.message}"
        if self.path:
            text += f"\n    at {self.path}"
        if self.value is not None:
            text += f"\n    found: {self.value}"
        if self.expected is not None:
            text += f"\n    expected: {self.expected}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class WbsrunError(Exception):
    """Root of every error wbsrun raises on purpose."""


class ScenarioError(WbsrunError):
    """A scenario did not load or validate; carries every diagnostic found in one pass."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        errors = [d for d in self.diagnostics if d.severity == "error"]
        super().__init__(f"{len(errors)} error(s) in scenario")

    def format(self) -> str:
        return "\n".join(d.format() for d in self.diagnostics)


class BundleError(WbsrunError):
    """The path given for a bundle cannot be used (missing, ambiguous, not a scenario)."""


class RunError(WbsrunError):
    """The runner could not start or complete a run."""
