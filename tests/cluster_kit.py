"""Worker entries that misbehave, for the coordinator's failure tests (importable by name from
a spawned process: tests/ is on the path the coordinator hands its workers)."""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection

from wbsrun.cluster import Failed, Ready


def silent_worker(conn: Connection, job: object) -> None:
    """Says it is ready, then never reports: a hung worker."""
    conn.send(Ready(int(str(job)), os.getpid(), 3))
    time.sleep(120)


def failing_worker(conn: Connection, job: object) -> None:
    """Cannot load its plan."""
    conn.send(Failed(int(str(job)), "data source cannot be read: gone.csv"))
