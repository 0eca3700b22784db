"""Structured run events as JSON log lines, and masking of receiver URLs."""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from batchalert.config import build_job
from batchalert.events import (
    log_commit,
    log_partition_range,
    log_post,
    log_run_end,
    log_run_start,
    mask_url,
)
from batchalert.logs import JsonFormatter
from batchalert.pipeline import RunOptions, RunResult
from batchalert.rules.aggregate import RunCounts
from batchalert.sinks.base import Delivery
from batchalert.source.plan import PartitionRange, ReadPlan


class JsonLines:
    """The JSON objects that JsonFormatter wrote for the events logger."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    def objects(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._stream.getvalue().splitlines()]

    def only(self) -> dict[str, Any]:
        (entry,) = self.objects()
        return entry


@pytest.fixture
def json_lines() -> Iterator[JsonLines]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    events_logger = logging.getLogger("batchalert.events")
    level = events_logger.level
    events_logger.addHandler(handler)
    events_logger.setLevel(logging.INFO)
    try:
        yield JsonLines(stream)
    finally:
        events_logger.removeHandler(handler)
        events_logger.setLevel(level)


def make_result() -> RunResult:
    plan = ReadPlan("logs", "batchalert-test", (PartitionRange(0, 10, 20, "committed", 10),))
    counts = RunCounts(records=10, access=7, other=2, malformed=1,
                       malformed_by_reason=Counter({"invalid_json": 1}),
                       matches_by_rule=Counter({"http-404": 3}))
    deliveries = [Delivery("kubesphere", required=True, attempted=1, delivered=1)]
    return RunResult(plan=plan, counts=counts, deliveries=deliveries, next_offsets={0: 20},
                     records_read=10, bytes_read=2048, committed=True,
                     commit_note="offsets committed", seconds=1.25)


class TestEventLines:
    def test_run_start(self, json_lines: JsonLines) -> None:
        job = build_job({"name": "wordpress-404",
                         "source": {"brokers": ["kafka.example.com:9092"], "topic": "logs",
                                    "group": "batchalert-wordpress-404"}}, "test")

        log_run_start(job, RunOptions(since_seconds=3600.0, max_records=500))

        entry = json_lines.only()
        assert entry["level"] == "info"
        assert entry["event"] == "run_start"
        assert entry["job"] == "wordpress-404"
        assert entry["topic"] == "logs"
        assert entry["group"] == "batchalert-wordpress-404"
        assert entry["since_seconds"] == 3600.0
        assert entry["commits"] is False
        assert entry["max_records"] == 500

    def test_partition_range(self, json_lines: JsonLines) -> None:
        log_partition_range(PartitionRange(2, 40, 75, "committed", 40))

        entry = json_lines.only()
        assert entry["event"] == "partition_range"
        assert entry["partition"] == 2
        assert entry["start_offset"] == 40
        assert entry["end_offset"] == 75
        assert entry["origin"] == "committed"
        assert entry["committed_offset"] == 40
        assert entry["span"] == 35

    def test_post(self, json_lines: JsonLines) -> None:
        url = "http://alertmanager.example.com:9093/api/v2/alerts"

        log_post("alertmanager", url, 200, 4)

        entry = json_lines.only()
        assert entry["event"] == "post"
        assert entry["receiver"] == "alertmanager"
        assert entry["url"] == url
        assert entry["status"] == 200
        assert entry["count"] == 4
        assert entry["message"].startswith("posted 4 alerts to receiver alertmanager")

    def test_post_single_alert_wording(self, json_lines: JsonLines) -> None:
        log_post("alertmanager", "http://127.0.0.1:9/api/v2/alerts", 200, 1)

        assert json_lines.only()["message"].startswith("posted 1 alert to receiver")

    def test_post_without_response(self, json_lines: JsonLines) -> None:
        log_post("alertmanager", "http://alertmanager.example.com:9093/api/v2/alerts", None, 4)

        entry = json_lines.only()
        assert entry["status"] is None
        assert "no response" in entry["message"]

    def test_post_masks_unmasked_url(self, json_lines: JsonLines) -> None:
        log_post("slack", "https://hooks.slack.com/services/T000/B000/s3cr3t", 200, 1)

        line = json.dumps(json_lines.only())
        assert "s3cr3t" not in line
        assert "https://hooks.slack.com/***" in line

    def test_commit(self, json_lines: JsonLines) -> None:
        log_commit({1: 30, 0: 150})

        entry = json_lines.only()
        assert entry["event"] == "commit"
        assert entry["offsets"] == {"0": 150, "1": 30}
        assert "0: 150, 1: 30" in entry["message"]

    def test_run_end(self, json_lines: JsonLines) -> None:
        log_run_end(make_result())

        entry = json_lines.only()
        assert entry["event"] == "run_end"
        assert entry["records_read"] == 10
        assert entry["bytes_read"] == 2048
        assert entry["malformed_records"] == 1
        assert entry["matches"] == 3
        assert entry["alerts"] == 0
        assert entry["committed"] is True
        assert entry["deliveries"] == {
            "kubesphere": {"attempted": 1, "delivered": 1, "ok": True}}
        assert entry["seconds"] == 1.25


MASK_CASES = [
    ("http://notification-manager-svc.kubesphere-monitoring-system.svc:19093/api/v2/alerts",
     "http://notification-manager-svc.kubesphere-monitoring-system.svc:19093/api/v2/alerts"),
    ("https://hooks.slack.com/services/T000/B000/s3cr3t", "https://hooks.slack.com/***"),
    ("https://user:s3cr3t@alertmanager.example.com:9093/api/v2/alerts",
     "https://***@alertmanager.example.com:9093/api/v2/alerts"),
    ("https://hook.example.com/api/v2/alerts?token=s3cr3t",
     "https://hook.example.com/api/v2/alerts?***"),
    ("https://hook.example.com/notify#s3cr3t", "https://hook.example.com/***#***"),
    ("http://[::1]:8080/hooks/s3cr3t", "http://[::1]:8080/***"),
    ("http://pushgateway.example.com:9091", "http://pushgateway.example.com:9091"),
    ("http://pushgateway.example.com:9091/", "http://pushgateway.example.com:9091/"),
    ("hooks.slack.com/services/s3cr3t", "***"),
    ("http://hook.example.com:notaport/s3cr3t", "***"),
    ("", "***"),
]


class TestMaskUrl:
    @pytest.mark.parametrize(("url", "expected"), MASK_CASES)
    def test_masked_form(self, url: str, expected: str) -> None:
        assert mask_url(url) == expected

    @pytest.mark.parametrize(("url", "expected"), MASK_CASES)
    def test_secret_removed(self, url: str, expected: str) -> None:
        assert "s3cr3t" not in mask_url(url)

    @pytest.mark.parametrize(("url", "expected"), MASK_CASES)
    def test_masking_twice_unchanged(self, url: str, expected: str) -> None:
        assert mask_url(mask_url(url)) == mask_url(url)
