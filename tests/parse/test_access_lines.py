"""Text access-log lines: Apache/nginx common and combined, ingress-nginx, Envoy, and lines that
only look like access lines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.parse.records import access_line, parse_many, parse_one


def parse_line(line: str) -> dict[str, Any]:
    return parse_one(access_line(line))


class TestCommonAndCombined:
    def test_common_format_without_referer(self) -> None:
        row = parse_line(
            '203.0.113.5 - - [02/Jan/2024:03:04:05 +0000] "GET /a.txt HTTP/1.1" 404 17'
        )

        assert row["kind"] == "access"
        assert row["format"] == "common"
        assert row["status"] == 404
        assert row["bytes"] == 17
        assert row["referer"] is None
        assert row["user_agent"] is None

    def test_combined_format_fields(self) -> None:
        row = parse_line(
            '203.0.113.5 - - [02/Jan/2024:03:04:05 +0000] "GET /a.txt HTTP/1.1" 200 17 '
            '"https://www.example.com/start" "Wget/1.21"'
        )

        assert row["format"] == "combined"
        assert row["client"] == "203.0.113.5"
        assert row["referer"] == "https://www.example.com/start"
        assert row["user_agent"] == "Wget/1.21"
        assert row["line"].endswith('"Wget/1.21"')

    def test_negative_zone_converted_to_utc(self) -> None:
        row = parse_line('203.0.113.5 - - [02/Jan/2024:20:04:05 -0700] "GET / HTTP/1.1" 200 1')

        assert row["time"] == datetime(2024, 1, 3, 3, 4, 5, tzinfo=UTC)

    def test_half_hour_zone_converted_to_utc(self) -> None:
        row = parse_line('203.0.113.5 - - [02/Jan/2024:08:34:05 +0530] "GET / HTTP/1.1" 200 1')

        assert row["time"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

    def test_connect_with_authority_target(self) -> None:
        row = parse_line(
            '198.51.100.20 - - [02/Jan/2024:03:04:05 +0000] "CONNECT api.example.net:443 HTTP/1.1"'
            ' 405 157 "-" "-"'
        )

        assert row["method"] == "CONNECT"
        assert row["path"] == "api.example.net:443"
        assert row["protocol"] == "HTTP/1.1"
        assert row["status"] == 405

    def test_http3_protocol(self) -> None:
        row = parse_line('198.51.100.20 - - [02/Jan/2024:03:04:05 +0000] "GET /q HTTP/3" 404 0')

        assert row["protocol"] == "HTTP/3"
        assert row["path"] == "/q"

    def test_dash_status_is_null_but_access(self) -> None:
        row = parse_line('198.51.100.20 - - [02/Jan/2024:03:04:05 +0000] "GET /slow HTTP/1.1" - 0')

        assert row["kind"] == "access"
        assert row["status"] is None
        assert row["bytes"] == 0

    def test_bare_ipv4_with_user(self) -> None:
        row = parse_line(
            '192.0.2.44 - alice [02/Jan/2024:03:04:05 +0000] "GET /private HTTP/1.1" 401 381'
        )

        assert row["client"] == "192.0.2.44"
        assert row["user"] == "alice"
        assert row["status"] == 401

    def test_dash_user_is_null(self) -> None:
        row = parse_line('192.0.2.44 - - [02/Jan/2024:03:04:05 +0000] "GET / HTTP/1.1" 200 1')

        assert row["user"] is None

    def test_vhost_without_port(self) -> None:
        row = parse_line(
            'blog.example.org 192.0.2.44 - - [02/Jan/2024:03:04:05 +0000] "GET /feed HTTP/1.1" '
            '404 209 "-" "-"'
        )

        assert row["vhost"] == "blog.example.org"
        assert row["client"] == "192.0.2.44"
        assert row["status"] == 404

    def test_vhost_with_ipv6_client(self) -> None:
        row = parse_line(
            'blog.example.org:443 2001:db8::17 - - [02/Jan/2024:03:04:05 +0000] '
            '"GET /feed HTTP/2.0" 200 9 "-" "-"'
        )

        assert row["vhost"] == "blog.example.org:443"
        assert row["client"] == "2001:db8::17"

    def test_404_in_referer_and_agent_is_not_status(self) -> None:
        row = parse_line(
            '203.0.113.8 - - [02/Jan/2024:03:04:05 +0000] "GET /ok HTTP/1.1" 200 512 '
            '"https://www.example.com/a 404 1" "probe 404 404 (x) \\" 404 2"'
        )

        assert row["status"] == 200
        assert row["referer"] == "https://www.example.com/a 404 1"
        assert row["user_agent"] == 'probe 404 404 (x) " 404 2'

    def test_escaped_404_in_path(self) -> None:
        row = parse_line(
            '203.0.113.8 - - [02/Jan/2024:03:04:05 +0000] "GET /x\\" 404 7 HTTP/1.1" 301 0 "-" "-"'
        )

        assert row["status"] == 301
        assert row["path"] == '/x\\" 404 7'

    def test_404_byte_count_is_not_status(self) -> None:
        row = parse_line('203.0.113.8 - - [02/Jan/2024:03:04:05 +0000] "GET /b HTTP/1.1" 304 404')

        assert row["status"] == 304
        assert row["bytes"] == 404

    def test_binary_probe_request_is_single_token(self) -> None:
        row = parse_line(
            '203.0.113.8 - - [02/Jan/2024:03:04:05 +0000] "\\x16\\x03\\x01\\x00\\xA5" 400 157 '
            '"-" "-"'
        )

        assert row["kind"] == "access"
        assert row["status"] == 400
        assert row["method"] is None
        assert row["path"] is None
        assert row["protocol"] is None

    def test_dash_request_has_no_method(self) -> None:
        row = parse_line('203.0.113.8 - - [02/Jan/2024:03:04:05 +0000] "-" 408 0')

        assert row["method"] is None
        assert row["status"] == 408

    def test_empty_request(self) -> None:
        row = parse_line('203.0.113.8 - - [02/Jan/2024:03:04:05 +0000] "" 400 0 "-" "-"')

        assert row["kind"] == "access"
        assert row["method"] is None
        assert row["status"] == 400

    def test_dash_bytes_is_null(self) -> None:
        row = parse_line('203.0.113.8 - - [02/Jan/2024:03:04:05 +0000] "HEAD /h HTTP/2.0" 404 -')

        assert row["status"] == 404
        assert row["bytes"] is None
        assert row["protocol"] == "HTTP/2.0"

    def test_path_with_spaces_and_no_protocol(self) -> None:
        row = parse_line(
            '203.0.113.8 - - [02/Jan/2024:03:04:05 +0000] "GET /my files/a b.txt" 404 0'
        )

        assert row["method"] == "GET"
        assert row["path"] == "/my files/a b.txt"
        assert row["protocol"] is None

    def test_absolute_uri_kept_raw(self) -> None:
        row = parse_line(
            '203.0.113.8 - - [02/Jan/2024:03:04:05 +0000] '
            '"GET http://proxy.example.com:8080/a%20b?c=d HTTP/1.0" 404 0'
        )

        assert row["path"] == "http://proxy.example.com:8080/a%20b?c=d"
        assert row["protocol"] == "HTTP/1.0"

    def test_trailing_forwarded_for_fields(self) -> None:
        row = parse_line(
            '10.0.0.5 - - [02/Jan/2024:03:04:05 +0000] "GET /t HTTP/1.1" 404 5 "-" "curl/8.5.0" '
            '"203.0.113.1, 198.51.100.2" rt=0.003'
        )

        assert row["format"] == "combined"
        assert row["status"] == 404
        assert row["user_agent"] == "curl/8.5.0"

    def test_crlf_line_ending_removed(self) -> None:
        line = '203.0.113.8 - - [02/Jan/2024:03:04:05 +0000] "GET / HTTP/1.1" 200 1\r'

        row = parse_one(access_line(line))

        assert row["line"].endswith("200 1")
        assert row["bytes"] == 1


class TestDoubleEscaped:
    def test_double_escaped_404_keeps_status(self) -> None:
        row = parse_line(
            '203.0.113.9 - - [02/Jan/2024:03:04:05 +0000] \\"GET /gone HTTP/1.1\\" 404 12 '
            '\\"-\\" \\"curl/8.5.0\\"'
        )

        assert row["kind"] == "access"
        assert row["status"] == 404
        assert row["path"] == "/gone"
        assert row["user_agent"] == "curl/8.5.0"

    def test_double_escaped_agent_with_404_is_not_404(self) -> None:
        row = parse_line(
            '203.0.113.9 - - [02/Jan/2024:03:04:05 +0000] \\"GET /fine HTTP/1.1\\" 200 12 '
            '\\"https://www.example.com/ 404 3\\" \\"bot \\\\\\" 404 1\\"'
        )

        assert row["status"] == 200
        assert row["user_agent"] == 'bot " 404 1'


class TestIngressNginx:
    PREFIX = (
        '203.0.113.40 - - [02/Jan/2024:03:04:05 +0000] "GET /api/items HTTP/1.1" 404 19 '
        '"-" "okhttp/4.9.0" 312 0.004'
    )

    def test_upstream_list_with_internal_redirect(self) -> None:
        row = parse_line(
            self.PREFIX + " [shop-api-80] [] 10.1.0.7:8080 : 10.1.0.8:8080 0 : 19 "
            "0.001 : 0.003 502 : 404 7f3a9c0e5b1d2e4f6a8b0c1d2e3f4a5b"
        )

        assert row["format"] == "ingress-nginx"
        assert row["status"] == 404
        assert row["upstream_status"] == "502 : 404"

    def test_old_format_without_alternative_upstream(self) -> None:
        row = parse_line(self.PREFIX + " [shop-api-80] 10.1.0.7:8080 19 0.003 404")

        assert row["format"] == "ingress-nginx"
        assert row["upstream_status"] == "404"

    def test_no_upstream_reached(self) -> None:
        row = parse_line(
            '203.0.113.40 - - [02/Jan/2024:03:04:05 +0000] "GET /x HTTP/1.1" 499 0 "-" "curl" '
            "80 0.000 [shop-api-80] [] - - - - 0a1b2c3d4e5f60718293a4b5c6d7e8f9"
        )

        assert row["status"] == 499
        assert row["upstream_status"] == "-"

    def test_client_status_differs_from_upstream(self) -> None:
        row = parse_line(
            self.PREFIX.replace(" 404 19 ", " 200 19 ")
            + " [shop-api-80] [shop-api-canary-80] [2001:db8::9]:8080 19 0.003 404 "
            "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
        )

        assert row["status"] == 200
        assert row["upstream_status"] == "404"


class TestEnvoy:
    def test_istio_default_format(self) -> None:
        row = parse_line(
            '[2024-01-02T03:04:05.250Z] "GET /v1/cart HTTP/1.1" 404 NR route_not_found - "-" '
            '0 0 0 - "203.0.113.70" "Mozilla/5.0" "6b5c1a2e-0f3d-4c47-9b1e-2d3c4b5a6f70" '
            '"cart.example.com" "-" - - 10.2.0.14:8080 10.2.0.1:50512 - -'
        )

        assert row["format"] == "envoy"
        assert row["status"] == 404
        assert row["method"] == "GET"
        assert row["path"] == "/v1/cart"
        assert row["client"] == "203.0.113.70"
        assert row["vhost"] == "cart.example.com"
        assert row["user_agent"] == "Mozilla/5.0"
        assert row["time"] == datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)

    def test_plain_envoy_format(self) -> None:
        row = parse_line(
            '[2024-01-02T03:04:05.250Z] "POST /rpc HTTP/2" 503 UF 120 91 12 - "-" "grpc-go/1.58" '
            '"req-1" "rpc.example.com" "10.2.0.9:9000"'
        )

        assert row["format"] == "envoy"
        assert row["status"] == 503
        assert row["bytes"] == 91
        assert row["protocol"] == "HTTP/2"

    def test_downstream_address_when_no_forwarded_for(self) -> None:
        row = parse_line(
            '[2024-01-02T03:04:05.250Z] "GET /h HTTP/1.1" 200 - via_upstream - "-" 0 2 1 1 "-" '
            '"curl" "r" "h.example.com" "10.2.0.9:80" outbound|80||h.default.svc.cluster.local '
            "10.2.0.3:41234 10.2.0.9:80 [2001:db8::44]:52100 - default"
        )

        assert row["client"] == "2001:db8::44"

    def test_tcp_connection_has_no_request(self) -> None:
        row = parse_line(
            '[2024-01-02T03:04:05.250Z] "- - -" 0 - 0 0 5 - "-" "-" "-" "-" "10.2.0.9:5432"'
        )

        assert row["kind"] == "access"
        assert row["method"] is None
        assert row["path"] is None


class TestNotAccessLines:
    def test_nginx_error_line_quoting_request(self) -> None:
        row = parse_line(
            '2024/01/02 03:04:05 [error] 29#29: *1 open() "/usr/share/nginx/html/gone" failed '
            '(2: No such file or directory), client: 203.0.113.5, server: _, '
            'request: "GET /gone HTTP/1.1", host: "www.example.com"'
        )

        assert row["kind"] == "other"
        assert row["status"] is None

    def test_apache_error_line(self) -> None:
        row = parse_line(
            "[Tue Jan 02 03:04:05.123456 2024] [core:info] [pid 7:tid 140] [client "
            "203.0.113.5:40000] AH00128: File does not exist: /var/www/html/gone"
        )

        assert row["kind"] == "other"

    def test_application_line_mentioning_404(self) -> None:
        row = parse_line('INFO upstream returned 404 for "GET /x HTTP/1.1" 404 12')

        assert row["kind"] == "other"
        assert row["format"] is None

    def test_truncated_access_line(self) -> None:
        row = parse_line('203.0.113.5 - - [02/Jan/2024:03:04:05 +0000] "GET /a HTTP/1.1" 40')

        assert row["kind"] == "other"


def test_mixed_batch_keeps_order() -> None:
    lines = [
        '203.0.113.5 - - [02/Jan/2024:03:04:05 +0000] "GET /1 HTTP/1.1" 404 1',
        "plain text",
        '203.0.113.5 - - [02/Jan/2024:03:04:05 +0000] "GET /3 HTTP/1.1" 200 1',
    ]
    frame = parse_many([access_line(line) for line in lines])

    assert frame["kind"].to_list() == ["access", "other", "access"]
    assert frame["path"].to_list() == ["/1", None, "/3"]
