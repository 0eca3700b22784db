"""Tests of the real Alertmanager and Pushgateway processes started by scripts.services."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway

from scripts.fake_receivers import NotificationManagerServer, decode_webhook_payload
from scripts.services import AlertmanagerProcess, PushgatewayProcess, ServiceError


def unique_value() -> str:
    return uuid.uuid4().hex[:12]


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class TestAlertmanager:
    def test_posted_alert_read_back(self, alertmanager: AlertmanagerProcess) -> None:
        run = unique_value()
        alert = {
            "labels": {"alertname": "HTTP404", "namespace": "demo", "run": run},
            "annotations": {"count": "12", "message": "12 requests returned 404"},
            "endsAt": rfc3339(datetime.now(UTC) + timedelta(minutes=30)),
        }

        response = alertmanager.post_alerts([alert])
        stored = alertmanager.alerts([f'run="{run}"'])

        assert response.status_code == 200
        assert len(stored) == 1
        assert stored[0]["labels"] == alert["labels"]
        assert stored[0]["annotations"] == alert["annotations"]
        assert stored[0]["status"]["state"] == "active"

    def test_repost_updates_annotations_of_same_alert(
        self, alertmanager: AlertmanagerProcess
    ) -> None:
        labels = {"alertname": "HTTP404", "run": unique_value()}

        alertmanager.post_alerts([{"labels": labels, "annotations": {"count": "1"}}])
        alertmanager.post_alerts([{"labels": labels, "annotations": {"count": "2"}}])
        stored = alertmanager.alerts([f'run="{labels["run"]}"'])

        assert len(stored) == 1
        assert stored[0]["annotations"] == {"count": "2"}

    def test_start_after_end_returns_400(self, alertmanager: AlertmanagerProcess) -> None:
        now = datetime.now(UTC)
        run = unique_value()
        alert = {
            "labels": {"alertname": "HTTP404", "run": run},
            "startsAt": rfc3339(now),
            "endsAt": rfc3339(now - timedelta(hours=1)),
        }

        response = alertmanager.post_alerts([alert])

        assert response.status_code == 400
        assert "start time must be before end time" in response.text
        assert alertmanager.alerts([f'run="{run}"']) == []

    def test_replicas_store_independently(
        self, alertmanager_replicas: tuple[AlertmanagerProcess, AlertmanagerProcess]
    ) -> None:
        first, second = alertmanager_replicas
        run = unique_value()

        first.post_alerts([{"labels": {"alertname": "HTTP404", "run": run}}])

        assert first.port != second.port
        assert len(first.alerts([f'run="{run}"'])) == 1
        assert second.alerts([f'run="{run}"']) == []

    def test_webhook_reaches_fake_notification_manager(
        self, nm_server: NotificationManagerServer
    ) -> None:
        run = unique_value()

        with AlertmanagerProcess(webhook_url=nm_server.url) as alertmanager:
            alertmanager.post_alerts([{"labels": {"alertname": "HTTP404", "run": run}}])
            (payload,) = nm_server.wait_for(1, timeout=20.0)

        # The real Alertmanager's webhook payload must pass the fake's contract checks.
        decode_webhook_payload(nm_server.requests[0].body)
        assert payload["version"] == "4"
        assert payload["alerts"][0]["labels"] == {"alertname": "HTTP404", "run": run}

    def test_non_loopback_webhook_rejected(self) -> None:
        with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
            AlertmanagerProcess(webhook_url="http://alerts.example.com/hook")

    def test_stop_removes_state(self) -> None:
        alertmanager = AlertmanagerProcess().start()
        state_dir = alertmanager.state_dir
        url = alertmanager.url

        alertmanager.stop()

        assert not state_dir.exists()
        assert not alertmanager.is_running
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/-/ready", trust_env=False)


class TestMissingBinary:
    def test_binary_not_on_path(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PATH", str(tmp_path))

        with pytest.raises(ServiceError, match="apt-get install -y prometheus-alertmanager"):
            AlertmanagerProcess().start()

    def test_binary_path_missing(self, tmp_path: Path) -> None:
        process = PushgatewayProcess(binary=tmp_path / "prometheus-pushgateway")

        with pytest.raises(ServiceError, match="apt-get install -y prometheus-pushgateway"):
            process.start()

    def test_failing_binary_reports_log(self, tmp_path: Path) -> None:
        binary = tmp_path / "fails"
        binary.write_text("#!/bin/sh\necho 'config is broken' >&2\nexit 3\n", encoding="utf-8")
        binary.chmod(0o755)

        with pytest.raises(ServiceError, match="exited with code 3") as raised:
            PushgatewayProcess(binary=binary).start()

        assert "config is broken" in str(raised.value)


class TestPushgateway:
    def test_pushed_metrics_read_back(self, pushgateway: PushgatewayProcess) -> None:
        job = f"batchalert-{unique_value()}"
        registry = CollectorRegistry()
        Gauge("batchalert_last_success_timestamp_seconds", "Last success.", registry=registry).set(
            1_750_000_000
        )
        Counter("batchalert_alerts", "Alerts sent.", registry=registry).inc(3)

        push_to_gateway(pushgateway.address, job=job, registry=registry)
        group = pushgateway.find_group(job)

        assert group is not None
        gauge = group["batchalert_last_success_timestamp_seconds"]["metrics"][0]
        assert float(gauge["value"]) == 1_750_000_000
        counter = group["batchalert_alerts_total"]["metrics"][0]
        assert float(counter["value"]) == 3

    def test_metrics_text_lists_pushed_metric(self, pushgateway: PushgatewayProcess) -> None:
        job = f"batchalert-{unique_value()}"
        registry = CollectorRegistry()
        Gauge("batchalert_records_read", "Records read.", registry=registry).set(42)

        push_to_gateway(pushgateway.address, job=job, registry=registry)

        lines = pushgateway.metrics_text().splitlines()
        assert f'batchalert_records_read{{instance="",job="{job}"}} 42' in lines

    def test_grouping_key_separates_groups(self, pushgateway: PushgatewayProcess) -> None:
        job = f"batchalert-{unique_value()}"
        registry = CollectorRegistry()
        Gauge("batchalert_up", "Up.", registry=registry).set(1)

        push_to_gateway(pushgateway.address, job=job, registry=registry,
                        grouping_key={"cluster": "a"})  # fmt: skip

        assert pushgateway.find_group(job, cluster="a") is not None
        assert pushgateway.find_group(job) is None
