"""Fixtures of the reliability tests: a topic with known alert groups, fresh receivers."""

from __future__ import annotations

import logging
import random
import zlib
from collections.abc import Iterator

import pytest

from scripts.chaos import PARTITIONS, ReceiverPool, TrafficGenerator
from scripts.kafka_local import LocalKafka, LocalKafkaError
from tests.fixtures.kafka import TopicFactory
from tests.reliability.helpers import Scenario

logger = logging.getLogger(__name__)


def seed_for(request: pytest.FixtureRequest) -> int:
    """Return a seed that is the same for every run of one test."""
    return zlib.crc32(request.node.nodeid.encode())


@pytest.fixture
def scenario(kafka: LocalKafka, topic_factory: TopicFactory, group_id: str,
             request: pytest.FixtureRequest) -> Iterator[Scenario]:
    """A topic on the session's broker with known alert groups and a group of its own."""
    topic = topic_factory(partitions=PARTITIONS)
    yield Scenario(kafka, topic, group_id, TrafficGenerator(random.Random(seed_for(request))))
    delete_state_topic(kafka, topic)


def delete_state_topic(kafka: LocalKafka, topic: str) -> None:
    """Delete the state topic that state-enabled runs created next to `topic`, if any."""
    if not kafka.is_running():
        return
    try:
        kafka.delete_topic(f"{topic}.batchalert-state")
    except LocalKafkaError as exc:
        # Runs with state disabled create no state topic; a leftover costs only disk.
        logger.debug("no state topic deleted for %s: %s", topic, exc)


@pytest.fixture
def receiver_pool() -> Iterator[ReceiverPool]:
    """Fake Notification Managers, a fresh one per run; every accepted alert counts."""
    pool = ReceiverPool()
    try:
        yield pool
    finally:
        pool.close()
