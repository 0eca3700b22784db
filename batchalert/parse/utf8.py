"""Finding and replacing invalid UTF-8 in a binary column, without a Python loop over records.

Polars rejects a whole column when one value is invalid UTF-8, so rows are checked one by one
with Arrow's RE2 regex engine, which matches binary data byte by byte. Each byte that is not
part of a well-formed UTF-8 sequence becomes U+FFFD; well-formed characters are kept.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow.compute as pc

from batchalert.kernels import load as load_kernels
from batchalert.parse.buffers import binary_values, value_buffers

# A whole value of well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most
# U+10FFFF). Arrow runs RE2 in Latin-1 mode on binary data, so each \xNN is one byte.
_WELL_FORMED = (
    r"^(?:[\x00-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]"
    r"|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    r"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})*$"
)

_REPLACEMENT = [0xEF, 0xBF, 0xBD]  # U+FFFD encoded in UTF-8


def invalid_utf8_rows(values: pl.Series) -> pl.Series:
    """Return a Boolean series: true where the binary value is not well-formed UTF-8.

    A null value is not invalid: it has no bytes, and the caller reports it as empty. The check
    runs in compiled code over the Arrow buffers.
    """
    array = binary_values(values.to_arrow())
    invalid = np.zeros(len(array), dtype=np.bool_)
    if len(array):
        offsets, data = value_buffers(array)
        load_kernels().mark_invalid_utf8(offsets, data, invalid)
    return pl.Series(values.name, invalid, dtype=pl.Boolean)


def invalid_utf8_rows_regex(values: pl.Series) -> pl.Series:
    """Return the same as `invalid_utf8_rows` with Arrow's RE2; the reference for tests."""
    matched = pc.match_substring_regex(values.to_arrow(), pattern=_WELL_FORMED)
    return ~pl.Series(values.name, matched, dtype=pl.Boolean).fill_null(True)


def replace_invalid_utf8(values: pl.Series) -> pl.Series:
    """Return the binary values with every byte outside a well-formed sequence set to U+FFFD."""
    bytes_ = (
        pl.DataFrame({"byte": values.cast(pl.List(pl.UInt8))})
        .with_row_index("row")
        .explode("byte")
        .filter(pl.col("byte").is_not_null())
        .with_columns(_sequence_length().alias("length"))
    )
    output = pl.when(_covered()).then(pl.concat_list("byte")).otherwise(
        pl.lit(_REPLACEMENT, dtype=pl.List(pl.UInt8))
    )
    repaired = (
        bytes_.with_columns(output.alias("out"))
        .group_by("row", maintain_order=True)
        .agg(pl.col("out").explode())
    )
    index = pl.DataFrame({"row": pl.int_range(values.len(), eager=True, dtype=pl.UInt32)})
    joined = index.join(repaired, on="row", how="left", maintain_order="left")
    # Empty values have no bytes to group, so they come back null; restore them.
    empty = pl.lit(b"", dtype=pl.Binary)
    restored = pl.coalesce(pl.col("out").cast(pl.Binary), empty)
    return joined.select(pl.when(pl.lit(values).is_not_null()).then(restored)).to_series().alias(
        values.name
    )


def _following(offset: int) -> pl.Expr:
    """Return the byte `offset` positions later in the same value, or null past its end."""
    same_value = pl.col("row").shift(-offset) == pl.col("row")
    return pl.when(same_value).then(pl.col("byte").shift(-offset))


def _continuation(byte: pl.Expr) -> pl.Expr:
    return byte.is_between(0x80, 0xBF)


def _sequence_length() -> pl.Expr:
    """Return, per byte, the length of the well-formed sequence starting there, or 0."""
    lead = pl.col("byte")
    second, third, fourth = _following(1), _following(2), _following(3)
    two = lead.is_between(0xC2, 0xDF) & _continuation(second)
    three = (
        ((lead == 0xE0) & second.is_between(0xA0, 0xBF))
        | ((lead.is_between(0xE1, 0xEC) | lead.is_between(0xEE, 0xEF)) & _continuation(second))
        | ((lead == 0xED) & second.is_between(0x80, 0x9F))
    ) & _continuation(third)
    four = (
        ((lead == 0xF0) & second.is_between(0x90, 0xBF))
        | (lead.is_between(0xF1, 0xF3) & _continuation(second))
        | ((lead == 0xF4) & second.is_between(0x80, 0x8F))
    ) & _continuation(third) & _continuation(fourth)
    return (
        pl.when(lead < 0x80).then(1)
        .when(two.fill_null(False)).then(2)
        .when(three.fill_null(False)).then(3)
        .when(four.fill_null(False)).then(4)
        .otherwise(0)
    )


def _covered() -> pl.Expr:
    """Return an expression: true for bytes inside a well-formed sequence.

    A continuation byte never starts a sequence, so well-formed sequences never overlap, and a
    byte is covered when a sequence starts on it or up to three bytes before it and reaches it.
    Sequences never cross values, because `_following` stops at the end of each value.
    """
    length = pl.col("length")
    return (
        (length > 0)
        | (length.shift(1) >= 2).fill_null(False)
        | (length.shift(2) >= 3).fill_null(False)
        | (length.shift(3) >= 4).fill_null(False)
    )
