"""Parsing the time texts found in envelopes and access-log lines into UTC datetimes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import polars as pl

from batchalert.parse.rows import true_rows
from batchalert.parse.schema import UTC_MICROS

# Access-log time as Apache and nginx write it ($time_local, %t): 10/Oct/2000:13:55:36 -0700.
CLF_TIME = "%d/%b/%Y:%H:%M:%S %z"
# RFC 3339 / ISO 8601 with a zone: Z, +02:00 or +0200, with T or a space.
ISO_TIME = "%+"
# Times without a zone are taken as UTC.
_NAIVE_TIMES = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f")

# Epoch numbers: the magnitude gives the unit, because a timestamp of this century in seconds
# is about 1.7e9, in milliseconds 1.7e12, in microseconds 1.7e15 and in nanoseconds 1.7e18.
_EPOCH_UNITS = ((1e11, 1e6), (1e14, 1e3), (1e17, 1.0), (1e20, 1e-3))  # (below, to micros)

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, tzinfo=UTC)

TimeParser = Callable[[pl.Series], pl.Series]


def epoch_time(text: pl.Series) -> pl.Series:
    """Return UTC datetimes for numeric texts of epoch seconds, ms, µs or ns, else null."""
    number = pl.col("text").str.strip_chars().cast(pl.Float64, strict=False)
    micros: pl.Expr = pl.lit(None, dtype=pl.Float64)
    for below, factor in reversed(_EPOCH_UNITS):
        micros = pl.when((number >= 0) & (number < below)).then(number * factor).otherwise(micros)
    as_int = micros.round().cast(pl.Int64, strict=False)
    moment = pl.from_epoch(as_int, time_unit="us").dt.replace_time_zone("UTC")
    return pl.DataFrame({"text": text}).select(moment).to_series()


def strptime(fmt: str) -> TimeParser:
    """Return a parser for texts in the chrono format `fmt`; texts that do not fit give null."""
    def parse(text: pl.Series) -> pl.Series:
        return text.str.strptime(UTC_MICROS, fmt, strict=False)
    return parse


RECORD_TIME_PARSERS: tuple[TimeParser, ...] = (
    epoch_time, strptime(ISO_TIME), *(strptime(fmt) for fmt in _NAIVE_TIMES), strptime(CLF_TIME)
)
LINE_TIME_PARSERS: tuple[TimeParser, ...] = (
    strptime(CLF_TIME), strptime(ISO_TIME), *(strptime(fmt) for fmt in _NAIVE_TIMES), epoch_time
)


def parse_times(texts: Sequence[pl.Series], parsers: Sequence[TimeParser]) -> pl.Series:
    """Return, per row, the first time that a parser reads from the first text that has one.

    Each parser runs only on the rows still without a time, so the usual format costs one pass
    and the rarer ones run on few rows.
    """
    height = texts[0].len() if texts else 0
    result = pl.repeat(None, height, dtype=UTC_MICROS, eager=True)
    for text in texts:
        for parser in parsers:
            rows = true_rows(result.is_null() & text.is_not_null())
            if rows.len() == 0:
                break
            found = plausible(parser(text.gather(rows)))
            result = result.scatter(rows, found)
    return result


def plausible(moment: pl.Series) -> pl.Series:
    """Return `moment` where it lies between 1970 and 9999, else null.

    Years past 9999 cannot become Python datetimes, and no log line is that old or that new.
    """
    inside = moment.is_between(_EARLIEST, _LATEST)
    return pl.select(pl.when(pl.lit(inside)).then(pl.lit(moment))).to_series()
