"""Parsing access-log lines into typed columns, keeping only the formats a container may write."""

from __future__ import annotations

import polars as pl

from batchalert.parse.rows import overwrite_rows, true_rows
from batchalert.parse.schema import (
    ACCESS_SCHEMA,
    COMBINED,
    COMMON,
    ENVOY,
    INGRESS_NGINX,
    JSON_FORMAT,
    SPLIT_FIELDS,
)
from batchalert.parse.shapes import RecordShape
from batchalert.parse.structured import parse_json_lines, split_field_columns
from batchalert.parse.textformats import parse_text_lines, undo_double_escaping
from batchalert.parse.timestamps import LINE_TIME_PARSERS, parse_times

_LINE_FORMATS = frozenset({COMBINED, COMMON, INGRESS_NGINX})

# Formats accepted for each per-container format choice. A shipper-split record has no line
# to recognise, so every choice but `none` accepts it.
ACCEPTED_FORMATS: dict[str, frozenset[str]] = {
    "auto": _LINE_FORMATS | {JSON_FORMAT, ENVOY, SPLIT_FIELDS},
    "combined": _LINE_FORMATS | {SPLIT_FIELDS},
    "common": _LINE_FORMATS | {SPLIT_FIELDS},
    "ingress-nginx": frozenset({INGRESS_NGINX, SPLIT_FIELDS}),
    "json": frozenset({JSON_FORMAT, SPLIT_FIELDS}),
    "envoy": frozenset({ENVOY, SPLIT_FIELDS}),
    "none": frozenset(),
}

# Method is the first token and the protocol the last one when it looks like HTTP/x or
# HTTP/x.y; the target is everything between, spaces included.
REQUEST_LINE = (
    r"(?s)^(?P<method>[^ ]+) (?P<target>.*?)(?: (?P<protocol>HTTP/[0-9]+(?:\.[0-9]+)?))?$"
)

# The usual request, without spaces in the target: several times faster to match.
_SIMPLE_REQUEST = (
    r"^(?P<method>[^ ]+) (?P<target>[^ ]*) (?P<protocol>HTTP/[0-9]+(?:\.[0-9]+)?)$"
)

# Columns where "-" means the value is absent.
_DASH_IS_NULL = ("vhost", "client", "user", "referer", "user_agent")


def parse_access(envelope: pl.DataFrame, shape: RecordShape) -> pl.DataFrame:
    """Return ACCESS_SCHEMA columns per envelope row; null where the row is no access line.

    Rows with a malformed reason are never parsed.
    """
    usable = envelope["reason"].is_null()
    line = pl.select(pl.when(pl.lit(usable)).then(pl.lit(envelope["line"]))).to_series()
    raw = _raw_fields(undo_double_escaping(line), envelope, usable, shape)
    typed = _typed(raw)
    allowed = _accepted(typed["format"], envelope["container"], shape)
    return typed.select(
        pl.when(pl.lit(allowed)).then(pl.col(name)).alias(name) for name in ACCESS_SCHEMA
    )


def _raw_fields(
    line: pl.Series, envelope: pl.DataFrame, usable: pl.Series, shape: RecordShape
) -> pl.DataFrame:
    """Return RAW_COLUMNS from text lines, else JSON lines, else shipper-split fields."""
    raw = parse_text_lines(line)
    json_rows = true_rows(raw["format"].is_null() & line.str.starts_with("{"))
    json_lines = parse_json_lines(line.gather(json_rows))
    found = json_lines["format"].is_not_null()
    raw = overwrite_rows(raw, json_rows.filter(found), json_lines.filter(found))
    if not shape.split_fields:
        return raw
    split_rows = true_rows(raw["format"].is_null() & usable)
    split = split_field_columns(envelope.select(pl.all().gather(split_rows)))
    found = split["format"].is_not_null()
    return overwrite_rows(raw, split_rows.filter(found), split.filter(found))


def _typed(raw: pl.DataFrame) -> pl.DataFrame:
    """Convert raw text columns to ACCESS_SCHEMA types, splitting the request line."""
    request = _split_request(raw["request"])
    has_method = request["method"] != "-"  # Envoy logs "- - -" for TCP connections
    status = pl.col("status").str.strip_chars().cast(pl.Int16, strict=False)
    typed = raw.select(
        pl.col("format"),
        *(_dash_to_null(pl.col(name)).alias(name) for name in _DASH_IS_NULL),
        pl.lit(parse_times([raw["time"]], LINE_TIME_PARSERS)).alias("time"),
        _from_request(pl.col("method"), request["method"], has_method).alias("method"),
        _from_request(pl.col("path"), request["target"], has_method).alias("path"),
        _from_request(pl.col("protocol"), request["protocol"], has_method).alias("protocol"),
        status.alias("status"),
        pl.col("bytes").str.strip_chars().cast(pl.Int64, strict=False).alias("bytes"),
        pl.col("upstream_status"),
    )
    # A text line is recognised by its layout, so "-" is a valid status there. A JSON or split
    # record is recognised by its status alone, so it needs a numeric one.
    needs_status = pl.col("format").is_in([JSON_FORMAT, SPLIT_FIELDS])
    recognised = ~(needs_status & pl.col("status").is_null())
    return typed.with_columns(pl.when(recognised).then(pl.col("format")).alias("format")).select(
        list(ACCESS_SCHEMA)
    )


def _split_request(request: pl.Series) -> pl.DataFrame:
    """Return method, target and protocol; the general pattern runs only where needed."""
    simple = request.str.extract_groups(_SIMPLE_REQUEST).struct.unnest()
    others = true_rows(simple["method"].is_null() & request.is_not_null())
    general = request.gather(others).str.extract_groups(REQUEST_LINE).struct.unnest()
    return overwrite_rows(simple, others, general)


def _from_request(explicit: pl.Expr, split: pl.Series, has_method: pl.Series) -> pl.Expr:
    """Return the field a JSON or split record names itself, else the part of its request."""
    from_line = pl.when(pl.lit(has_method)).then(pl.lit(split))
    return pl.coalesce(_dash_to_null(explicit), from_line)


def _dash_to_null(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr != "-").then(expr)


def _accepted(fmt: pl.Series, container: pl.Series, shape: RecordShape) -> pl.Series:
    """Return true where the format is one the container's format choice accepts."""
    choice: pl.Expr = pl.lit(shape.default_format)
    for pattern, chosen in reversed(shape.formats.items()):
        choice = pl.when(pl.lit(container).str.contains(pattern)).then(pl.lit(chosen)).otherwise(
            choice
        )
    accepted: pl.Expr = pl.lit(False)
    for name, formats in ACCEPTED_FORMATS.items():
        accepted = pl.when(choice == name).then(pl.lit(fmt).is_in(sorted(formats))).otherwise(
            accepted
        )
    return pl.select(accepted.fill_null(False)).to_series()
