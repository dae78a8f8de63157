"""The change feed behind the progress pollable (`wbsrun:progress/pollable`, docs/wasi.md "The
progress pollable"): progress changes taken from the bus, ranked by the poller's
`progress.poller.priorities` classes, held per subscription for a plugin to poll.

One change is one dirty field of one bus event (a task's updates coalesced by the bus stay
one change per field). A subscription keeps the changes its filter selects, one FIFO per
class; `block(max)` hands out (without removing) the changes aged past `max_wait` first,
oldest first, then the rest by class weight, highest first, and by sequence within a
weight; `ack(sequence)` drops what was handed out up to `sequence`. Bounded: past `cap`
changes the oldest of the lowest-weight class is dropped and counted.

`progress.poller.progress_pollable: true` creates the feed; it subscribes to the bus only at
the first `subscribe()`, so a run whose plugins never subscribe pays nothing per event.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final, Protocol, final

from wbsrun.core.bus import EndOfStream, ProgressBus, ProgressEvent, Subscription
from wbsrun.core.stats import Histogram
from wbsrun.poller._changes import Change, ChangeFilter, PollableStatistics, by_sequence

__all__ = [
    "AGING_S",
    "BACKLOG_CAP",
    "MAX_SUBSCRIPTIONS",
    "Classifier",
    "PollSubscription",
    "ProgressFeed",
]

# A change waiting this long is served before higher-priority newer ones (the minimum service
# rate: a plugin that blocks and acks at least once per AGING_S sees every change within
# AGING_S plus one poll, whatever the flood above it).
AGING_S: Final = 1.0
# Changes one subscription holds (a plugin that never acks costs at most this many).
BACKLOG_CAP: Final = 4096
# Live subscriptions of one feed (all plugins): one more is refused.
MAX_SUBSCRIPTIONS: Final = 1024
# Events the feed's bus subscription holds before it coalesces per task (bus.py).
FEED_BOUND: Final = 10_000


class Classifier(Protocol):
    """What the feed asks the poller: an event's class and its weight."""

    def class_of(self, ev: ProgressEvent) -> tuple[int, float]: ...

    @property
    def class_weights(self) -> list[float]: ...


@final
class PollSubscription:
    """One `progress-pollable`: `ready`, `done`, `block`, `ack` (see the module's docs)."""

    def __init__(self, feed: ProgressFeed, flt: ChangeFilter, weights: Sequence[float]) -> None:
        self.feed = feed
        self.filter = flt
        self._fifos: list[deque[Change]] = []
        self._shown: list[int] = []
        self._groups: list[list[int]] = []
        self._lowest_first: list[int] = []
        self.classes(weights)
        self.size = 0
        self.dropped = 0
        self.acked = 0
        self.closed = False
        # Bumped by every change taken in and every ack: the cached ready() answer's key.
        self.version = 0
        self._cached: tuple[int, bool] | None = None

    # -- feed side ----------------------------------------------------------------------------
    def classes(self, weights: Sequence[float]) -> None:
        """One FIFO per class of `weights` (a subscription made before the poller was bound
        is given its classes when it is: it holds nothing yet, the run has not started)."""
        held = [ch for fifo in self._fifos for ch in fifo]
        self._fifos = [deque() for _ in weights]
        # Per class: how many changes at the front have been handed out by block().
        self._shown = [0] * len(weights)
        # Classes by weight, highest first; equal weights grouped (merged by sequence).
        order = sorted(range(len(weights)), key=lambda c: (-weights[c], c))
        self._groups = [list(g) for _w, g in itertools.groupby(order, key=lambda c: weights[c])]
        self._lowest_first = list(reversed(order))
        for ch in sorted(held, key=by_sequence):
            self._fifos[min(ch.cls, len(weights) - 1)].append(ch)

    def offer(self, ch: Change) -> None:
        self._fifos[ch.cls].append(ch)
        self.size += 1
        self.version += 1
        if self.size > self.feed.cap:
            for c in self._lowest_first:
                fifo = self._fifos[c]
                if fifo:
                    fifo.popleft()
                    if self._shown[c]:
                        self._shown[c] -= 1
                    self.size -= 1
                    self.dropped += 1
                    break

    # -- plugin side --------------------------------------------------------------------------
    def ready(self) -> bool:
        """A change is waiting (one `block(1)` would return). Recomputed from the feed on every
        call, unless `rebuild` is off: then the answer is reused until a change or an ack."""
        feed = self.feed
        t0 = time.perf_counter()
        if feed.rebuild:
            feed.refresh()
            answer = self.size > 0
        else:
            cached = self._cached
            if cached is not None and cached[0] == self.version:
                answer = cached[1]
            else:
                answer = self.size > 0
                self._cached = (self.version, answer)
        feed.polled(0, t0)
        return answer

    def done(self) -> bool:
        """The run is over and nothing more will come."""
        return self.feed.done()

    def block(self, limit: int) -> list[Change]:
        """Up to `limit` waiting changes, aged ones first (oldest first), then by class weight
        (highest first) and sequence; they stay until acked."""
        feed = self.feed
        t0 = time.perf_counter()
        if feed.rebuild:
            feed.refresh()
        out = self._pick(limit, feed.clock() - feed.max_wait) if limit > 0 else []
        feed.polled(1, t0)
        return out

    def _pick(self, limit: int, aged_before: float) -> list[Change]:
        fifos = self._fifos

        def aged(c: int) -> Iterator[Change]:
            return itertools.takewhile(lambda ch: ch.at <= aged_before, fifos[c])

        def fresh(c: int) -> Iterator[Change]:
            return itertools.dropwhile(lambda ch: ch.at <= aged_before, fifos[c])

        out = list(
            itertools.islice(
                heapq.merge(*(aged(c) for c in range(len(fifos))), key=by_sequence), limit
            )
        )
        # Every aged change is taken unless `limit` was reached first: then nothing more.
        for group in self._groups:
            if len(out) >= limit:
                break
            merged = (
                fresh(group[0])
                if len(group) == 1
                else heapq.merge(*(fresh(c) for c in group), key=by_sequence)
            )
            out.extend(itertools.islice(merged, limit - len(out)))
        # What each class handed out is a prefix of its FIFO (aged ones lead it).
        counts = [0] * len(fifos)
        for ch in out:
            counts[ch.cls] += 1
        shown = self._shown
        for c, n in enumerate(counts):
            if n > shown[c]:
                shown[c] = n
        return out

    def waiting(self) -> list[Change]:
        """Every change held, in sequence order (for inspection; block() is the plugin's)."""
        return sorted((ch for fifo in self._fifos for ch in fifo), key=by_sequence)

    def ack(self, sequence: int) -> int:
        """Drop the changes block() handed out whose sequence is at most `sequence` (those not
        handed out yet stay); how many were dropped."""
        n = 0
        for c, fifo in enumerate(self._fifos):
            shown = self._shown[c]
            while shown and fifo and fifo[0].sequence <= sequence:
                fifo.popleft()
                shown -= 1
                n += 1
            self._shown[c] = shown
        if n:
            self.size -= n
            self.acked += n
            self.version += 1
        return n

    def close(self) -> None:
        self.feed.close(self)


_CALLS: Final = ("ready", "block")


@final
class ProgressFeed:
    """`Service`: takes the bus's events in as changes for every live subscription."""

    def __init__(
        self,
        bus: ProgressBus,
        *,
        rebuild: bool = True,
        cap: int = BACKLOG_CAP,
        max_wait: float = AGING_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cap < 1:
            raise ValueError(f"backlog cap must be >= 1, got {cap}")
        self._bus = bus
        self.rebuild = rebuild
        self.cap = cap
        self.max_wait = max_wait
        self.clock = clock
        self._classifier: Classifier | None = None
        self._sub: Subscription | None = None
        self._subs: list[PollSubscription] = []
        self._finished: asyncio.Event | None = None
        self.by_sequenceuence = 0
        self._changes = 0
        self._retired = [0, 0, 0]  # acked, dropped of closed subscriptions; their count
        self._queue_max = 0
        self._polls = [0, 0]
        self._latency = [Histogram(), Histogram()]
        self._first_poll: float | None = None
        self._last_poll = 0.0

    @property
    def bus(self) -> ProgressBus:
        return self._bus

    def bind(self, classifier: Classifier, finished: asyncio.Event) -> None:
        """The poller that ranks changes, and the run's `finished` (what done() reads)."""
        self._classifier = classifier
        self._finished = finished
        for sub in self._subs:
            sub.classes(classifier.class_weights)

    # -- subscriptions ------------------------------------------------------------------------
    def subscribe(self, flt: ChangeFilter) -> PollSubscription:
        """A subscription to the changes from now on (the bus's from its next flush)."""
        if len(self._subs) >= MAX_SUBSCRIPTIONS:
            raise RuntimeError(f"more than {MAX_SUBSCRIPTIONS} progress subscriptions")
        if self._sub is None:
            self._sub = self._bus.subscribe(None, bound=FEED_BOUND)
        weights = self._classifier.class_weights if self._classifier is not None else [1.0]
        sub = PollSubscription(self, flt, weights)
        self._subs.append(sub)
        return sub

    def subscribe_with(
        self, tasks: Iterable[str], fields: Iterable[str], min_priority: float
    ) -> PollSubscription:
        """`subscribe` with the filter's parts (what the WebAssembly host hands over)."""
        return self.subscribe(ChangeFilter(frozenset(tasks), frozenset(fields), min_priority))

    def close(self, sub: PollSubscription) -> None:
        if sub.closed:
            return
        sub.closed = True
        if sub in self._subs:
            self._subs.remove(sub)
            self._retired[0] += sub.acked
            self._retired[1] += sub.dropped
            self._retired[2] += 1

    # -- intake -------------------------------------------------------------------------------
    def refresh(self) -> int:
        """Take in what the bus delivered (everything pending too once the run is over)."""
        sub = self._sub
        if sub is None:
            return 0
        finished = self._finished
        if finished is not None and finished.is_set():
            self._bus.flush()
        if not sub.ready():
            return 0
        return self.take_in(sub.recv_nowait())

    def take_in(self, events: Iterable[ProgressEvent]) -> int:
        subs = self._subs
        classify = self._classifier.class_of if self._classifier is not None else None
        now = self.clock()
        n = 0
        for ev in events:
            cls, weight = classify(ev) if classify is not None else (0, 1.0)
            for field in sorted(ev.dirty):
                self.by_sequenceuence += 1
                ch = Change(
                    self.by_sequenceuence,
                    ev.task_id,
                    field,
                    ev.progress,
                    ev.phase,
                    weight,
                    cls,
                    now,
                )
                n += 1
                for s in subs:
                    if s.filter.accepts(ch):
                        s.offer(ch)
        self._changes += n
        depth = self.depth()
        if depth > self._queue_max:
            self._queue_max = depth
        return n

    def done(self) -> bool:
        finished = self._finished
        if finished is None or not finished.is_set():
            return False
        self.refresh()
        return True

    async def serve(self) -> None:
        """Take events in as the bus delivers them, so that a plugin that polls rarely still
        sees every change (its subscription's cap bounds what it holds)."""
        try:
            while True:
                sub = self._sub
                if sub is None:
                    finished = self._finished
                    if finished is not None and finished.is_set():
                        return
                    await asyncio.sleep(self._bus.flush_interval)
                    continue
                try:
                    events = await sub.recv()
                except EndOfStream:
                    return
                self.take_in(events)
        finally:
            self.refresh()

    # -- statistics ---------------------------------------------------------------------------
    def polled(self, call: int, t0: float) -> None:
        t1 = time.perf_counter()
        self._polls[call] += 1
        self._latency[call].record((t1 - t0) * 1000.0)
        if self._first_poll is None:
            self._first_poll = t0
        self._last_poll = t1

    def depth(self) -> int:
        return sum(s.size for s in self._subs)

    def statistics(self) -> PollableStatistics:
        subs = self._subs
        first = self._first_poll
        span = self._last_poll - first if first is not None else 0.0
        polls = sum(self._polls)
        return PollableStatistics(
            subscriptions=len(subs) + self._retired[2],
            changes=self._changes,
            acked=self._retired[0] + sum(s.acked for s in subs),
            dropped=self._retired[1] + sum(s.dropped for s in subs),
            queue_depth=self.depth(),
            queue_max=self._queue_max,
            polls=dict(zip(_CALLS, self._polls, strict=True)),
            polls_per_s=round(polls / span, 1) if span > 0 else 0.0,
            latency=dict(zip(_CALLS, self._latency, strict=True)),
            max_wait_s=self.max_wait,
            backlog_cap=self.cap,
            rebuild=self.rebuild,
        )
