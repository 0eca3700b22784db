"""Whole runs against the real broker and a local Notification Manager."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from batchalert.config import JobConfig, build_job
from batchalert.errors import SourceError
from batchalert.pipeline import DeliveryFailed, RunOptions, RunResult, run_job
from batchalert.source.plan import ReadPlan
from batchalert.summary import summary_lines
from scripts.sample_logs import generate

pytestmark = pytest.mark.kafka


def fluent_bit_value(status: int, path: str = "/notfound", namespace: str = "demo-project",
                     pod: str = "wordpress-v1-f54f697c5-hdn2z") -> bytes:
    line = (f'203.0.113.9 - - [25/Aug/2021:01:54:36 +0000] "GET {path} HTTP/1.1" {status} 12 '
            f'"-" "curl/7.58.0"\n')
    record = {"@timestamp": 1629856477.226758, "log": line, "stream": "stdout",
              "time": "2021-08-25T01:54:37.226757612Z",
              "kubernetes": {"pod_name": pod, "namespace_name": namespace,
                             "container_name": "wordpress"}}
    return json.dumps(record).encode()


def make_job(bootstrap: str, topic: str, group: str, url: str | None,
             **extra: Any) -> JobConfig:
    data: dict[str, Any] = {
        "name": "test-job",
        "cluster": "test",
        "source": {"brokers": [bootstrap], "topic": topic, "group": group,
                   "timeout_seconds": 10, "stall_seconds": 20},
        "receivers": [{"url": url, "timeout": {"connect": 2, "read": 2},
                       "retry_budget_seconds": 0}] if url else [],
        **extra,
    }
    return build_job(data, "test")


def committed(bootstrap: str, topic: str, group: str, partitions: int) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        consumer.close()


def alert_identities(payloads: list[dict[str, Any]]) -> list[tuple[tuple[str, str], ...]]:
    return [tuple(sorted(a["labels"].items())) for p in payloads for a in p["alerts"]]


def produce_in_transaction(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Produce to partition 0 in one committed transaction, which leaves a marker offset."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"tx-{topic}",
                             enable_idempotence=True)
    try:
        producer.init_transactions()
        producer.begin_transaction()
        for value in values:
            producer.send(topic, value, partition=0)
        producer.commit_transaction()
    finally:
        producer.close()


@pytest.fixture
def loaded_topic(kafka, topic_factory) -> Callable[..., str]:  # type: ignore[no-untyped-def]
    """Create a topic and produce values to given partitions."""
    def load(per_partition: dict[int, list[bytes]], partitions: int = 3) -> str:
        topic = topic_factory(partitions=partitions)
        for partition, values in per_partition.items():
            if values:
                kafka.produce(topic, values, partition=partition)
        return topic
    return load


class TestRanges:
    def test_run_reads_exactly_planned_range(self, kafka, loaded_topic, group_id,  # type: ignore[no-untyped-def]
                                             nm_server) -> None:
        topic = loaded_topic({0: [fluent_bit_value(404)] * 30, 1: [fluent_bit_value(200)] * 20})
        job = make_job(kafka.bootstrap, topic, group_id, nm_server.url)

        def produce_during_run(plan: ReadPlan) -> None:
            kafka.produce(topic, [fluent_bit_value(404, "/late")] * 15, partition=0)
            kafka.produce(topic, [fluent_bit_value(404, "/late")] * 5, partition=2)

        result = run_job(job, RunOptions(), on_plan=produce_during_run)

        assert result.records_read == 50
        assert [(r.partition, r.start, r.end) for r in result.plan.ranges] == [
            (0, 0, 30), (1, 0, 20), (2, 0, 0)]
        assert result.next_offsets == {0: 30, 1: 20, 2: 0}
        assert committed(kafka.bootstrap, topic, group_id, 3) == {0: 30, 1: 20, 2: 0}
        assert [a.labels["path"] for a in result.alerts] == ["/notfound"]
        assert result.alerts[0].annotations["count"] == "30"

    def test_second_run_reads_only_new_records(self, kafka, loaded_topic, group_id,  # type: ignore[no-untyped-def]
                                               nm_server) -> None:
        topic = loaded_topic({0: [fluent_bit_value(404)] * 10})
        job = make_job(kafka.bootstrap, topic, group_id, nm_server.url)
        run_job(job, RunOptions())
        kafka.produce(topic, [fluent_bit_value(404, "/new")] * 4, partition=1)

        second = run_job(job, RunOptions())

        assert second.records_read == 4
        assert [r.origin for r in second.plan.ranges] == ["committed"] * 3
        assert [a.labels["path"] for a in second.alerts] == ["/new"]
        assert second.alerts[0].annotations["count"] == "4"

    def test_nothing_new_commits_and_sends_nothing(self, kafka, loaded_topic, group_id,  # type: ignore[no-untyped-def]
                                                   nm_server) -> None:
        topic = loaded_topic({0: [fluent_bit_value(404)] * 3})
        job = make_job(kafka.bootstrap, topic, group_id, nm_server.url)
        run_job(job, RunOptions())
        posts_before = len(nm_server.received)

        again = run_job(job, RunOptions())

        assert again.records_read == 0
        assert again.alerts == []
        assert again.committed
        assert len(nm_server.received) == posts_before

    def test_since_starts_at_offset_for_time(self, kafka, topic_factory, group_id,  # type: ignore[no-untyped-def]
                                             nm_server) -> None:
        topic = topic_factory(partitions=2)
        now_ms = int(time.time() * 1000)
        old, recent = now_ms - 3 * 3600 * 1000, now_ms - 10 * 60 * 1000
        kafka.produce(topic, [fluent_bit_value(404, "/old")] * 5, partition=0, timestamp_ms=old)
        kafka.produce(topic, [fluent_bit_value(404, "/recent")] * 3, partition=0,
                      timestamp_ms=recent)
        kafka.produce(topic, [fluent_bit_value(404, "/old")] * 4, partition=1, timestamp_ms=old)
        job = make_job(kafka.bootstrap, topic, group_id, nm_server.url)

        result = run_job(job, RunOptions(since_seconds=3600))

        assert [(r.partition, r.start, r.end, r.origin) for r in result.plan.ranges] == [
            (0, 5, 8, "since"), (1, 4, 4, "end")]
        assert [a.labels["path"] for a in result.alerts] == ["/recent"]
        assert not result.committed
        assert committed(kafka.bootstrap, topic, group_id, 2) == {0: None, 1: None}

    def test_since_with_commit_moves_offsets(self, kafka, topic_factory, group_id,  # type: ignore[no-untyped-def]
                                             nm_server) -> None:
        topic = topic_factory(partitions=1)
        kafka.produce(topic, [fluent_bit_value(404)] * 2, partition=0)
        job = make_job(kafka.bootstrap, topic, group_id, nm_server.url)

        result = run_job(job, RunOptions(since_seconds=3600, commit=True))

        assert result.committed
        assert committed(kafka.bootstrap, topic, group_id, 1) == {0: 2}

    def test_transaction_markers_leave_gaps(self, kafka, topic_factory, group_id,  # type: ignore[no-untyped-def]
                                            nm_server) -> None:
        topic = topic_factory(partitions=1)
        produce_in_transaction(kafka.bootstrap, topic, [fluent_bit_value(404)] * 3)
        produce_in_transaction(kafka.bootstrap, topic, [fluent_bit_value(404)] * 2)
        job = make_job(kafka.bootstrap, topic, group_id, nm_server.url)

        result = run_job(job, RunOptions())

        assert result.records_read == 5
        assert result.plan.ranges[0].end == 7
        assert result.next_offsets == {0: 7}
        assert result.alerts[0].annotations["count"] == "5"


class TestDelivery:
    def test_receiver_failure_commits_nothing_then_redelivers(  # type: ignore[no-untyped-def]
            self, kafka, loaded_topic, group_id, nm_server) -> None:
        values = [fluent_bit_value(404, f"/p{i % 3}", namespace=f"ns{i % 2}") for i in range(12)]
        topic = loaded_topic({0: values[:6], 2: values[6:]})
        job = make_job(kafka.bootstrap, topic, group_id, nm_server.url)
        nm_server.fail_next(1, 500)

        with pytest.raises(DeliveryFailed) as caught:
            run_job(job, RunOptions())

        failed = caught.value.result
        assert not failed.committed
        assert "HTTP 500" in str(caught.value)
        assert "not delivered" in str(caught.value)
        assert committed(kafka.bootstrap, topic, group_id, 3) == {0: None, 1: None, 2: None}
        posts_before = len(nm_server.received)

        retry = run_job(job, RunOptions())

        assert retry.committed
        assert [a.labels for a in retry.alerts] == [a.labels for a in failed.alerts]
        delivered = alert_identities(nm_server.received[posts_before:])
        assert sorted(delivered) == sorted(tuple(sorted(a.labels.items())) for a in failed.alerts)
        assert committed(kafka.bootstrap, topic, group_id, 3) == {0: 6, 1: 0, 2: 6}

    def test_slow_receiver_times_out(self, kafka, loaded_topic, group_id,  # type: ignore[no-untyped-def]
                                     nm_server) -> None:
        topic = loaded_topic({0: [fluent_bit_value(404)]})
        job = make_job(kafka.bootstrap, topic, group_id, nm_server.url)
        nm_server.delay(4)

        with pytest.raises(DeliveryFailed, match="did not answer in time"):
            run_job(job, RunOptions())

        assert committed(kafka.bootstrap, topic, group_id, 3)[0] is None

    def test_refused_connection_commits_nothing(self, kafka, loaded_topic, group_id,  # type: ignore[no-untyped-def]
                                                nm_server) -> None:
        topic = loaded_topic({1: [fluent_bit_value(404)]})
        job = make_job(kafka.bootstrap, topic, group_id, nm_server.url)
        nm_server.refuse()

        with pytest.raises(DeliveryFailed, match="cannot connect"):
            run_job(job, RunOptions())

        assert committed(kafka.bootstrap, topic, group_id, 3)[1] is None
        nm_server.resume()
        assert run_job(job, RunOptions()).committed

    def test_dry_run_posts_and_commits_nothing(self, kafka, loaded_topic, group_id,  # type: ignore[no-untyped-def]
                                               nm_server) -> None:
        topic = loaded_topic({0: [fluent_bit_value(404)] * 2})
        job = make_job(kafka.bootstrap, topic, group_id, nm_server.url)

        result = run_job(job, RunOptions(dry_run=True))

        assert len(result.alerts) == 1
        assert nm_server.received == []
        assert not result.committed
        assert committed(kafka.bootstrap, topic, group_id, 3)[0] is None


class TestSourceErrors:
    def test_missing_topic_is_clear(self, kafka, group_id) -> None:  # type: ignore[no-untyped-def]
        job = make_job(kafka.bootstrap, "no-such-topic-here", group_id, None)

        with pytest.raises(SourceError, match="'no-such-topic-here' not found"):
            run_job(job, RunOptions(dry_run=True))

    def test_unreachable_broker_fails_in_bounded_time(self, unused_port: int) -> None:
        job = make_job(f"127.0.0.1:{unused_port}", "logs", "g", None)
        job = job.model_copy(update={"source": job.source.model_copy(
            update={"timeout_seconds": 3.0})})
        started = time.monotonic()

        with pytest.raises(SourceError, match="no Kafka broker reachable"):
            run_job(job, RunOptions(dry_run=True))

        assert time.monotonic() - started < 60


class TestSampleTraffic:
    def test_sample_logs_alert_on_article_request(self, kafka, topic_factory, group_id,  # type: ignore[no-untyped-def]
                                                  nm_server) -> None:
        topic = topic_factory(partitions=10)
        kafka.produce(topic, list(generate(3000, seed=7)))
        job = make_job(kafka.bootstrap, topic, group_id, nm_server.url)

        result: RunResult = run_job(job, RunOptions())

        counts = result.counts
        assert result.records_read == 3000
        assert counts.access + counts.other + counts.malformed + counts.skipped == 3000
        assert counts.malformed >= 1
        # The prefilter leaves most records undecoded; without it, none.
        assert counts.skipped > 2000
        again = job.model_copy(update={"prefilter": False, "source": job.source.model_copy(
            update={"group": group_id + "-full"})})
        full = run_job(again, RunOptions(dry_run=True))
        assert full.counts.skipped == 0
        assert full.counts.access + full.counts.other + full.counts.malformed == 3000
        assert full.counts.malformed_by_reason == counts.malformed_by_reason
        assert full.counts.matches_by_rule == counts.matches_by_rule
        targets = {(a.labels["workload"], a.labels["path"]) for a in result.alerts}
        assert ("wordpress-v1", "/notfound") in targets
        namespaces = {p["groupLabels"]["namespace"] for p in nm_server.received}
        assert len(namespaces) == len({a.labels["namespace"] for a in result.alerts})


class TestWorkers:
    def test_workers_give_same_result_as_one_process(self, kafka, topic_factory,  # type: ignore[no-untyped-def]
                                                     monkeypatch) -> None:
        topic = topic_factory(partitions=4)
        kafka.produce(topic, list(generate(4000, seed=5)))
        monkeypatch.setattr("batchalert.pipeline.MIN_SPAN_FOR_WORKERS", 1)
        single = make_job(kafka.bootstrap, topic, "g-single", None)
        parallel = single.model_copy(update={"workers": 2})
        parallel = parallel.model_copy(update={"source": single.source.model_copy(
            update={"group": "g-parallel"})})
        progress: list[int] = []

        one = run_job(single, RunOptions(dry_run=True))
        two = run_job(parallel, RunOptions(dry_run=True),
                      on_progress=lambda records, nbytes: progress.append(records))

        assert two.records_read == one.records_read == 4000
        assert two.next_offsets == one.next_offsets
        assert two.counts.access == one.counts.access
        assert two.counts.malformed_by_reason == one.counts.malformed_by_reason
        assert [a.labels for a in two.alerts] == [a.labels for a in one.alerts]
        assert [a.annotations for a in two.alerts] == [a.annotations for a in one.alerts]
        assert sum(progress) == 4000


class TestStateAcrossRuns:
    def test_repeat_suppressed_then_resolved(self, kafka, topic_factory, group_id,  # type: ignore[no-untyped-def]
                                             nm_server) -> None:
        topic = topic_factory(partitions=1)
        job = make_job(kafka.bootstrap, topic, group_id, nm_server.url,
                       state={"realert": "1h", "resolve_after": "30m"})
        now = 1_800_000_000.0
        kafka.produce(topic, [fluent_bit_value(404, "/a")] * 2)

        first = run_job(job, RunOptions(), clock=lambda: now)
        kafka.produce(topic, [fluent_bit_value(404, "/a")] * 3)
        second = run_job(job, RunOptions(), clock=lambda: now + 600)
        quiet = run_job(job, RunOptions(), clock=lambda: now + 600 + 1799)
        resolved = run_job(job, RunOptions(), clock=lambda: now + 600 + 1800)
        after = run_job(job, RunOptions(), clock=lambda: now + 600 + 1900)

        assert first.notifications is not None and len(first.notifications.fresh) == 1
        assert second.notifications is not None and second.notifications.suppressed == 1
        assert "repeats held back (sent within realert): 1" in "\n".join(summary_lines(second))
        assert quiet.notifications is not None and quiet.notifications.resolved == []
        assert resolved.notifications is not None and len(resolved.notifications.resolved) == 1
        assert after.notifications is not None and after.notifications.resolved == []
        statuses = [alert["status"] for post in nm_server.received for alert in post["alerts"]]
        assert statuses == ["firing", "resolved"]
        resolved_alert = nm_server.received[-1]["alerts"][0]
        assert resolved_alert["labels"]["path"] == "/a"
        assert resolved_alert["annotations"]["count"] == "3"

    def test_realert_sends_again_after_interval(self, kafka, topic_factory, group_id,  # type: ignore[no-untyped-def]
                                                nm_server) -> None:
        topic = topic_factory(partitions=1)
        job = make_job(kafka.bootstrap, topic, group_id, nm_server.url,
                       state={"realert": "1h", "resolve_after": "2h"})
        now = 1_800_000_000.0
        kafka.produce(topic, [fluent_bit_value(404, "/a")])
        run_job(job, RunOptions(), clock=lambda: now)
        kafka.produce(topic, [fluent_bit_value(404, "/a")])

        again = run_job(job, RunOptions(), clock=lambda: now + 3600)

        assert again.notifications is not None and len(again.notifications.fresh) == 1
        assert len(nm_server.received) == 2

    def test_failed_delivery_writes_no_state(self, kafka, topic_factory, group_id,  # type: ignore[no-untyped-def]
                                             nm_server) -> None:
        topic = topic_factory(partitions=1)
        job = make_job(kafka.bootstrap, topic, group_id, nm_server.url)
        kafka.produce(topic, [fluent_bit_value(404, "/a")])
        nm_server.fail_next(1, 500)
        with pytest.raises(DeliveryFailed):
            run_job(job, RunOptions())

        retry = run_job(job, RunOptions())

        assert retry.notifications is not None and len(retry.notifications.fresh) == 1
        assert retry.notifications.suppressed == 0


def test_same_range_gives_same_alerts(kafka, topic_factory) -> None:  # type: ignore[no-untyped-def]
    topic = topic_factory(partitions=3)
    kafka.produce(topic, list(generate(3000, seed=9)))
    job = make_job(kafka.bootstrap, topic, "g-determinism", None,
                   rules=[{}, {"name": "errors", "status": ["5xx"], "max_alerts": 5}])

    first = run_job(job, RunOptions(since_seconds=86400 * 365 * 30))
    second = run_job(job.model_copy(update={"chunk_records": 700}),
                     RunOptions(since_seconds=86400 * 365 * 30))

    assert [a.to_dict() for a in first.alerts] == [a.to_dict() for a in second.alerts]
    assert len(first.alerts) > 10


def prepared_sinks(dry_run: bool = False) -> Any:
    from batchalert.alerts import AlertRenderer
    from batchalert.pipeline import _PreparedSinks, _RunSetup
    from batchalert.source.reader import ReadLimits

    job = build_job({"source": {"brokers": ["127.0.0.1:9"], "topic": "t", "group": "g"},
                     "receivers": [{"name": "nm", "type": "notification-manager",
                                    "url": "http://127.0.0.1:9/api/v2/alerts"}]}, "t")
    setup = _RunSetup(renderer=AlertRenderer(job.language, job.templates), limits=ReadLimits(),
                      since_ms=None, timeout_ms=1000, clock=time.time, dry_run=dry_run,
                      sinks=None, on_progress=None, on_plan=None)
    return _PreparedSinks(job, setup)


def test_prepared_sinks_built_in_thread_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import batchalert.pipeline

    closed: list[str] = []
    builders: list[str] = []

    class FakeSink:
        name = "nm"

        def close(self) -> None:
            closed.append(self.name)

    def build(receivers: Any, renderer: Any = None) -> list[Any]:
        builders.append(threading.current_thread().name)
        return [FakeSink()]

    monkeypatch.setattr(batchalert.pipeline, "build_sinks", build)
    with prepared_sinks() as sinks:
        built = sinks.get()

    assert [sink.name for sink in built] == ["nm"]
    assert builders[0].startswith("batchalert-sinks")
    assert closed == ["nm"]


def test_prepared_sinks_error_raised_by_get(monkeypatch: pytest.MonkeyPatch) -> None:
    import batchalert.pipeline
    from batchalert.errors import ConfigError

    def build(receivers: Any, renderer: Any = None) -> list[Any]:
        raise ConfigError("receivers.nm.ca_file: cannot load CA bundle")

    monkeypatch.setattr(batchalert.pipeline, "build_sinks", build)
    with prepared_sinks() as sinks, pytest.raises(ConfigError, match="ca_file"):
        sinks.get()


def test_prepared_sinks_none_for_dry_run() -> None:
    with prepared_sinks(dry_run=True) as sinks:
        assert sinks.get() == []


def test_failure_message_shows_first_failure_and_count() -> None:
    from batchalert.pipeline import _failure_message
    from batchalert.rules import RunCounts
    from batchalert.sinks import Delivery

    connection_error = "cannot connect to http://127.0.0.1:9/x: refused; gave up after {} attempts"
    down = Delivery("nm", required=True, attempted=12, delivered=0,
                    failures=[connection_error.format(n) for n in (6, 5, 4)])
    once = Delivery("am", required=True, attempted=3, delivered=2, failures=["HTTP 400"])
    optional = Delivery("slack", required=False, attempted=3, delivered=0, failures=["x"])
    result = RunResult(plan=ReadPlan("logs", "g", ()), counts=RunCounts(),
                       deliveries=[down, once, optional])

    message = _failure_message(result)

    assert message.count("cannot connect") == 1
    assert "gave up after 6 attempts; 2 more failed POST(s), each logged" in message
    assert "receiver 'am': 1 of 3 alerts not delivered (HTTP 400)" in message
    assert "slack" not in message
    assert message.endswith("Nothing was committed; the next run delivers these alerts again.")
