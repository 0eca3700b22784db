"""Running a column operation on a subset of rows, and putting the results back in place.

Costly steps, such as a second JSON read or a rare regex, run only on the rows that need them.
These helpers keep the results aligned with the input rows.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

_ROW = "__row"


def true_rows(mask: pl.Series) -> pl.Series:
    """Return the indices of the rows where `mask` is true; null counts as false."""
    return mask.fill_null(False).arg_true()


def spread(part: pl.DataFrame, rows: pl.Series, height: int) -> pl.DataFrame:
    """Return a frame of `height` rows with row i of `part` at row `rows[i]`, nulls elsewhere."""
    index = pl.DataFrame({_ROW: pl.int_range(height, eager=True, dtype=pl.UInt32)})
    keyed = part.with_columns(pl.Series(_ROW, rows, dtype=pl.UInt32))
    return index.join(keyed, on=_ROW, how="left", maintain_order="left").drop(_ROW)


def frame_on_rows(
    column: pl.Series, mask: pl.Series, build: Callable[[pl.Series], pl.DataFrame]
) -> pl.DataFrame:
    """Run `build` on the rows of `column` where `mask` is true; the other rows get nulls."""
    rows = true_rows(mask)
    return spread(build(column.gather(rows)), rows, column.len())


def replace_on_rows(
    column: pl.Series, mask: pl.Series, transform: Callable[[pl.Series], pl.Series]
) -> pl.Series:
    """Return `column` with the rows where `mask` is true replaced by `transform` of them."""
    rows = true_rows(mask)
    if rows.len() == 0:
        return column
    return column.clone().scatter(rows, transform(column.gather(rows)))


def overwrite_rows(frame: pl.DataFrame, rows: pl.Series, part: pl.DataFrame) -> pl.DataFrame:
    """Return `frame` with rows `rows` replaced by the rows of `part`, for flat columns only.

    Polars 2.1 cannot scatter into struct columns ("not yet implemented"), so frames with
    struct columns go through `spread` instead.
    """
    if rows.len() == 0:
        return frame
    return frame.with_columns(
        frame[name].clone().scatter(rows, part[name]) for name in part.columns
    )
