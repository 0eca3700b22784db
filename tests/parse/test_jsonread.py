"""Reading JSON objects row by row, where a bad row fails nothing but itself."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from batchalert.parse.jsonread import PARSED, looks_like_object, read_objects

SCHEMA: dict[str, pl.DataType] = {"log": pl.String(), "k": pl.Struct({"p": pl.String()})}


def read(values: Sequence[str | None]) -> pl.DataFrame:
    return read_objects(pl.Series(values, dtype=pl.String), SCHEMA)


def test_fields_read_and_others_skipped() -> None:
    frame = read(['{"log": "a", "k": {"p": "x", "q": 1}, "extra": [1]}'])

    assert frame.row(0, named=True) == {"log": "a", "k": {"p": "x"}, PARSED: True}


def test_type_mismatch_is_null_or_text() -> None:
    frame = read(['{"log": {"file": 1}, "k": "not an object"}', '{"log": 5}'])

    assert frame["k"].to_list() == [None, None]
    assert frame[PARSED].to_list() == [True, True]
    assert frame["log"].to_list()[1] == "5"


def test_bad_row_fails_only_itself() -> None:
    frame = read(['{"log": "1"}', '{"log": "2"', "nope", None, '{"log": "5"}'])

    assert frame["log"].to_list() == ["1", None, None, None, "5"]
    assert frame[PARSED].to_list() == [True, False, False, False, True]


def test_bad_rows_in_many_chunks() -> None:
    values: list[str | None] = [f'{{"log": "{i}"}}' for i in range(10_000)]
    bad = {3, 2047, 2048, 5000, 9999}
    for i in bad:
        values[i] = '{"log": "broken}'

    frame = read(values)

    assert frame.height == len(values)
    assert [i for i, ok in enumerate(frame[PARSED]) if not ok] == sorted(bad)
    assert frame["log"][4] == "4"
    assert frame["log"][9998] == "9998"


# Nesting of 200 levels: the fast reader accepts it, serde_json (depth limit 128) does not.
DEEP = '{"log": "d", "n": ' + "[" * 200 + "]" * 200 + "}"
BROKEN = '{"log": }'


def test_deep_row_beside_invalid_row_parses() -> None:
    frame = read([DEEP, BROKEN])

    assert frame[PARSED].to_list() == [True, False]
    assert frame["log"][0] == "d"


def test_deep_row_beside_many_invalid_rows() -> None:
    # Documented limit: with more than 16 rows that serde_json rejects in one chunk, its
    # verdict decides for all of them.
    frame = read([DEEP] + [BROKEN] * 20)

    assert frame[PARSED].to_list() == [False] * 21


def test_raw_line_breaks_between_tokens() -> None:
    frame = read(['{\r\n"log":\n"a"\n}'])

    assert frame["log"].to_list() == ["a"]


def test_raw_line_break_inside_string_is_invalid() -> None:
    frame = read(['{"log": "a\nb"}'])

    assert frame[PARSED].to_list() == [False]


def test_two_objects_on_one_line_are_invalid() -> None:
    frame = read(['{"log": "a"} {"log": "b"}', '{"log": "c"}'])

    assert frame["log"].to_list() == [None, "c"]


def test_empty_input() -> None:
    frame = read([])

    assert frame.height == 0
    assert set(frame.columns) == {"log", "k", PARSED}


def test_looks_like_object() -> None:
    mask = looks_like_object(pl.Series(["{}", "  {\n} ", "[{}]", "{", None, ""]))

    assert mask.to_list() == [True, True, False, False, False, False]
