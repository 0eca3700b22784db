"""Parsing time texts from envelopes and access-log lines."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from batchalert.parse.timestamps import LINE_TIME_PARSERS, RECORD_TIME_PARSERS, parse_times

MOMENT = datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "1704164645.25",  # epoch seconds
        "1704164645250",  # epoch milliseconds
        "1704164645250000",  # epoch microseconds
        "1704164645250000000",  # epoch nanoseconds
        "2024-01-02T03:04:05.25Z",
        "2024-01-02T03:04:05.250000000Z",
        "2024-01-02T05:04:05.25+02:00",
        "2024-01-01T22:04:05.25-0500",
        "2024-01-02 03:04:05.25Z",
        "2024-01-02T03:04:05.25",  # no zone: UTC
    ],
)
def test_record_time_formats(text: str) -> None:
    parsed = parse_times([pl.Series([text])], RECORD_TIME_PARSERS)

    assert parsed.to_list() == [MOMENT]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("02/Jan/2024:03:04:05 +0000", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("01/Jan/2024:20:04:05 -0700", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("02/Jan/2024:15:04:05 +1200", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05.25Z", MOMENT),
    ],
)
def test_line_time_formats(text: str, expected: datetime) -> None:
    assert parse_times([pl.Series([text])], LINE_TIME_PARSERS).to_list() == [expected]


@pytest.mark.parametrize("text", ["", "soon", "-5", "1e30", "99999-01-01T00:00:00Z", None])
def test_unreadable_time_is_null(text: str | None) -> None:
    parsed = parse_times([pl.Series([text], dtype=pl.String)], RECORD_TIME_PARSERS)

    assert parsed.to_list() == [None]


def test_first_text_with_a_time_wins() -> None:
    first = pl.Series(["1704164645.25", None, "bad"])
    second = pl.Series(["2000-01-01T00:00:00Z", "1704164645.25", "1704164645.25"])

    parsed = parse_times([first, second], RECORD_TIME_PARSERS)

    assert parsed.to_list() == [MOMENT, MOMENT, MOMENT]
