"""Metrics kit: a `wbsrun run --metrics` in a subprocess, its scrapes parsed with
prometheus_client's own text parser, and a real Prometheus server scraping it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    proc: subprocess.Popen[str] | None = None,
) -> T:
    """`probe()` until it gives something other than None (OSError counts as not yet); fails
    at once when `proc` has exited without the probe succeeding."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = probe()
        except OSError:
            found = None
        if found is not None:
            return found
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr is not None else ""
            raise AssertionError(f"wbsrun exited {proc.returncode} before {what}: {err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


class Scrape:
    """One scrape of an exporter: families by name (as the parser names them: counters
    without `_total`) and their samples."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def samples(self, name: str) -> list[Sample]:
        """Samples whose name is `name` exactly (`wbsrun_requests_total`, `..._bucket`)."""
        return [s for f in self.families.values() for s in f.samples if s.name == name]

    def value(self, name: str, **labels: str) -> float:
        """The one sample of `name` with these labels (others ignored); KeyError if none."""
        found = [
            s.value
            for s in self.samples(name)
            if all(s.labels.get(k) == v for k, v in labels.items())
        ]
        if len(found) != 1:
            raise KeyError(f"{name}{labels}: {len(found)} samples")
        return found[0]

    def total(self, name: str, **labels: str) -> float:
        return sum(
            s.value
            for s in self.samples(name)
            if all(s.labels.get(k) == v for k, v in labels.items())
        )


def scrape(url: str, timeout: float = 5.0) -> Scrape:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return Scrape(resp.read().decode())


@contextmanager
def wbsrun_with_metrics(
    *args: str, port: int, linger: str = "5s"
) -> Iterator[subprocess.Popen[str]]:
    """`wbsrun *args --metrics 127.0.0.1:PORT --metrics-linger LINGER --quiet`, stopped (this
    process only, by its own handle) when the block ends."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wbsrun",
            *args,
            "--quiet",
            "--metrics",
            f"127.0.0.1:{port}",
            "--metrics-linger",
            linger,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # ends a linger at once
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# -- a real Prometheus (Debian's package; `make prometheus` installs it) ----------------------

PROMETHEUS_CONF = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: wbsrun
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:{target}"]
"""


class Prometheus:
    """`prometheus` on a free loopback port, scraping one target every second, with its
    storage in `where`; `stop()` ends this process only."""

    def __init__(self, where: Path, target_port: int) -> None:
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not Path(binary).is_file():
            missing = "prometheus is not installed (make test installs Debian's prometheus)"
            if os.environ.get("CI") == "true":  # make test installed it: never a silent skip
                pytest.fail(missing)
            pytest.skip(missing)
        self.port = free_port()
        conf = where / "prometheus.yml"
        conf.write_text(PROMETHEUS_CONF.format(target=target_port), encoding="utf-8")
        self.log = (where / "prometheus.log").open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={conf}",
                f"--storage.tsdb.path={where / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(self._ready, 30, "prometheus to be ready")
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.proc.returncode}")
        url = f"http://127.0.0.1:{self.port}/-/ready"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return True if resp.status == 200 else None

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of `expr` now (the API's `data.result`)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, expr: str) -> float | None:
        """The value of a one-series `expr`, or None while it has no series."""
        result = self.query(expr)
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def value(self, expr: str) -> float:
        """`scalar`, which must have a series."""
        found = self.scalar(expr)
        assert found is not None, f"{expr}: no series"
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
