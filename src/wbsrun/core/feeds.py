"""Data feeders at run time: which row of each `data:` source a pass gets (docs/dsl.md
"Data feeders"). One `Feed` per source, shared by every scenario and user of the run; a
pass picks its rows once, before its first node, so all its actions see the same rows.

In a run split across workers (a `Segmentation`), a feed reads rows by number through the
file's index: `per-user` by the user's global index, the shared streams (`sequential`,
`unique`, `circular`, `shuffled`) by striping, the worker's j-th take being take `nth(j)` of
the one-process stream (docs/distributed.md "Feeders under a split")."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Final, final

from wbsrun.core.codes import DATA_ERROR, DATA_EXHAUSTED
from wbsrun.core.segments import Segmentation
from wbsrun.dsl.plan import DataSpec
from wbsrun.dsl.rows import RowError, RowFile

__all__ = ["Feed", "FeedProblem", "Permutation", "open_feeds"]

_ROUNDS: Final = 4


@final
class FeedProblem:
    """No row for this pass: the code, a message, and whether the source is used up."""

    __slots__ = ("code", "exhausted", "message", "stop")

    def __init__(self, code: str, message: str, exhausted: bool = False, stop: bool = False):
        self.code = code
        self.message = message
        # The source is used up: no later pass gets a row either.
        self.exhausted = exhausted
        # `on-exhausted: stop`: the user ends without starting the pass (else it fails).
        self.stop = stop


@final
class Permutation:
    """A random permutation of range(n) in constant memory: a 4-round Feistel network
    over the next power of four, walking the cycle until the value falls below n."""

    __slots__ = ("_half", "_keys", "_mask", "n")

    def __init__(self, n: int, rng: random.Random) -> None:
        self.n = n
        bits = max(2, (max(n, 2) - 1).bit_length())
        bits += bits % 2
        self._half = bits // 2
        self._mask = (1 << self._half) - 1
        self._keys = tuple(rng.getrandbits(32) for _ in range(_ROUNDS))

    def _round(self, value: int, key: int) -> int:
        return ((value * 0x9E3779B1) ^ key ^ (value >> 3)) * 0x85EBCA6B & self._mask

    def __getitem__(self, i: int) -> int:
        value = i
        while True:
            left, right = value >> self._half, value & self._mask
            for key in self._keys:
                left, right = right, left ^ self._round(right, key)
            value = (left << self._half) | right
            if value < self.n:
                return value


class Feed:
    """One source: its file, its mode's cursor, and whether it ran out."""

    def __init__(
        self,
        spec: DataSpec,
        rng: random.Random | None = None,
        segment: Segmentation | None = None,
        seed: int = 0,
    ) -> None:
        self.spec = spec
        self.rows = RowFile(spec.file, spec.display, spec.format, spec.delimiter, spec.quote)
        self.segment = segment
        # The workers of a split run share `seed`: the same shuffle each cycle; each draws
        # its own `random` rows.
        self._seed = seed
        if segment is not None:
            rng = random.Random(f"{seed}\x00{segment.index}")
        self.rng = rng or random.Random()
        self.cursor: tuple[int, int] = (0, 0)
        self.count = 0
        self.exhausted = False
        self._order: Permutation | None = None
        self._dealt = 0
        # A split run: this worker's takes so far, and the cycle `_order` shuffles.
        self._taken = 0
        self._cycle = -1

    def open(self) -> None:
        """Open the file; the modes with random access (and every mode of a split run) scan
        it once for the index."""
        self.rows.open()
        self.cursor = self.rows.first
        mode = self.spec.mode
        if mode in ("random", "shuffled"):
            self.count = self.rows.index()
            if self.count == 0:
                raise RowError(self.spec.display, "the file has no rows")
        elif self.segment is not None:
            # As a streamed read, the file ends at a record whose end cannot be told.
            self.count = self.rows.index(truncate=True)

    def close(self) -> None:
        self.rows.close()

    def position(self) -> dict[str, Any]:
        """Where this feed stands (a checkpoint): its cursor and its mode's counters, the
        random generator's state and the current shuffle's keys. Plain, picklable."""
        order = self._order
        return {
            "cursor": self.cursor,
            "exhausted": self.exhausted,
            "dealt": self._dealt,
            "taken": self._taken,
            "cycle": self._cycle,
            "rng": self.rng.getstate(),
            "order": None if order is None else order._keys,
        }

    def restore(self, at: dict[str, Any]) -> None:
        """Continue after the last row taken (`position()` of a first life; the file opened)."""
        cursor = at["cursor"]
        self.cursor = (int(cursor[0]), int(cursor[1]))
        self.exhausted = bool(at["exhausted"])
        self._dealt = int(at["dealt"])
        self._taken = int(at["taken"])
        self._cycle = int(at["cycle"])
        self.rng.setstate(at["rng"])
        keys = at["order"]
        if keys is not None and self.count:
            order = Permutation(self.count, random.Random(0))
            order._keys = tuple(keys)
            self._order = order

    def pick(self, user_rows: dict[str, Any], user: int = 0) -> dict[str, Any] | FeedProblem:
        """This pass's row; `user_rows` holds the user's own (mode per-user), `user` is its
        global index (a split run deals per-user rows by it)."""
        mode = self.spec.mode
        try:
            if self.segment is not None:
                return self._split_pick(self.segment, user_rows, user)
            if mode == "per-user":
                mine: dict[str, Any] | None = user_rows.get(self.spec.name)
                if mine is None:
                    mine = user_rows[self.spec.name] = self._wrapped()
                return mine
            if mode == "random":
                return self.rows.read_index(self.rng.randrange(self.count))
            if mode == "shuffled":
                return self._shuffled()
            if mode == "circular":
                return self._wrapped()
            if self.exhausted:
                return self._used_up()
            row, self.cursor = self.rows.read(self.cursor)
            if row is None:
                self.exhausted = True
                return self._used_up()
            return row
        except RowError as exc:
            if mode not in ("random", "shuffled") and self.segment is None:
                self._skip(exc)
            return FeedProblem(DATA_ERROR, f"data source '{self.spec.name}': {exc}")

    def _split_pick(
        self, segment: Segmentation, user_rows: dict[str, Any], user: int
    ) -> dict[str, Any] | FeedProblem:
        """A split run's row, by number: per-user the user's global index (mod the rows);
        the shared streams the global take this worker's next take stripes to."""
        mode, count = self.spec.mode, self.count
        if mode == "per-user":
            mine: dict[str, Any] | None = user_rows.get(self.spec.name)
            if mine is None:
                mine = user_rows[self.spec.name] = self._row(user % max(count, 1))
            return mine
        if mode == "random":
            return self.rows.read_index(self.rng.randrange(count))
        if self.exhausted:
            return self._used_up()
        take = segment.nth(self._taken)
        self._taken += 1
        if mode == "shuffled":
            cycle, at = divmod(take, count)
            if cycle != self._cycle or self._order is None:
                # Each cycle's order from the shared seed: every worker deals from it.
                self._order = Permutation(count, random.Random(f"{self._seed}\x00{cycle}"))
                self._cycle = cycle
            return self.rows.read_index(self._order[at])
        if mode == "circular":
            return self._row(take % max(count, 1))
        if take >= count:  # sequential, unique: this worker's share of the rows is used
            self.exhausted = True
            return self._used_up()
        return self.rows.read_index(take)

    def _row(self, i: int) -> dict[str, Any]:
        if self.count == 0:
            raise RowError(self.spec.display, "the file has no rows")
        return self.rows.read_index(i)

    def _skip(self, exc: RowError) -> None:
        """Past a bad record: the next pass reads the next one; where its end cannot be told
        (a JSON array cut inside an item), the file ends there: from the top again, or used
        up (`sequential`, `unique`)."""
        if exc.after is not None:
            self.cursor = exc.after
        elif self.spec.mode in ("circular", "per-user"):
            self.cursor = self.rows.first
        else:
            self.exhausted = True

    def _used_up(self) -> FeedProblem:
        spec = self.spec
        message = f"data source '{spec.name}' ({spec.mode}) has no row left in {spec.display}"
        return FeedProblem(DATA_EXHAUSTED, message, True, spec.on_exhausted == "stop")

    def _wrapped(self) -> dict[str, Any]:
        """The next row in file order, from the top again after the last."""
        row, after = self.rows.read(self.cursor)
        if row is None:
            row, after = self.rows.read(self.rows.first)
            if row is None:
                raise RowError(self.spec.display, "the file has no rows")
        self.cursor = after
        return row

    def _shuffled(self) -> dict[str, Any]:
        if self._order is None or self._dealt >= self.count:
            # A new cycle: every row once, in a new random order.
            self._order = Permutation(self.count, self.rng)
            self._dealt = 0
        i = self._order[self._dealt]
        self._dealt += 1
        return self.rows.read_index(i)


def open_feeds(
    specs: Mapping[str, DataSpec], seed: int | None = None, segment: Segmentation | None = None
) -> dict[str, Feed]:
    """A feed per source, opened; RowError (the others closed) when one cannot be. A
    `segment`: this worker's part of a split run (with the seed the workers share)."""
    rng = random.Random(seed)
    feeds: dict[str, Feed] = {}
    try:
        for name, spec in specs.items():
            own = rng.getrandbits(64)
            feed = Feed(spec, random.Random(own), segment, own)
            feeds[name] = feed
            feed.open()
    except BaseException:
        for feed in feeds.values():
            feed.close()
        raise
    return feeds
