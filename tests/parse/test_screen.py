"""The compiled screen: a value it passes is one the full parser reads as a complete envelope.

The screen decides which values the prefilter may leave undecoded, so its one duty is never
to pass a value that the full parser would report as malformed. Passing fewer values than it
could only costs time; the sample data checks that it passes the ordinary ones.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchalert.kernels.layout import SCREEN_MAX_DEPTH as MAX_DEPTH
from batchalert.parse.screen import classify_envelopes, screen_fields, well_formed_envelopes
from batchalert.parse.shapes import RecordShape
from batchalert.parse.values import parse_values
from scripts.sample_logs import generate
from tests.parse.test_cases import CASES, record_value
from tests.parse.test_properties import any_value, envelopes, spliced

# Every test runs with the ahead-of-time kernels and with the just-in-time ones.
pytestmark = pytest.mark.usefixtures("kernel_backend")

SHAPE = RecordShape()


def screen(values: list[bytes | None], shape: RecordShape = SHAPE,
           skip: list[bool] | None = None) -> list[bool]:
    """Screen `values` with the byte-by-byte walk and with the walk over bit masks that runs
    use, assert that both agree, and return the results."""
    fields = screen_fields(shape)
    assert fields is not None
    mask = None if skip is None else np.array(skip, dtype=np.bool_)
    array = pa.array(values, pa.binary())
    reference = well_formed_envelopes(array, fields, shape.max_value_bytes, mask)
    _, passed = classify_envelopes(array, fields, shape.max_value_bytes,
                                   np.zeros(1000, dtype=np.bool_))
    if mask is not None:
        passed &= ~mask
    assert passed.tolist() == reference.tolist(), values
    return reference.tolist()


def check_sound(values: list[bytes | None], shape: RecordShape = SHAPE) -> None:
    """Assert that every value the screen passes parses as access or other."""
    passed = screen(values, shape)
    kinds = parse_values(pl.Series(values, dtype=pl.Binary), shape)["kind"].to_list()
    for value, ok, kind in zip(values, passed, kinds, strict=True):
        if ok:
            assert kind in ("access", "other"), value


@pytest.mark.parametrize(("value", "expected"), [
    (b'{"log":"GET / 200\\n","stream":"stdout","kubernetes":{"a":[1,2.5e3,-0,true,null,{}]}}',
     True),
    (b'  {"message":"x"}\t', True),
    (b'{"log":"caf\xc3\xa9\\n"}', True),
    (b'{"log":"x","logtag":"F","stream":"stdout"}', True),
    (b'{"log":"x","stream":"stdout"}', False),  # a Docker piece without its newline
    # The parser reads "log" before "message" whatever the key order: still a Docker piece.
    (b'{"message":"","log":"","stream":""}', False),
    (b'{"message":"x\\n","log":"x","stream":"stdout"}', False),
    (b'{"log":"x\\n","message":"x","stream":"stdout"}', True),
    (b'{"log":"x\\\\n","stream":"stdout"}', False),  # an escaped backslash, then "n"
    (b'{"log":"x\\n","logtag":"P"}', False),
    (b'{"log":1}', False),
    (b'{"log":{"msg":"x"}}', False),
    (b'{"kubernetes":{"log":"x"}}', False),
    (b'{"log":"a","log":"b"}', False),
    (b'{"lo\\u0067":"a"}', False),
    (b'{"log":"\\ud83d\\ude00"}', False),
    (b'{"log":"\xff"}', False),
    (b'{"log":"a\tb"}', False),
    (b'{"log":"x"}\n', False),
    (b'{"log":"x"} {}', False),
    (b'{"log":"x",}', False),
    (b'{"log":"x","n":01}', False),
    (b'{"log":"x","n":1.}', False),
    (b'{"log":"x","n":tru}', False),
    # Numbers that Polars' reader rejects although JSON allows them: beyond a 128-bit
    # integer, beyond a 64-bit float.
    (b'{"log":"x\\n","n":340282366920938463463374607431768211456}', False),
    (b'{"log":"x\\n","n":-170141183460469231731687303715884105729}', False),
    (b'{"log":"x\\n","n":1e309}', False),
    (b'{"log":"x\\n","n":99999999999999999999999999999999999999,"m":1e99}', True),
    (b'["log"]', False),
    (b"", False),
    (None, False),
])
def test_screen_cases(value: bytes | None, expected: bool) -> None:
    assert screen([value]) == [expected]
    check_sound([value])


def test_depth_limit() -> None:
    def nested(depth: int) -> bytes:
        return b'{"log":"x","d":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"

    assert screen([nested(MAX_DEPTH), nested(MAX_DEPTH + 1)]) == [True, False]


def test_size_limit_and_skipped_rows() -> None:
    value = json.dumps({"log": "a" * 100}).encode()
    small = RecordShape(max_value_bytes=64)

    assert screen([value], small) == [False]
    assert screen([value, value], skip=[True, False]) == [False, True]


@pytest.mark.parametrize(("inside", "expected"), [
    (b"\x7f", True),  # DEL may stand in a JSON string
    (b"\\n", True),
    (b"\\u00e9", True),
    ("\u00e9".encode(), True),
    (b"\x01", False),
    (b"\xff", False),
    (b"\\x", False),
    (b"\\ud800", False),
])
def test_special_byte_found_at_every_offset(inside: bytes, expected: bool) -> None:
    # The screen skips plain string bytes eight at a time, so the first special byte of a
    # line is placed at each offset within those eight, and after a whole word or two.
    values = [b'{"log":"' + b"a" * before + inside + b"b" * 9 + b'\\n"}'
              for before in range(24)]
    sliced = pa.array([b"{}", b"[]", b"x", *values], pa.binary()).slice(3)
    fields = screen_fields(SHAPE)
    assert fields is not None

    assert screen(values) == [expected] * len(values)
    assert well_formed_envelopes(sliced, fields, SHAPE.max_value_bytes).tolist() == [
        expected] * len(values)
    check_sound(values)


@pytest.mark.parametrize(("inside", "expected"), [
    (b"\\\\", True),  # an escaped backslash
    (b'\\"', True),  # an escaped quote
    (b'\\\\\\"', True),  # an escaped backslash, then an escaped quote
    (b"\\\\\\\\", True),
    ("\u4e2d\u6587".encode(), True),  # three-byte UTF-8 sequences
    ("\U0001f600".encode(), True),
    (b"\\u4e2d", True),
    (b"\\x", False),
    (b"\xe4\xb8", False),  # a sequence cut short
])
def test_escapes_and_sequences_across_words(inside: bytes, expected: bool) -> None:
    # The masks cover 64 bytes each, over all the rows of a block: the bytes under test fall
    # at every offset around the ends of the words, in rows that start at varied offsets.
    values = [b'{"log":"' + b"a" * before + inside + b'\\n","stream":"stdout"}'
              for before in range(140)]

    assert screen(values) == [expected] * len(values)
    check_sound(values)


def test_broken_row_leaves_the_next_rows_alone() -> None:
    # A row whose quotes do not pair up, or that ends in a backslash, must not change how
    # the rows after it in the same buffer are read.
    ordinary = b'{"log":"GET \\"/a\\" 200\\n","stream":"stdout","n":12}'
    for broken in [b'{"log":"abc', b'{"log":"abc\\', b'"', b"\\", b'{"log":"x\\n"}\\',
                   b'{"log":"x\\n"}"', b'{"log":"\\"}']:
        values = [broken, ordinary, broken, broken, ordinary, ordinary]

        assert screen(values) == [False, True, False, False, True, True], broken


def test_unterminated_string_stops_at_its_value() -> None:
    # The search for the closing quote must not continue into the next value's bytes.
    values = [b'{"log":"abc', b'{"log":"x\\n"}', b'{"log":"abc\\', b'{"log":"', b'{"log":"ab']

    assert screen(values) == [False, True, False, False, False]
    check_sound(values)


def test_dotted_fields_disable_screen() -> None:
    assert screen_fields(RecordShape(logtag_fields=("cri.tag",))) is None
    assert screen_fields(RecordShape(line_fields=("event.original",))) is None


def test_shared_cases_are_sound() -> None:
    check_sound([record_value(case["record"]) for case in CASES])


def test_sample_records_pass_unless_broken() -> None:
    values = list(generate(5_000, seed=3))
    passed = screen(values)
    kinds = parse_values(pl.Series(values, dtype=pl.Binary))["kind"].to_list()

    for ok, kind in zip(passed, kinds, strict=True):
        assert ok == (kind != "malformed")


def dumps(record: dict[str, Any], ascii_only: bool) -> bytes:
    return json.dumps(record, ensure_ascii=ascii_only).encode()


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(any_value | spliced, max_size=25))
def test_screen_sound_on_any_input(values: list[bytes | None]) -> None:
    check_sound(values)


@settings(max_examples=200, deadline=None, database=None)
@given(envelopes, st.booleans())
def test_screen_agrees_on_envelopes(record: dict[str, Any], ascii_only: bool) -> None:
    value = dumps(record, ascii_only)
    check_sound([value])
    line = record.get("log")
    if isinstance(line, str) and line.endswith("\n") and record.get("logtag") != "P":
        # An ordinary envelope passes, unless it contains a character outside the BMP, which
        # json.dumps escapes as a surrogate pair.
        plain = all(ord(char) < 0x10000 for char in json.dumps(record, ensure_ascii=False))
        stream = "stream" not in record or isinstance(record["stream"], str)
        # Numbers with a three-digit exponent (1e+100) are left to the full parser.
        narrow = re.search(rb"[eE][+-]?[0-9]{3}", value) is None
        if plain and stream and narrow and "message" not in record and "logtag" not in record:
            assert screen([value]) == [True]
