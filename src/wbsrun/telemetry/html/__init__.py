"""The self-contained HTML report of a run's JSON result (docs/observability.md)."""

from wbsrun.telemetry.html.page import AssetsMissing, check_assets, render_report, write_report

__all__ = ["AssetsMissing", "check_assets", "render_report", "write_report"]
