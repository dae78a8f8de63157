"""`--metrics [HOST:]PORT`: prometheus_client's HTTP server on a private registry, a collector
that reads the run at scrape time through its event loop, and the final figures after it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from wbsrun.telemetry.metrics._families import families
from wbsrun.telemetry.metrics._sample import RunSample, RunSources, take_sample

__all__ = ["DEFAULT_HOST", "MetricsAddress", "MetricsExporter", "RunCollector"]

DEFAULT_HOST = "127.0.0.1"
# How long a scrape waits for the loop to read the run; past it, the last reading is served.
SAMPLE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class MetricsAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> MetricsAddress:
        """`PORT`, `HOST:PORT` or `[IPv6]:PORT`; ValueError saying what was expected."""
        raw = text.strip()
        host, sep, port = raw.rpartition(":")
        if not sep:
            host, port = DEFAULT_HOST, raw
        bracketed = host.startswith("[") and host.endswith("]")
        if bracketed:
            host = host[1:-1]
        bad_host = (sep and not host) or (":" in host and not bracketed)
        if bad_host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(
                f"'{text}': expected [HOST:]PORT with PORT 0-65535 (0: any free), an IPv6 "
                "host in brackets ([::1]:9464)"
            )
        return cls(host, int(port))

    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"


class RunCollector(Collector):
    """Reads the run when scraped. While its loop runs, the reading is made on the loop (the
    run's dicts change only there) and handed to the scraping thread; once the run is over,
    `finish()` takes the final reading, served from then on. Before the loop runs, and between
    its end and `finish()`, a scrape gets the last reading (none before the first)."""

    def __init__(self, sources: RunSources) -> None:
        self.sources = sources
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last: RunSample | None = None
        self._final = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """The run's loop, from inside it (see `MetricsExporter.attach`)."""
        self._loop = loop

    def finish(self) -> RunSample:
        """The run is over (its loop gone): read it once more, in this thread, for good."""
        self._last = take_sample(self.sources)
        self._final = True
        return self._last

    def sample(self) -> RunSample | None:
        loop = self._loop
        if self._final or loop is None or not loop.is_running():
            return self._last
        done: concurrent.futures.Future[RunSample] = concurrent.futures.Future()

        def read() -> None:
            try:
                done.set_result(take_sample(self.sources))
            except BaseException as exc:  # handed to the scraping thread
                done.set_exception(exc)

        try:
            loop.call_soon_threadsafe(read)
            found = done.result(timeout=SAMPLE_TIMEOUT)
        except (RuntimeError, concurrent.futures.TimeoutError):
            return self._last  # the loop closed meanwhile, or is too busy: the last reading
        if not self._final:
            self._last = found
        return found

    def describe(self) -> Iterable[Metric]:
        return ()  # no reading at registration

    def collect(self) -> Iterator[Metric]:
        found = self.sample()
        if found is not None:
            yield from families(found)


class MetricsExporter:
    """The endpoint for one run: `start()` before it, `attach(loop)` once its loop runs (see
    `serve`), `close()` once the result is written (and any linger is over)."""

    def __init__(self, address: MetricsAddress, sources: RunSources) -> None:
        self.address = address
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = RunCollector(sources)
        self.registry.register(self.collector)
        # process_resident_memory_bytes and friends: the run's memory, the workbook's included.
        ProcessCollector(registry=self.registry)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MetricsAddress:
        """Listen; the address bound (port 0 resolved). OSError when the port is taken."""
        server, thread = start_http_server(
            self.address.port, addr=self.address.host, registry=self.registry
        )
        self._server, self._thread = server, thread
        port: Any = server.server_address[1]
        self.address = MetricsAddress(self.address.host, int(port))
        return self.address

    def attach(self) -> None:
        """Call on the run's loop before the run starts: scrapes read the run from then on."""
        self.collector.attach(asyncio.get_running_loop())

    def finish(self) -> RunSample:
        """After the run (its loop stopped): the final figures, served until `close()`."""
        return self.collector.finish()

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
