"""Telemetry: what a person watching the run sees (live line, summary)."""

from wbsrun.telemetry.console import LiveLine, format_live, print_summary

__all__ = ["LiveLine", "format_live", "print_summary"]
