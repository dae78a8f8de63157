"""Progress: where a run stands against its plan, and the result built from it."""

from wbsrun.progress.report import ProgressSnapshot, build_result, progress_snapshot

__all__ = ["ProgressSnapshot", "build_result", "progress_snapshot"]
