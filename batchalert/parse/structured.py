"""Access records given as named fields: JSON access-log lines, and records whose shipper already
split the line into fields.

JSON access logs name their fields as each configuration chooses (nginx `escape=json` formats,
Caddy, Traefik), so every column has a list of usual names, tried in order. A record counts as
an access line only with a status and at least one of method, path or request, because `status`
and `code` alone also appear in ordinary application logs.
"""

from __future__ import annotations

import polars as pl

from batchalert.parse.envelope import SPLIT_PREFIX
from batchalert.parse.jsonread import PARSED, read_objects
from batchalert.parse.rows import frame_on_rows
from batchalert.parse.schema import JSON_FORMAT, SPLIT_FIELDS
from batchalert.parse.textformats import RAW_COLUMNS

JSON_FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "status": ("status", "code", "response_code", "status_code", "http_status",
               "DownstreamStatus"),
    "path": ("url", "uri", "request_uri", "path", "RequestPath"),
    "method": ("method", "request_method", "http_method", "RequestMethod"),
    "protocol": ("protocol", "server_protocol", "http_version", "version", "RequestProtocol"),
    "request": ("request",),
    "client": ("remote_addr", "client", "client_ip", "remote_ip", "ClientHost"),
    "user": ("remote_user", "user"),
    "bytes": ("body_bytes_sent", "bytes", "bytes_sent", "size", "response_size",
              "DownstreamContentSize"),
    "time": ("time", "time_local", "timestamp", "time_iso8601", "@timestamp", "ts", "msec",
             "StartUTC"),
    "referer": ("referer", "http_referer", "referrer", "request_Referer"),
    "user_agent": ("user_agent", "http_user_agent", "agent", "request_User-Agent"),
    "vhost": ("vhost", "host", "http_host", "request_host", "server_name", "RequestHost"),
    "upstream_status": ("upstream_status",),
}

_SCHEMA: dict[str, pl.DataType] = {
    name: pl.String() for names in JSON_FIELD_NAMES.values() for name in names
}

# Caddy logs the request as an object: {"request": {"method": ..., "uri": ..., "headers": ...}}.
_HEADER = pl.List(pl.String())
_NESTED_REQUEST: dict[str, pl.DataType] = {
    "method": pl.String(), "uri": pl.String(), "proto": pl.String(), "host": pl.String(),
    "client_ip": pl.String(), "remote_ip": pl.String(),
    "headers": pl.Struct({"User-Agent": _HEADER, "Referer": _HEADER}),
}


def parse_json_lines(line: pl.Series) -> pl.DataFrame:
    """Return RAW_COLUMNS for lines that are JSON access-log objects; all null elsewhere."""
    fields = _json_fields(line)
    is_access = fields["format"].is_not_null()
    return fields.select(pl.when(pl.lit(is_access)).then(pl.col(name)).alias(name)
                         for name in RAW_COLUMNS)


def split_field_columns(envelope: pl.DataFrame) -> pl.DataFrame:
    """Return RAW_COLUMNS from the split_* columns of an envelope frame."""
    present = {name.removeprefix(SPLIT_PREFIX) for name in envelope.columns
               if name.startswith(SPLIT_PREFIX)}
    columns = [
        (pl.col(SPLIT_PREFIX + name) if name in present else pl.lit(None, dtype=pl.String))
        .alias(name)
        for name in RAW_COLUMNS if name != "format"
    ]
    # with_columns keeps the frame's height where every column is a null literal.
    fields = envelope.with_columns(columns).select(name for name in RAW_COLUMNS if name != "format")
    fields = fields.with_columns(_format_if_access(SPLIT_FIELDS)).select(RAW_COLUMNS)
    is_access = fields["format"].is_not_null()
    return fields.select(pl.when(pl.lit(is_access)).then(pl.col(name)).alias(name)
                         for name in RAW_COLUMNS)


def _json_fields(line: pl.Series) -> pl.DataFrame:
    """Return RAW_COLUMNS from the usual field names; `format` is set only on access lines."""
    frame = read_objects(line, _SCHEMA)
    nested = _nested_request(frame["request"])
    columns = {
        name: pl.coalesce([pl.col(key) for key in keys])
        for name, keys in JSON_FIELD_NAMES.items()
    }
    columns["request"] = pl.when(~columns["request"].str.starts_with("{")).then(
        columns["request"]
    )
    for name in nested.columns:
        columns[name] = pl.coalesce(columns[name], pl.lit(nested[name]))
    fields = frame.select(
        pl.lit(None, dtype=pl.String).alias("format"),
        *(expr.alias(name) for name, expr in columns.items()),
    )
    access = pl.when(pl.lit(frame[PARSED])).then(_format_if_access(JSON_FORMAT))
    return fields.with_columns(access.alias("format")).select(RAW_COLUMNS)


def _nested_request(request: pl.Series) -> pl.DataFrame:
    """Return method, path, protocol, vhost, client, user_agent, referer from object requests."""
    nested = frame_on_rows(
        request, request.str.starts_with("{"), lambda part: read_objects(part, _NESTED_REQUEST)
    )
    headers = pl.col("headers")
    return nested.select(
        pl.col("method"),
        pl.col("uri").alias("path"),
        pl.col("proto").alias("protocol"),
        pl.col("host").alias("vhost"),
        pl.coalesce("client_ip", "remote_ip").alias("client"),
        headers.struct.field("User-Agent").list.first().alias("user_agent"),
        headers.struct.field("Referer").list.first().alias("referer"),
    )


def _format_if_access(name: str) -> pl.Expr:
    """Return `name` where the row has a status and a method, path or request, else null."""
    has_request = pl.any_horizontal(
        pl.col(column).is_not_null() for column in ("method", "path", "request")
    )
    return pl.when(pl.col("status").is_not_null() & has_request).then(pl.lit(name)).alias(
        "format"
    )
