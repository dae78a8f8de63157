"""Durations, rates and sizes: the accepted forms, the refused ones, and formatting round
trips."""

from __future__ import annotations

import datetime
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wbsrun.dsl.source import parse_source
from wbsrun.dsl.units import (
    DURATION_EXPECTED,
    DURATION_PATTERN,
    RATE_EXPECTED,
    RATE_PATTERN,
    SIZE_EXPECTED,
    SIZE_PATTERN,
    UnitError,
    check_units,
    format_duration,
    format_size,
    parse_duration,
    parse_rate,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("5s", 5.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("1m30s", 90.0),
        ("1h30m", 5400.0),
        ("2s500ms", 2.5),
        ("0", 0.0),
        ("7", 7.0),
        (0, 0.0),
        (3, 3.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration_reads_units_and_bare_numbers_as_seconds(
    text: object, seconds: float
) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["5 sec", "5sec", "", "s", "ms", "-1s", "1d", "5s1m", "1m1m", "1.s", "fast", " 5s"]
)
def test_parse_duration_refuses_other_text_quoting_it(text: str) -> None:
    with pytest.raises(UnitError) as info:
        parse_duration(text)
    assert f"invalid duration '{text}'" in str(info.value)
    assert "500ms, 5s, 2m, 1h" in str(info.value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (-1, "must not be negative"),
        (True, "expected a number of seconds"),
        (None, "expected a number of seconds"),
        ([1], "expected a number of seconds"),
        (math.inf, "must be a finite number"),
        (math.nan, "must be a finite number"),
        ("9" * 400 + "s", "too large"),
    ],
)
def test_parse_duration_refuses_negative_infinite_and_non_numbers(
    value: object, reason: str
) -> None:
    with pytest.raises(UnitError, match=reason):
        parse_duration(value)


@pytest.mark.parametrize(
    ("text", "per_second"),
    [
        ("200/s", 200.0),
        ("50 req/s", 50.0),
        ("30/m", 0.5),
        ("36/h", 0.01),
        ("10 users/s", 10.0),
        ("2.5/s", 2.5),
        ("12", 12.0),
        (5, 5.0),
        (0.5, 0.5),
    ],
)
def test_parse_rate_reads_counts_per_unit_and_bare_numbers_per_second(
    text: object, per_second: float
) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["fast", "200/d", "/s", "200 /s", "req/s", "200/", "1e3/s"])
def test_parse_rate_refuses_other_text_quoting_it(text: str) -> None:
    with pytest.raises(UnitError) as info:
        parse_rate(text)
    assert str(info.value).startswith(f"invalid rate '{text}': expected a count per second")


@pytest.mark.parametrize("value", [0, "0/s", -3, False])
def test_parse_rate_refuses_zero_negative_and_booleans(value: object) -> None:
    with pytest.raises(UnitError):
        parse_rate(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.5, "500ms"), (5, "5s"), (90, "1m30s"), (3600, "1h"), (1.5, "1.5s")],
)
def test_format_duration_writes_the_shortest_readable_form(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(-1.0, "-1.0"), (math.inf, "Infinity"), (math.nan, "NaN"), (True, "true")],
)
def test_format_duration_refuses_negative_non_finite_and_boolean_values(
    seconds: float, shown: str
) -> None:
    with pytest.raises(UnitError) as info:
        format_duration(seconds)
    assert str(info.value) == f"cannot format duration {shown}: expected a finite number >= 0"


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_format_duration_round_trips_through_parse_duration(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.integers(min_value=0, max_value=10**7))
def test_whole_seconds_format_with_units_and_read_back_exactly(seconds: int) -> None:
    text = format_duration(seconds)
    assert "." not in text
    assert parse_duration(text) == seconds


@given(st.from_regex(re.compile(DURATION_PATTERN), fullmatch=True))
def test_every_text_the_schema_pattern_accepts_parses_as_a_duration(text: str) -> None:
    assert parse_duration(text) >= 0


@given(st.text(alphabet="0123456789.hms /", max_size=8))
def test_duration_pattern_and_parser_agree_on_any_text(text: str) -> None:
    accepted = re.search(DURATION_PATTERN, text) is not None
    try:
        parse_duration(text)
    except UnitError:
        parsed = False
    else:
        parsed = True
    assert accepted == parsed


@given(st.text(alphabet="0123456789. /smhreqA", max_size=9))
def test_rate_pattern_accepts_exactly_what_the_parser_reads_apart_from_zero(text: str) -> None:
    accepted = re.search(RATE_PATTERN, text) is not None
    try:
        parse_rate(text)
    except UnitError as exc:
        refused_for = str(exc)
    else:
        refused_for = ""
    assert accepted == (not refused_for or "greater than zero" in refused_for)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("10MiB", 10 * 1024**2),
        ("512KiB", 512 * 1024),
        ("1MB", 1_000_000),
        ("1 GB", 10**9),
        ("2GiB", 2 * 1024**3),
        ("1.5KiB", 1536),
        ("64kB", 64_000),
        ("64KB", 64_000),
        ("100B", 100),
        ("4096", 4096),
        (4096, 4096),
        (1048576.0, 1048576),
        (1.0, 1),
        ("99999999999999999999GiB", 99999999999999999999 * 1024**3),
    ],
)
def test_parse_size_reads_decimal_and_binary_units_and_plain_bytes(
    value: object, size: int
) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("10 parsecs", "expected a number of bytes"),
        ("10mib", "expected a number of bytes"),
        ("MiB", "expected a number of bytes"),
        ("1.5", "expected a number of bytes"),
        ("-1KiB", "expected a number of bytes"),
        ("10  MiB", "expected a number of bytes"),
        ("", "expected a number of bytes"),
        (True, "expected a number of bytes"),
        (None, "expected a number of bytes"),
        (1.5, "expected a number of bytes"),
        (0.0, "expected a number of bytes"),
        (0, "must be greater than zero"),
        ("0KiB", "must be greater than zero"),
        (-5, "must be greater than zero"),
    ],
)
def test_parse_size_refuses_other_values_quoting_them(value: object, reason: str) -> None:
    with pytest.raises(UnitError, match=reason) as info:
        parse_size(value)
    assert str(info.value).startswith("invalid size ")


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (10 * 1024**2, "10 MiB"),
        (1536, "1.5 KiB"),
        (1000, "1000 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1024**3, "1 GiB"),
    ],
)
def test_format_size_uses_binary_units(size: int, text: str) -> None:
    assert format_size(size) == text


@given(st.integers(min_value=1, max_value=2**40), st.sampled_from(["", "B", "KiB", "MiB", "KB"]))
def test_whole_sizes_with_any_unit_read_back_exactly(number: int, unit: str) -> None:
    scale = {"": 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "KB": 1000}[unit]
    assert parse_size(f"{number}{unit}") == number * scale


@given(st.text(alphabet="0123456789. BKMGikb", max_size=8))
def test_size_pattern_accepts_exactly_what_the_parser_reads_apart_from_zero(text: str) -> None:
    accepted = re.search(SIZE_PATTERN, text) is not None
    try:
        parse_size(text)
    except UnitError as exc:
        refused_for = str(exc)
    else:
        refused_for = ""
    assert accepted == (not refused_for or "greater than zero" in refused_for)


def test_a_float_just_below_a_whole_millisecond_formats_as_itself_not_as_ms() -> None:
    # 0.28099999999999997 · 1000 is exactly 281.0, but "281ms" reads back as 0.281.
    assert format_duration(0.28099999999999997) == "0.28099999999999997s"
    assert parse_duration(format_duration(0.28099999999999997)) == 0.28099999999999997
    assert format_duration(0.281) == "281ms"


@pytest.mark.parametrize("value", [10**400, -(10**400)])
def test_an_integer_too_large_for_a_float_is_refused_not_read_as_a_number(value: int) -> None:
    with pytest.raises(UnitError, match="must be a finite number"):
        parse_duration(value)
    with pytest.raises(UnitError, match="must be a finite number"):
        parse_rate(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, f"invalid duration null: expected {DURATION_EXPECTED}"),
        (True, f"invalid duration true: expected {DURATION_EXPECTED}"),
        (["ü"], f'invalid duration ["ü"]: expected {DURATION_EXPECTED}'),
        (math.inf, "invalid duration Infinity: must be a finite number"),
        (-2, "invalid duration -2: must not be negative"),
        ("fast", f"invalid duration 'fast': expected {DURATION_EXPECTED}"),
        ("9" * 400, "invalid duration '" + "9" * 400 + "': too large"),
    ],
)
def test_a_refused_duration_is_quoted_as_written_in_the_scenario(
    value: object, message: str
) -> None:
    with pytest.raises(UnitError) as info:
        parse_duration(value)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1.5, f"invalid size 1.5: expected {SIZE_EXPECTED}"),
        ("10 parsecs", f"invalid size '10 parsecs': expected {SIZE_EXPECTED}"),
        (0, "invalid size 0: must be greater than zero"),
        ("0KiB", "invalid size '0KiB': must be greater than zero"),
    ],
)
def test_a_refused_size_is_quoted_as_written_in_the_scenario(value: object, message: str) -> None:
    with pytest.raises(UnitError) as info:
        parse_size(value)
    assert str(info.value) == message


def test_a_refused_value_yaml_cannot_write_as_json_is_quoted_as_text() -> None:
    day = datetime.date(2024, 1, 2)  # YAML reads 2024-01-02 as a date
    with pytest.raises(UnitError) as info:
        parse_rate(day)
    assert str(info.value) == f'invalid rate "2024-01-02": expected {RATE_EXPECTED}'
    with pytest.raises(UnitError) as info:
        parse_rate(math.nan)
    assert str(info.value) == "invalid rate NaN: must be a finite number"
    huge = "9" * 400 + "/s"
    with pytest.raises(UnitError) as info:
        parse_rate(huge)
    assert str(info.value) == f"invalid rate '{huge}': too large"


_RATE_LIMITS = """\
actions:
  fetch:
    rate-limit: {per-user: 0, global: 5/s}
  post:
    rate-limit: 0/s
  put:
    rate-limit: {per-user: 2/s}
workflows:
  main:
    timeout: soon
    nodes:
      - controls: {exec: {rate-limit: {global: fast}}}
"""


def test_every_bad_rate_limit_is_reported_with_its_scope_path_and_position() -> None:
    doc = parse_source(_RATE_LIMITS, "scenario.yaml")
    found = [
        (d.code, d.path, d.line, d.column, d.value, d.expected, d.message) for d in check_units(doc)
    ]
    assert found == [
        (
            "bad-rate",
            "actions.fetch.rate-limit.per-user",
            3,
            28,
            "0",
            RATE_EXPECTED,
            "invalid rate 0: must be greater than zero",
        ),
        (
            "bad-rate",
            "actions.post.rate-limit",
            5,
            17,
            "0/s",
            RATE_EXPECTED,
            "invalid rate '0/s': must be greater than zero",
        ),
        (
            "bad-duration",
            "workflows.main.timeout",
            10,
            14,
            "soon",
            DURATION_EXPECTED,
            f"invalid duration 'soon': expected {DURATION_EXPECTED}",
        ),
        (
            "bad-rate",
            "workflows.main.nodes[0].controls.exec.rate-limit.global",
            12,
            48,
            "fast",
            RATE_EXPECTED,
            f"invalid rate 'fast': expected {RATE_EXPECTED}",
        ),
    ]


def test_check_units_leaves_out_the_fields_an_earlier_check_reported_and_only_those() -> None:
    doc = parse_source(_RATE_LIMITS, "scenario.yaml")
    reported = {("actions", "fetch", "rate-limit"), ("workflows", "main", "timeout")}
    found = [d.path for d in check_units(doc, skip=reported.__contains__)]
    # The next action's rate-limit (the same field pattern) is still checked.
    assert found == [
        "actions.post.rate-limit",
        "workflows.main.nodes[0].controls.exec.rate-limit.global",
    ]
