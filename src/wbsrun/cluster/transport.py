"""The local transport: one duplex pipe per worker process, and the processes themselves.

Only this module knows pipes and processes; the messages (`protocol.py`) and their merge
(`merge.py`) do not, so another transport (Ray actors) can carry the same reports. A reader
thread per link hands each message to the event loop (`call_soon_threadsafe`), so the loop never
blocks on a pipe; a worker that dies closes its end of the pipe, which the reader sees as the
end of the link at once (the coordinator then asks the process why: its exit code or signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

__all__ = ["PipeLink", "WorkerProcesses", "exit_reason"]


class PipeLink:
    """One end of a worker's pipe: `send` a message, `listen` for the other end's."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._send_lock = threading.Lock()

    def send(self, message: object) -> bool:
        """False when the other end is gone (the caller finds out why elsewhere)."""
        try:
            with self._send_lock:
                self.conn.send(message)
        except (OSError, ValueError):
            return False
        return True

    def listen(
        self,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[Any], None],
        on_closed: Callable[[], None],
        name: str = "wbsrun-link",
    ) -> threading.Thread:
        """Read messages on a daemon thread until the link ends; each is handed to `loop`."""

        def read() -> None:
            while True:
                try:
                    message = self.conn.recv()
                except (EOFError, OSError, ValueError):
                    break
                except Exception:  # an unreadable message ends the link, never the thread silently
                    break
                try:
                    loop.call_soon_threadsafe(on_message, message)
                except RuntimeError:  # the loop is closed: nobody listens any more
                    return
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(on_closed)

        thread = threading.Thread(target=read, name=name, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()


class WorkerProcesses:
    """The worker processes of one run, started with the `spawn` method (a fresh interpreter:
    no event loop, thread or open socket inherited from the coordinator). Each gets its end of
    a pipe and its job: `target(conn, job)`. Only these processes are ever signalled, by
    their own handles (PIDs)."""

    def __init__(self, target: Callable[[Connection, Any], None], jobs: Sequence[object]) -> None:
        self.target = target
        self.jobs = list(jobs)
        self.processes: list[BaseProcess] = []
        self.links: list[PipeLink] = []

    def start(self) -> list[PipeLink]:
        ctx = multiprocessing.get_context("spawn")
        for i, job in enumerate(self.jobs):
            ours, theirs = ctx.Pipe(duplex=True)
            # daemon: should the coordinator itself die, multiprocessing ends the workers.
            proc = ctx.Process(
                target=self.target, args=(theirs, job), name=f"wbsrun-worker-{i}", daemon=True
            )
            proc.start()
            theirs.close()  # only the worker holds it: its death ends the link (EOF)
            self.processes.append(proc)
            self.links.append(PipeLink(ours))
        return self.links

    def alive(self, i: int) -> bool:
        return self.processes[i].is_alive()

    def kill(self, i: int) -> None:
        """SIGKILL worker `i` (a hung worker: it no longer reports)."""
        proc = self.processes[i]
        if proc.is_alive():
            proc.kill()

    def exit_code(self, i: int, wait: float = 0.0) -> int | None:
        proc = self.processes[i]
        proc.join(wait)
        return proc.exitcode

    def close(self, wait: float) -> None:
        """Wait `wait` seconds (in all) for the workers to exit, then kill those left; close
        the pipes. Never returns with a worker of this run still running."""
        deadline = _now() + wait
        for proc in self.processes:
            proc.join(max(0.0, deadline - _now()))
        for proc in self.processes:
            if proc.is_alive():
                proc.kill()
                proc.join(5.0)
        for link in self.links:
            link.close()


def _now() -> float:
    import time

    return time.monotonic()


def exit_reason(code: int | None) -> str:
    """How a process ended, in words (`multiprocessing`: a negative code is the signal)."""
    if code is None:
        return "still running"
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exited with code {code}"
