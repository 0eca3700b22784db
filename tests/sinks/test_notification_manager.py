"""The Notification Manager sink: payload shape, one POST per namespace, failures."""

from __future__ import annotations

import json

import httpx

from batchalert.alerts import AlertRenderer, build_alerts
from batchalert.config import ReceiverConfig, RuleConfig
from batchalert.rules import RunAggregator
from batchalert.sinks.notification_manager import NotificationManagerSink
from tests.frames import access, frame
from tests.sinks.fakes import FakeClock

URL = "http://127.0.0.1:19093/api/v2/alerts"


def make_alerts():  # type: ignore[no-untyped-def]
    aggregator = RunAggregator([RuleConfig()])
    aggregator.add(frame([access(), access(path="/b"), access(namespace="shop", pod="web-0")]))
    return build_alerts(aggregator.groups(), "c1", AlertRenderer())


def sink_with(handler, budget: float = 0) -> NotificationManagerSink:  # type: ignore[no-untyped-def]
    client = httpx.Client(transport=httpx.MockTransport(handler))
    config = ReceiverConfig(url=URL, retry_budget_seconds=budget)
    return NotificationManagerSink(config, client, clock=FakeClock())


def test_one_post_per_namespace_in_webhook_shape() -> None:
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"Status": 200, "Message": "ok"})

    delivery = sink_with(handler).send(make_alerts())

    assert delivery.ok
    assert delivery.delivered == 3
    assert [b["groupLabels"] for b in bodies] == [{"namespace": "demo-project"},
                                                  {"namespace": "shop"}]
    first = bodies[0]
    assert first["version"] == "4"
    assert first["status"] == "firing"
    assert first["commonLabels"]["namespace"] == "demo-project"
    assert all(isinstance(a["labels"], dict) for a in first["alerts"])
    assert len(first["alerts"]) == 2


def test_error_answer_counts_undelivered() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        namespace = json.loads(request.content)["groupLabels"]["namespace"]
        if namespace == "shop":
            return httpx.Response(500, text="panic")
        return httpx.Response(200)

    delivery = sink_with(handler).send(make_alerts())

    assert not delivery.ok
    assert delivery.delivered == 2
    assert delivery.undelivered == 1
    assert "HTTP 500" in delivery.failures[0]
    assert URL in delivery.failures[0]


def test_refused_connection_is_a_failure() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    delivery = sink_with(handler).send(make_alerts())

    assert delivery.delivered == 0
    assert "cannot connect" in delivery.failures[0]


def test_timeout_is_a_failure() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    delivery = sink_with(handler).send(make_alerts())

    assert delivery.delivered == 0
    assert "did not answer in time" in delivery.failures[0]


def test_server_error_is_retried_within_budget() -> None:
    answers = iter([httpx.Response(500, text="Running out of queue capacity"),
                    httpx.Response(503), httpx.Response(200)])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers) if json.loads(request.content)["groupLabels"]["namespace"] == \
            "demo-project" else httpx.Response(200)

    delivery = sink_with(handler, budget=60).send(make_alerts())

    assert delivery.ok
    assert delivery.delivered == 3


def test_bad_request_is_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(400, json={"Status": 400, "Message": "EOF"})

    delivery = sink_with(handler, budget=60).send(make_alerts())

    assert delivery.delivered == 0
    assert len(calls) == 2
    assert "HTTP 400" in delivery.failures[0]


def test_notification_grouping_is_configurable() -> None:
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    config = ReceiverConfig(url=URL, group_by=["namespace", "path"], retry_budget_seconds=0)
    NotificationManagerSink(config, client).send(make_alerts())

    assert [b["groupLabels"] for b in bodies] == [
        {"namespace": "demo-project", "path": "/b"},
        {"namespace": "demo-project", "path": "/notfound"},
        {"namespace": "shop", "path": "/notfound"},
    ]
