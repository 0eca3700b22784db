"""The generic webhook sink: document shape, retries, masking, HTTPS and credentials."""

from __future__ import annotations

import base64
import json
import socketserver
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchalert.alerts import AlertRenderer, build_alerts
from batchalert.alerts.model import Alert
from batchalert.config import ReceiverAuth, ReceiverConfig, RuleConfig, SecretRef
from batchalert.rules import RunAggregator
from batchalert.sinks.registry import create_sink
from batchalert.sinks.retry import MAX_ATTEMPTS, retry_after_seconds
from batchalert.sinks.webhook import BATCH_ALERTS, WebhookSink
from scripts.fake_receivers import LocalCertificates
from tests.frames import access, frame
from tests.sinks.fakes import FakeClock

URL = "http://127.0.0.1:8080/hooks/alerts"
# How messages show URL: the path of a webhook URL may be a token.
MASKED_URL = "http://127.0.0.1:8080/***"
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


class _RecordingHandler(BaseHTTPRequestHandler):
    server: RecordingServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.requests.append(ReceivedRequest(self.path, headers, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class RecordingServer(ThreadingHTTPServer):
    """An HTTPS server on 127.0.0.1 that accepts every POST and records it."""

    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        self.requests: list[ReceivedRequest] = []
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.socket = context.wrap_socket(self.socket, server_side=True)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name; a fixed name avoids any DNS query.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.socket.getsockname()[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that reject the certificate close the connection mid-handshake

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server_port}"


@contextmanager
def https_server(certificates: LocalCertificates) -> Iterator[RecordingServer]:
    """Serve HTTPS on 127.0.0.1 with the test CA's server certificate until the block ends."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates.server_cert, certificates.server_key)
    server = RecordingServer(context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def make_alerts(count: int = 2) -> list[Alert]:
    aggregator = RunAggregator([RuleConfig(max_alerts=count + 1)])
    aggregator.add(frame([access(path=f"/missing/p{i}") for i in range(count)]))
    return build_alerts(aggregator.groups(), "c1", AlertRenderer())


def sink_with(handler: Any, clock: FakeClock | None = None, **settings: Any) -> WebhookSink:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    config = ReceiverConfig(name="hook", type="webhook", **{"url": URL, **settings})
    return WebhookSink(config, client, clock=clock or FakeClock())


def replies(*responses: httpx.Response) -> Any:
    """A handler that returns `responses` in order and records each request."""
    queue = list(responses)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    handler.seen = seen  # type: ignore[attr-defined]
    return handler


# Document


def test_document_shape() -> None:
    handler = replies(httpx.Response(200))
    alerts = make_alerts(2)
    resolved = Alert({"alertname": "Gone"}, {"summary": "ok"}, NOW, NOW, status="resolved")

    delivery = sink_with(handler).send([*alerts, resolved])

    assert delivery.ok
    assert delivery.delivered == 3
    [request] = handler.seen
    document = json.loads(request.content)
    assert document["version"] == 1
    assert document["receiver"] == "hook"
    assert document["status"] == "firing"
    assert document["sentAt"] == "2025-03-01T12:00:00.000Z"
    assert (document["part"], document["parts"]) == (1, 1)
    assert document["counts"] == {"alerts": 3, "firing": 2, "resolved": 1}
    assert document["alerts"] == [alert.to_dict() for alert in [*alerts, resolved]]


def test_many_alerts_split_into_parts() -> None:
    handler = replies(httpx.Response(200))
    template = make_alerts(1)[0]
    alerts = [Alert({**template.labels, "path": f"/p{i}"}, template.annotations,
                    template.starts_at, template.ends_at) for i in range(BATCH_ALERTS + 1)]

    delivery = sink_with(handler).send(alerts)

    documents = [json.loads(request.content) for request in handler.seen]
    assert [len(d["alerts"]) for d in documents] == [BATCH_ALERTS, 1]
    assert [(d["part"], d["parts"]) for d in documents] == [(1, 2), (2, 2)]
    assert all(d["counts"]["alerts"] == BATCH_ALERTS + 1 for d in documents)
    assert delivery.delivered == BATCH_ALERTS + 1


def test_no_alerts_no_request() -> None:
    handler = replies(httpx.Response(200))

    delivery = sink_with(handler).send([])

    assert handler.seen == []
    assert delivery.ok


# Retries


def test_server_error_retried_with_backoff() -> None:
    handler = replies(httpx.Response(502), httpx.Response(503), httpx.Response(200))
    clock = FakeClock()

    delivery = sink_with(handler, clock).send(make_alerts())

    assert delivery.ok
    assert len(handler.seen) == 3
    assert clock.sleeps == [1.0, 2.0]


def test_rate_limit_waits_retry_after() -> None:
    handler = replies(httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200))
    clock = FakeClock()

    delivery = sink_with(handler, clock).send(make_alerts())

    assert delivery.ok
    assert clock.sleeps == [7.0]


def test_client_error_not_retried() -> None:
    handler = replies(httpx.Response(400, text="bad document"))

    delivery = sink_with(handler).send(make_alerts())

    assert len(handler.seen) == 1
    assert delivery.delivered == 0
    assert f"{MASKED_URL} answered HTTP 400: bad document" in delivery.failures[0]
    assert "check the path" not in delivery.failures[0]


def test_not_found_points_at_the_masked_path() -> None:
    handler = replies(httpx.Response(404, text="404 page not found"))

    delivery = sink_with(handler).send(make_alerts())

    assert delivery.failures[0].startswith(f"{MASKED_URL} answered HTTP 404: 404 page not "
                                           f"found; check the path of the receiver's URL")


def test_redirect_not_followed() -> None:
    handler = replies(httpx.Response(301, headers={"Location": "http://127.0.0.1:9/"}))

    delivery = sink_with(handler).send(make_alerts())

    assert len(handler.seen) == 1
    assert "HTTP 301" in delivery.failures[0]


def test_budget_exhausted_fails() -> None:
    handler = replies(httpx.Response(500))
    clock = FakeClock()

    delivery = sink_with(handler, clock, retry_budget_seconds=5).send(make_alerts())

    assert delivery.delivered == 0
    assert clock.sleeps == [1.0, 2.0]
    assert sum(clock.sleeps) <= 5
    assert "retry budget of 5 s" in delivery.failures[0]


def test_retry_after_beyond_budget_fails_at_once() -> None:
    handler = replies(httpx.Response(429, headers={"Retry-After": "120"}))
    clock = FakeClock()

    delivery = sink_with(handler, clock, retry_budget_seconds=60).send(make_alerts())

    assert clock.sleeps == []
    assert len(handler.seen) == 1
    assert "waiting 120.00 s more" in delivery.failures[0]


def test_attempts_bounded_when_retry_after_zero() -> None:
    handler = replies(httpx.Response(429, headers={"Retry-After": "0"}))

    delivery = sink_with(handler).send(make_alerts())

    assert len(handler.seen) == MAX_ATTEMPTS
    assert f"gave up after {MAX_ATTEMPTS} attempts" in delivery.failures[0]


def test_zero_budget_disables_retries() -> None:
    handler = replies(httpx.Response(503))

    delivery = sink_with(handler, retry_budget_seconds=0).send(make_alerts())

    assert len(handler.seen) == 1
    assert delivery.delivered == 0


def test_refused_connection_retried() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectError("Connection refused", request=request)
        return httpx.Response(200)

    delivery = sink_with(handler).send(make_alerts())

    assert delivery.ok
    assert len(calls) == 2


def test_retry_after_http_date() -> None:
    response = httpx.Response(429, headers={"Retry-After": "Sat, 01 Mar 2025 12:00:30 GMT"})

    assert retry_after_seconds(response, NOW) == 30.0


def test_retry_after_unreadable_is_none() -> None:
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    assert retry_after_seconds(httpx.Response(429)) is None


# Secret URLs


def test_env_url_masked_in_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "http://127.0.0.1:8080/hooks/s3cr3t-path?token=t0ken"
    monkeypatch.setenv("TEST_WEBHOOK_URL", secret)
    handler = replies(httpx.Response(500, text="down"))

    delivery = sink_with(handler, url=None, url_env="TEST_WEBHOOK_URL",
                         retry_budget_seconds=0).send(make_alerts())

    failure = delivery.failures[0]
    assert f"{MASKED_URL}?***" in failure
    assert "s3cr3t" not in failure
    assert "t0ken" not in failure


def test_url_masked_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    handler = replies(httpx.Response(500), httpx.Response(200))
    caplog.set_level("INFO", logger="batchalert")

    delivery = sink_with(handler, url=URL + "?key=k3y").send(make_alerts())

    batchalert_logs = "\n".join(record.getMessage() for record in caplog.records
                                if record.name.startswith("batchalert"))
    assert delivery.ok
    assert f"{MASKED_URL}?***" in batchalert_logs
    assert "retrying in 1.0 s" in batchalert_logs
    assert "k3y" not in batchalert_logs
    assert "/hooks/alerts" not in batchalert_logs


def test_registry_creates_webhook_sink() -> None:
    sink = create_sink(ReceiverConfig(name="hook", type="webhook", url=URL))

    assert isinstance(sink, WebhookSink)
    sink.close()


# A real local server over HTTPS


def test_https_custom_ca_basic_auth_headers(local_certificates: LocalCertificates,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOOK_USER", "batchalert")
    monkeypatch.setenv("TEST_HOOK_PASSWORD", "pa:ss word")
    with https_server(local_certificates) as server:
        config = ReceiverConfig(
            name="hook", type="webhook", url=server.url + "/hook",
            ca_file=local_certificates.ca_cert, headers={"X-Team": "web"},
            auth=ReceiverAuth(type="basic", username=SecretRef(env="TEST_HOOK_USER"),
                              password=SecretRef(env="TEST_HOOK_PASSWORD")),
        )
        sink = WebhookSink(config)
        delivery = sink.send(make_alerts())
        sink.close()

    assert delivery.ok
    [request] = server.requests
    expected = base64.b64encode(b"batchalert:pa:ss word").decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    assert request.headers["x-team"] == "web"
    assert request.headers["content-type"] == "application/json"
    assert request.path == "/hook"
    assert json.loads(request.body)["counts"]["alerts"] == 2


def test_https_bearer_token_from_file(local_certificates: LocalCertificates,
                                      tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n", encoding="utf-8")
    with https_server(local_certificates) as server:
        config = ReceiverConfig(
            name="hook", type="webhook", url=server.url, ca_file=local_certificates.ca_cert,
            auth=ReceiverAuth(type="bearer", token=SecretRef(file=token_file)),
        )
        sink = WebhookSink(config)
        delivery = sink.send(make_alerts(1))
        sink.close()

    assert delivery.ok
    assert server.requests[0].headers["authorization"] == "Bearer file-token"


def test_https_without_custom_ca_fails(local_certificates: LocalCertificates) -> None:
    with https_server(local_certificates) as server:
        config = ReceiverConfig(name="hook", type="webhook", url=server.url,
                                retry_budget_seconds=0)
        sink = WebhookSink(config)
        delivery = sink.send(make_alerts(1))
        sink.close()

    assert delivery.delivered == 0
    assert server.requests == []
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.failures[0]

