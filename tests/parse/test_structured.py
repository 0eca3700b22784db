"""JSON access-log lines, and records whose shipper already split the line into fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from batchalert.parse.shapes import RecordShape
from tests.parse.records import fluent_bit, parse_one


def parse_json_line(fields: dict[str, Any]) -> dict[str, Any]:
    return parse_one(fluent_bit(json.dumps(fields) + "\n"))


class TestJsonLines:
    def test_nginx_escape_json_numeric_status(self) -> None:
        row = parse_json_line({
            "time_iso8601": "2024-01-02T04:04:05+01:00", "remote_addr": "203.0.113.60",
            "request_method": "GET", "request_uri": "/wp-login.php", "server_protocol": "HTTP/1.1",
            "status": 404, "bytes_sent": 312, "http_referer": "", "http_user_agent": "curl/8",
        })

        assert row["kind"] == "access"
        assert row["format"] == "json"
        assert row["status"] == 404
        assert row["bytes"] == 312
        assert row["method"] == "GET"
        assert row["path"] == "/wp-login.php"
        assert row["protocol"] == "HTTP/1.1"
        assert row["client"] == "203.0.113.60"
        assert row["time"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

    def test_response_code_and_request_field(self) -> None:
        row = parse_json_line({
            "request": "DELETE /api/v2/items/7?force=1 HTTP/2.0", "response_code": "404",
            "size": "0", "time_local": "02/Jan/2024:03:04:05 -0500", "client_ip": "2001:db8::8",
        })

        assert row["status"] == 404
        assert row["method"] == "DELETE"
        assert row["path"] == "/api/v2/items/7?force=1"
        assert row["protocol"] == "HTTP/2.0"
        assert row["client"] == "2001:db8::8"
        assert row["time"] == datetime(2024, 1, 2, 8, 4, 5, tzinfo=UTC)

    def test_code_string_with_url_and_method(self) -> None:
        row = parse_json_line({"code": "404", "url": "/a b", "method": "GET", "bytes": 3})

        assert row["status"] == 404
        assert row["path"] == "/a b"

    def test_epoch_milliseconds_time(self) -> None:
        row = parse_json_line({"status": 200, "uri": "/", "timestamp": 1704164645250})

        assert row["time"] == datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)

    def test_caddy_nested_request(self) -> None:
        row = parse_json_line({
            "level": "info", "ts": 1704164645.25, "logger": "http.log.access",
            "request": {"remote_ip": "203.0.113.61", "proto": "HTTP/2.0", "method": "GET",
                        "host": "files.example.com", "uri": "/missing.png",
                        "headers": {"User-Agent": ["Mozilla/5.0"]}},
            "status": 404, "size": 0,
        })

        assert row["format"] == "json"
        assert row["status"] == 404
        assert row["path"] == "/missing.png"
        assert row["client"] == "203.0.113.61"
        assert row["vhost"] == "files.example.com"
        assert row["user_agent"] == "Mozilla/5.0"

    def test_traefik_field_names(self) -> None:
        row = parse_json_line({
            "ClientHost": "203.0.113.62", "RequestMethod": "GET", "RequestPath": "/x",
            "RequestProtocol": "HTTP/1.1", "DownstreamStatus": 404, "OriginStatus": 0,
            "DownstreamContentSize": 19, "RequestHost": "t.example.com",
        })

        assert row["status"] == 404
        assert row["path"] == "/x"
        assert row["vhost"] == "t.example.com"

    def test_status_without_request_is_other(self) -> None:
        row = parse_json_line({"level": "error", "status": 404, "msg": "user not found"})

        assert row["kind"] == "other"
        assert row["status"] is None

    def test_non_numeric_code_is_other(self) -> None:
        row = parse_json_line({"code": "E_TIMEOUT", "path": "/jobs/7", "method": "POST"})

        assert row["kind"] == "other"

    def test_invalid_json_line_is_other(self) -> None:
        row = parse_one(fluent_bit('{"status": 404, "uri": "/x"\n'))

        assert row["kind"] == "other"


class TestSplitFields:
    SHAPE = RecordShape(preset="fluent-bit-parsed")

    def value(self, **fields: Any) -> bytes:
        record = {"@timestamp": 1704164645.25,
                  "kubernetes": {"namespace_name": "store", "pod_name": "web-1",
                                 "container_name": "nginx"}}
        return json.dumps({**record, **fields}).encode()

    def test_nginx_parser_fields(self) -> None:
        row = parse_one(self.value(remote="203.0.113.70", host="-", user="-",
                                   method="GET", path="/gone", code="404", size="153",
                                   referer="-", agent="curl/8"), self.SHAPE)

        assert row["kind"] == "access"
        assert row["format"] == "fields"
        assert row["status"] == 404
        assert row["client"] == "203.0.113.70"
        assert row["bytes"] == 153
        assert row["user_agent"] == "curl/8"

    def test_apache_parser_host_is_client(self) -> None:
        row = parse_one(self.value(host="203.0.113.71", method="GET", path="/", code=200,
                                   size=5), self.SHAPE)

        assert row["client"] == "203.0.113.71"
        assert row["status"] == 200

    def test_split_record_without_status_is_other(self) -> None:
        row = parse_one(self.value(remote="203.0.113.70", path="/gone"), self.SHAPE)

        assert row["kind"] == "other"

    def test_record_with_neither_line_nor_fields(self) -> None:
        row = parse_one(self.value(), self.SHAPE)

        assert row["kind"] == "malformed"
        assert row["reason"] == "no_log_line"

    def test_default_shape_ignores_split_fields(self) -> None:
        row = parse_one(self.value(method="GET", path="/gone", code="404"))

        assert row["reason"] == "no_log_line"
