"""A cheap test on raw record values that rules out records no rule can match.

Every access line with a given status carries that status as a run of three digits somewhere
in the raw value: `" 404 ` in a text line, `"status":404` or `"code":"404"` in JSON. So a value
without any of the rules' status codes cannot match, and a run may skip decoding it. The test
runs on the Arrow binary array, before any JSON decoding.

A skipped value must still be a readable record, or an unreadable one would go uncounted: the
compiled screen (`batchalert.parse.screen`) checks that in one pass, and every value it cannot
vouch for is decoded too. A run computes both tests in one compiled call
(`batchalert.parse.screen.classify_envelopes`); `candidate_mask` computes the first alone,
and the tests check that both give the same answer.

NOTE: a JSON writer that escapes digits (`\\u0034\\u0030\\u0034`) or writes a status in exponent
form (4.04e2) would hide it from this test; no log shipper is known to do that.
"""

from __future__ import annotations

from functools import reduce

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from batchalert.config import RuleConfig
from batchalert.kernels import load as load_kernels
from batchalert.parse.buffers import binary_values, value_buffers
from batchalert.parse.screen import classify_envelopes, screen_fields
from batchalert.parse.shapes import RecordShape

# Up to this many codes are first looked for with Polars' substring search; with more, every
# value goes to the compiled search at once.
_MAX_LITERAL_CODES = 20


def rules_allow_prefilter(rules: list[RuleConfig]) -> bool:
    """Return whether the rules only need the records that could match them.

    A ratio needs every access line of a workload as its denominator, so it rules the
    prefilter out.
    """
    return all(rule.ratio is None for rule in rules)


def status_table(rules: list[RuleConfig]) -> npt.NDArray[np.bool_]:
    """Return 1000 flags, one per three-digit number: true for the codes a rule selects."""
    table = np.zeros(1000, dtype=np.bool_)
    for rule in rules:
        for low, high in rule.status_ranges:
            table[max(low, 0):min(high, 999) + 1] = True
    return table


def candidate_mask(values: pa.Array, rules: list[RuleConfig]) -> npt.NDArray[np.bool_]:
    """Return True for each value that contains, as three digits, a status code a rule selects.

    "Three digits" means a run of exactly three: 1404 and 4040 are no 404. With few codes,
    Polars' substring search first finds the values that contain one anywhere, at memory
    speed; the compiled search then checks only those.
    """
    table = status_table(rules)
    codes = np.flatnonzero(table)
    values = binary_values(values)
    if not codes.size or not len(values):
        return np.zeros(len(values), dtype=np.bool_)
    if codes.size <= _MAX_LITERAL_CODES:
        series = pl.from_arrow(values)
        assert isinstance(series, pl.Series)
        masks = [series.bin.contains(str(code).encode()) for code in codes]
        coarse = reduce(lambda left, right: left | right, masks).fill_null(False).to_numpy()
    else:
        coarse = values.is_valid().to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(coarse)
    found = np.zeros(len(rows), dtype=np.bool_)
    offsets, data = value_buffers(values)
    load_kernels().mark_status_codes(offsets, data, rows, table, found)
    mask = np.zeros(len(values), dtype=np.bool_)
    mask[rows[found]] = True
    return mask


def rows_to_decode(values: pa.Array, rules: list[RuleConfig], shape: RecordShape
                   ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Return two masks of the values to decode: candidates and suspects.

    Candidates contain a status code that a rule selects, so a rule may match them. Suspects
    are the other values that the envelope screen did not pass, so they may be unreadable and
    must be decoded to be counted. The values in neither mask are well-formed envelopes
    without any of the rules' status codes.
    """
    fields = screen_fields(shape)
    if fields is None:
        # The screen cannot decide for this shape, so every value is decoded, as a candidate.
        return np.ones(len(values), dtype=np.bool_), np.zeros(len(values), dtype=np.bool_)
    candidates, passed = classify_envelopes(values, fields, shape.max_value_bytes,
                                            status_table(rules))
    return candidates, ~candidates & ~passed
