"""Turning Kafka record values (raw bytes) into text, one row per value.

Policy for invalid UTF-8: each byte that is not part of a well-formed UTF-8 sequence is replaced
by U+FFFD and the value is parsed as usual, so one stray byte in a user agent does not hide a
404. A repaired value that still is not a JSON object is reported as malformed/invalid_utf8
rather than not_json, because the bytes are the likely cause.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from batchalert.errors import BatchalertError
from batchalert.parse.rows import spread, true_rows
from batchalert.parse.schema import EMPTY, TOO_LARGE
from batchalert.parse.utf8 import invalid_utf8_rows, replace_invalid_utf8

logger = logging.getLogger(__name__)


class RecordValueTypeError(BatchalertError, TypeError):
    """The record values given to the parser are neither binary nor text."""


@dataclass(frozen=True)
class DecodedValues:
    """Record values as text, with the reason a value could not be decoded."""

    text: pl.Series  # String; null where `reason` is set
    reason: pl.Series  # String: "empty" or "too_large", else null
    repaired: pl.Series  # Boolean: the value had invalid UTF-8 bytes, now U+FFFD


def decode_values(values: pl.Series, max_bytes: int) -> DecodedValues:
    """Decode binary record values to text; values over `max_bytes` bytes are not decoded."""
    binary = _as_binary(values)
    size = binary.bin.size()
    reason = pl.select(
        pl.when(pl.lit(binary).is_null() | (pl.lit(size) == 0)).then(pl.lit(EMPTY))
        .when(pl.lit(size) > max_bytes).then(pl.lit(TOO_LARGE))
    ).to_series().alias("reason")
    text, repaired = _to_text(binary, reason.is_null())
    text = pl.select(pl.when(pl.lit(reason).is_null()).then(pl.lit(text))).to_series()
    return DecodedValues(text=text.alias("text"), reason=reason, repaired=repaired)


def _as_binary(values: pl.Series) -> pl.Series:
    if values.dtype == pl.Binary:
        return values
    if values.dtype in (pl.String, pl.Null):
        return values.cast(pl.Binary)
    raise RecordValueTypeError(
        f"record values must be a Binary or String series, not {values.dtype}; pass the "
        f"Kafka value column as it was read"
    )


def _to_text(binary: pl.Series, decodable: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Cast to String; only when that fails, replace invalid UTF-8 in the `decodable` rows.

    The slow path runs on Arrow arrays, because Polars may keep the bytes of rows it set to
    null in its buffers and validate them on a cast.
    """
    try:
        text = binary.cast(pl.String)
    except pl.exceptions.PolarsError:
        return _repaired_text(binary.to_arrow(), decodable.to_arrow())
    repaired = pl.repeat(False, binary.len(), dtype=pl.Boolean, eager=True).alias("repaired")
    return text, repaired


def _repaired_text(binary: pa.Array, decodable: pa.Array) -> tuple[pl.Series, pl.Series]:
    # if_else copies the decodable values into fresh buffers, without the bytes of the others.
    # The null comes from an array: pa.scalar() would import pandas, 0.2 s and 40 MB.
    values = pc.if_else(decodable, binary, pa.nulls(1, binary.type)[0])
    invalid = invalid_utf8_rows(pl.Series(values)) & pl.Series(decodable)
    logger.debug("%d record values have invalid UTF-8; replacing those bytes with U+FFFD",
                 invalid.sum())
    rows = true_rows(invalid)
    fixed = replace_invalid_utf8(pl.Series(values).gather(rows))
    spread_fixed = spread(pl.DataFrame({"fixed": fixed}), rows, len(values))["fixed"]
    merged = pc.if_else(invalid.to_arrow(), spread_fixed.to_arrow().cast(values.type), values)
    text = pl.Series(merged.cast(pa.large_string()))
    return text, invalid.alias("repaired")
