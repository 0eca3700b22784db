"""The compiled field reader: every value it reads comes out as Polars' JSON reader reads it.

`read_fields` may leave any value to Polars, so its duty is to be exact on the values it
reads. These tests compare it with Polars' reader on chosen and generated values, and check
that it does read the ordinary records.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchalert.kernels.layout import FIELDS_MAX_DEPTH
from batchalert.parse.envelope import _read_flat
from batchalert.parse.fields import field_nodes, read_fields
from batchalert.parse.jsonread import PARSED
from batchalert.parse.shapes import RecordShape
from scripts.sample_logs import generate
from tests.parse.test_properties import any_value

# Every test runs with the ahead-of-time kernels and with the just-in-time ones.
pytestmark = pytest.mark.usefixtures("kernel_backend")

PATHS = RecordShape().all_paths()


def check_exact(texts: list[str | None], paths: list[str] = PATHS) -> list[bool]:
    """Assert that each value read equals Polars' result; return which values were read."""
    nodes = field_nodes(paths)
    assert nodes is not None
    column = pl.Series(texts, dtype=pl.String)
    frame, read = read_fields(column, nodes)
    expected = _read_flat(column, paths)
    for row, was_read in enumerate(read.to_list()):
        if was_read:
            assert expected[PARSED][row], texts[row]
            for path in paths:
                assert frame[path][row] == expected[path][row], (texts[row], path)
    return read.to_list()


@pytest.mark.parametrize(("text", "fields"), [
    ('{"log":"GET / 200\\n","stream":"stdout"}', {"log": "GET / 200\n", "stream": "stdout"}),
    ('{"log":"a \\"q\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9\\u20ac\\u0041"}',
     {"log": 'a "q" \\ / \b\f\n\r\t é€A'}),
    ('{"kubernetes":{"pod_name":"web-1","labels":{"pod_name":"no"},"namespace_name":"shop"}}',
     {"kubernetes.pod_name": "web-1", "kubernetes.namespace_name": "shop"}),
    ('{"kubernetes":{"pod":{"name":"web-2"}}}', {"kubernetes.pod.name": "web-2"}),
    ('{"kubernetes":null,"log":null}', {}),
    ('{"@timestamp":1629853200.0,"time":"t"}', {"@timestamp": "1629853200", "time": "t"}),
    ('{"@timestamp":1.50}', {"@timestamp": "1.5"}),
    ('{"@timestamp":-1.250}', {"@timestamp": "-1.25"}),
    ('{"@timestamp":0.000000000000000123}', {"@timestamp": "0.000000000000000123"}),
    ('{"@timestamp":123456789012345678901234}', {"@timestamp": "123456789012345678901234"}),
    ('{"log":true,"message":false}', {"log": "true", "message": "false"}),
    ('  {"a":[1,{"log":"inner"},[]],"b":{},"log":"x"}\t', {"log": "x"}),
    ('{"log":"caf\u00e9 \U0001f600"}', {"log": "caf\u00e9 \U0001f600"}),
    ('{"@timestamp":' + "9" * 38 + ',"a":1e99}', {"@timestamp": "9" * 38}),
])
def test_reads_values_exactly(text: str, fields: dict[str, str]) -> None:
    assert check_exact([text]) == [True]
    nodes = field_nodes(PATHS)
    assert nodes is not None
    frame, _ = read_fields(pl.Series([text]), nodes)
    for path in PATHS:
        assert frame[path][0] == fields.get(path), path


@pytest.mark.parametrize("text", [
    '{"log":"a","log":"b"}',  # a repeated field
    '{"l\\u006fg":"a"}',  # an escaped key could spell a field
    '{"@timestamp":1e3}',  # Polars prints 1000
    '{"@timestamp":-0}',  # Polars prints 0
    '{"@timestamp":-0.25}',  # a negative zero integer part, left to Polars to be safe
    '{"@timestamp":0.12345678901234567}',  # more digits than a float keeps
    '{"log":{"a":1}}',  # Polars prints an object its own way
    '{"log":[1]}',
    '{"kubernetes":"web"}',  # a string where an object is read
    '{"log":"\\ud83d\\ude00"}',  # a surrogate pair
    '{"log":"x"} {}',  # two values
    '{"log":"x",}',
    '{"log":"x"',
    '{}',
    '[{"log":"x"}]',
    '{"log":"x"}\n',  # white space other than blanks and tabs
    '{"log":"x\ty"}',  # a raw control character in a string
    # Numbers Polars rejects, tracked or not: beyond a 128-bit integer or a 64-bit float.
    '{"log":"x","a":340282366920938463463374607431768211456}',
    '{"log":"x","a":1e309}',
    '{"time":' + "1" * 39 + '}',
    # Below the normal floats, where Polars prints fewer digits.
    '{"time":0.' + "0" * 309 + '123456789012345}',
    '{"a":' + "[" * FIELDS_MAX_DEPTH + "]" * FIELDS_MAX_DEPTH + ',"log":"x"}',
])
def test_leaves_unsure_values_to_polars(text: str) -> None:
    assert check_exact([text]) == [False]


def test_null_and_empty_rows_left_to_polars() -> None:
    assert check_exact([None, "", '{"log":"x"}']) == [False, False, True]


def test_reads_sample_records() -> None:
    texts = [value.decode() for value in generate(300, seed=7)]

    read = check_exact(texts)

    assert sum(read) >= 290


def test_prefix_path_unsupported() -> None:
    assert field_nodes(["kubernetes", "kubernetes.pod_name"]) is None
    assert field_nodes(["kubernetes.pod_name", "kubernetes"]) is None
    assert field_nodes(["log", "log"]) is None
    assert field_nodes(["log", "kubernetes.pod_name"]) is not None


json_scalars = (st.none() | st.booleans() | st.integers(-10**20, 10**20)
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(max_size=12))
field_names = st.sampled_from(["log", "message", "stream", "time", "@timestamp", "kubernetes",
                               "pod_name", "namespace_name", "pod", "name", "x"])
json_values: Any = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(field_names, children,
                                                                      max_size=4),
    max_leaves=12,
)
objects = st.dictionaries(field_names, json_values, max_size=6)
separators = st.sampled_from([(",", ":"), (", ", ": "), (",\t", " :  ")])


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.tuples(objects, separators, st.booleans()), min_size=1, max_size=20))
def test_generated_objects_read_exactly(specs: list[tuple[dict[str, Any], tuple[str, str],
                                                          bool]]) -> None:
    texts = [json.dumps(value, separators=separator, ensure_ascii=ascii_only)
             for value, separator, ascii_only in specs]

    check_exact(texts)


@settings(max_examples=150, deadline=None, database=None)
@given(st.lists(any_value, max_size=20))
def test_any_values_read_exactly(values: list[bytes | None]) -> None:
    texts = [None if value is None else value.decode("utf-8", "replace") for value in values]

    check_exact(texts)
