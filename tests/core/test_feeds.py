"""Data feeders: each mode over CSV, JSON and JSONL files, exhaustion, bad rows (core/feeds.py,
dsl/rows.py)."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wbsrun.core.feeds import Feed, FeedProblem, Permutation
from wbsrun.dsl.plan import DataMode, DataSpec

ROWS = [{"id": str(i), "name": f"n{i}"} for i in range(7)]
_OPEN: list[Feed] = []


@pytest.fixture(autouse=True)
def _close_feeds() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _write(where: Path, fmt: str, rows: list[dict[str, Any]]) -> Path:
    path = where / f"rows.{fmt}"
    if fmt == "csv":
        path.write_text("id,name\n" + "".join(f"{r['id']},{r['name']}\n" for r in rows))
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text(json.dumps(rows, indent=1))
    return path


def _feed(path: Path, mode: DataMode, seed: int = 1, **kw: Any) -> Feed:
    fmt: Any = kw.pop("fmt", path.suffix[1:])
    spec = DataSpec("rows", path, path.name, fmt, mode, **kw)
    feed = Feed(spec, random.Random(seed))
    _OPEN.append(feed)
    feed.open()
    return feed


def _ids(picks: list[Any]) -> list[str]:
    return [p["id"] if isinstance(p, dict) else p.code for p in picks]


FORMATS = ["csv", "json", "jsonl"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_sequential_and_unique_give_every_row_once_in_file_order_then_run_out(
    tmp_path: Path, fmt: str
) -> None:
    for mode in ("sequential", "unique"):
        feed = _feed(_write(tmp_path, fmt, ROWS), mode)
        picks = [feed.pick({}) for _ in range(9)]
        assert _ids(picks) == [str(i) for i in range(7)] + ["data-exhausted"] * 2
        last = picks[-1]
        assert isinstance(last, FeedProblem)
        assert last.exhausted
        assert last.stop  # on-exhausted: stop by default
        assert "rows." in last.message
        assert "no row left" in last.message
        feed.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_circular_wraps_to_the_first_row_after_the_last(tmp_path: Path, fmt: str) -> None:
    feed = _feed(_write(tmp_path, fmt, ROWS), "circular")
    assert _ids([feed.pick({}) for _ in range(16)]) == [str(i % 7) for i in range(16)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_per_user_gives_each_user_its_own_row_for_the_whole_run(tmp_path: Path, fmt: str) -> None:
    feed = _feed(_write(tmp_path, fmt, ROWS), "per-user")
    users: list[dict[str, Any]] = [{} for _ in range(9)]
    first = [feed.pick(u)["id"] for u in users]  # type: ignore[index]
    again = [feed.pick(u)["id"] for u in reversed(users) for _ in range(3)]  # type: ignore[index]
    assert first == [str(i % 7) for i in range(9)]  # more users than rows: wraps
    assert again == [x for x in reversed(first) for _ in range(3)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_random_picks_rows_of_the_file_with_repetition(tmp_path: Path, fmt: str) -> None:
    feed = _feed(_write(tmp_path, fmt, ROWS), "random")
    seen = Counter(_ids([feed.pick({}) for _ in range(700)]))
    assert set(seen) == {str(i) for i in range(7)}
    assert all(40 < n < 160 for n in seen.values()), seen  # about 100 each
    row = feed.pick({})
    assert isinstance(row, dict)
    assert row["name"] == "n" + row["id"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_shuffled_gives_every_row_once_a_cycle_in_a_new_order(tmp_path: Path, fmt: str) -> None:
    feed = _feed(_write(tmp_path, fmt, ROWS), "shuffled")
    cycles = [_ids([feed.pick({}) for _ in range(7)]) for _ in range(6)]
    for cycle in cycles:
        assert sorted(cycle) == [str(i) for i in range(7)]
    assert len({tuple(c) for c in cycles}) > 1  # not the same order every cycle
    assert any(c != sorted(c, key=int) for c in cycles)


@given(
    rows=st.integers(1, 40),
    users=st.integers(1, 12),
    passes=st.lists(st.integers(0, 11), min_size=1, max_size=80),
    fmt=st.sampled_from(FORMATS),
)
@settings(max_examples=40, deadline=None)
def test_unique_never_repeats_a_row_across_users_and_passes(
    tmp_path_factory: pytest.TempPathFactory, rows: int, users: int, passes: list[int], fmt: str
) -> None:
    where = tmp_path_factory.mktemp("unique")
    data = [{"id": str(i), "name": f"n{i}"} for i in range(rows)]
    feed = _feed(_write(where, fmt, data), "unique")
    states: list[dict[str, Any]] = [{} for _ in range(users)]
    got = [feed.pick(states[u % users]) for u in passes]
    ids = [g["id"] for g in got if isinstance(g, dict)]
    assert len(ids) == len(set(ids)) == min(rows, len(passes))
    assert all(isinstance(g, FeedProblem) for g in got[rows:])


def test_on_exhausted_error_is_told_to_the_executor(tmp_path: Path) -> None:
    feed = _feed(_write(tmp_path, "csv", ROWS[:1]), "unique", on_exhausted="error")
    feed.pick({})
    problem = feed.pick({})
    assert isinstance(problem, FeedProblem)
    assert (problem.code, problem.exhausted, problem.stop) == ("data-exhausted", True, False)


@pytest.mark.parametrize(
    ("fmt", "text", "where", "what"),
    [
        ("csv", "id,name\n1,a\n2,b,extra\n3,c\n", "rows.csv:3", "3 fields where the header has 2"),
        ("csv", 'id,name\n1,a\n2,"b\n', "rows.csv:3", "malformed CSV"),
        ("jsonl", '{"id": "1"}\n{"id": 2,\n{"id": "3"}\n', "rows.jsonl:2", "invalid JSON"),
        ("jsonl", '{"id": "1"}\n[1, 2]\n{"id": "3"}\n', "rows.jsonl:2", "one object"),
        (
            "json",
            '[{"id": "1"},\n {"id": 2,, "x": 1},\n {"id": "3"}]',
            "rows.json:2",
            "invalid JSON",
        ),
        ("json", '[{"id": "1"},\n {"id": "\xff"},\n {"id": "3"}]', "rows.json:2", "not UTF-8"),
        ("csv", "id,name\n1,a\n2,\xff\n3,c\n", "rows.csv:3", "not UTF-8"),
    ],
)
def test_a_malformed_row_fails_its_pass_with_data_error_at_file_and_line(
    tmp_path: Path, fmt: str, text: str, where: str, what: str
) -> None:
    path = tmp_path / f"rows.{fmt}"
    path.write_bytes(text.encode("latin-1"))
    feed = _feed(path, "sequential")
    first, bad, after = feed.pick({}), feed.pick({}), feed.pick({})
    assert isinstance(first, dict)
    assert isinstance(bad, FeedProblem)
    assert bad.code == "data-error"
    assert not bad.exhausted
    assert f"{where}: " in bad.message
    assert what in bad.message
    if what != "malformed CSV":  # an unclosed quote takes the rest of the file
        assert after == {"id": "3", "name": "c"} if fmt == "csv" else {"id": "3"}
    # The random-access modes index the bad record too: the pass that picks it fails.
    shuffled = _feed(path, "shuffled")
    picks = [shuffled.pick({}) for _ in range(shuffled.count)]
    assert sum(isinstance(p, FeedProblem) and p.code == "data-error" for p in picks) == 1


def test_csv_options_quotes_delimiter_blank_lines_and_fields_across_lines(tmp_path: Path) -> None:
    path = tmp_path / "rows.txt"
    path.write_text("\ufeffid;note\n\n1;'a; b'\n2;'two\nlines'\n\n3;'it''s'\n", encoding="utf-8")
    feed = _feed(path, "sequential", fmt="csv", delimiter=";", quote="'")
    rows = [feed.pick({}) for _ in range(3)]
    assert rows == [
        {"id": "1", "note": "a; b"},
        {"id": "2", "note": "two\nlines"},
        {"id": "3", "note": "it's"},
    ]
    # The index of the random modes starts each record where the stream does.
    assert _feed(path, "shuffled", fmt="csv", delimiter=";", quote="'").count == 3


@given(n=st.integers(1, 300), seed=st.integers(0, 2**32))
def test_the_shuffle_permutation_is_a_bijection_of_range_n(n: int, seed: int) -> None:
    order = Permutation(n, random.Random(seed))
    assert sorted(order[i] for i in range(n)) == list(range(n))


def test_json_items_with_brackets_and_escapes_in_strings_and_long_items_stream(
    tmp_path: Path,
) -> None:
    rows = [
        {"id": "0", "name": 'a "quoted" } ] name \\ with { [ brackets'},
        {"id": "1", "name": "x" * 20_000, "nested": {"list": [1, [2, {"k": "]"}]]}},
        {"id": "2", "name": "é\u2028\n"},
    ]
    path = tmp_path / "rows.json"
    path.write_text("\ufeff  \n" + json.dumps(rows, indent=2), encoding="utf-8")
    feed = _feed(path, "sequential")
    assert [feed.pick({}) for _ in range(3)] == rows
    shuffled = _feed(path, "shuffled")
    assert shuffled.count == 3
    assert sorted(shuffled.pick({})["id"] for _ in range(3)) == ["0", "1", "2"]  # type: ignore[index]


def test_a_json_array_cut_inside_an_item_ends_the_file_there(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text('[{"id": "0"},\n {"id": "1"},\n {"id": "2", "name": "cut')
    unique = _feed(path, "unique")
    picks = [unique.pick({}) for _ in range(4)]
    assert _ids(picks) == ["0", "1", "data-error", "data-exhausted"]
    assert "rows.json:3: the array ends inside an item" in picks[2].message  # type: ignore[union-attr]
    circular = _feed(path, "circular")
    assert _ids([circular.pick({}) for _ in range(5)]) == ["0", "1", "data-error", "0", "1"]
