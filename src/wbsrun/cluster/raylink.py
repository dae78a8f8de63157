"""Ray actors as the workers of a run (`wbsrun run --cluster local-ray | ray://ADDR`).

The same messages as the local transport (`protocol.py`), carried by Ray: each worker is an
async actor (`WorkerActor`, one CPU, in one placement group: all placed or none) whose `run`
is a streaming generator yielding `Ready`, the `Report`s and the final one; `Go`, `Drain` and
`Abort` are actor method calls. The coordinator's end (`RayLink`) reads the generator on a
thread and hands each message to the event loop, as `PipeLink` does; an actor that dies ends
its generator with an error, which becomes a `Failed` message: a failed segment, never a
hang. Ray is imported only here, and only when `--cluster` is given (`import_ray`).
See docs/distributed.md "Ray".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from wbsrun.cluster.protocol import Failed
from wbsrun.errors import RunError

__all__ = [
    "LOCAL_RAY",
    "NAMESPACE",
    "PLACEMENT_TIMEOUT",
    "RAY_INSTALL",
    "ActorLink",
    "RayActors",
    "RayConnection",
    "RayLink",
    "WorkerActor",
    "import_ray",
]

RAY_INSTALL = "pip install 'wbsrun[ray]'  (Ray 2.60.x)"
LOCAL_RAY = "local-ray"
# The actors' Ray namespace (their names: wbsrun-<run>-<index>).
NAMESPACE = "wbsrun"
# Longest wait for the placement group (every worker's CPU) before the start fails.
PLACEMENT_TIMEOUT = 60.0

# What a worker runs in its actor: `body(link, job, bundle)` (cli/ray_worker.py).
Body = Callable[[Any, Any, Any], Awaitable[None]]


def import_ray() -> Any:
    """The `ray` module, or a `RunError` that says how to install it."""
    try:
        import ray
    except ImportError:
        raise RunError(f"--cluster needs Ray, an optional extra: {RAY_INSTALL}") from None
    return ray


class RayConnection:
    """This process's Ray: one it started (`local-ray`: shut down at the end) or a cluster
    it joined (`ray://HOST:PORT`, the address of the cluster's GCS: this process must run on
    a node of that cluster)."""

    def __init__(self, ray: Any, address: str, owned: bool) -> None:
        self.ray = ray
        self.address = address
        self.owned = owned

    @classmethod
    def connect(cls, cluster: str, cpus: int) -> RayConnection:
        ray = import_ray()
        if ray.is_initialized():  # embedded (tests, notebooks): the caller's Ray
            return cls(ray, "the running Ray", owned=False)
        if cluster == LOCAL_RAY:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            # On loopback: nothing of this Ray (its GCS has no authentication) is reachable
            # from another machine.
            kwargs: dict[str, Any] = {
                "num_cpus": cpus,
                "include_dashboard": False,
                "_node_ip_address": "127.0.0.1",
            }
            address = LOCAL_RAY
        elif cluster.startswith("ray://") and len(cluster) > len("ray://"):
            address = cluster[len("ray://") :]
            if address != "auto":
                _reachable(cluster, address)
            kwargs = {"address": address}
        else:
            raise RunError(
                f"--cluster {cluster!r}: expected local-ray or ray://HOST:PORT (the GCS "
                "address `ray start --head` printed, or ray://auto)"
            )
        try:
            ray.init(
                **kwargs,
                namespace=NAMESPACE,
                configure_logging=False,
                log_to_driver=False,  # the actors' prints stay out of the result on stdout
            )
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError…
            where = "" if cluster == LOCAL_RAY else " (run wbsrun on a node of the cluster)"
            raise RunError(f"--cluster {cluster}: cannot start Ray{where}: {exc}") from None
        return cls(ray, address, owned=True)

    def cpus(self) -> int:
        """The CPUs the cluster reports (all its nodes')."""
        return int(self.ray.cluster_resources().get("CPU", 0))

    def shutdown(self) -> None:
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()


def _reachable(cluster: str, address: str, timeout: float = 5.0) -> None:
    """Fail at once when nothing listens at the GCS address (Ray itself retries a minute)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise RunError(f"--cluster {cluster}: expected ray://HOST:PORT (or ray://auto)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RunError(
            f"--cluster {cluster}: nothing answers at {address} ({exc.strerror or exc}): "
            "give the GCS address that `ray start --head` printed (port 6379 by default)"
        ) from None


class ActorLink:
    """The worker's end inside its actor: `send` queues a message for the generator to
    yield; the actor's `control` method delivers the coordinator's messages."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self._on_message: Callable[[Any], None] | None = None
        self._on_closed: Callable[[], None] | None = None
        self.closed = False
        self._next = 0
        self._early: dict[int, object] = {}

    def send(self, message: object) -> bool:
        if self.closed:
            return False
        self.queue.put_nowait(message)
        return True

    def listen(
        self,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[Any], None],
        on_closed: Callable[[], None],
        name: str = "wbsrun-coordinator",
    ) -> object:
        self._on_message, self._on_closed = on_message, on_closed
        return None

    def deliver(self, seq: int, message: object) -> None:
        """The coordinator's `seq`-th message (from 0), handed on in `seq` order: Ray does not
        promise an async actor's calls run in the order they were sent."""
        self._early[seq] = message
        while self._next in self._early:
            message = self._early.pop(self._next)
            self._next += 1
            if self._on_message is not None:
                self._on_message(message)

    def lost(self) -> None:
        """The coordinator stopped reading (its generator was cancelled)."""
        if not self.closed:
            self.closed = True
            if self._on_closed is not None:
                self._on_closed()

    def close(self) -> None:
        self.closed = True


_END = object()


class WorkerActor:
    """One worker (made a Ray actor by `RayActors`: async, one CPU)."""

    def __init__(self, index: int, body: Body) -> None:
        self.index = index
        self.body = body
        # Made here: a control call may come before `run` has started (calls may reorder).
        self.link = ActorLink()

    async def run(self, job: Any, bundle: Any) -> AsyncIterator[object]:
        """The worker's messages, as a streaming generator, until its run ends."""
        link = self.link
        task = asyncio.ensure_future(self.body(link, job, bundle))
        task.add_done_callback(lambda _: link.queue.put_nowait(_END))
        try:
            while (message := await link.queue.get()) is not _END:
                yield message
            error = None if task.cancelled() else task.exception()
            if error is not None:  # a defect, not a `Failed`: said as one all the same
                yield Failed(self.index, f"{type(error).__name__}: {error}")
        finally:
            if not task.done():
                link.lost()
                task.cancel()

    async def control(self, seq: int, message: object) -> None:
        """A message from the coordinator (`Go`, `Drain`, `Abort`…), to the worker's loop."""
        self.link.deliver(seq, message)


class RayLink:
    """The coordinator's end of one actor: control calls out, its generator's messages in."""

    def __init__(self, ray: Any, index: int, actor: Any, stream: Any) -> None:
        self.ray = ray
        self.index = index
        self.actor = actor
        self.stream = stream
        self.ended: bool | None = None  # True: the stream ended; False: the actor was lost
        self._seq = 0
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def send(self, message: object) -> bool:
        """Any coordinator message (`Go`, `Drain`, `Abort`, and whatever else the protocol
        adds) is a call of the actor's `control` method, delivered to its worker in order."""
        if self.ended is not None:
            return False
        try:
            with self._lock:  # numbered in the order sent (the loop and a drain may both send)
                self.actor.control.remote(self._seq, message)
                self._seq += 1
        except Exception:  # the actor is gone: its stream says so
            return False
        return True

    def listen(
        self,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[Any], None],
        on_closed: Callable[[], None],
        name: str = "wbsrun-ray-link",
    ) -> threading.Thread:
        def read() -> None:
            try:
                for ref in self.stream:
                    message = self.ray.get(ref)
                    loop.call_soon_threadsafe(on_message, message)
                self.ended = True
            except Exception as exc:  # RayActorError, ActorDiedError, a lost node…
                self.ended = False
                failed = Failed(self.index, f"the Ray actor was lost: {_first_line(exc)}")
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(on_message, failed)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(on_closed)

        self.thread = threading.Thread(target=read, name=name, daemon=True)
        self.thread.start()
        return self.thread

    def close(self) -> None:
        pass


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


class RayActors:
    """The actors of one run: `place` (the placement group, before the run), `start` (an
    actor per job, each running its `body`), `kill`, `close`."""

    def __init__(
        self,
        conn: RayConnection,
        body: Body,
        jobs: Sequence[object],
        bundle: object,
        *,
        timeout: float = PLACEMENT_TIMEOUT,
    ) -> None:
        self.conn = conn
        self.ray = conn.ray
        self.body = body
        self.jobs = list(jobs)
        self.bundle = bundle
        self.timeout = timeout
        self.run_id = uuid.uuid4().hex[:8]
        self.group: Any = None
        self.actors: list[Any] = []
        self.links: list[RayLink] = []

    def names(self) -> list[str]:
        return [f"wbsrun-{self.run_id}-{i}" for i in range(len(self.jobs))]

    def place(self) -> None:
        """Reserve one CPU per worker, all or none, within `timeout`; else a `RunError`."""
        from ray.util.placement_group import placement_group

        n = len(self.jobs)
        have = self.conn.cpus()
        if n > have:
            raise RunError(
                f"--cluster: {n} workers need {n} CPUs, and the Ray cluster has {have}: "
                f"ask fewer with --workers (at most {have})"
            )
        group = placement_group([{"CPU": 1}] * n, strategy="SPREAD")
        try:
            self.ray.get(group.ready(), timeout=self.timeout)
        except Exception as exc:  # GetTimeoutError, or the group was refused
            self._remove(group)
            raise RunError(
                f"--cluster: the Ray cluster could not place {n} workers (one CPU each) "
                f"within {self.timeout:g}s ({_first_line(exc)}); none was started"
            ) from None
        self.group = group

    def start(self) -> list[RayLink]:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        if self.group is None:
            self.place()
        actor_class = self.ray.remote(WorkerActor)
        bundle = self.ray.put(self.bundle)  # once in the object store, fetched by each node
        for i, (job, name) in enumerate(zip(self.jobs, self.names(), strict=True)):
            actor = actor_class.options(
                name=name,
                namespace=NAMESPACE,
                num_cpus=1,
                max_restarts=0,
                max_task_retries=0,
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    placement_group=self.group, placement_group_bundle_index=i
                ),
            ).remote(i, self.body)
            stream = actor.run.options(num_returns="streaming").remote(job, bundle)
            self.actors.append(actor)
            self.links.append(RayLink(self.ray, i, actor, stream))
        return self.links

    def kill(self, i: int) -> None:
        with contextlib.suppress(Exception):
            self.ray.kill(self.actors[i], no_restart=True)

    def exit_code(self, i: int, wait: float = 0.0) -> int | None:
        """0 when the actor's stream ended; None when it was lost (no process exit code)."""
        link = self.links[i] if i < len(self.links) else None
        if link is None:
            return None
        if link.thread is not None and wait > 0:
            link.thread.join(wait)
        return 0 if link.ended else None

    def close(self, wait: float) -> None:
        """Wait `wait` seconds (in all) for the streams to end, then end every actor of this
        run and free the placement group."""
        loop_time = _monotonic()
        for link in self.links:
            if link.thread is not None:
                link.thread.join(max(0.0, loop_time + wait - _monotonic()))
        for i in range(len(self.actors)):
            self.kill(i)
        if self.group is not None:
            self._remove(self.group)
            self.group = None

    def _remove(self, group: Any) -> None:
        from ray.util.placement_group import remove_placement_group

        with contextlib.suppress(Exception):
            remove_placement_group(group)


def _monotonic() -> float:
    import time

    return time.monotonic()
