"""Run metrics: exposition values, the textfile, pushes to a real Pushgateway, example rules."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from batchalert import metrics
from batchalert.errors import SinkError, SourceError
from batchalert.metrics import build_registry, export_run_metrics, push_metrics, write_textfile
from batchalert.pipeline import RunResult
from batchalert.rules.aggregate import RunCounts
from batchalert.sinks.base import Delivery
from batchalert.source.plan import PartitionRange, ReadPlan
from scripts.services import PushgatewayProcess, free_port

RULES_FILE = Path(__file__).resolve().parents[1] / "docs" / "prometheus-rules.yaml"
FINISHED_AT = 1_800_000_000.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def read_families(path: Path) -> dict[str, Metric]:
    """Return the metric families of a textfile by name."""
    return {family.name: family for family in text_string_to_metric_families(path.read_text())}


def make_result(receivers: tuple[str, ...] = ("kubesphere", "slack"),
                committed: bool = True) -> RunResult:
    plan = ReadPlan("logs", "batchalert-test", (
        PartitionRange(0, 100, 150, "committed", 100),
        PartitionRange(1, 0, 30, "earliest"),
    ))
    counts = RunCounts(
        records=80, access=60, other=15, malformed=5,
        malformed_by_reason=Counter({"invalid_json": 3, "not_utf8": 2}),
        matches_by_rule=Counter({"http-404": 12, "http-5xx": 0}),
    )
    deliveries = [Delivery(name, required=True, attempted=4, delivered=4) for name in receivers]
    if "slack" in receivers:
        deliveries[receivers.index("slack")] = Delivery(
            "slack", required=False, attempted=4, delivered=1, failures=["HTTP 500"])
    return RunResult(plan=plan, counts=counts, deliveries=deliveries,
                     next_offsets={0: 150, 1: 30}, records_read=80, bytes_read=40_960,
                     committed=committed, commit_note="offsets committed", seconds=2.5)


def samples_of(registry: CollectorRegistry) -> Samples:
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def names_of(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


class TestBuildRegistry:
    def test_successful_run_values(self) -> None:
        registry = build_registry("wordpress-404", make_result(), failed=None,
                                  lag={0: 7, 1: 0}, finished_at=FINISHED_AT)

        samples = samples_of(registry)
        assert value(samples, metrics.LAST_SUCCESS) == FINISHED_AT
        assert value(samples, metrics.LAST_RUN) == FINISHED_AT
        assert value(samples, metrics.RUN_DURATION) == 2.5
        assert value(samples, metrics.RUN_SUCCESS) == 1
        assert value(samples, metrics.EXIT_CODE) == 0
        assert value(samples, metrics.READ_RECORDS) == 80
        assert value(samples, metrics.READ_BYTES) == 40_960
        assert value(samples, metrics.ACCESS_LINES) == 60
        assert value(samples, metrics.OTHER_LINES) == 15
        assert value(samples, metrics.OFFSETS_COMMITTED) == 1

    def test_labelled_values(self) -> None:
        registry = build_registry("wordpress-404", make_result(), failed=None,
                                  lag={0: 7, 1: 0}, finished_at=FINISHED_AT)

        samples = samples_of(registry)
        assert value(samples, metrics.MALFORMED_RECORDS, reason="invalid_json") == 3
        assert value(samples, metrics.MALFORMED_RECORDS, reason="not_utf8") == 2
        assert value(samples, metrics.RULE_MATCHES, rule="http-404") == 12
        assert value(samples, metrics.RULE_MATCHES, rule="http-5xx") == 0
        assert value(samples, metrics.ALERTS_SENT, receiver="kubesphere") == 4
        assert value(samples, metrics.ALERTS_FAILED, receiver="kubesphere") == 0
        assert value(samples, metrics.ALERTS_SENT, receiver="slack") == 1
        assert value(samples, metrics.ALERTS_FAILED, receiver="slack") == 3
        assert value(samples, metrics.REMAINING_LAG, partition="0") == 7
        assert value(samples, metrics.REMAINING_LAG, partition="1") == 0
        assert value(samples, metrics.PLANNED_OFFSETS, partition="0") == 50
        assert value(samples, metrics.PLANNED_OFFSETS, partition="1") == 30

    def test_no_job_label_by_default(self) -> None:
        registry = build_registry("wordpress-404", make_result(), failed=None, lag={0: 7})

        labels = {name for _, label_set in samples_of(registry) for name, _ in label_set}
        assert "job" not in labels

    def test_job_label_on_every_series(self) -> None:
        registry = build_registry("wordpress-404", make_result(), failed=None, lag={0: 7},
                                  job_label=True)

        samples = samples_of(registry)
        assert samples
        for _, label_set in samples:
            assert ("job", "wordpress-404") in label_set

    def test_failure_has_no_last_success(self) -> None:
        failure = SinkError("receiver 'kubesphere' failed")
        registry = build_registry("wordpress-404", make_result(committed=False),
                                  failed=failure, lag=None, finished_at=FINISHED_AT)

        samples = samples_of(registry)
        assert metrics.LAST_SUCCESS not in names_of(samples)
        assert value(samples, metrics.LAST_RUN) == FINISHED_AT
        assert value(samples, metrics.RUN_SUCCESS) == 0
        assert value(samples, metrics.EXIT_CODE) == SinkError.exit_code
        assert value(samples, metrics.OFFSETS_COMMITTED) == 0
        assert value(samples, metrics.ALERTS_FAILED, receiver="slack") == 3

    def test_failure_without_result(self) -> None:
        failure = SourceError("topic 'logs' not found")
        registry = build_registry("wordpress-404", None, failed=failure, lag=None,
                                  duration_seconds=4.0, finished_at=FINISHED_AT)

        samples = samples_of(registry)
        assert names_of(samples) == {metrics.LAST_RUN, metrics.RUN_SUCCESS, metrics.EXIT_CODE,
                                     metrics.OFFSETS_COMMITTED, metrics.RUN_DURATION}
        assert value(samples, metrics.EXIT_CODE) == SourceError.exit_code
        assert value(samples, metrics.RUN_DURATION) == 4.0

    def test_unexpected_error_exit_code(self) -> None:
        registry = build_registry("wordpress-404", None, failed=RuntimeError("bug"), lag=None)

        assert value(samples_of(registry), metrics.EXIT_CODE) == 1

    def test_lag_omitted_when_not_measured(self) -> None:
        registry = build_registry("wordpress-404", make_result(), failed=None, lag=None)

        assert metrics.REMAINING_LAG not in names_of(samples_of(registry))

    def test_repeated_receiver_summed(self) -> None:
        result = make_result(receivers=("kubesphere",))
        result.deliveries.append(Delivery("kubesphere", required=True, attempted=2,
                                          delivered=1, failures=["HTTP 503"]))

        samples = samples_of(build_registry("wordpress-404", result, failed=None, lag=None))
        assert value(samples, metrics.ALERTS_SENT, receiver="kubesphere") == 5
        assert value(samples, metrics.ALERTS_FAILED, receiver="kubesphere") == 1

    def test_fresh_registry_per_run(self) -> None:
        first = build_registry("job-a", make_result(), failed=None, lag=None)
        second = build_registry("job-b", None, failed=SourceError("down"), lag=None)

        assert first is not second
        assert metrics.READ_RECORDS in names_of(samples_of(first))
        assert metrics.READ_RECORDS not in names_of(samples_of(second))
        assert REGISTRY.get_sample_value(metrics.READ_RECORDS) is None


class TestWriteTextfile:
    def test_textfile_parses(self, tmp_path: Path) -> None:
        path = tmp_path / "batchalert.prom"
        registry = build_registry("wordpress-404", make_result(), failed=None, lag={0: 7},
                                  job_label=True, finished_at=FINISHED_AT)

        write_textfile(registry, path)

        families = read_families(path)
        success = families[metrics.LAST_SUCCESS].samples[0]
        assert success.value == FINISHED_AT
        assert success.labels == {"job": "wordpress-404"}
        assert families[metrics.READ_RECORDS].samples[0].value == 80

    def test_textfile_replaced_without_leftovers(self, tmp_path: Path) -> None:
        path = tmp_path / "batchalert.prom"
        write_textfile(build_registry("wordpress-404", make_result(), failed=None, lag=None),
                       path)

        write_textfile(build_registry("wordpress-404", None, failed=SourceError("down"),
                                      lag=None), path)

        assert [p.name for p in tmp_path.iterdir()] == ["batchalert.prom"]
        names = set(read_families(path))
        assert metrics.READ_RECORDS not in names
        assert metrics.RUN_SUCCESS in names

    def test_failed_run_keeps_last_success(self, tmp_path: Path) -> None:
        path = tmp_path / "batchalert.prom"
        export_run_metrics("wordpress-404", make_result(), failed=None, textfile=path)
        before = read_families(path)
        success = before[metrics.LAST_SUCCESS].samples[0].value

        export_run_metrics("wordpress-404", None, failed=SourceError("down"), textfile=path)
        export_run_metrics("wordpress-404", None, failed=SourceError("down"), textfile=path)

        after = read_families(path)
        assert after[metrics.LAST_SUCCESS].samples[0].value == success
        assert after[metrics.LAST_SUCCESS].samples[0].labels == {"job": "wordpress-404"}
        assert after[metrics.RUN_SUCCESS].samples[0].value == 0
        assert metrics.READ_RECORDS not in after

    def test_failed_run_without_earlier_success(self, tmp_path: Path) -> None:
        path = tmp_path / "batchalert.prom"
        path.write_text("not metrics {{{\n")

        export_run_metrics("wordpress-404", None, failed=SourceError("down"), textfile=path)
        export_run_metrics("other-job", None, failed=SourceError("down"), textfile=path)

        names = set(read_families(path))
        assert metrics.LAST_SUCCESS not in names
        assert metrics.RUN_SUCCESS in names

    def test_other_job_success_not_taken(self, tmp_path: Path) -> None:
        path = tmp_path / "batchalert.prom"
        export_run_metrics("wordpress-404", make_result(), failed=None, textfile=path)

        export_run_metrics("other-job", None, failed=SourceError("down"), textfile=path)

        names = set(read_families(path))
        assert metrics.LAST_SUCCESS not in names

    def test_missing_directory_only_warns(self, tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
        path = tmp_path / "missing" / "batchalert.prom"
        registry = build_registry("wordpress-404", None, failed=None, lag=None)

        with caplog.at_level(logging.WARNING, logger="batchalert.metrics"):
            write_textfile(registry, path)

        assert not path.exists()
        assert any(str(path) in r.getMessage() for r in caplog.records
                   if r.levelno == logging.WARNING)

    def test_suffix_other_than_prom_warns(self, tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
        path = tmp_path / "batchalert.txt"
        registry = build_registry("wordpress-404", None, failed=None, lag=None)

        with caplog.at_level(logging.WARNING, logger="batchalert.metrics"):
            write_textfile(registry, path)

        assert path.exists()
        assert any(".prom" in r.getMessage() for r in caplog.records)


def group_values(pushgateway: PushgatewayProcess, job: str, grouping_key: dict[str, str],
                 name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Return the values of metric `name` in one Pushgateway group, by their own labels."""
    group = pushgateway.find_group(job, **grouping_key)
    assert group is not None, f"group job={job} {grouping_key} not in the Pushgateway"
    if name not in group:
        return {}
    ignored = {"job", "instance", *grouping_key}
    found = {}
    for sample in group[name]["metrics"]:
        labels = frozenset((k, v) for k, v in sample["labels"].items() if k not in ignored)
        found[labels] = float(sample["value"])
    return found


@pytest.fixture
def push_target() -> tuple[str, dict[str, str]]:
    """A job name and grouping key no other test uses."""
    suffix = uuid.uuid4().hex[:8]
    return f"batchalert-test-{suffix}", {"group": f"group-{suffix}"}


class TestPushMetrics:
    def test_pushed_values_readable(self, pushgateway: PushgatewayProcess,
                                    push_target: tuple[str, dict[str, str]]) -> None:
        job, key = push_target
        registry = build_registry(job, make_result(), failed=None, lag={0: 7, 1: 0},
                                  finished_at=FINISHED_AT)

        push_metrics(registry, pushgateway.url, job, key)

        assert group_values(pushgateway, job, key, metrics.LAST_SUCCESS) == {
            frozenset(): FINISHED_AT}
        assert group_values(pushgateway, job, key, metrics.READ_RECORDS) == {frozenset(): 80}
        assert group_values(pushgateway, job, key, metrics.REMAINING_LAG) == {
            frozenset({("partition", "0")}): 7, frozenset({("partition", "1")}): 0}
        assert group_values(pushgateway, job, key, metrics.ALERTS_FAILED) == {
            frozenset({("receiver", "kubesphere")}): 0, frozenset({("receiver", "slack")}): 3}

    def test_failure_keeps_last_success(self, pushgateway: PushgatewayProcess,
                                        push_target: tuple[str, dict[str, str]]) -> None:
        job, key = push_target
        success = build_registry(job, make_result(), failed=None, lag=None,
                                 finished_at=FINISHED_AT)
        failure = build_registry(job, None, failed=SourceError("down"), lag=None,
                                 finished_at=FINISHED_AT + 300)

        push_metrics(success, pushgateway.url, job, key)
        push_metrics(failure, pushgateway.url, job, key)

        assert group_values(pushgateway, job, key, metrics.LAST_SUCCESS) == {
            frozenset(): FINISHED_AT}
        assert group_values(pushgateway, job, key, metrics.LAST_RUN) == {
            frozenset(): FINISHED_AT + 300}
        assert group_values(pushgateway, job, key, metrics.RUN_SUCCESS) == {frozenset(): 0}
        assert group_values(pushgateway, job, key, metrics.EXIT_CODE) == {
            frozenset(): SourceError.exit_code}

    def test_success_replaces_group(self, pushgateway: PushgatewayProcess,
                                    push_target: tuple[str, dict[str, str]]) -> None:
        job, key = push_target
        before = build_registry(job, make_result(receivers=("old-receiver",)), failed=None,
                                lag={0: 7})
        after = build_registry(job, make_result(receivers=("kubesphere",)), failed=None,
                               lag=None)

        push_metrics(before, pushgateway.url, job, key)
        push_metrics(after, pushgateway.url, job, key)

        assert group_values(pushgateway, job, key, metrics.ALERTS_SENT) == {
            frozenset({("receiver", "kubesphere")}): 4}
        assert group_values(pushgateway, job, key, metrics.REMAINING_LAG) == {}

    def test_closed_port_only_warns(self, caplog: pytest.LogCaptureFixture) -> None:
        url = f"http://127.0.0.1:{free_port()}"
        registry = build_registry("wordpress-404", None, failed=None, lag=None)

        with caplog.at_level(logging.WARNING, logger="batchalert.metrics"):
            push_metrics(registry, url, "wordpress-404", {"group": "g"}, timeout_seconds=2)

        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert url in warnings[0]

    def test_url_with_user_info_not_pushed(self, caplog: pytest.LogCaptureFixture) -> None:
        url = f"http://user:s3cr3t@127.0.0.1:{free_port()}"
        registry = build_registry("wordpress-404", None, failed=None, lag=None)

        with caplog.at_level(logging.WARNING, logger="batchalert.metrics"):
            push_metrics(registry, url, "wordpress-404", {"group": "g"}, timeout_seconds=2)

        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "user info" in warnings[0]
        assert "s3cr3t" not in warnings[0]

    def test_address_without_scheme(self, pushgateway: PushgatewayProcess,
                                    push_target: tuple[str, dict[str, str]],
                                    caplog: pytest.LogCaptureFixture) -> None:
        job, key = push_target
        registry = build_registry(job, None, failed=None, lag=None, finished_at=FINISHED_AT)

        with caplog.at_level(logging.INFO, logger="batchalert.metrics"):
            push_metrics(registry, pushgateway.address, job, key)

        assert group_values(pushgateway, job, key, metrics.LAST_SUCCESS) == {
            frozenset(): FINISHED_AT}
        assert any(pushgateway.url in r.getMessage() for r in caplog.records)

    def test_rejected_push_only_warns(self, pushgateway: PushgatewayProcess,
                                      caplog: pytest.LogCaptureFixture) -> None:
        registry = build_registry("wordpress-404", None, failed=None, lag=None)

        with caplog.at_level(logging.WARNING, logger="batchalert.metrics"):
            # A label name with a dash is invalid, so the Pushgateway returns HTTP 400.
            push_metrics(registry, pushgateway.url, "wordpress-404", {"bad-label": "x"})

        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "HTTP 400" in warnings[0]


class TestExportRunMetrics:
    def test_both_exports(self, pushgateway: PushgatewayProcess,
                          push_target: tuple[str, dict[str, str]], tmp_path: Path) -> None:
        job, key = push_target
        path = tmp_path / "batchalert.prom"

        export_run_metrics(job, make_result(), failed=None, lag={0: 7},
                           gateway_url=pushgateway.url, grouping_key=key, textfile=path)

        pushed = group_values(pushgateway, job, key, metrics.LAST_SUCCESS)
        written = read_families(path)
        success = written[metrics.LAST_SUCCESS].samples[0]
        assert success.labels == {"job": job}
        assert pushed == {frozenset(): success.value}

    def test_no_target_exports_nothing(self, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.INFO, logger="batchalert.metrics"):
            export_run_metrics("wordpress-404", make_result(), failed=None)

        assert caplog.records == []


def rule_expressions() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


class TestExampleRules:
    def test_rules_name_exported_metrics(self) -> None:
        registry = build_registry("wordpress-404", make_result(), failed=None, lag={0: 7},
                                  finished_at=FINISHED_AT)
        exported = names_of(samples_of(registry))

        for rule in rule_expressions():
            named = set(re.findall(r"\bbatchalert_[a-z_]+\b", rule["expr"]))
            assert named, f"rule {rule['alert']} names no batchalert metric"
            assert named <= exported, f"rule {rule['alert']}: {named - exported} not exported"

    def test_rules_cover_each_concern(self) -> None:
        expressions = " ".join(rule["expr"] for rule in rule_expressions())

        for name in (metrics.LAST_SUCCESS, metrics.REMAINING_LAG, metrics.MALFORMED_RECORDS,
                     metrics.ALERTS_FAILED):
            assert name in expressions

    @pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
    def test_rules_pass_promtool(self) -> None:
        checked = subprocess.run(["promtool", "check", "rules", str(RULES_FILE)],
                                 capture_output=True, text=True, timeout=60, check=False)

        assert checked.returncode == 0, checked.stdout + checked.stderr
