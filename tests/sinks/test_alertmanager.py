"""The Alertmanager sink: payloads, times and label names, replicas, and a real Alertmanager."""

from __future__ import annotations

import json
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from batchalert.alerts import AlertRenderer, build_alerts
from batchalert.alerts.model import Alert
from batchalert.config import ReceiverAuth, ReceiverConfig, RuleConfig, SecretRef
from batchalert.rules import RunAggregator
from batchalert.sinks.alertmanager import (
    BATCH_ALERTS,
    AlertmanagerSink,
    CleanedNames,
    alert_times,
    api_url,
    clean_label_set,
    label_name,
    valid_utf8,
)
from batchalert.sinks.registry import create_sink
from scripts.fake_receivers import LocalCertificates
from scripts.services import AlertmanagerProcess
from tests.frames import access, frame
from tests.sinks.fakes import FakeClock
from tests.sinks.test_webhook import https_server

URL = "http://127.0.0.1:9093"
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def make_alerts(rows: list[dict[str, Any]] | None = None, cluster: str = "c1") -> list[Alert]:
    aggregator = RunAggregator([RuleConfig()])
    aggregator.add(frame(rows or [access(), access(path="/b"), access(second=5)]))
    return build_alerts(aggregator.groups(), cluster, AlertRenderer())


def unique_cluster() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def sink_with(handler: Any, clock: FakeClock | None = None, **settings: Any) -> AlertmanagerSink:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    config = ReceiverConfig(name="am", type="alertmanager", **{"url": URL, **settings})
    return AlertmanagerSink(config, client, clock=clock or FakeClock(NOW))


def accept_all(bodies: list[Any]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append((str(request.url), json.loads(request.content)))
        return httpx.Response(200)

    return handler


def resolved_alert(labels: dict[str, str], ends_at: datetime) -> Alert:
    return Alert(labels=labels, annotations={"summary": "gone"},
                 starts_at=ends_at - timedelta(hours=1), ends_at=ends_at, status="resolved")


# Label names and values


@pytest.mark.parametrize(("name", "expected"), [
    ("alertname", "alertname"),
    ("_private", "_private"),
    ("app.kubernetes.io/name", "app_kubernetes_io_name"),
    ("bad-name", "bad_name"),
    ("9lives", "_9lives"),
    ("név", "n_v"),
])
def test_label_name_portable_form(name: str, expected: str) -> None:
    assert label_name(name) == expected


def test_clean_labels_drops_empty_values() -> None:
    cleaned = clean_label_set({"alertname": "A", "path": ""}, drop_empty=True,
                              notes=CleanedNames())

    assert cleaned == {"alertname": "A"}


def test_clean_labels_valid_name_wins_collision() -> None:
    notes = CleanedNames()

    cleaned = clean_label_set({"a-b": "rewritten", "a_b": "original"}, drop_empty=True,
                              notes=notes)

    assert cleaned == {"a_b": "original"}
    assert notes.dropped == {"a-b"}


def test_clean_annotations_keep_empty_values() -> None:
    cleaned = clean_label_set({"samples": ""}, drop_empty=False, notes=CleanedNames())

    assert cleaned == {"samples": ""}


def test_valid_utf8_replaces_lone_surrogates() -> None:
    assert valid_utf8("a\ud800b") == "a\ufffdb"
    assert valid_utf8("\ud83d\ude00") == "\U0001f600"
    assert valid_utf8("plain") == "plain"


def test_api_url_appends_path_once() -> None:
    assert api_url("http://am:9093") == "http://am:9093/api/v2/alerts"
    assert api_url("http://am:9093/") == "http://am:9093/api/v2/alerts"
    assert api_url("http://host/alertmanager") == "http://host/alertmanager/api/v2/alerts"
    assert api_url("http://am:9093/api/v2/alerts") == "http://am:9093/api/v2/alerts"


# Times


def test_firing_alert_ends_after_setting() -> None:
    alert = make_alerts()[0]

    starts, ends = alert_times(alert, NOW, timedelta(minutes=15))

    assert starts == alert.starts_at
    assert ends == NOW + timedelta(minutes=15)


def test_future_start_is_clamped_to_now() -> None:
    alert = make_alerts()[0]
    skewed = Alert(alert.labels, alert.annotations, starts_at=NOW + timedelta(hours=2),
                   ends_at=NOW + timedelta(hours=2), group=alert.group)

    starts, ends = alert_times(skewed, NOW, timedelta(minutes=15))

    assert starts == NOW
    assert starts < ends


def test_zero_start_is_replaced() -> None:
    alert = make_alerts()[0]
    zero = Alert(alert.labels, alert.annotations, starts_at=datetime(1, 1, 1, tzinfo=UTC),
                 ends_at=NOW, group=alert.group)

    starts, _ = alert_times(zero, NOW, timedelta(minutes=15))

    assert starts == NOW


def test_resolved_alert_ends_in_past() -> None:
    ended = NOW - timedelta(minutes=30)

    starts, ends = alert_times(resolved_alert({"alertname": "A"}, ended), NOW,
                               timedelta(minutes=15))

    assert ends == ended
    assert starts < ends


def test_resolved_alert_future_end_clamped_to_now() -> None:
    alert = resolved_alert({"alertname": "A"}, NOW + timedelta(minutes=5))

    _, ends = alert_times(alert, NOW, timedelta(minutes=15))

    assert ends == NOW


def test_resolved_alert_start_after_end_moves_before() -> None:
    ended = NOW - timedelta(minutes=30)
    alert = Alert({"alertname": "A"}, {}, starts_at=ended, ends_at=ended, status="resolved")

    starts, ends = alert_times(alert, NOW, timedelta(minutes=15))

    assert starts == ended - timedelta(seconds=1)
    assert ends == ended


# Posting (mock transport)


def test_payload_is_array_with_count_annotation() -> None:
    bodies: list[Any] = []

    delivery = sink_with(accept_all(bodies), alertmanager_ends_after="10m").send(make_alerts())

    assert delivery.ok
    assert delivery.delivered == 2
    url, body = bodies[0]
    assert url == URL + "/api/v2/alerts"
    assert isinstance(body, list)
    first = body[0]
    assert set(first) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    assert "count" not in first["labels"]
    assert first["annotations"]["count"] == "2"
    assert first["startsAt"] == "2021-08-25T01:54:00.000Z"
    assert first["endsAt"] == "2025-03-01T12:10:00.000Z"


def test_posts_in_bounded_batches() -> None:
    bodies: list[Any] = []
    template = make_alerts()[0]
    alerts = [Alert({**template.labels, "path": f"/p{i}"}, template.annotations,
                    template.starts_at, template.ends_at, template.group)
              for i in range(BATCH_ALERTS * 2 + 7)]

    delivery = sink_with(accept_all(bodies)).send(alerts)

    assert [len(body) for _, body in bodies] == [BATCH_ALERTS, BATCH_ALERTS, 7]
    assert delivery.delivered == len(alerts)


def test_every_replica_gets_every_batch() -> None:
    bodies: list[Any] = []
    replicas = ["http://127.0.0.1:9093", "http://127.0.0.1:9094"]

    delivery = sink_with(accept_all(bodies), url=None, urls=replicas).send(make_alerts())

    assert delivery.delivered == 2
    assert [url for url, _ in bodies] == [r + "/api/v2/alerts" for r in replicas]


def test_one_replica_failing_undelivers_batch() -> None:
    replicas = ["http://127.0.0.1:9093", "http://127.0.0.1:9094"]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if request.url.port == 9094 else 200, text="storing failed")

    delivery = sink_with(handler, url=None, urls=replicas, retry_budget_seconds=0).send(
        make_alerts())

    assert delivery.delivered == 0
    assert delivery.undelivered == 2
    assert len(delivery.failures) == 1
    assert "http://127.0.0.1:9094/api/v2/alerts" in delivery.failures[0]
    assert "HTTP 503" in delivery.failures[0]


def test_bad_request_names_error_text() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json="start time must be before end time")

    delivery = sink_with(handler).send(make_alerts())

    assert delivery.delivered == 0
    assert "HTTP 400" in delivery.failures[0]
    assert ": start time must be before end time" in delivery.failures[0]


def test_bad_request_is_not_retried() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, json="invalid label set")

    sink_with(handler).send(make_alerts())

    assert len(calls) == 1


def test_server_error_retried_then_accepted() -> None:
    statuses = [500, 200]
    clock = FakeClock(NOW)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(statuses.pop(0))

    delivery = sink_with(handler, clock).send(make_alerts())

    assert delivery.ok
    assert clock.sleeps == [1.0]


def test_refused_connection_names_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    delivery = sink_with(handler, retry_budget_seconds=0).send(make_alerts())

    assert delivery.delivered == 0
    assert "cannot connect to http://127.0.0.1:9093/api/v2/alerts" in delivery.failures[0]
    assert "check the receiver's URL and that the receiver is running" in delivery.failures[0]


def test_timeout_is_a_failure() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    delivery = sink_with(handler, retry_budget_seconds=0).send(make_alerts())

    assert delivery.delivered == 0
    assert "did not answer in time" in delivery.failures[0]


def test_alert_without_labels_not_sent() -> None:
    bodies: list[Any] = []
    alerts = [Alert({"alertname": ""}, {"summary": "x"}, NOW, NOW)]

    delivery = sink_with(accept_all(bodies)).send(alerts)

    assert bodies == []
    assert delivery.delivered == 0
    assert "no label with a value" in delivery.failures[0]


def test_registry_creates_alertmanager_sink() -> None:
    sink = create_sink(ReceiverConfig(name="am", type="alertmanager", url=URL))

    assert isinstance(sink, AlertmanagerSink)
    assert sink.resend_firing is True
    sink.close()


def test_https_with_custom_ca_and_bearer(local_certificates: LocalCertificates,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_AM_TOKEN", "am-token-1")
    with https_server(local_certificates) as server:
        config = ReceiverConfig(
            name="am", type="alertmanager", url=server.url, ca_file=local_certificates.ca_cert,
            auth=ReceiverAuth(type="bearer", token=SecretRef(env="TEST_AM_TOKEN")),
        )
        sink = AlertmanagerSink(config)
        delivery = sink.send(make_alerts())
        sink.close()

    assert delivery.ok
    assert server.requests[0].path == "/api/v2/alerts"
    assert server.requests[0].headers["authorization"] == "Bearer am-token-1"


# A real Alertmanager


def real_sink(*urls: str, **settings: Any) -> AlertmanagerSink:
    config = ReceiverConfig(name="am", type="alertmanager", urls=list(urls), **settings)
    return AlertmanagerSink(config)


def stored(alertmanager: AlertmanagerProcess, cluster: str) -> list[dict[str, Any]]:
    return alertmanager.alerts([f'cluster="{cluster}"'])


def test_real_stores_labels_and_annotations(alertmanager: AlertmanagerProcess) -> None:
    cluster = unique_cluster()
    alerts = make_alerts([access(), access(second=3)], cluster=cluster)

    delivery = real_sink(alertmanager.url).send(alerts)

    assert delivery.ok
    [alert] = stored(alertmanager, cluster)
    assert alert["labels"] == alerts[0].labels
    assert "count" not in alert["labels"]
    assert alert["annotations"]["count"] == "2"
    assert alert["annotations"]["message"] == alerts[0].annotations["message"]
    assert alert["status"]["state"] == "active"


def test_real_resend_keeps_one_alert(alertmanager: AlertmanagerProcess) -> None:
    cluster = unique_cluster()
    sink = real_sink(alertmanager.url)
    sink.send(make_alerts([access()], cluster=cluster))
    first = stored(alertmanager, cluster)

    sink.send(make_alerts([access(second=s) for s in range(7)], cluster=cluster))

    second = stored(alertmanager, cluster)
    assert len(second) == 1
    assert second[0]["fingerprint"] == first[0]["fingerprint"]
    assert first[0]["annotations"]["count"] == "1"
    assert second[0]["annotations"]["count"] == "7"


def test_real_resolved_alert_not_active(alertmanager: AlertmanagerProcess) -> None:
    cluster = unique_cluster()
    sink = real_sink(alertmanager.url)
    [firing] = make_alerts([access()], cluster=cluster)
    sink.send([firing])
    assert len(stored(alertmanager, cluster)) == 1

    ended = datetime.now(UTC) - timedelta(minutes=1)
    delivery = sink.send([resolved_alert(firing.labels, ended)])

    assert delivery.ok
    assert stored(alertmanager, cluster) == []


def test_real_both_replicas_hold_alert(
    alertmanager_replicas: tuple[AlertmanagerProcess, AlertmanagerProcess],
) -> None:
    cluster = unique_cluster()
    first, second = alertmanager_replicas

    delivery = real_sink(first.url, second.url).send(make_alerts([access()], cluster=cluster))

    assert delivery.delivered == 1
    assert len(stored(first, cluster)) == 1
    assert len(stored(second, cluster)) == 1


def test_real_invalid_names_and_future_start(alertmanager: AlertmanagerProcess) -> None:
    cluster = unique_cluster()
    [alert] = make_alerts([access()], cluster=cluster)
    odd = Alert({**alert.labels, "app.kubernetes.io/name": "wordpress", "empty": ""},
                {**alert.annotations, "x-request-id": "abc"},
                starts_at=datetime.now(UTC) + timedelta(hours=3),
                ends_at=datetime.now(UTC) + timedelta(hours=3), group=alert.group)

    delivery = real_sink(alertmanager.url).send([odd])

    assert delivery.ok
    [stored_alert] = stored(alertmanager, cluster)
    assert stored_alert["labels"]["app_kubernetes_io_name"] == "wordpress"
    assert "empty" not in stored_alert["labels"]
    assert stored_alert["annotations"]["x_request_id"] == "abc"


def test_real_replica_down_is_a_failure(alertmanager: AlertmanagerProcess,
                                        unused_loopback_url: str) -> None:
    cluster = unique_cluster()

    delivery = real_sink(alertmanager.url, unused_loopback_url, retry_budget_seconds=0).send(
        make_alerts([access()], cluster=cluster))

    assert delivery.delivered == 0
    assert len(stored(alertmanager, cluster)) == 1
    assert f"cannot connect to {unused_loopback_url}/api/v2/alerts" in delivery.failures[0]


@pytest.fixture
def unused_loopback_url() -> str:
    """An http URL on 127.0.0.1 with nothing listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
