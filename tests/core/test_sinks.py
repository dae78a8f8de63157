"""The runner's sinks: any `ProgressSink` reaches the runner as a compiled `Sink`."""

from __future__ import annotations

from wbsrun.core.bus import ProgressBus
from wbsrun.core.sinks import ForwardingSink, NullSink, Sink, as_sink
from wbsrun.progress.aggregate import AggregatingSink


class Recorder:
    """A third party's sink: the Protocol's one method, no base class."""

    def __init__(self) -> None:
        self.seen: list[tuple[object, str, float]] = []

    def publish(self, subject: object, field: str, priority: float) -> None:
        self.seen.append((subject, field, priority))


def test_a_sink_of_any_class_is_wrapped_and_receives_every_publish_unchanged() -> None:
    recorder = Recorder()
    sink = as_sink(recorder)
    assert isinstance(sink, ForwardingSink)
    assert sink.target is recorder
    subject = object()
    sink.publish(subject, "progress", 0.5)  # type: ignore[arg-type]
    sink.publish(subject, "closed", 1.0)  # type: ignore[arg-type]
    assert recorder.seen == [(subject, "progress", 0.5), (subject, "closed", 1.0)]


def test_the_runners_own_sinks_pass_through_and_none_is_the_null_sink() -> None:
    bus = ProgressBus()
    assert as_sink(bus) is bus
    assert issubclass(AggregatingSink, Sink)
    assert isinstance(as_sink(None), NullSink)
