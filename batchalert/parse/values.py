"""Vectorised parsing of Kafka record values into envelope and access-log columns.

Every step is a Polars or Arrow operation over whole columns. The one Python loop is the
recovery after a JSON read fails, which rereads chunks of 2,048 rows. It goes down to single
rows only for rows that serde_json rejects (at most 16 per chunk) or that only the fast reader
rejects (see `jsonread`).

The output has one row per input value, in order, with the columns of PARSED_SCHEMA. `kind`
is "access", "other" (a valid envelope whose line is no access-log line) or "malformed", and
`reason` names why a value is malformed:

- empty: the value is null, empty or only white space;
- too_large: the value is over the shape's `max_value_bytes` (1 MiB by default);
- invalid_utf8: the value had invalid UTF-8 and, with those bytes replaced, is no JSON object;
- not_json / not_object: the value is not JSON, or JSON but not an object;
- no_log_line: the envelope has none of the shape's line fields as a string, and none of its
  split fields;
- partial_line: a fragment of a line split by the container runtime (CRI logtag "P", or a
  Docker json-file piece without its trailing newline).

Invalid UTF-8 bytes are replaced by U+FFFD and the value is parsed as usual. One bad value
never fails the batch: unreadable values become malformed rows and the others parse normally
(tests/parse/test_properties.py checks this on generated input, and test_batch.py on a
batch of 5,000 records).
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from batchalert.parse.access import parse_access
from batchalert.parse.decode import decode_values
from batchalert.parse.envelope import read_envelopes
from batchalert.parse.schema import (
    ACCESS,
    ACCESS_SCHEMA,
    BATCH_SCHEMA,
    MALFORMED,
    OTHER,
    PARSED_SCHEMA,
    PARTIAL_LINE,
)
from batchalert.parse.shapes import RecordShape, resolve_shape


def parse_values(values: pl.Series, shape: RecordShape | None = None) -> pl.DataFrame:
    """Parse binary Kafka record values into a frame of PARSED_SCHEMA, one row per value."""
    shape = resolve_shape(shape)
    decoded = decode_values(values, shape.max_value_bytes)
    envelope = read_envelopes(decoded, shape)
    access = parse_access(envelope, shape)
    malformed = envelope["reason"].is_not_null()
    kind = (
        pl.when(pl.lit(malformed)).then(pl.lit(MALFORMED))
        .when(pl.lit(access["format"]).is_not_null()).then(pl.lit(ACCESS))
        .otherwise(pl.lit(OTHER))
    )
    # A fragment keeps its text for inspection; other malformed rows have no line.
    line = pl.when(pl.col("reason").is_null() | (pl.col("reason") == PARTIAL_LINE)).then("line")
    frame = envelope.select(
        kind.alias("kind"), "reason", "namespace", "pod", "container", "record_time",
        line.alias("line"),
    )
    parsed = pl.concat([frame, access.select(list(ACCESS_SCHEMA))], how="horizontal")
    return parsed.cast(pl.Schema(PARSED_SCHEMA))


def parse_batch(
    batch: pa.RecordBatch | pl.DataFrame, shape: RecordShape | None = None
) -> pl.DataFrame:
    """Parse a record batch (partition, offset, timestamp, key, value) into BATCH_SCHEMA.

    Partition and offset are kept as the first columns; the Kafka timestamp and key are not.
    """
    frame = batch if isinstance(batch, pl.DataFrame) else _from_arrow(batch)
    parsed = parse_values(frame["value"], shape)
    keys = frame.select(pl.col("partition").cast(pl.Int32), pl.col("offset").cast(pl.Int64))
    return pl.concat([keys, parsed], how="horizontal").cast(pl.Schema(BATCH_SCHEMA))


def _from_arrow(batch: pa.RecordBatch) -> pl.DataFrame:
    columns = {name: batch.column(name) for name in ("partition", "offset", "value")}
    frame = pl.from_arrow(pa.table(columns))
    assert isinstance(frame, pl.DataFrame)
    return frame
