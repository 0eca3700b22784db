"""Every record in tests/data/log_records.jsonl parses as its `expect` object states.

`path_normalized` and `path_decoded` are not checked here: the parser keeps the path exactly as
logged, and grouping normalises and decodes paths later.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from batchalert.parse.values import parse_values

CASES_FILE = Path(__file__).parent.parent / "data" / "log_records.jsonl"
_SKIPPED_KEYS = {"path_normalized", "path_decoded"}


def _load_cases() -> list[dict[str, Any]]:
    with CASES_FILE.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


CASES = _load_cases()


def record_value(record: dict[str, Any] | str) -> bytes:
    """Return the Kafka value for a case: an object as JSON, a string byte for byte."""
    return json.dumps(record).encode() if isinstance(record, dict) else record.encode()


@pytest.fixture(scope="module")
def parsed_cases() -> dict[str, dict[str, Any]]:
    values = pl.Series([record_value(case["record"]) for case in CASES], dtype=pl.Binary)
    rows = parse_values(values).iter_rows(named=True)
    return {case["id"]: row for case, row in zip(CASES, rows, strict=True)}


def _actual(row: dict[str, Any], key: str) -> Any:
    """Return the parsed value that an `expect` key describes."""
    if key == "is_404":
        return row["kind"] == "access" and row["status"] == 404
    if key == "malformed":
        return row["kind"] == "malformed"
    if key == "access_log":
        return row["kind"] == "access"
    if key == "time_utc":
        return None if row["time"] is None else row["time"].strftime("%Y-%m-%dT%H:%M:%SZ")
    if key == "upstream_status":
        text = row["upstream_status"]
        return None if text is None else [int(status) for status in text.split(", ")]
    return row[key]


def test_cases_file_is_not_empty() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_case_parses_as_expected(
    case: dict[str, Any], parsed_cases: dict[str, dict[str, Any]]
) -> None:
    row = parsed_cases[case["id"]]
    for key, expected in case["expect"].items():
        if key in _SKIPPED_KEYS:
            continue
        assert _actual(row, key) == expected, f"{case['id']}: {key}"


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_case_alone_parses_like_in_batch(
    case: dict[str, Any], parsed_cases: dict[str, dict[str, Any]]
) -> None:
    alone = parse_values(pl.Series([record_value(case["record"])], dtype=pl.Binary))

    assert alone.row(0, named=True) == parsed_cases[case["id"]]


def test_malformed_cases_have_reason(parsed_cases: dict[str, dict[str, Any]]) -> None:
    for case in CASES:
        if case["expect"].get("malformed"):
            assert parsed_cases[case["id"]]["reason"] is not None, case["id"]
