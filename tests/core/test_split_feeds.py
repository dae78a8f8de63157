"""Data feeders in a split run (core/feeds.py with a Segmentation): per-user rows by the global
user index, the shared streams striped so that the workers together take what one process
would, `unique` never repeating across workers (docs/distributed.md "Feeders under a split")."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from property_kit import examples
from wbsrun.core.feeds import Feed, FeedProblem, open_feeds
from wbsrun.core.segments import Segmentation, SegmentSequence
from wbsrun.dsl.plan import DataMode, DataSpec

FORMATS = ["csv", "json", "jsonl"]
SPLITS = st.integers(1, 8).map(SegmentSequence.even) | st.sampled_from(
    [SegmentSequence.parse("0,1/2,3/4,1"), SegmentSequence.parse("0,1/6,1/2,1")]
)


def _write(where: Path, fmt: str, rows: int) -> Path:
    data = [{"id": str(i), "name": f"n{i}"} for i in range(rows)]
    path = where / f"rows.{fmt}"
    if fmt == "csv":
        path.write_text("id,name\n" + "".join(f"{r['id']},{r['name']}\n" for r in data))
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in data))
    else:
        path.write_text(json.dumps(data, indent=1))
    return path


def _spec(path: Path, mode: DataMode) -> DataSpec:
    fmt: Any = path.suffix[1:]
    return DataSpec("rows", path, path.name, fmt, mode)


class Feeds:
    """One process's feed and each worker's, over the same file and seed."""

    def __init__(self, path: Path, mode: DataMode, seq: SegmentSequence, seed: int = 7) -> None:
        spec = {"rows": _spec(path, mode)}
        self.whole: Feed = open_feeds(spec, seed)["rows"]
        self.parts: list[Feed] = [
            open_feeds(spec, seed, seq.part(i))["rows"] for i in range(len(seq))
        ]

    def close(self) -> None:
        for feed in (self.whole, *self.parts):
            feed.close()


@pytest.fixture
def opened() -> Iterator[list[Feeds]]:
    made: list[Feeds] = []
    yield made
    for feeds in made:
        feeds.close()


def _id(got: dict[str, Any] | FeedProblem) -> str:
    return got["id"] if isinstance(got, dict) else got.code


def _feeds(where: str, fmt: str, rows: int, mode: DataMode, seq: SegmentSequence) -> Feeds:
    return Feeds(_write(Path(where), fmt, rows), mode, seq)


@settings(max_examples=examples(60))
@given(SPLITS, st.integers(1, 30), st.integers(1, 70), st.sampled_from(FORMATS))
def test_a_per_user_row_is_the_one_the_user_gets_in_one_process(
    seq: SegmentSequence, rows: int, users: int, fmt: str
) -> None:
    with tempfile.TemporaryDirectory() as where:
        feeds = _feeds(where, fmt, rows, "per-user", seq)
        try:
            # One process: users take their row at their first pass, in start order.
            alone = [_id(feeds.whole.pick({}, u)) for u in range(users)]
            split: dict[int, str] = {}
            for i, feed in enumerate(feeds.parts):
                for u in seq.part(i).indices(users):
                    mine: dict[str, Any] = {}
                    first = _id(feed.pick(mine, u))
                    assert all(_id(feed.pick(mine, u)) == first for _ in range(2))  # kept
                    split[u] = first
        finally:
            feeds.close()
    assert [split[u] for u in range(users)] == alone


def _prefix(seq: SegmentSequence, feeds: Feeds, takes: int) -> Counter[str]:
    """What the workers take together when each has made its share of `takes` takes."""
    got: Counter[str] = Counter()
    for i, feed in enumerate(feeds.parts):
        got.update(_id(feed.pick({})) for _ in range(seq.part(i).scale(takes)))
    return got


@settings(max_examples=examples(60))
@given(
    SPLITS,
    st.integers(1, 30),
    st.integers(0, 90),
    st.sampled_from(["sequential", "unique", "circular"]),
    st.sampled_from(FORMATS),
)
def test_the_workers_shares_of_a_shared_stream_are_the_one_process_takes(
    seq: SegmentSequence, rows: int, takes: int, mode: DataMode, fmt: str
) -> None:
    with tempfile.TemporaryDirectory() as where:
        feeds = _feeds(where, fmt, rows, mode, seq)
        try:
            alone = Counter(_id(feeds.whole.pick({})) for _ in range(takes))
            assert _prefix(seq, feeds, takes) == alone
        finally:
            feeds.close()


@settings(max_examples=examples(60))
@given(
    SPLITS,
    st.integers(1, 30),
    st.lists(st.integers(0, 40), min_size=1, max_size=8),
    st.sampled_from(FORMATS),
)
def test_unique_rows_never_repeat_across_workers_and_all_are_used_when_all_run_out(
    seq: SegmentSequence, rows: int, takes: list[int], fmt: str
) -> None:
    with tempfile.TemporaryDirectory() as where:
        feeds = _feeds(where, fmt, rows, "unique", seq)
        try:
            seen: list[str] = []
            for feed, n in zip(feeds.parts, takes * len(feeds.parts), strict=False):
                seen += [r for r in (_id(feed.pick({})) for _ in range(n)) if r != "data-exhausted"]
            assert len(seen) == len(set(seen))  # whatever each worker took: no repeat
            drained = [_drain(feed) for feed in feeds.parts]
        finally:
            feeds.close()
    assert sorted(seen + [r for d in drained for r in d], key=int) == [str(i) for i in range(rows)]
    # Each ran out after its own share of the rows.
    assert [len(d) for d in drained] == [
        seq.part(i).scale(rows) - sum(1 for r in seen if seq.part(i).owns(int(r)))
        for i in range(len(seq))
    ]


def _drain(feed: Feed) -> list[str]:
    out = []
    while isinstance(got := feed.pick({}), dict):
        out.append(got["id"])
    assert got.exhausted
    return out


@settings(max_examples=examples(40))
@given(SPLITS, st.integers(1, 25), st.integers(1, 3), st.sampled_from(FORMATS))
def test_shuffled_workers_deal_each_cycle_from_one_shared_order(
    seq: SegmentSequence, rows: int, cycles: int, fmt: str
) -> None:
    with tempfile.TemporaryDirectory() as where:
        feeds = _feeds(where, fmt, rows, "shuffled", seq)
        try:
            together = _prefix(seq, feeds, rows * cycles)
        finally:
            feeds.close()
    assert together == Counter({str(i): cycles for i in range(rows)})


def test_random_workers_draw_their_own_rows(tmp_path: Path, opened: list[Feeds]) -> None:
    feeds = Feeds(_write(tmp_path, "csv", 50), "random", SegmentSequence.even(2))
    opened.append(feeds)
    a, b = ([_id(f.pick({})) for _ in range(40)] for f in feeds.parts)
    assert a != b
    again = Feeds(_write(tmp_path, "csv", 50), "random", SegmentSequence.even(2))
    opened.append(again)
    assert [_id(again.parts[0].pick({})) for _ in range(40)] == a  # one seed: one draw


def test_a_worker_reads_a_bad_row_as_a_data_error_and_the_next_take_goes_on(
    tmp_path: Path, opened: list[Feeds]
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,name\n0,a\n1,b,extra\n2,c\n3,d\n")
    feeds = Feeds(path, "sequential", SegmentSequence.even(2))
    opened.append(feeds)
    first, second = feeds.parts
    assert [_id(first.pick({})) for _ in range(3)] == ["0", "2", "data-exhausted"]
    bad = second.pick({})
    assert isinstance(bad, FeedProblem)
    assert bad.code == "data-error"
    assert "rows.csv:3" in bad.message
    assert [_id(second.pick({})) for _ in range(2)] == ["3", "data-exhausted"]


def test_a_json_file_cut_inside_an_item_ends_where_a_worker_can_tell(
    tmp_path: Path, opened: list[Feeds]
) -> None:
    path = tmp_path / "rows.json"
    path.write_text('[{"id": "0"},\n {"id": "1"},\n {"id": "2", "x": [1, 2\n')
    feeds = Feeds(path, "circular", SegmentSequence.even(2))
    opened.append(feeds)
    assert feeds.parts[0].count == 2
    assert [_id(feeds.parts[0].pick({})) for _ in range(3)] == ["0", "0", "0"]
    assert [_id(feeds.parts[1].pick({})) for _ in range(2)] == ["1", "1"]


def test_a_whole_segment_deals_as_one_process(tmp_path: Path, opened: list[Feeds]) -> None:
    feeds = Feeds(_write(tmp_path, "jsonl", 5), "sequential", SegmentSequence.even(1))
    opened.append(feeds)
    assert [_id(feeds.parts[0].pick({})) for _ in range(6)] == [
        _id(feeds.whole.pick({})) for _ in range(6)
    ]
    assert isinstance(feeds.parts[0].segment, Segmentation)
