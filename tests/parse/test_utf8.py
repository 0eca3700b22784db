"""Finding and replacing invalid UTF-8 in binary record values."""

from __future__ import annotations

import polars as pl
import pytest

from batchalert.parse.decode import RecordValueTypeError, decode_values
from batchalert.parse.utf8 import invalid_utf8_rows, replace_invalid_utf8

# Every test runs with the ahead-of-time kernels and with the just-in-time ones.
pytestmark = pytest.mark.usefixtures("kernel_backend")

REPLACEMENT = "\ufffd".encode()

# (value, expected after replacement)
CASES = [
    (b"plain ascii", b"plain ascii"),
    ("caf\u00e9 \u4e2d \U0001f4a9".encode(), "caf\u00e9 \u4e2d \U0001f4a9".encode()),
    (b"a\xffb", b"a" + REPLACEMENT + b"b"),
    (b"\xc3", REPLACEMENT),  # lead byte at the end of the value
    (b"\xc3(", REPLACEMENT + b"("),  # lead byte before a non-continuation byte
    (b"\xc0\xaf", REPLACEMENT * 2),  # overlong encoding of "/"
    (b"\xed\xa0\x80", REPLACEMENT * 3),  # UTF-16 surrogate
    (b"\xf4\x90\x80\x80", REPLACEMENT * 4),  # above U+10FFFF
    (b"\xe2\x82", REPLACEMENT * 2),  # truncated three-byte sequence
    (b"\x80\xbf", REPLACEMENT * 2),  # continuation bytes alone
    (b"", b""),
]


def test_invalid_rows_found() -> None:
    values = pl.Series([value for value, _ in CASES] + [None], dtype=pl.Binary)

    invalid = invalid_utf8_rows(values).to_list()

    assert invalid[:2] == [False, False]
    assert invalid[2:-2] == [True] * (len(CASES) - 3)
    assert invalid[-2:] == [False, False]


@pytest.mark.parametrize(("value", "expected"), CASES)
def test_replacement(value: bytes, expected: bytes) -> None:
    repaired = replace_invalid_utf8(pl.Series([value], dtype=pl.Binary))

    assert repaired.to_list() == [expected]


def test_sequences_do_not_cross_values() -> None:
    values = pl.Series([b"x\xe2", b"\x82\xacy"], dtype=pl.Binary)

    repaired = replace_invalid_utf8(values).to_list()

    assert repaired == [b"x" + REPLACEMENT, REPLACEMENT * 2 + b"y"]


def test_null_stays_null() -> None:
    assert replace_invalid_utf8(pl.Series([None, b"a"], dtype=pl.Binary)).to_list() == [None, b"a"]


def test_decode_marks_repaired_rows() -> None:
    decoded = decode_values(pl.Series([b"ok", b"b\xffd", None], dtype=pl.Binary), 1024)

    assert decoded.text.to_list() == ["ok", "b\ufffdd", None]
    assert decoded.repaired.to_list() == [False, True, False]
    assert decoded.reason.to_list() == [None, None, "empty"]


def test_decode_skips_too_large_values() -> None:
    decoded = decode_values(pl.Series([b"x" * 100, b"\xff" * 101], dtype=pl.Binary), 100)

    assert decoded.reason.to_list() == [None, "too_large"]
    assert decoded.text.to_list() == ["x" * 100, None]


def test_decode_accepts_string_column() -> None:
    decoded = decode_values(pl.Series(["{}"]), 100)

    assert decoded.text.to_list() == ["{}"]


def test_decode_accepts_all_null_column() -> None:
    decoded = decode_values(pl.Series([None, None]), 100)

    assert decoded.reason.to_list() == ["empty", "empty"]


def test_decode_rejects_numbers() -> None:
    with pytest.raises(RecordValueTypeError, match="Binary or String"):
        decode_values(pl.Series([1, 2]), 100)


def test_compiled_check_agrees_with_regex() -> None:
    from batchalert.parse.utf8 import invalid_utf8_rows, invalid_utf8_rows_regex

    samples = [b"", b"ascii", "héllo→😀".encode(), b"\xc3", b"\xe0\x80\x80", b"\xed\xa0\x80",
               b"\xf4\x90\x80\x80", b"\xf0\x9f\x98", b"\xc0\xaf", b"ok\xff", None,
               "末尾".encode()[:-1], b"\xf4\x8f\xbf\xbf", b"\xef\xbf\xbd"]
    values = pl.Series("value", samples * 3, dtype=pl.Binary).slice(2, 30)

    assert invalid_utf8_rows(values).to_list() == invalid_utf8_rows_regex(values).to_list()
