"""Record envelopes: shipper shapes, record time, partial lines and malformed values."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from batchalert.parse.shapes import RecordShape
from tests.parse.records import access_line, fluent_bit, parse_many, parse_one

LINE = '203.0.113.5 - - [02/Jan/2024:03:04:05 +0000] "GET /gone HTTP/1.1" 404 12 "-" "curl/8"'
RECORD_TIME = datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)


def encode(record: Any) -> bytes:
    return json.dumps(record).encode()


class TestFluentBit:
    def test_kubernetes_names(self) -> None:
        row = parse_one(access_line(LINE))

        assert row["namespace"] == "store"
        assert row["pod"] == "web-5c7f9d8b6-tq2lx"
        assert row["container"] == "nginx"

    def test_record_time_from_epoch_timestamp(self) -> None:
        assert parse_one(access_line(LINE))["record_time"] == RECORD_TIME

    def test_record_time_from_rfc3339_timestamp(self) -> None:
        value = fluent_bit(LINE + "\n", **{"@timestamp": "2024-01-02T04:04:05.25+01:00"})

        assert parse_one(value)["record_time"] == RECORD_TIME

    def test_record_time_from_time_field(self) -> None:
        record = json.loads(fluent_bit(LINE + "\n"))
        del record["@timestamp"]

        assert parse_one(encode(record))["record_time"] == RECORD_TIME

    def test_missing_kubernetes_names_are_null(self) -> None:
        row = parse_one(encode({"log": LINE + "\n"}))

        assert row["kind"] == "access"
        assert row["namespace"] is None
        assert row["pod"] is None
        assert row["record_time"] is None

    def test_line_trailing_newline_removed(self) -> None:
        assert parse_one(access_line(LINE))["line"] == LINE

    def test_json_whitespace_with_newlines(self) -> None:
        value = b'{\n  "log": "hello\\n",\r\n  "stream": "stdout"\n}'

        row = parse_one(value)

        assert row["kind"] == "other"
        assert row["line"] == "hello"

    def test_number_as_line_is_other(self) -> None:
        row = parse_one(encode({"log": 404}))

        assert row["kind"] == "other"
        assert row["status"] is None


class TestOtherShippers:
    FILEBEAT: ClassVar[dict[str, Any]] = {
        "@timestamp": "2024-01-02T03:04:05.250Z",
        "message": LINE,
        "stream": "stdout",
        "log": {"file": {"path": "/var/log/containers/web.log"}, "offset": 4096},
        "kubernetes": {"namespace": "store", "pod": {"name": "web-1"},
                       "container": {"name": "nginx"}},
    }
    VECTOR: ClassVar[dict[str, Any]] = {
        "message": LINE,
        "stream": "stdout",
        "timestamp": "2024-01-02T03:04:05.250Z",
        "kubernetes": {"pod_namespace": "store", "pod_name": "web-1",
                       "container_name": "nginx"},
    }

    @pytest.mark.parametrize("preset", ["filebeat", "fluent-bit"])
    def test_filebeat_record(self, preset: str) -> None:
        row = parse_one(encode(self.FILEBEAT), RecordShape.model_validate(preset))

        assert row["kind"] == "access"
        assert row["status"] == 404
        assert row["namespace"] == "store"
        assert row["pod"] == "web-1"
        assert row["container"] == "nginx"
        assert row["record_time"] == RECORD_TIME

    @pytest.mark.parametrize("preset", ["vector", "fluent-bit"])
    def test_vector_record(self, preset: str) -> None:
        row = parse_one(encode(self.VECTOR), RecordShape.model_validate(preset))

        assert row["kind"] == "access"
        assert row["namespace"] == "store"
        assert row["pod"] == "web-1"
        assert row["record_time"] == RECORD_TIME

    def test_mixed_shippers_in_one_batch(self) -> None:
        values = [access_line(LINE), encode(self.FILEBEAT), encode(self.VECTOR),
                  access_line(LINE)]

        frame = parse_many(values)

        assert frame["status"].to_list() == [404, 404, 404, 404]
        assert frame["pod"].to_list() == ["web-5c7f9d8b6-tq2lx", "web-1", "web-1",
                                          "web-5c7f9d8b6-tq2lx"]
        assert frame["record_time"].to_list() == [RECORD_TIME] * 4

    def test_fluentd_record(self) -> None:
        record = {"log": LINE + "\n", "stream": "stdout", "time": "2024-01-02T03:04:05.25Z",
                  "kubernetes": {"namespace_name": "store", "pod_name": "web-1",
                                 "container_name": "nginx"}}

        row = parse_one(encode(record), RecordShape(preset="fluentd"))

        assert row["status"] == 404
        assert row["record_time"] == RECORD_TIME

    def test_custom_paths(self) -> None:
        shape = RecordShape(line_fields=("event.original",), namespace_fields=("k8s.ns",),
                            pod_fields=("k8s.pod",), container_fields=(),
                            time_fields=("ts",))
        record = {"event": {"original": LINE}, "k8s": {"ns": "store", "pod": "web-2"},
                  "ts": "1704164645250"}

        row = parse_one(encode(record), shape)

        assert row["status"] == 404
        assert row["pod"] == "web-2"
        assert row["container"] is None
        assert row["record_time"] == RECORD_TIME

    def test_object_log_without_message(self) -> None:
        record = {"log": {"file": {"path": "/x"}}, "stream": "stdout"}

        row = parse_one(encode(record))

        assert row["kind"] == "malformed"
        assert row["reason"] == "no_log_line"

    def test_json_string_log_is_a_line(self) -> None:
        line = json.dumps({"status": 404, "uri": "/j", "method": "GET"})
        record = {"log": line + "\n", "message": "not this one"}

        row = parse_one(encode(record))

        assert row["format"] == "json"
        assert row["path"] == "/j"


class TestPartialLines:
    def test_cri_partial_logtag(self) -> None:
        row = parse_one(fluent_bit(LINE, logtag="P"))

        assert row["kind"] == "malformed"
        assert row["reason"] == "partial_line"
        assert row["line"] == LINE

    def test_cri_full_logtag_without_newline(self) -> None:
        row = parse_one(fluent_bit(LINE, logtag="F"))

        assert row["kind"] == "access"

    def test_cri_multiline_parser_flags(self) -> None:
        rows = parse_many([fluent_bit(LINE, _p="P"), fluent_bit(LINE, _p="F")])

        assert rows["reason"].to_list() == ["partial_line", None]

    def test_docker_piece_without_newline(self) -> None:
        row = parse_one(fluent_bit(LINE))

        assert row["kind"] == "malformed"
        assert row["reason"] == "partial_line"

    def test_line_without_newline_and_stream(self) -> None:
        row = parse_one(encode({"log": LINE}))

        assert row["kind"] == "access"

    def test_docker_rule_turned_off(self) -> None:
        row = parse_one(fluent_bit(LINE), RecordShape(docker_split_field=None))

        assert row["kind"] == "access"

    def test_message_without_newline_is_whole(self) -> None:
        row = parse_one(encode({"message": LINE, "stream": "stdout"}))

        assert row["kind"] == "access"


class TestMalformed:
    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            (None, "empty"),
            (b"", "empty"),
            (b" \n\t ", "empty"),
            (b"[1, 2]", "not_object"),
            (b'"a string"', "not_object"),
            (b"404", "not_object"),
            (b"null", "not_object"),
            (b'{"log": "cut', "not_json"),
            (b'{"log": "a"} trailing', "not_json"),
            (b'{"log": "a"}{"log": "b"}', "not_json"),
            (b"203.0.113.5 - - [02/Jan/2024:03:04:05 +0000]", "not_json"),
            (b'{"log": null, "kubernetes": null, "stream": null}', "no_log_line"),
            (b"{}", "no_log_line"),
            (b"\xff\xfe\x00garbage", "invalid_utf8"),
        ],
    )
    def test_reason(self, value: bytes | None, reason: str) -> None:
        row = parse_one(value)

        assert row["kind"] == "malformed"
        assert row["reason"] == reason
        assert row["status"] is None

    def test_too_large_default_limit(self) -> None:
        row = parse_one(fluent_bit("x" * (1024 * 1024) + "\n"))

        assert row["reason"] == "too_large"

    def test_too_large_configurable(self) -> None:
        value = access_line(LINE)
        shape = RecordShape(max_value_bytes=len(value) - 1)

        assert parse_one(value, shape)["reason"] == "too_large"
        assert parse_one(value, RecordShape(max_value_bytes=len(value)))["kind"] == "access"

    def test_invalid_utf8_in_agent_still_parses(self) -> None:
        value = access_line(LINE.replace("curl/8", "curl/\udcff8")).replace(
            b"\\udcff", b"\xff"
        )

        row = parse_one(value)

        assert row["kind"] == "access"
        assert row["status"] == 404
        assert row["user_agent"] == "curl/\ufffd8"

    def test_malformed_rows_have_no_access_columns(self) -> None:
        row = parse_one(fluent_bit(LINE, logtag="P"))

        assert row["format"] is None
        assert row["status"] is None
        assert row["path"] is None
