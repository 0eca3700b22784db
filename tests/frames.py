"""Building parsed-record frames by hand, for tests of rules and alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

BASE_TIME = datetime(2021, 8, 25, 1, 54, 0, tzinfo=UTC)

_SCHEMA: dict[str, Any] = {
    "partition": pl.Int32,
    "offset": pl.Int64,
    "kind": pl.String,
    "reason": pl.String,
    "namespace": pl.String,
    "pod": pl.String,
    "container": pl.String,
    "record_time": pl.Datetime("us", "UTC"),
    "time": pl.Datetime("us", "UTC"),
    "line": pl.String,
    "method": pl.String,
    "path": pl.String,
    "status": pl.Int16,
}


def access(
    status: int | None = 404,
    namespace: str = "demo-project",
    pod: str = "wordpress-v1-f54f697c5-hdn2z",
    path: str | None = "/notfound",
    method: str | None = "GET",
    second: int = 0,
    container: str = "wordpress",
) -> dict[str, Any]:
    """One parsed access line."""
    moment = BASE_TIME + timedelta(seconds=second)
    return {
        "kind": "access", "reason": None, "namespace": namespace, "pod": pod,
        "container": container, "record_time": moment, "time": moment,
        "line": f'203.0.113.9 - - "{method} {path} HTTP/1.1" {status} 1',
        "method": method, "path": path, "status": status,
    }


def malformed(reason: str = "not_json") -> dict[str, Any]:
    return {"kind": "malformed", "reason": reason}


def other(namespace: str = "demo-project") -> dict[str, Any]:
    return {"kind": "other", "namespace": namespace, "record_time": BASE_TIME,
            "line": "INFO started"}


def frame(rows: list[dict[str, Any]], partition: int = 0, first_offset: int = 0
          ) -> pl.DataFrame:
    """Build a parsed frame with partition and consecutive offsets."""
    full = [
        {**{name: None for name in _SCHEMA}, **row, "partition": partition,
         "offset": first_offset + i}
        for i, row in enumerate(rows)
    ]
    return pl.DataFrame(full, schema=_SCHEMA)
