"""Opening the consumer: in the caller's thread, or ahead of time with ConsumerStart."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from kafka import KafkaConsumer

from batchalert.config import SourceConfig
from batchalert.errors import SourceError
from batchalert.source import client
from batchalert.source.client import ConsumerStart, open_consumer


def _source(brokers: str, topic: str = "logs", timeout_seconds: float = 10.0) -> SourceConfig:
    return SourceConfig(brokers=[brokers], topic=topic, group="g-client",
                        timeout_seconds=timeout_seconds)


class _FakeConsumer:
    """Fake KafkaConsumer for tests where only opening and closing matter."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.topics_asked: list[str] = []

    def partitions_for_topic(self, topic: str) -> set[int]:
        self.topics_asked.append(topic)
        return {0}

    def close(self, autocommit: bool = True) -> None:
        assert autocommit is False
        self.closed.set()


class TestConsumerStart:
    def test_opened_consumer_has_topic_metadata(self, kafka, topic_factory) -> None:  # type: ignore[no-untyped-def]
        topic = topic_factory(partitions=3)
        start = ConsumerStart(_source(kafka.bootstrap, topic))

        with open_consumer(_source(kafka.bootstrap, topic), start) as consumer:
            assert isinstance(consumer, KafkaConsumer)
            # The thread read the topic's metadata, so no request is needed here.
            assert consumer.partitions_for_topic(topic) == {0, 1, 2}

    def test_unreachable_broker_raises_on_take(self, unused_port: int) -> None:
        source = _source(f"127.0.0.1:{unused_port}", timeout_seconds=2.0)
        start = ConsumerStart(source)

        with pytest.raises(SourceError, match=f"no Kafka broker reachable at 127.0.0.1:"
                                              f"{unused_port}"), open_consumer(source, start):
            pass

    def test_metadata_error_left_to_run(self, monkeypatch: pytest.MonkeyPatch) -> None:
        class NoMetadata(_FakeConsumer):
            def partitions_for_topic(self, topic: str) -> set[int]:
                from kafka.errors import KafkaTimeoutError

                raise KafkaTimeoutError("metadata")

        fake = NoMetadata()
        monkeypatch.setattr(client, "_new_consumer", lambda source: fake)

        with open_consumer(_source("127.0.0.1:1"), ConsumerStart(_source("127.0.0.1:1"))) as taken:
            assert taken is fake
        assert fake.closed.is_set()

    def test_abandoned_consumer_is_closed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = _FakeConsumer()
        monkeypatch.setattr(client, "_new_consumer", lambda source: fake)
        start = ConsumerStart(_source("127.0.0.1:1", topic="web"))

        start.abandon()

        assert fake.closed.wait(5)
        assert fake.topics_asked == ["web"]

    def test_abandon_before_open_closes_later(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = _FakeConsumer()
        release = threading.Event()

        def slow_open(source: Any) -> _FakeConsumer:
            release.wait(5)
            return fake

        monkeypatch.setattr(client, "_new_consumer", slow_open)
        start = ConsumerStart(_source("127.0.0.1:1"))
        start.abandon()
        assert not fake.closed.is_set()

        release.set()

        assert fake.closed.wait(5)

    def test_abandon_after_take_keeps_open(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = _FakeConsumer()
        monkeypatch.setattr(client, "_new_consumer", lambda source: fake)
        start = ConsumerStart(_source("127.0.0.1:1"))

        assert start.take() is fake
        start.abandon()

        time.sleep(0.1)
        assert not fake.closed.is_set()

    def test_second_take_raises(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(client, "_new_consumer", lambda source: _FakeConsumer())
        start = ConsumerStart(_source("127.0.0.1:1"))
        start.take()

        with pytest.raises(RuntimeError, match="already taken"):
            start.take()


def test_cli_import_skips_pyarrow_and_kafka() -> None:
    """The CLI opens its consumer before pyarrow loads, so that the two overlap."""
    code = ("import sys, batchalert.cli; "
            "print(sorted(m for m in ('pyarrow', 'kafka', 'numpy') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)

    assert loaded.stdout.strip() == "[]"
