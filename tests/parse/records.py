"""Building record values the way shippers write them, and parsing them one at a time."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import polars as pl

from batchalert.parse.shapes import RecordShape
from batchalert.parse.values import parse_values

EPOCH_2024 = 1704164645.25  # 2024-01-02T03:04:05.25Z


def fluent_bit(line: Any, container: str = "nginx", **fields: Any) -> bytes:
    """Return a Fluent Bit record value (docker parser output) holding `line` in `log`."""
    record: dict[str, Any] = {
        "@timestamp": EPOCH_2024,
        "log": line,
        "stream": "stdout",
        "time": "2024-01-02T03:04:05.250000000Z",
        "kubernetes": {
            "pod_name": "web-5c7f9d8b6-tq2lx",
            "namespace_name": "store",
            "container_name": container,
            "labels": {"app": "web"},
        },
    }
    record.update(fields)
    return json.dumps(record).encode()


def access_line(line: str) -> bytes:
    """Return a Fluent Bit record value for one access-log line, with its trailing newline."""
    return fluent_bit(line + "\n")


def parse_one(value: bytes | None, shape: RecordShape | None = None) -> dict[str, Any]:
    """Parse a single value and return its row as a dict."""
    frame = parse_values(pl.Series([value], dtype=pl.Binary), shape)
    return frame.row(0, named=True)


def parse_many(values: Sequence[bytes | None], shape: RecordShape | None = None) -> pl.DataFrame:
    return parse_values(pl.Series(values, dtype=pl.Binary), shape)
