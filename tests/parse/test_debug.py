"""JSON lines printed by `batchalert parse FILE`."""

from __future__ import annotations

import json

from batchalert.parse.debug import DEBUG_KEYS, parse_lines_to_json
from tests.parse.records import access_line, fluent_bit

LINE = '198.51.100.7 - - [05/Aug/2016:09:32:06 -0300] "GET /a HTTP/1.1" 404 9 "-" "-"'


def test_one_object_per_value_in_order() -> None:
    values = [access_line(LINE), b"not json", fluent_bit("hello\n")]

    objects = [json.loads(text) for text in parse_lines_to_json(values)]

    assert [obj["kind"] for obj in objects] == ["access", "malformed", "other"]
    assert all(list(obj) == list(DEBUG_KEYS) for obj in objects)


def test_access_object_values() -> None:
    (text,) = parse_lines_to_json([access_line(LINE)])

    assert json.loads(text) == {
        "kind": "access", "reason": None, "namespace": "store", "pod": "web-5c7f9d8b6-tq2lx",
        "container": "nginx", "client": "198.51.100.7", "method": "GET", "path": "/a",
        "protocol": "HTTP/1.1", "status": 404, "bytes": 9, "time": "2016-08-05T12:32:06Z",
    }


def test_other_line_uses_record_time() -> None:
    (text,) = parse_lines_to_json([fluent_bit("hello\n")])

    assert json.loads(text)["time"] == "2024-01-02T03:04:05.250Z"


def test_malformed_object_has_kind_and_reason_only() -> None:
    (text,) = parse_lines_to_json([b"\xff"])

    obj = json.loads(text)
    assert obj["kind"] == "malformed"
    assert obj["reason"] == "invalid_utf8"
    rest = [obj[key] for key in DEBUG_KEYS if key not in ("kind", "reason")]
    assert rest == [None] * (len(DEBUG_KEYS) - 2)


def test_reasons_of_malformed_values() -> None:
    values = [b"not json", b"", b"[1]", b'{"stream": "stdout"}']

    reasons = [json.loads(text)["reason"] for text in parse_lines_to_json(values)]

    assert reasons == ["not_json", "empty", "not_object", "no_log_line"]


def test_no_values() -> None:
    assert list(parse_lines_to_json([])) == []
