"""wbsrun: a scenario runner for load tests with PMP-style progress management."""

from wbsrun.errors import BundleError, Diagnostic, RunError, ScenarioError, WbsrunError

__all__ = ["BundleError", "Diagnostic", "RunError", "ScenarioError", "WbsrunError"]
__version__ = "0.1.0"
