"""The sinks the runner publishes to, behind one compiled base class.

`ProgressSink` (core/events.py) is the port anyone may implement. The runner, though, holds its
sink as a `Sink`: a call on a compiled subclass (the aggregator's sink, the bus) is then a
native method call, not a method looked up by name with its arguments boxed, ~11 times a pass.
Any other `ProgressSink` is wrapped in a `ForwardingSink` by `as_sink`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import final

from wbsrun.core.events import ProgressSink, ProgressSubject

__all__ = ["ForwardingSink", "NullSink", "Sink", "as_sink"]


class Sink:
    """Base of the runner's sinks; `publish` drops the change (see `NullSink`)."""

    __slots__ = ()

    def publish(self, subject: ProgressSubject, field: str, priority: float) -> None:
        return None


@final
class NullSink(Sink):
    """The sink of a run nobody watches."""

    __slots__ = ()


@final
class ForwardingSink(Sink):
    """A `ProgressSink` that is not a `Sink` (a third party's, a test's), called as one."""

    __slots__ = ("_publish", "target")

    def __init__(self, target: ProgressSink) -> None:
        self.target = target
        self._publish: Callable[[ProgressSubject, str, float], None] = target.publish

    def publish(self, subject: ProgressSubject, field: str, priority: float) -> None:
        self._publish(subject, field, priority)


def as_sink(sink: ProgressSink | None) -> Sink:
    """`sink` as the runner holds it: itself when it is a `Sink`, else wrapped."""
    if sink is None:
        return NullSink()
    if isinstance(sink, Sink):
        return sink
    return ForwardingSink(sink)
