"""Reading a shipper's envelope: the line, the Kubernetes names, the record time, and why a value
cannot be read as a log record.
"""

from __future__ import annotations

import polars as pl

from batchalert.parse.decode import DecodedValues
from batchalert.parse.fields import field_nodes, read_fields
from batchalert.parse.jsonread import PARSED, read_objects
from batchalert.parse.rows import frame_on_rows, overwrite_rows, true_rows
from batchalert.parse.schema import (
    EMPTY,
    INVALID_UTF8,
    NO_LOG_LINE,
    NOT_JSON,
    NOT_OBJECT,
    PARTIAL_LINE,
    UTC_MICROS,
)
from batchalert.parse.shapes import FieldTree, RecordShape, field_tree
from batchalert.parse.timestamps import RECORD_TIME_PARSERS, parse_times

SPLIT_PREFIX = "split_"  # columns of fields a shipper's parser already split out of the line

_PROBE = pl.Struct({"__probe": pl.String()})  # reads any JSON object as non-null, others null


def read_envelopes(decoded: DecodedValues, shape: RecordShape) -> pl.DataFrame:
    """Return one row per value: reason, namespace, pod, container, record_time, line, split_*.

    `reason` is set where the value is malformed; `line` has its trailing newline removed.
    """
    frame = _read_fields(decoded.text, shape)
    objects = _object_valued_lines(decoded.text, frame, shape)
    frame = pl.concat([frame, objects], how="horizontal")
    candidates: list[pl.Expr] = [
        pl.when(~pl.col(_object_column(path))).then(pl.col(path)) for path in shape.line_fields
    ]
    raw_line = pl.coalesce(candidates)
    fields = frame.select(
        _reason(decoded, frame, shape, candidates).alias("reason"),
        _first(shape.namespace_fields).alias("namespace"),
        _first(shape.pod_fields).alias("pod"),
        _first(shape.container_fields).alias("container"),
        pl.lit(_record_time(frame, shape)).alias("record_time"),
        raw_line.str.strip_suffix("\n").str.strip_suffix("\r").alias("line"),
        *(_first(paths).alias(SPLIT_PREFIX + name) for name, paths in shape.split_fields.items()),
    )
    return fields


def _read_fields(text: pl.Series, shape: RecordShape) -> pl.DataFrame:
    """Return one String column per field path of the shape, and the `__parsed` column.

    The compiled reader (`batchalert.parse.fields`) reads the values it can, which are most
    of them, and Polars' JSON reader the rest.
    """
    nodes = field_nodes(shape.all_paths())
    if nodes is None:
        return _read_fields_polars(text, shape)
    frame, read = read_fields(text, nodes)
    frame = frame.with_columns(read.alias(PARSED))
    rest = true_rows(~read)
    if rest.len() == 0:
        return frame
    return overwrite_rows(frame, rest, _read_fields_polars(text.gather(rest), shape))


def _read_fields_polars(text: pl.Series, shape: RecordShape) -> pl.DataFrame:
    """Return what `_read_fields` does, read with Polars' JSON reader.

    The first read takes only the first path of each list, because every extra field costs
    parse time: the default shape's fallbacks made the read about 30% slower when measured
    with batchalert.parse.benchmark. Rows where a first path is
    missing, or where the line may be an object, are read again with every path.
    """
    paths = shape.all_paths()
    first_paths = _first_paths(shape)
    frame = _read_flat(text, first_paths)
    fallbacks = [path for path in paths if path not in first_paths]
    if not fallbacks:
        return frame
    frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(path) for path in fallbacks)
    lists = (shape.line_fields, shape.namespace_fields, shape.pod_fields,
             shape.container_fields, shape.time_fields)
    missing = [pl.col(paths[0]).is_null() for paths in lists if len(paths) > 1]
    if shape.line_fields:
        missing.append(pl.col(shape.line_fields[0]).str.starts_with("{").fill_null(False))
    if not missing:
        return frame
    again = frame.select(pl.col(PARSED) & pl.any_horizontal(missing)).to_series()
    rows = true_rows(again)
    reread = _read_flat(text.gather(rows), paths)
    return overwrite_rows(frame, rows, reread)


def _first_paths(shape: RecordShape) -> list[str]:
    lists = (shape.line_fields, shape.namespace_fields, shape.pod_fields,
             shape.container_fields, shape.time_fields)
    firsts = [paths[0] for paths in lists if paths]
    return [path for path in shape.all_paths()
            if path in firsts or not any(path in paths for paths in lists)]


def _read_flat(text: pl.Series, paths: list[str]) -> pl.DataFrame:
    frame = read_objects(text, read_schema(field_tree(paths)))
    return frame.select(*(field(path).alias(path) for path in paths), PARSED)


def _record_time(frame: pl.DataFrame, shape: RecordShape) -> pl.Series:
    if not shape.time_fields:
        return pl.repeat(None, frame.height, dtype=UTC_MICROS, eager=True)
    return parse_times([frame[path] for path in shape.time_fields], RECORD_TIME_PARSERS)


def read_schema(tree: FieldTree, leaf: pl.DataType | None = None) -> dict[str, pl.DataType]:
    """Return a Polars schema for `tree`; leaves are String unless `leaf` is given."""
    return {
        key: (leaf or pl.String()) if child is None else pl.Struct(read_schema(child, leaf))
        for key, child in tree.items()
    }


def field(path: str) -> pl.Expr:
    """Return the expression for a dotted field path in a frame read with `read_schema`."""
    keys = path.split(".")
    expr = pl.col(keys[0])
    for key in keys[1:]:
        expr = expr.struct.field(key)
    return expr


def _first(paths: tuple[str, ...]) -> pl.Expr:
    if not paths:
        return pl.lit(None, dtype=pl.String)
    return pl.coalesce([pl.col(path) for path in paths])


def _object_column(path: str) -> str:
    return f"__object {path}"


def _object_valued_lines(
    text: pl.Series, frame: pl.DataFrame, shape: RecordShape
) -> pl.DataFrame:
    """Return, per line field, true where its JSON value is an object (Filebeat's `log`).

    The reader turns an object read as String into its JSON text, which looks like a string
    starting with "{". Only rows with such a text are read again, with line fields as structs.
    """
    if not shape.line_fields:
        return pl.DataFrame()
    starts_like_object = frame.select(
        pl.any_horizontal([pl.col(path).str.starts_with("{") for path in shape.line_fields])
    ).to_series()
    probe_schema = read_schema(field_tree(list(shape.line_fields)), leaf=_PROBE)
    probed = frame_on_rows(text, starts_like_object,
                           lambda part: read_objects(part, probe_schema))
    return probed.select(
        field(path).is_not_null().alias(_object_column(path)) for path in shape.line_fields
    )


def _reason(
    decoded: DecodedValues, frame: pl.DataFrame, shape: RecordShape, lines: list[pl.Expr]
) -> pl.Expr:
    """Return the malformed reason per row, in order of precedence, else null."""
    parsed = pl.col(PARSED)
    unparsed = _unparsed_reason(decoded, frame[PARSED])
    split = [pl.col(path) for paths in shape.split_fields.values() for path in paths]
    no_line = pl.coalesce(lines).is_null()
    if split:
        no_line = no_line & pl.coalesce(split).is_null()
    return (
        pl.when(~parsed).then(pl.lit(unparsed))
        .when(no_line).then(pl.lit(NO_LOG_LINE))
        .when(_partial(shape, lines)).then(pl.lit(PARTIAL_LINE))
    )


def _partial(shape: RecordShape, lines: list[pl.Expr]) -> pl.Expr:
    """Return true for a fragment of a line that the container runtime split."""
    tags = [pl.col(path) for path in shape.logtag_fields]
    tag = pl.coalesce(tags) if tags else pl.lit(None, dtype=pl.String)
    partial = tag.fill_null("") == "P"
    rule = shape.docker_split_field
    if rule is None or rule not in shape.line_fields or shape.stream_field is None:
        return partial
    position = shape.line_fields.index(rule)
    line = lines[position]
    earlier_line = pl.coalesce(lines[:position]) if position else pl.lit(None)
    unterminated = (
        earlier_line.is_null()
        & line.is_not_null()
        & ~line.str.ends_with("\n").fill_null(False)
        & pl.col(shape.stream_field).is_not_null()
        & tag.is_null()
    )
    return partial | unterminated


def _unparsed_reason(decoded: DecodedValues, parsed: pl.Series) -> pl.Series:
    """Return why each value that is not a JSON object failed; null for parsed rows."""
    text = decoded.text
    rows = true_rows(~parsed & decoded.reason.is_null())
    part = text.gather(rows)
    stripped = part.str.strip_chars()
    is_json = part.str.json_path_match("$").is_not_null() | (stripped == "null")
    reason = (
        pl.select(
            pl.when(stripped == "").then(pl.lit(EMPTY))
            .when(pl.lit(decoded.repaired.gather(rows))).then(pl.lit(INVALID_UTF8))
            .when(pl.lit(is_json) & ~pl.lit(stripped).str.starts_with("{"))
            .then(pl.lit(NOT_OBJECT))
            .otherwise(pl.lit(NOT_JSON))
        )
        .to_series()
    )
    full = decoded.reason.clone()
    return full.scatter(rows, reason) if rows.len() else full
