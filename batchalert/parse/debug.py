"""JSON lines for `batchalert parse FILE`: what the parser reads from each record value."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl

from batchalert.parse.shapes import RecordShape
from batchalert.parse.values import parse_values

# Keys of each output object, in order.
DEBUG_KEYS = (
    "kind", "reason", "namespace", "pod", "container", "client", "method", "path", "protocol",
    "status", "bytes", "time",
)


def parse_lines_to_json(
    values: list[bytes], shape: RecordShape | None = None
) -> Iterator[str]:
    """Yield one JSON object per value, in order, with the keys of DEBUG_KEYS.

    `time` is the access line's time, else the record time, as RFC 3339 in UTC
    ("2016-08-05T12:32:06Z", with a fraction only when there is one), or null.
    """
    parsed = parse_values(pl.Series("value", values, dtype=pl.Binary), shape)
    moment = pl.coalesce("time", "record_time").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ")
    encoded = parsed.select(
        pl.struct(
            *(pl.col(key) for key in DEBUG_KEYS if key != "time"),
            moment.alias("time"),
        ).struct.json_encode()
    ).to_series()
    yield from encoded
