"""parse_batch on Arrow record batches and Polars frames."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pyarrow as pa

from batchalert.parse.schema import BATCH_SCHEMA, PARSED_SCHEMA
from batchalert.parse.values import parse_batch
from tests.parse.records import access_line

LINE = '203.0.113.5 - - [02/Jan/2024:03:04:05 +0000] "GET /gone HTTP/1.1" 404 12 "-" "-"'


def record_batch(values: list[bytes | None]) -> pa.RecordBatch:
    count = len(values)
    return pa.RecordBatch.from_arrays(
        [
            pa.array([3] * count, pa.int32()),
            pa.array(range(100, 100 + count), pa.int64()),
            pa.array([datetime(2024, 1, 2, tzinfo=UTC)] * count, pa.timestamp("ms", "UTC")),
            pa.array([None] * count, pa.binary()),
            pa.array(values, pa.binary()),
        ],
        names=["partition", "offset", "timestamp", "key", "value"],
    )


def test_arrow_batch_keeps_partition_and_offset() -> None:
    parsed = parse_batch(record_batch([access_line(LINE), access_line(LINE)]))

    assert dict(parsed.schema) == BATCH_SCHEMA
    assert parsed["partition"].to_list() == [3, 3]
    assert parsed["offset"].to_list() == [100, 101]
    assert parsed["status"].to_list() == [404, 404]


def test_one_bad_record_does_not_fail_the_batch() -> None:
    values: list[bytes | None] = [access_line(LINE)] * 5000
    values[2500] = b'{"log": "203.0.113.5 - - [02/Jan/2024:03:04:05 +0000] \\"GET'
    values[4000] = b"\xc3\x28 not utf-8"

    parsed = parse_batch(record_batch(values))

    assert parsed.height == len(values)
    assert parsed["reason"][2500] == "not_json"
    assert parsed["reason"][4000] == "invalid_utf8"
    assert parsed.filter(pl.col("kind") == "access").height == len(values) - 2
    assert parsed["offset"][4999] == 100 + 4999


def test_polars_frame_input() -> None:
    frame = pl.DataFrame(
        {"partition": [1], "offset": [7], "value": [access_line(LINE)]},
        schema={"partition": pl.Int32, "offset": pl.Int64, "value": pl.Binary},
    )

    parsed = parse_batch(frame)

    assert parsed.row(0, named=True)["offset"] == 7
    assert parsed["kind"].to_list() == ["access"]


def test_large_binary_values() -> None:
    batch = record_batch([access_line(LINE)])
    columns = [*batch.columns[:4], batch.column("value").cast(pa.large_binary())]
    large = pa.RecordBatch.from_arrays(columns, names=batch.schema.names)

    assert parse_batch(large)["status"].to_list() == [404]


def test_empty_batch() -> None:
    parsed = parse_batch(record_batch([]))

    assert parsed.height == 0
    assert list(parsed.columns) == ["partition", "offset", *PARSED_SCHEMA]
