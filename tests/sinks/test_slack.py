"""The Slack sink against a local fake Slack webhook: layout, limits, escaping, retries, secrets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from batchalert.alerts import AlertRenderer, build_alerts
from batchalert.alerts.model import Alert
from batchalert.config import (
    ReceiverAuth,
    ReceiverConfig,
    RuleConfig,
    SecretRef,
    TemplateConfig,
)
from batchalert.rules import RunAggregator
from batchalert.sinks.registry import create_sink
from batchalert.sinks.slack import (
    MAX_BLOCKS,
    SECTION_MAX_CHARS,
    SlackSink,
    cut_escaped,
    escape_mrkdwn,
)
from scripts.fake_receivers import LocalCertificates, SlackWebhookServer
from tests.frames import access, frame
from tests.sinks.fakes import FakeClock

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
# The secret parts of the fake server's webhook path, which must never be shown.
SECRET_PARTS = ("T00000000", "B00000000", "XXXXXXXXXXXXXXXXXXXXXXXX")
# Characters Kubernetes uses in generated pod name suffixes.
POD_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def alerts_from(rows: list[dict[str, Any]], renderer: AlertRenderer | None = None,
                max_alerts: int = 100) -> list[Alert]:
    aggregator = RunAggregator([RuleConfig(max_alerts=max_alerts)])
    aggregator.add(frame(rows))
    return build_alerts(aggregator.groups(), "c1", renderer or AlertRenderer())


def distinct_alerts(count: int) -> list[Alert]:
    return alerts_from([access(path=f"/missing/p{i}") for i in range(count)])


def slack_sink(url: str, clock: FakeClock | None = None, renderer: AlertRenderer | None = None,
               **settings: Any) -> SlackSink:
    config = ReceiverConfig(name="slack", type="slack", url=url, **settings)
    return SlackSink(config, renderer=renderer, clock=clock or FakeClock(NOW))


def send(server: SlackWebhookServer, alerts: list[Alert], **options: Any) -> Any:
    sink = slack_sink(server.url, **options)
    try:
        return sink.send(alerts)
    finally:
        sink.close()


def section_texts(message: dict[str, Any]) -> list[str]:
    return [block["text"]["text"] for block in message["blocks"]]


# Layout


def test_one_message_per_run(slack_server: SlackWebhookServer) -> None:
    alerts = alerts_from([access(), access(second=2), access(path="/b")])

    delivery = send(slack_server, alerts)

    assert delivery.ok
    assert delivery.delivered == 2
    [message] = slack_server.received
    texts = section_texts(message)
    assert len(texts) == 3
    assert texts[0] == "*2 alerts* in cluster `c1`: 2 firing, 0 resolved"
    assert texts[1].startswith("*2\u00d7 HTTP 404* `GET /notfound` from "
                               "`demo-project/wordpress-v1`")
    assert "Pods: wordpress-v1-f54f697c5-hdn2z" in texts[1]
    assert message["text"].startswith(texts[0])


def test_no_alerts_posts_nothing(slack_server: SlackWebhookServer) -> None:
    delivery = send(slack_server, [])

    assert delivery.ok
    assert slack_server.requests == []


def test_firing_first_then_by_count(slack_server: SlackWebhookServer) -> None:
    alerts = alerts_from([access(path="/one"), *[access(path="/many", second=s) for s in
                                                 range(3)]])
    resolved = Alert({"alertname": "HTTP404", "cluster": "c1"}, {"summary": "old", "count": "9"},
                     NOW, NOW, status="resolved")

    send(slack_server, [resolved, *reversed(alerts)])

    texts = section_texts(slack_server.received[0])
    assert "/many" in texts[1]
    assert "/one" in texts[2]
    assert texts[3].startswith("*Resolved:* old")


def test_resolved_alert_shows_detail(slack_server: SlackWebhookServer) -> None:
    resolved = Alert({"alertname": "HTTP404", "cluster": "c1"},
                     {"summary": "HTTP 404 on GET /<x>", "resolved": "no matching requests"},
                     NOW, NOW, status="resolved")

    send(slack_server, [resolved])

    texts = section_texts(slack_server.received[0])
    assert texts[0] == "*1 alerts* in cluster `c1`: 0 firing, 1 resolved"
    assert texts[1] == "*Resolved:* HTTP 404 on GET /&lt;x&gt;\nno matching requests"


def test_chinese_phrases(slack_server: SlackWebhookServer) -> None:
    renderer = AlertRenderer("zh-CN")

    send(slack_server, alerts_from([access()], renderer), renderer=renderer)

    texts = section_texts(slack_server.received[0])
    assert texts[0].startswith("集群 `c1` 中有 *1 条告警*")
    assert "次 HTTP 404" in texts[1]


# Limits


def test_block_limit_counts_left_out(slack_server: SlackWebhookServer) -> None:
    alerts = distinct_alerts(60)

    delivery = send(slack_server, alerts)

    assert delivery.delivered == 60
    [message] = slack_server.received
    assert len(message["blocks"]) == MAX_BLOCKS
    assert section_texts(message)[-1] == (
        "…and 12 more alerts not shown (12 firing, 0 resolved)")


def test_block_limit_exact_fit_shows_all(slack_server: SlackWebhookServer) -> None:
    send(slack_server, distinct_alerts(MAX_BLOCKS - 1))

    texts = section_texts(slack_server.received[0])
    assert len(texts) == MAX_BLOCKS
    assert not any("more alerts not shown" in text for text in texts)


def test_section_limit_and_pod_count(slack_server: SlackWebhookServer) -> None:
    # ReplicaSet pod names, so that all 40 pods belong to one workload and one alert.
    pods = [f"wordpress-v1-f54f697c5-{POD_CHARS[i % 27]}{POD_CHARS[i // 27]}zzz" for i in range(40)]
    # 500 `&` escape to 2,500 characters: headline and pods fit, a sample line does not.
    rows = [access(pod=pod, path="/x" + "&" * 500) for pod in pods]

    delivery = send(slack_server, alerts_from(rows))

    assert delivery.ok
    text = section_texts(slack_server.received[0])[1]
    assert len(text) <= SECTION_MAX_CHARS
    assert "and 35 more" in text
    assert "`203.0.113.9" not in text


def test_long_headline_cut_within_limit(slack_server: SlackWebhookServer) -> None:
    rows = [access(path="/" + "<" * 4000)]

    delivery = send(slack_server, alerts_from(rows))

    assert delivery.ok
    message = slack_server.received[0]
    text = section_texts(message)[1]
    assert SECTION_MAX_CHARS - len("&lt;") <= len(text) <= SECTION_MAX_CHARS
    assert text.endswith("&lt;…")
    assert len(message["text"]) <= 3000


def test_cut_escaped_keeps_entities_whole() -> None:
    text = escape_mrkdwn("a" * 8 + "<<<")

    cut = cut_escaped(text, 12)

    assert cut == "aaaaaaaa…"


# Escaping


def test_log_values_escaped(slack_server: SlackWebhookServer) -> None:
    rows = [access(path="/<!channel>"), access(path="/a&b<https://example.com|Reset password>")]

    send(slack_server, alerts_from(rows))

    body = json.dumps(slack_server.received[0], ensure_ascii=False)
    assert "<!channel>" not in body
    assert "<https://example.com" not in body
    assert "&lt;!channel&gt;" in body
    assert "/a&amp;b&lt;https://example.com|Reset password&gt;" in body


def test_template_text_not_escaped(slack_server: SlackWebhookServer) -> None:
    renderer = AlertRenderer(overrides=TemplateConfig(
        slack="<https://runbook.example/404|Runbook> {{ path }}"))

    send(slack_server, alerts_from([access(path="/<!here>")], renderer), renderer=renderer)

    text = section_texts(slack_server.received[0])[1]
    assert text.startswith("<https://runbook.example/404|Runbook> /&lt;!here&gt;")


def test_samples_escaped_in_code_span(slack_server: SlackWebhookServer) -> None:
    send(slack_server, alerts_from([access(path="/a`b<c>")]))

    text = section_texts(slack_server.received[0])[1]
    assert '`203.0.113.9 - - "GET /a\'b&lt;c&gt; HTTP/1.1" 404 1`' in text


# Retries and errors


def test_rate_limit_waits_retry_after(slack_server: SlackWebhookServer) -> None:
    slack_server.fail_next(1, 429, retry_after=3)
    clock = FakeClock(NOW)

    delivery = send(slack_server, distinct_alerts(1), clock=clock)

    assert delivery.ok
    assert clock.sleeps == [3.0]
    assert [r.status for r in slack_server.requests] == [429, 200]


def test_server_error_retried(slack_server: SlackWebhookServer) -> None:
    slack_server.fail_next(2, 500)
    clock = FakeClock(NOW)

    delivery = send(slack_server, distinct_alerts(1), clock=clock)

    assert delivery.ok
    assert clock.sleeps == [1.0, 2.0]
    assert len(slack_server.received) == 1


def test_budget_exhausted_fails(slack_server: SlackWebhookServer) -> None:
    slack_server.fail_next(20, 500)
    clock = FakeClock(NOW)

    delivery = send(slack_server, distinct_alerts(1), clock=clock, retry_budget_seconds=10)

    assert delivery.delivered == 0
    assert sum(clock.sleeps) <= 10
    assert len(slack_server.requests) == len(clock.sleeps) + 1
    assert "rollup_error" in delivery.failures[0]
    assert "retry budget of 10 s" in delivery.failures[0]


def test_no_service_is_permanent(slack_server: SlackWebhookServer) -> None:
    slack_server.fail_next(1, 404)
    clock = FakeClock(NOW)

    delivery = send(slack_server, distinct_alerts(1), clock=clock)

    assert delivery.delivered == 0
    assert len(slack_server.requests) == 1
    assert clock.sleeps == []
    assert "HTTP 404 no_service: webhook revoked" in delivery.failures[0]


@pytest.mark.parametrize(("status", "body", "meaning"), [
    (400, None, "invalid_payload: Slack could not read the message"),
    (403, None, "action_prohibited: a workspace admin restricted posting"),
    (404, "channel_not_found", "channel_not_found: the webhook's channel was deleted"),
    (410, None, "channel_is_archived: the webhook's channel is archived"),
])
def test_permanent_errors_explained(slack_server: SlackWebhookServer, status: int,
                                    body: str | None, meaning: str) -> None:
    slack_server.fail_next(1, status, body)

    delivery = send(slack_server, distinct_alerts(1))

    assert len(slack_server.requests) == 1
    assert f"HTTP {status} {meaning}" in delivery.failures[0]


def test_secret_path_never_shown(slack_server: SlackWebhookServer,
                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="batchalert")
    slack_server.fail_next(1, 500)
    slack_server.fail_next(1, 404)

    delivery = send(slack_server, distinct_alerts(1))

    failure = delivery.failures[0]
    assert f"{slack_server.base_url}/*** returned HTTP 404 no_service" in failure
    batchalert_logs = "\n".join(r.getMessage() for r in caplog.records
                                if r.name.startswith("batchalert"))
    assert f"{slack_server.base_url}/***" in batchalert_logs
    for part in SECRET_PARTS:
        assert part not in failure
        assert part not in batchalert_logs


def test_refused_connection_masked(slack_server: SlackWebhookServer) -> None:
    url = slack_server.url
    slack_server.stop()

    sink = slack_sink(url, retry_budget_seconds=0)
    delivery = sink.send(distinct_alerts(1))
    sink.close()

    assert "cannot connect to" in delivery.failures[0]
    assert all(part not in delivery.failures[0] for part in SECRET_PARTS)


def test_url_from_environment(slack_server: SlackWebhookServer,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SLACK_WEBHOOK", slack_server.url)
    config = ReceiverConfig(name="slack", type="slack", url_env="TEST_SLACK_WEBHOOK")

    sink = create_sink(config, renderer=AlertRenderer())
    delivery = sink.send(distinct_alerts(1))
    sink.close()

    assert isinstance(sink, SlackSink)
    assert delivery.ok
    assert slack_server.requests[0].path == slack_server.endpoint_path


def test_https_custom_ca_and_bearer(local_certificates: LocalCertificates,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SLACK_TOKEN", "slack-token-1")
    server = SlackWebhookServer(tls_cert=local_certificates.server_cert,
                                tls_key=local_certificates.server_key,
                                bearer_token="slack-token-1")
    with server:
        delivery = send(server, distinct_alerts(1), ca_file=local_certificates.ca_cert,
                        auth=ReceiverAuth(type="bearer",
                                          token=SecretRef(env="TEST_SLACK_TOKEN")))

    assert delivery.ok
    assert server.requests[0].headers["authorization"] == "Bearer slack-token-1"
    assert server.url.startswith("https://")
