"""The state topic against the real broker: locks, stored alert state, corrupt records."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kafka import KafkaProducer

from batchalert.config import JobConfig, build_job
from batchalert.errors import ConcurrentRunError
from batchalert.state import AlertStateStore, RunLock, StateTopic, plan_notifications
from tests.state.test_plan import NOW, alerts_for

pytestmark = pytest.mark.kafka


def job_for(bootstrap: str, topic: str, group: str = "g") -> JobConfig:
    data: dict[str, Any] = {"name": "lock-test", "source": {
        "brokers": [bootstrap], "topic": topic, "group": group, "timeout_seconds": 10}}
    return build_job(data, "test")


@pytest.fixture
def state_topic(kafka, topic_factory):  # type: ignore[no-untyped-def]
    topic = StateTopic(job_for(kafka.bootstrap, topic_factory(partitions=1)))
    topic.ensure_exists()
    yield topic
    topic.close()


def test_state_topic_is_compacted(kafka, state_topic) -> None:  # type: ignore[no-untyped-def]
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, state_topic.topic)])
    finally:
        admin.close()
    assert "compact" in str(described)


def test_second_lock_is_refused_until_released(state_topic) -> None:  # type: ignore[no-untyped-def]
    first = RunLock(state_topic, "job", "group")
    second = RunLock(state_topic, "job", "group")
    first.acquire()

    with pytest.raises(ConcurrentRunError, match=first.run_id):
        second.acquire()

    first.release()
    second.acquire()
    second.release()


def test_other_group_has_its_own_lock(state_topic) -> None:  # type: ignore[no-untyped-def]
    first = RunLock(state_topic, "job", "group-a")
    other = RunLock(state_topic, "job", "group-b")
    first.acquire()

    other.acquire()

    other.release()
    first.release()


def test_killed_holder_lock_expires(state_topic) -> None:  # type: ignore[no-untyped-def]
    abandoned = RunLock(state_topic, "job", "group", lease_seconds=2)
    state_topic.append({f"lock/job/group/{abandoned.run_id}": {
        "run_id": abandoned.run_id, "renewed_at": time.time(), "acquired_offset": None}})
    waiting = RunLock(state_topic, "job", "group", lease_seconds=2)

    with pytest.raises(ConcurrentRunError):
        waiting.acquire()
    time.sleep(2.5)
    waiting.acquire()

    waiting.release()


def test_alert_state_round_trip_and_corrupt_record(kafka, state_topic) -> None:  # type: ignore[no-untyped-def]
    store = AlertStateStore(state_topic, "job")
    alerts = alerts_for(["/a", "/b"])
    store.save(plan_notifications(alerts, {}, NOW, 3600, 3600).updates)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    producer.send(state_topic.topic, key=b"alert/job/garbage", value=b"{not json",
                  partition=0)
    producer.flush()
    producer.close()

    states = store.load()

    assert set(states) == {a.fingerprint for a in alerts}
    assert state_topic.corrupt_records == 1


def test_deleted_state_is_gone(state_topic) -> None:  # type: ignore[no-untyped-def]
    store = AlertStateStore(state_topic, "job")
    alerts = alerts_for(["/a"])
    store.save(plan_notifications(alerts, {}, NOW, 3600, 3600).updates)

    store.save({alerts[0].fingerprint: None})

    assert store.load() == {}
