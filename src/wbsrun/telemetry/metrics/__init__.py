"""The Prometheus exporter of a run (`--metrics [HOST:]PORT`); docs/observability.md."""

from wbsrun.telemetry.metrics._families import LATENCY_BOUNDS_S, cumulative_buckets, families
from wbsrun.telemetry.metrics._sample import (
    BusLike,
    PollerLike,
    RunSample,
    RunSources,
    take_sample,
    workbook_figures,
)
from wbsrun.telemetry.metrics._server import (
    DEFAULT_HOST,
    MetricsAddress,
    MetricsExporter,
    RunCollector,
)

__all__ = [
    "DEFAULT_HOST",
    "LATENCY_BOUNDS_S",
    "BusLike",
    "MetricsAddress",
    "MetricsExporter",
    "PollerLike",
    "RunCollector",
    "RunSample",
    "RunSources",
    "cumulative_buckets",
    "families",
    "take_sample",
    "workbook_figures",
]
