"""Columns of a parsed frame, and the values of its `kind`, `reason` and `format` columns."""

from __future__ import annotations

from typing import Final

import polars as pl

UTC_MICROS: Final = pl.Datetime("us", "UTC")

# Values of `kind`.
ACCESS: Final = "access"
OTHER: Final = "other"  # valid envelope, but the line is not an access-log line
MALFORMED: Final = "malformed"

# Values of `reason`, set only when `kind` is malformed.
NOT_JSON: Final = "not_json"
INVALID_UTF8: Final = "invalid_utf8"
NOT_OBJECT: Final = "not_object"
NO_LOG_LINE: Final = "no_log_line"
PARTIAL_LINE: Final = "partial_line"
TOO_LARGE: Final = "too_large"
EMPTY: Final = "empty"

# Values of `format`: the access-log format a line matched. `fields` marks a record whose
# shipper already split the access line into fields.
COMBINED: Final = "combined"
COMMON: Final = "common"
INGRESS_NGINX: Final = "ingress-nginx"
JSON_FORMAT: Final = "json"
ENVOY: Final = "envoy"
SPLIT_FIELDS: Final = "fields"

# Columns that only access lines fill; null on every other row.
ACCESS_SCHEMA: Final[dict[str, pl.DataType]] = {
    "format": pl.String(),
    "vhost": pl.String(),
    "client": pl.String(),
    "user": pl.String(),
    "time": UTC_MICROS,
    "method": pl.String(),
    "path": pl.String(),
    "protocol": pl.String(),
    "status": pl.Int16(),
    "bytes": pl.Int64(),
    "referer": pl.String(),
    "user_agent": pl.String(),
    "upstream_status": pl.String(),
}

PARSED_SCHEMA: Final[dict[str, pl.DataType]] = {
    "kind": pl.String(),
    "reason": pl.String(),
    "namespace": pl.String(),
    "pod": pl.String(),
    "container": pl.String(),
    "record_time": UTC_MICROS,
    "line": pl.String(),
    **ACCESS_SCHEMA,
}

# Columns that parse_batch keeps from the Kafka record batch, before the parsed columns.
BATCH_SCHEMA: Final[dict[str, pl.DataType]] = {
    "partition": pl.Int32(),
    "offset": pl.Int64(),
    **PARSED_SCHEMA,
}
