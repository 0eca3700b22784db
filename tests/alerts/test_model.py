"""Alert identity, annotations, times and templates."""

from __future__ import annotations

import pytest

from batchalert.alerts import AlertRenderer, build_alerts, format_time
from batchalert.alerts.model import LABEL_MAX_CHARS
from batchalert.config import RuleConfig, TemplateConfig
from batchalert.errors import ConfigError
from batchalert.rules import RunAggregator
from tests.frames import access, frame


def alerts_for(rows, rule=None, language="en", templates=None):  # type: ignore[no-untyped-def]
    aggregator = RunAggregator([rule or RuleConfig()])
    aggregator.add(frame(rows))
    return build_alerts(aggregator.groups(), "c1", AlertRenderer(language, templates))


def test_labels_hold_identity_only() -> None:
    alert = alerts_for([access(), access(second=4)])[0]

    assert alert.labels == {
        "alertname": "HTTP404", "rule": "http-404", "severity": "warning",
        "rule_level": "namespace", "cluster": "c1", "namespace": "demo-project",
        "workload": "wordpress-v1", "method": "GET", "path": "/notfound",
    }
    assert alert.annotations["count"] == "2"
    assert alert.annotations["first_seen"] == "2021-08-25T01:54:00.000Z"
    assert alert.annotations["last_seen"] == "2021-08-25T01:54:04.000Z"


def test_fingerprint_ignores_counts_and_times() -> None:
    one = alerts_for([access()])[0]
    many = alerts_for([access(second=s) for s in range(5)])[0]

    assert one.fingerprint == many.fingerprint
    assert one.annotations["count"] != many.annotations["count"]


def test_times_come_from_records() -> None:
    alert = alerts_for([access(second=3), access(second=9)])[0]

    payload = alert.to_dict()
    assert payload["startsAt"] == "2021-08-25T01:54:03.000Z"
    assert payload["endsAt"] == "2021-08-25T01:54:09.000Z"
    assert payload["status"] == "firing"


def test_long_path_label_is_bounded_and_distinct() -> None:
    base = "/export?" if False else "/export/"
    rows = [access(path=base + "a" * 500), access(path=base + "a" * 499 + "b")]

    alerts = alerts_for(rows, RuleConfig(path_normalization={"collapse_ids": False}))

    paths = [a.labels["path"] for a in alerts]
    assert all(len(p) <= LABEL_MAX_CHARS for p in paths)
    assert paths[0] != paths[1]


def test_message_in_english_and_chinese() -> None:
    english = alerts_for([access()])[0].annotations["message"]
    chinese = alerts_for([access()], language="zh-CN")[0].annotations["message"]

    assert "1 HTTP 404 response to GET /notfound" in english
    assert "wordpress-v1" in english
    assert "返回了 1 次 HTTP 404" in chinese


def test_log_content_is_data_not_template() -> None:
    alert = alerts_for([access(path="/{{ 7 * 7 }}{% raw %}")])[0]

    assert "/{{ 7 * 7 }}{% raw %}" in alert.annotations["message"]
    assert "49" not in alert.annotations["message"]


def test_custom_template_is_used() -> None:
    templates = TemplateConfig(message="{{ count }} x {{ path }}")

    alert = alerts_for([access()], templates=templates)[0]

    assert alert.annotations["message"] == "1 x /notfound"


def test_broken_template_fails_at_load() -> None:
    with pytest.raises(ConfigError, match=r"templates\.message"):
        AlertRenderer("en", TemplateConfig(message="{% if %}"))


def test_sandbox_blocks_internals() -> None:
    templates = TemplateConfig(message="{{ pods.__class__.__mro__ }}")

    with pytest.raises(ConfigError):
        alerts_for([access()], templates=templates)


def test_format_time_is_rfc3339_utc() -> None:
    from datetime import datetime, timedelta, timezone

    moment = datetime(2021, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))

    assert format_time(moment) == "2021-01-01T00:00:00.000Z"


def test_unknown_variable_fails_check() -> None:
    renderer = AlertRenderer("en", TemplateConfig(slack="{{ no_such_value }}"))

    with pytest.raises(ConfigError, match=r"templates\.slack"):
        renderer.check([RuleConfig()])


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_builtin_templates_pass_check(language: str) -> None:
    rules = [RuleConfig(), RuleConfig(name="r", group_by=["namespace"],
                                      ratio={"min_ratio": 0.1})]

    AlertRenderer(language).check(rules)
