"""A cheap test on raw record values that rules out records no rule can match.

Every access line with a given status carries that status as three digits somewhere in the raw
value: `" 404 ` in a text line, `"status":404` or `"code":"404"` in JSON. So a value without
any of the rule's status codes cannot match, and a run may skip decoding it. The test runs on
the Arrow binary array, before any JSON decoding, at memory speed.

A skipped value must still be a readable record, or an unreadable one would go uncounted: the
compiled screen (`batchalert.parse.screen`) checks that in one pass, and every value it cannot
vouch for is decoded too.

NOTE: a JSON writer that escapes digits (`\\u0034\\u0030\\u0034`) would hide a status from this
test; no log shipper is known to do that.
"""

from __future__ import annotations

from functools import reduce

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from batchalert.config import RuleConfig
from batchalert.parse.screen import screen_fields, well_formed_envelopes
from batchalert.parse.shapes import RecordShape

# Up to this many codes in a range are tested as literals; wider ranges use one regex.
_MAX_LITERAL_CODES = 20


def rules_allow_prefilter(rules: list[RuleConfig]) -> bool:
    """Return whether the rules only need the records that could match them.

    A ratio needs every access line of a workload as its denominator, so it rules the
    prefilter out.
    """
    return all(rule.ratio is None for rule in rules)


def _status_patterns(rules: list[RuleConfig]) -> tuple[set[bytes], list[str]]:
    literals: set[bytes] = set()
    regexes: list[str] = []
    for rule in rules:
        for low, high in rule.status_ranges:
            if high - low < _MAX_LITERAL_CODES:
                literals.update(str(code).encode() for code in range(low, high + 1))
            else:
                regexes.append(_range_regex(low, high))
    return literals, regexes


def _range_regex(low: int, high: int) -> str:
    """Return a regex for three-digit numbers in [low, high], not part of a longer number."""
    alternatives = "|".join(str(code) for code in range(low, high + 1))
    return f"(^|[^0-9])({alternatives})([^0-9]|$)"


def candidate_mask(values: pl.Series, rules: list[RuleConfig]) -> pl.Series:
    """Return True for each value that contains a status code one of the rules selects.

    Literals use Polars' substring search, at millions of values a second. Wide ranges such as
    `5xx` use one Arrow regex, which is slower but still far cheaper than decoding.
    """
    literals, regexes = _status_patterns(rules)
    masks = [values.bin.contains(literal) for literal in sorted(literals)]
    if regexes:
        arrow = values.to_arrow()
        for pattern in regexes:
            matched = pl.from_arrow(pc.match_substring_regex(arrow, pattern))
            assert isinstance(matched, pl.Series)
            masks.append(matched)
    if not masks:
        return pl.Series(values.name, [False] * values.len(), dtype=pl.Boolean)
    return reduce(lambda left, right: left | right, masks).fill_null(False)


def rows_to_decode(values: pa.Array, rules: list[RuleConfig], shape: RecordShape
                   ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Return two masks of the values to decode: candidates and suspects.

    Candidates contain a status code that a rule selects, so a rule may match them. Suspects
    are the other values that the envelope screen did not pass, so they may be unreadable and
    must be decoded to be counted. The values in neither mask are well-formed envelopes
    without any of the rules' status codes.
    """
    series = pl.from_arrow(values)
    assert isinstance(series, pl.Series)
    candidates = candidate_mask(series, rules).to_numpy()
    fields = screen_fields(shape)
    if fields is None:
        # The screen cannot decide for this shape, so every value is decoded, as a candidate.
        return np.ones(len(values), dtype=np.bool_), np.zeros(len(values), dtype=np.bool_)
    passed = well_formed_envelopes(values, fields, shape.max_value_bytes, skip=candidates)
    return candidates, ~candidates & ~passed
