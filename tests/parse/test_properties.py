"""Properties of parse_values on arbitrary input: it never raises, keeps one row per value, and
a bad value never changes how the other values parse."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchalert.parse.schema import PARSED_SCHEMA
from batchalert.parse.shapes import RecordShape
from batchalert.parse.values import parse_values

LINE = '203.0.113.5 - - [02/Jan/2024:03:04:05 +0000] "GET /p HTTP/1.1" 404 12 "-" "-"\n'
REASONS = {"not_json", "invalid_utf8", "not_object", "no_log_line", "partial_line",
           "too_large", "empty"}

# Text with control characters, surrogate-free so that json.dumps can encode it.
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
maybe_text = st.none() | texts | st.integers() | st.floats(allow_nan=False) | st.booleans()


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"n": value}
    return value


envelopes = st.fixed_dictionaries(
    {},
    optional={
        "log": st.none() | texts | st.just(LINE) | st.dictionaries(texts, maybe_text, max_size=3),
        "message": maybe_text,
        "stream": maybe_text,
        "logtag": st.none() | st.sampled_from(["P", "F", ""]),
        "@timestamp": maybe_text,
        "time": maybe_text,
        "kubernetes": st.none() | texts | st.fixed_dictionaries(
            {}, optional={"pod_name": maybe_text, "namespace_name": maybe_text,
                          "container_name": maybe_text, "pod": maybe_text | st.none()}),
    },
)
envelope_values = envelopes.map(lambda record: json.dumps(record).encode())
deep_values = st.tuples(st.integers(1, 400), st.sampled_from(["log", "kubernetes", "x"])).map(
    lambda spec: json.dumps({"log": LINE, spec[1]: nested(spec[0])}).encode()
)
garbage = st.binary(max_size=200)
control_bytes = st.tuples(envelope_values, st.binary(min_size=1, max_size=4), st.integers(0, 400))
spliced = control_bytes.map(lambda spec: spec[0][: spec[2]] + spec[1] + spec[0][spec[2]:])
any_value = st.none() | garbage | envelope_values | deep_values | spliced


def check_frame(frame: pl.DataFrame, count: int) -> None:
    assert frame.height == count
    assert dict(frame.schema) == PARSED_SCHEMA
    assert frame["kind"].null_count() == 0
    assert set(frame["kind"].unique()) <= {"access", "other", "malformed"}
    malformed = frame.filter(pl.col("kind") == "malformed")
    assert malformed["reason"].null_count() == 0
    assert set(malformed["reason"].unique()) <= REASONS
    assert frame.filter(pl.col("kind") != "malformed")["reason"].null_count() == (
        frame.height - malformed.height
    )
    assert frame.filter(pl.col("kind") == "access")["format"].null_count() == 0


@settings(max_examples=150, deadline=None, database=None)
@given(st.lists(any_value, max_size=30))
def test_any_values_parse_row_per_value(values: list[bytes | None]) -> None:
    frame = parse_values(pl.Series(values, dtype=pl.Binary))

    check_frame(frame, len(values))


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(envelope_values | spliced | garbage, min_size=1, max_size=20))
def test_bad_values_do_not_change_good_ones(noise: list[bytes]) -> None:
    good = [json.dumps({"log": LINE, "kubernetes": {"pod_name": "web-1"}}).encode()]
    alone = parse_values(pl.Series(good, dtype=pl.Binary)).row(0, named=True)

    frame = parse_values(pl.Series(noise + good + noise, dtype=pl.Binary))

    assert frame.row(len(noise), named=True) == alone
    assert alone["status"] == 404


@settings(max_examples=60, deadline=None, database=None)
@given(envelopes)
def test_null_and_odd_fields_never_fail(record: dict[str, Any]) -> None:
    frame = parse_values(pl.Series([json.dumps(record).encode()], dtype=pl.Binary))

    check_frame(frame, 1)
    row = frame.row(0, named=True)
    if row["kind"] == "access":
        assert isinstance(record.get("log"), str)


@settings(max_examples=40, deadline=None, database=None)
@given(st.integers(1, 6000), st.sampled_from(["[", "{\"a\":"]))
def test_deep_nesting_never_fails(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    value = ('{"log": "x", "deep": ' + opener * depth + "1" + closer * depth + "}").encode()

    frame = parse_values(pl.Series([value, value[:-1]], dtype=pl.Binary))

    check_frame(frame, 2)
    assert frame["reason"][1] == "not_json"


@settings(max_examples=5, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2_000_000, 6_000_000), st.sampled_from(["a", "\u00e9", "\\n", " 404 "]))
def test_huge_values(size: int, filler: str) -> None:
    line = filler * (size // len(filler.encode()))
    value = json.dumps({"log": line + "\n", "stream": "stdout"}).encode()
    # json.dumps escapes é as six bytes, so the value can be three times `size`.
    roomy = RecordShape(max_value_bytes=len(value) + 1024)

    default = parse_values(pl.Series([value, b"\xff" * size], dtype=pl.Binary))
    raised = parse_values(pl.Series([value], dtype=pl.Binary), roomy)

    check_frame(default, 2)
    assert default["reason"].to_list() == ["too_large", "too_large"]
    check_frame(raised, 1)
    assert raised["kind"].to_list() == ["other"]
