"""Reading JSON objects from a String column, one row per string, where one bad row fails nothing.

Polars' JSON readers reject a whole column when one string is not valid JSON. `read_objects`
keeps the fast path (one newline-delimited JSON read of every row, with `ignore_errors=True` so
a field of an unexpected type becomes null rather than an error) and, only when that read
fails, narrows the failure down:

1. rows that cannot be an object (not starting with "{" and ending with "}") are never read;
2. after a failed read, rows are read again in chunks of `_CHUNK_ROWS`;
3. in a failing chunk, serde_json (through `json_path_match`) marks the invalid rows, and the
   valid ones are read again. If that read fails too, the rows are halved until single rows
   fail.

NOTE: serde_json rejects nesting deeper than 128 levels and lone surrogate escapes (\\ud800),
which the fast reader accepts. In a chunk with more than `_RECHECKED_ROWS` rows that serde_json
rejects, such a record is not_json, although it parses in any other chunk.
"""

from __future__ import annotations

import io
import logging

import polars as pl

from batchalert.parse.rows import replace_on_rows, spread, true_rows

logger = logging.getLogger(__name__)

# Rows per retry chunk after a failed read of the whole column: a bad record then costs one
# re-read of 2,048 rows, and a batch of 200,000 rows needs fewer than 100 chunk reads.
_CHUNK_ROWS = 2048

# Max rows of a failing chunk that serde_json rejects and the fast reader checks again. Each
# check costs a few small reads, so a chunk full of broken rows is not checked row by row.
_RECHECKED_ROWS = 16

PARSED = "__parsed"

# A failed read raises PolarsError; a Rust panic inside the reader surfaces as PanicException,
# which derives from BaseException, and must not end the run either.
_READ_ERRORS = (pl.exceptions.PolarsError, pl.exceptions.PanicException)


def read_objects(text: pl.Series, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Read the `schema` fields of each JSON object in `text`; one output row per input row.

    Every field not in `schema` is skipped, and a field whose JSON type does not match is null
    (an object or number read as String comes back as its JSON text). The Boolean column
    `__parsed` is true where the row is a JSON object; the other rows are all null.
    """
    candidate = looks_like_object(text)
    if not candidate.all():
        # Rows that cannot be objects are read as "{}", whose fields are all null. This keeps
        # the rows aligned without a gather and a join.
        placeholder = pl.when(pl.lit(candidate)).then(pl.lit(text)).otherwise(pl.lit("{}"))
        text = pl.select(placeholder).to_series()
    frame, parsed = _read_rows(_one_line_each(text), schema)
    return frame.with_columns((parsed & candidate).alias(PARSED))


def looks_like_object(text: pl.Series) -> pl.Series:
    """Return true where the string starts with "{" and ends with "}", after white space."""
    exact = text.str.starts_with("{") & text.str.ends_with("}")
    # The full regex runs only on the few rows that fail the cheap test.
    others = true_rows(exact.is_not_null() & ~exact)
    result = exact.fill_null(False)
    if others.len() == 0:
        return result
    padded = text.gather(others).str.contains(r"^\s*\{[\s\S]*\}\s*$")
    return result.scatter(others, padded)


def _one_line_each(lines: pl.Series) -> pl.Series:
    """Replace raw CR and LF by tabs, so that each string is one line of the JSON input.

    Outside strings, all three are JSON white space. Inside strings, all three are invalid raw
    control characters. So the replacement changes neither the value nor its validity.
    """
    has_break = lines.str.contains("[\r\n]")
    return replace_on_rows(lines, has_break, lambda part: part.str.replace_all("[\r\n]", "\t"))


def _read_rows(
    lines: pl.Series, schema: dict[str, pl.DataType]
) -> tuple[pl.DataFrame, pl.Series]:
    frame = _read_block(lines, schema)
    if frame is not None:
        return frame, pl.repeat(True, lines.len(), dtype=pl.Boolean, eager=True)
    logger.debug("JSON read of %d rows failed; retrying in chunks of %d rows",
                 lines.len(), _CHUNK_ROWS)
    pieces = [
        _read_chunk(lines.slice(start, _CHUNK_ROWS), schema)
        for start in range(0, lines.len(), _CHUNK_ROWS)
    ]
    frames = pl.concat([piece[0] for piece in pieces], how="vertical")
    parsed = pl.concat([piece[1] for piece in pieces])
    return frames, parsed


def _read_chunk(
    lines: pl.Series, schema: dict[str, pl.DataType]
) -> tuple[pl.DataFrame, pl.Series]:
    frame = _read_block(lines, schema)
    if frame is not None:
        return frame, pl.repeat(True, lines.len(), dtype=pl.Boolean, eager=True)
    valid = lines.str.json_path_match("$").is_not_null()
    groups = [true_rows(valid)]
    # When few, the rows that serde_json rejects are read by halving with the fast reader as
    # well. Then a record's result does not depend on which reader checked it.
    rejected = true_rows(~valid)
    if rejected.len() <= _RECHECKED_ROWS:
        groups.append(rejected)
    frames, rows = [], []
    for group in groups:
        frame, parsed = _read_halves(lines.gather(group), schema)
        frames.append(frame.with_columns(parsed.alias(PARSED)))
        rows.append(group)
    full = spread(pl.concat(frames, how="vertical"), pl.concat(rows), lines.len())
    return full.drop(PARSED), full[PARSED].fill_null(False)


def _read_halves(
    lines: pl.Series, schema: dict[str, pl.DataType]
) -> tuple[pl.DataFrame, pl.Series]:
    """Read `lines` by halving the failing parts; a single row that fails is unparsed."""
    frame = _read_block(lines, schema)
    if frame is not None:
        return frame, pl.repeat(True, lines.len(), dtype=pl.Boolean, eager=True)
    if lines.len() == 1:
        empty = pl.DataFrame({name: [None] for name in schema}, schema=schema)
        return empty, pl.Series([False])
    middle = lines.len() // 2
    first = _read_halves(lines.slice(0, middle), schema)
    second = _read_halves(lines.slice(middle), schema)
    return pl.concat([first[0], second[0]]), pl.concat([first[1], second[1]])


def _read_block(lines: pl.Series, schema: dict[str, pl.DataType]) -> pl.DataFrame | None:
    """Read every line as one JSON object, or return None if any line fails."""
    if lines.len() == 0:
        return pl.DataFrame(schema=schema)
    try:
        frame = pl.read_ndjson(_ndjson_buffer(lines), schema=schema, ignore_errors=True)
    except _READ_ERRORS:
        return None
    # The reader skips blank lines and reads two objects from a line that contains two. Either
    # breaks the one-row-per-input rule, so a count mismatch is a failure too.
    return frame if frame.height == lines.len() else None


def _ndjson_buffer(lines: pl.Series) -> io.BytesIO:
    """Write the strings one per line into a buffer, as newline-delimited JSON input.

    The CSV writer with `quote_style="never"` writes a one-column frame byte for byte with a
    line feed after each value. It was about 10% faster than joining through Arrow (Polars
    2.1). The lines hold no raw line breaks, because `_one_line_each` replaced them.
    """
    buffer = io.BytesIO()
    pl.DataFrame({"line": lines}).write_csv(buffer, include_header=False, quote_style="never")
    buffer.seek(0)
    return buffer
