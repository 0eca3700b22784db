"""Tests of the fake Notification Manager and Slack webhook servers against their contracts."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.fake_receivers import (
    ACCEPTED_MESSAGE,
    MAX_DELAY_SECONDS,
    QUEUE_FULL_MESSAGE,
    FakeReceiverError,
    LocalCertificates,
    Mode,
    NotificationManagerServer,
    SlackWebhookServer,
)
from scripts.services import free_port

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    # trust_env=False keeps every request on 127.0.0.1 even when a proxy is configured.
    with httpx.Client(trust_env=False, timeout=10.0) as http_client:
        yield http_client


def webhook_payload(**alert_fields: Any) -> dict[str, Any]:
    """Return an Alertmanager webhook payload with one alert, `alert_fields` overriding."""
    alert: dict[str, Any] = {
        "status": "firing",
        "labels": {"alertname": "HTTP404", "namespace": "demo", "rule_level": "namespace"},
        "annotations": {"message": "12 requests returned 404"},
        "startsAt": "2025-06-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": "0123456789abcdef",
    }
    alert.update(alert_fields)
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HTTP404"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "batchalert",
        "groupLabels": {"alertname": "HTTP404"},
        "commonLabels": {"alertname": "HTTP404", "namespace": "demo"},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1",
        "alerts": [alert],
    }


class TestNotificationManagerAccepts:
    def test_webhook_payload_accepted(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        payload = webhook_payload()

        response = client.post(nm_server.url, json=payload)

        assert response.status_code == 200
        assert response.json() == {"Status": 200, "Message": ACCEPTED_MESSAGE}
        assert nm_server.received == [payload]

    def test_response_bytes_match_go(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        response = client.post(nm_server.url, json=webhook_payload())

        assert response.content == b'{"Status":200,"Message":"Notification request accepted"}'
        assert response.headers["content-type"] == "text/plain; charset=utf-8"

    def test_request_recorded_with_headers(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        client.post(nm_server.url, json=webhook_payload(), headers={"X-Run-Id": "run-7"})

        (record,) = nm_server.requests
        assert record.method == "POST"
        assert record.path == "/api/v2/alerts"
        assert record.headers["x-run-id"] == "run-7"
        assert record.headers["content-type"] == "application/json"
        assert record.status == 200
        assert record.accepted
        assert record.received_at.tzinfo is not None

    @pytest.mark.parametrize(
        "timestamp",
        [
            "2025-06-01T10:00:00Z",
            "2025-06-01T10:00:00.123456789Z",
            "2025-06-01T18:00:00+08:00",
            "2024-02-29T23:59:59-05:30",
        ],
    )
    def test_rfc3339_timestamps_accepted(
        self, nm_server: NotificationManagerServer, client: httpx.Client, timestamp: str
    ) -> None:
        response = client.post(nm_server.url, json=webhook_payload(startsAt=timestamp))

        assert response.status_code == 200

    def test_null_timestamps_accepted(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        response = client.post(nm_server.url, json=webhook_payload(startsAt=None, endsAt=None))

        assert response.status_code == 200

    def test_empty_labels_object_accepted(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        response = client.post(nm_server.url, json=webhook_payload(labels={}))

        assert response.status_code == 200

    def test_field_names_match_case_insensitively(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        payload = {"alerts": [{"Labels": {"alertname": "HTTP404"}}]}

        response = client.post(nm_server.url, json=payload)

        assert response.status_code == 200

    def test_data_after_first_value_ignored(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        body = json.dumps(webhook_payload()).encode() + b"\n{trailing"

        response = client.post(nm_server.url, content=body)

        assert response.status_code == 200

    def test_health_endpoints_ready(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        ready = client.get(nm_server.base_url + "/-/ready")
        live = client.get(nm_server.base_url + "/-/live")

        assert ready.status_code == 200
        assert live.status_code == 200

    def test_concurrent_posts_all_recorded(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        payloads = [webhook_payload(fingerprint=f"{index:016x}") for index in range(24)]

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda p: client.post(nm_server.url, json=p).status_code,
                                     payloads))

        assert statuses == [200] * len(payloads)
        received = nm_server.received
        assert len(received) == len(payloads)
        assert sorted(json.dumps(p) for p in received) == sorted(json.dumps(p) for p in payloads)


class TestNotificationManagerRejects:
    @pytest.mark.parametrize(
        ("body", "message_part"),
        [
            (b"", "EOF"),
            (b"  \n ", "EOF"),
            (b"{not json", "invalid JSON"),
            (b"[]", "template.Data"),
            (b"NaN", "invalid character"),
            (b'{"alerts": {}}', "template.Alerts"),
            (b'{"alerts": [{"labels": "a=b"}]}', "template.KV"),
            (b'{"alerts": [{"labels": {"count": 12}}]}', "of type string"),
            (b'{"receiver": 7, "alerts": []}', "Data.receiver"),
            (b'{"alerts": [{"labels": {}, "startsAt": 1717236000}]}', "not a JSON string"),
        ],
    )
    def test_malformed_body_returns_400(
        self,
        nm_server: NotificationManagerServer,
        client: httpx.Client,
        body: bytes,
        message_part: str,
    ) -> None:
        response = client.post(
            nm_server.url, content=body, headers={"Content-Type": "application/json"}
        )

        assert response.status_code == 400
        assert response.json()["Status"] == 400
        assert message_part in response.json()["Message"]
        assert nm_server.received == []

    @pytest.mark.parametrize("field", ["startsAt", "endsAt"])
    @pytest.mark.parametrize(
        "timestamp",
        [
            "2025-06-01",
            "2025-06-01 10:00:00Z",
            "2025-06-01T10:00:00",
            "2025-13-01T10:00:00Z",
            "2025-02-30T10:00:00Z",
            "2025-06-01T24:00:00Z",
            "2025-06-01t10:00:00z",
            "1717236000",
            "",
        ],
    )
    def test_non_rfc3339_time_returns_400(
        self,
        nm_server: NotificationManagerServer,
        client: httpx.Client,
        field: str,
        timestamp: str,
    ) -> None:
        response = client.post(nm_server.url, json=webhook_payload(**{field: timestamp}))

        assert response.status_code == 400
        assert "parsing time" in response.json()["Message"]

    def test_rejected_request_recorded(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        client.post(nm_server.url, content=b"{")

        (record,) = nm_server.rejected
        assert record.status == 400
        assert not record.accepted
        assert record.body == b"{"

    @pytest.mark.parametrize(
        "alert",
        [
            {"status": "firing", "annotations": {"message": "no labels"}},
            {"status": "firing", "labels": None},
            None,
        ],
        ids=["labels-missing", "labels-null", "alert-null"],
    )
    def test_alert_without_labels_returns_500(
        self, nm_server: NotificationManagerServer, client: httpx.Client, alert: Any
    ) -> None:
        payload = webhook_payload()
        payload["alerts"].append(alert)

        response = client.post(nm_server.url, json=payload)

        assert response.status_code == 500
        assert nm_server.received == []
        assert nm_server.rejected[0].payload == payload

    def test_unknown_path_returns_404(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        response = client.post(nm_server.base_url + "/api/v1/alerts", json=webhook_payload())

        assert response.status_code == 404

    def test_get_on_alerts_returns_405(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        response = client.get(nm_server.url)

        assert response.status_code == 405


class TestFaultInjection:
    def test_fail_next_fails_exactly_n(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        nm_server.fail_next(2, 503)

        statuses = [client.post(nm_server.url, json=webhook_payload()).status_code
                    for _ in range(3)]

        assert statuses == [503, 503, 200]
        assert len(nm_server.received) == 1

    def test_fail_next_uses_receiver_error_format(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        nm_server.fail_next(1, 500, QUEUE_FULL_MESSAGE)

        response = client.post(nm_server.url, json=webhook_payload())

        assert response.json() == {"Status": 500, "Message": QUEUE_FULL_MESSAGE}

    def test_fail_next_sends_bytes_unchanged(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        nm_server.fail_next(1, 502, b"<html>bad gateway</html>")

        response = client.post(nm_server.url, json=webhook_payload())

        assert response.status_code == 502
        assert response.content == b"<html>bad gateway</html>"

    def test_fail_next_sets_retry_after(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        nm_server.fail_next(1, 429, retry_after=30)

        response = client.post(nm_server.url, json=webhook_payload())

        assert response.status_code == 429
        assert response.headers["retry-after"] == "30"

    def test_fail_next_rejects_invalid_arguments(
        self, nm_server: NotificationManagerServer
    ) -> None:
        with pytest.raises(ValueError, match="n must be"):
            nm_server.fail_next(0, 500)
        with pytest.raises(ValueError, match="status must be"):
            nm_server.fail_next(1, 99)
        with pytest.raises(ValueError, match="retry_after"):
            nm_server.fail_next(1, 429, retry_after=-1)

    def test_delay_makes_client_time_out(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        nm_server.delay(5.0)

        with pytest.raises(httpx.ReadTimeout):
            client.post(nm_server.url, json=webhook_payload(), timeout=0.2)

    def test_delay_zero_restores_prompt_answers(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        nm_server.delay(5.0)
        nm_server.delay(0)

        response = client.post(nm_server.url, json=webhook_payload(), timeout=2.0)

        assert response.status_code == 200

    def test_delay_is_bounded(self, nm_server: NotificationManagerServer) -> None:
        with pytest.raises(ValueError, match="delay must be"):
            nm_server.delay(MAX_DELAY_SECONDS + 1)

    def test_refuse_then_resume_same_port(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        url = nm_server.url
        assert client.post(url, json=webhook_payload()).status_code == 200

        nm_server.refuse()
        with pytest.raises(httpx.ConnectError):
            client.post(url, json=webhook_payload())
        nm_server.resume()

        assert nm_server.url == url
        assert client.post(url, json=webhook_payload()).status_code == 200
        assert len(nm_server.received) == 2

    def test_refuse_reports_not_listening(self, nm_server: NotificationManagerServer) -> None:
        nm_server.refuse()

        assert not nm_server.is_listening

    def test_drop_connection_mode(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        nm_server.set_mode(Mode.DROP_CONNECTION)

        with pytest.raises(httpx.RemoteProtocolError):
            client.post(nm_server.url, json=webhook_payload())

        (record,) = nm_server.rejected
        assert record.status is None

    def test_reset_clears_faults_and_records(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        client.post(nm_server.url, json=webhook_payload())
        nm_server.fail_next(3, 500)
        nm_server.set_mode("drop-connection")

        nm_server.reset()

        assert nm_server.requests == []
        assert client.post(nm_server.url, json=webhook_payload()).status_code == 200

    def test_wait_for_returns_accepted_payloads(
        self, nm_server: NotificationManagerServer, client: httpx.Client
    ) -> None:
        payload = webhook_payload()
        client.post(nm_server.url, json=payload)

        assert nm_server.wait_for(1, timeout=1.0) == [payload]

    def test_wait_for_times_out(self, nm_server: NotificationManagerServer) -> None:
        with pytest.raises(FakeReceiverError, match="expected 1"):
            nm_server.wait_for(1, timeout=0.1)


class TestAuthentication:
    def test_bearer_token_required(self, client: httpx.Client) -> None:
        with NotificationManagerServer(bearer_token="s3cret") as server:
            missing = client.post(server.url, json=webhook_payload())
            wrong = client.post(
                server.url, json=webhook_payload(), headers={"Authorization": "Bearer nope"}
            )
            right = client.post(
                server.url, json=webhook_payload(), headers={"Authorization": "Bearer s3cret"}
            )

        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert wrong.status_code == 401
        assert right.status_code == 200

    def test_basic_auth_required(self, client: httpx.Client) -> None:
        with SlackWebhookServer(basic_auth=("alert", "pw")) as server:
            missing = client.post(server.url, json={"text": "hi"})
            right = client.post(server.url, json={"text": "hi"}, auth=("alert", "pw"))

        assert missing.status_code == 401
        assert right.status_code == 200

    def test_both_schemes_rejected(self) -> None:
        with pytest.raises(ValueError, match="not both"):
            NotificationManagerServer(bearer_token="a", basic_auth=("b", "c"))


class TestHttps:
    def test_custom_ca_verifies(self, local_certificates: LocalCertificates) -> None:
        context = ssl.create_default_context(cafile=str(local_certificates.ca_cert))
        server = NotificationManagerServer(
            tls_cert=local_certificates.server_cert, tls_key=local_certificates.server_key
        )

        with server, httpx.Client(verify=context, trust_env=False) as https_client:
            response = https_client.post(server.url, json=webhook_payload())

        assert server.url.startswith("https://127.0.0.1:")
        assert response.status_code == 200

    def test_unknown_ca_fails_handshake(self, local_certificates: LocalCertificates) -> None:
        server = SlackWebhookServer(
            tls_cert=local_certificates.server_cert, tls_key=local_certificates.server_key
        )

        with server, httpx.Client(trust_env=False) as default_client:
            with pytest.raises(httpx.ConnectError):
                default_client.post(server.url, json={"text": "hi"})
            assert server.requests == []

    def test_cert_without_key_rejected(self, local_certificates: LocalCertificates) -> None:
        with pytest.raises(ValueError, match="together"):
            NotificationManagerServer(tls_cert=local_certificates.server_cert)


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


class TestSlackWebhook:
    @pytest.mark.parametrize(
        "message",
        [
            {"text": "12 requests returned 404"},
            {"blocks": [section("12 requests returned 404")]},
            {"text": "fallback", "blocks": [section("x" * 3000)] * 50},
            {"blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "a"}]}]},
            {"text": "x" * 45_000},
        ],
        ids=["text", "blocks", "at-limits", "section-fields", "long-text-truncated-by-slack"],
    )
    def test_valid_message_returns_ok(
        self, slack_server: SlackWebhookServer, client: httpx.Client, message: dict[str, Any]
    ) -> None:
        response = client.post(slack_server.url, json=message)

        assert response.status_code == 200
        assert response.text == "ok"
        assert slack_server.received == [message]

    @pytest.mark.parametrize(
        "body",
        [
            b"text=hello",
            b"[]",
            b"{}",
            b'{"text": ""}',
            b'{"text": 404}',
            b'{"blocks": "none"}',
            json.dumps({"blocks": [section("a")] * 51}).encode(),
            json.dumps({"blocks": [section("x" * 3001)]}).encode(),
            b'{"blocks": [{"text": "no type"}]}',
            b'{"blocks": [{"type": "section"}]}',
        ],
        ids=[
            "not-json",
            "array",
            "empty-object",
            "empty-text",
            "text-number",
            "blocks-string",
            "51-blocks",
            "section-3001-chars",
            "block-without-type",
            "section-without-text",
        ],
    )
    def test_invalid_message_returns_invalid_payload(
        self, slack_server: SlackWebhookServer, client: httpx.Client, body: bytes
    ) -> None:
        response = client.post(
            slack_server.url, content=body, headers={"Content-Type": "application/json"}
        )

        assert response.status_code == 400
        assert response.text == "invalid_payload"
        assert slack_server.received == []

    def test_any_path_accepted(
        self, slack_server: SlackWebhookServer, client: httpx.Client
    ) -> None:
        response = client.post(slack_server.base_url + "/services/T1/B2/other", json={"text": "a"})

        assert response.status_code == 200
        assert slack_server.requests[0].path == "/services/T1/B2/other"

    @pytest.mark.parametrize(
        ("status", "error_code"),
        [
            (403, "action_prohibited"),
            (404, "no_service"),
            (410, "channel_is_archived"),
            (500, "rollup_error"),
        ],
    )
    def test_documented_errors(
        self,
        slack_server: SlackWebhookServer,
        client: httpx.Client,
        status: int,
        error_code: str,
    ) -> None:
        slack_server.fail_next(1, status)

        response = client.post(slack_server.url, json={"text": "hi"})

        assert response.status_code == status
        assert response.text == error_code
        assert slack_server.received == []

    def test_429_carries_retry_after(
        self, slack_server: SlackWebhookServer, client: httpx.Client
    ) -> None:
        slack_server.fail_next(1, 429, retry_after=7)

        limited = client.post(slack_server.url, json={"text": "hi"})
        later = client.post(slack_server.url, json={"text": "hi"})

        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "7"
        assert later.status_code == 200

    def test_429_defaults_retry_after(
        self, slack_server: SlackWebhookServer, client: httpx.Client
    ) -> None:
        slack_server.fail_next(1, 429)

        response = client.post(slack_server.url, json={"text": "hi"})

        assert response.headers["retry-after"] == "1"

    def test_rate_limit_rejects_second_message(
        self, slack_server: SlackWebhookServer, client: httpx.Client
    ) -> None:
        # A minute-long interval keeps the second post inside it on any machine.
        slack_server.limit_rate(min_interval_seconds=60.0, retry_after=3)

        first = client.post(slack_server.url, json={"text": "one"})
        second = client.post(slack_server.url, json={"text": "two"})

        assert first.status_code == 200
        assert second.status_code == 429
        assert second.headers["retry-after"] == "3"
        assert slack_server.received == [{"text": "one"}]

    def test_reset_lifts_rate_limit(
        self, slack_server: SlackWebhookServer, client: httpx.Client
    ) -> None:
        slack_server.limit_rate(min_interval_seconds=60.0)
        client.post(slack_server.url, json={"text": "one"})

        slack_server.reset()

        assert client.post(slack_server.url, json={"text": "two"}).status_code == 200

    def test_refuse_then_resume(
        self, slack_server: SlackWebhookServer, client: httpx.Client
    ) -> None:
        slack_server.refuse()
        with pytest.raises(httpx.ConnectError):
            client.post(slack_server.url, json={"text": "hi"})

        slack_server.resume()

        assert client.post(slack_server.url, json={"text": "hi"}).status_code == 200


class TestCommandLine:
    def test_serves_and_writes_json_lines(self, tmp_path: Path, client: httpx.Client) -> None:
        port = free_port()
        out = tmp_path / "alerts.jsonl"
        command = [sys.executable, "-m", "scripts.fake_receivers", "notification-manager",
                   "--port", str(port), "--out", str(out)]  # fmt: skip
        process = subprocess.Popen(command, cwd=REPOSITORY_ROOT, env=os.environ.copy())
        try:
            wait_until_ready(client, f"http://127.0.0.1:{port}/-/ready", process)
            payload = webhook_payload()
            response = client.post(f"http://127.0.0.1:{port}/api/v2/alerts", json=payload)
        finally:
            process.send_signal(signal.SIGTERM)
            exit_code = process.wait(timeout=10)

        assert response.status_code == 200
        assert exit_code == 0
        lines = out.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == [payload]


def wait_until_ready(client: httpx.Client, url: str, process: subprocess.Popen[bytes]) -> None:
    """Poll `url` until it returns 200; fail after 10 s or when the process exits."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited with code {process.returncode}"
        try:
            if client.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"{url} was not ready within 10 s")
