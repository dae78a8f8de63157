"""Every core: a run split over worker processes, merged by a coordinator (`--workers N`).

The face of the package. The coordinator (`ClusterRunner`) is the run the CLI wires; a worker
process runs `serve_worker` with a `Reporter`; the messages (`protocol`), their figures' delta
format and merge (`delta`, `merge`) do not depend on the transport (`transport`: pipes and
processes), so other transports can reuse them. See docs/distributed.md "All cores".
"""

from wbsrun.cluster.control import ClusterControl
from wbsrun.cluster.coordinator import BusView, ClusterRunner, PollerView
from wbsrun.cluster.delta import DeltaTaker, StatsDelta, merge_delta, totals
from wbsrun.cluster.merge import ClusterState, merge_json
from wbsrun.cluster.protocol import (
    REPORT_INTERVAL,
    Abort,
    Drain,
    Failed,
    Go,
    Pause,
    Ready,
    Report,
    Resume,
    Scale,
)
from wbsrun.cluster.transport import PipeLink, WorkerProcesses
from wbsrun.cluster.worker import Reporter, serve_worker

__all__ = [
    "REPORT_INTERVAL",
    "Abort",
    "BusView",
    "ClusterControl",
    "ClusterRunner",
    "ClusterState",
    "DeltaTaker",
    "Drain",
    "Failed",
    "Go",
    "Pause",
    "PipeLink",
    "PollerView",
    "Ready",
    "Report",
    "Reporter",
    "Resume",
    "Scale",
    "StatsDelta",
    "WorkerProcesses",
    "merge_delta",
    "merge_json",
    "serve_worker",
    "totals",
]
