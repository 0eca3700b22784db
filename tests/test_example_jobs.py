"""The example jobs in jobs/, run against the real broker with local receivers."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchalert.config import JobConfig, build_job
from batchalert.pipeline import RunOptions, run_job
from tests.test_pipeline import fluent_bit_value

pytestmark = pytest.mark.kafka

JOBS = Path(__file__).resolve().parent.parent / "jobs"


def local_job(name: str, bootstrap: str, topic: str, group: str,
              receiver: dict[str, Any]) -> JobConfig:
    """Load an example job and point its source and receiver at local servers."""
    data = yaml.safe_load((JOBS / name).read_text(encoding="utf-8"))
    data["source"] = {"brokers": [bootstrap], "topic": topic, "group": group,
                      "timeout_seconds": 10}
    data["receivers"] = [{**data["receivers"][0], **receiver}]
    if "url" in receiver:
        data["receivers"][0].pop("url_env", None)
    return build_job(data, name)


def test_wordpress_404_sends_only_the_articles_pods(kafka, topic_factory, group_id,  # type: ignore[no-untyped-def]
                                                    nm_server) -> None:
    topic = topic_factory(partitions=2)
    kafka.produce(topic, [fluent_bit_value(404)] * 3 + [
        fluent_bit_value(404, namespace="shop", pod="web-7d9f8c6b5-x2k4q"),
        fluent_bit_value(404, pod="mysql-0"),
        fluent_bit_value(200),
    ])
    job = local_job("wordpress-404.yaml", kafka.bootstrap, topic, group_id,
                    {"url": nm_server.url})

    result = run_job(job, RunOptions())

    assert result.committed
    alerts = [a for p in nm_server.received for a in p["alerts"]]
    assert [(a["labels"]["namespace"], a["labels"]["workload"]) for a in alerts] == [
        ("demo-project", "wordpress-v1")]
    assert alerts[0]["labels"]["alertname"] == "HTTP404"
    assert alerts[0]["labels"]["cluster"] == "kubesphere"
    assert alerts[0]["annotations"]["count"] == "3"


def test_all_404_reaches_alertmanager(kafka, topic_factory, group_id,  # type: ignore[no-untyped-def]
                                      alertmanager) -> None:
    topic = topic_factory(partitions=3)
    namespace = f"ns-{uuid.uuid4().hex[:8]}"
    values = [fluent_bit_value(404, "/missing", namespace=namespace, pod="web-7d9f8c6b5-x2k4q")]
    values += [fluent_bit_value(404, "/rare", namespace=namespace, pod="api-0")] * 2
    values += [fluent_bit_value(404, "/healthz", namespace=namespace, pod="api-0")] * 5
    kafka.produce(topic, values * 3)
    job = local_job("all-404-alertmanager.yaml", kafka.bootstrap, topic, group_id,
                    {"urls": [alertmanager.alerts_url]})

    result = run_job(job, RunOptions())

    assert result.committed
    stored = alertmanager.alerts([f'namespace="{namespace}"'])
    assert sorted(a["labels"]["path"] for a in stored) == ["/missing", "/rare"]
    counts = {a["labels"]["path"]: a["annotations"]["count"] for a in stored}
    assert counts == {"/missing": "3", "/rare": "6"}
    assert all(a["status"]["state"] == "active" for a in stored)
    assert all(a["labels"]["severity"] == "info" for a in stored)


def test_5xx_ratio_goes_to_slack_in_chinese(kafka, topic_factory, group_id,  # type: ignore[no-untyped-def]
                                            slack_server) -> None:
    topic = topic_factory(partitions=1)
    busy = [fluent_bit_value(503, "/api", pod="shop-7d9f8c6b5-x2k4q")] * 30
    busy += [fluent_bit_value(200, "/api", pod="shop-7d9f8c6b5-x2k4q")] * 90
    calm = [fluent_bit_value(500, "/", pod="blog-0")] * 2
    calm += [fluent_bit_value(200, "/", pod="blog-0")] * 200
    kafka.produce(topic, busy + calm)
    job = local_job("5xx-ratio-slack-zh.yaml", kafka.bootstrap, topic, group_id,
                    {"url": slack_server.url})

    result = run_job(job, RunOptions())

    assert result.committed
    assert [a.labels["workload"] for a in result.alerts] == ["shop"]
    assert result.alerts[0].labels["severity"] == "critical"
    message = slack_server.received[0]
    text = yaml.safe_dump(message, allow_unicode=True)
    assert "shop" in text
    assert "25.0%" in text
    assert "次 HTTP" in text
