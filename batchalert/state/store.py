"""Reading and writing records of the compacted state topic that sits next to the logs.

The state topic has one partition and `cleanup.policy=compact`. Keys are
`<kind>/<job>/<id>` strings, values are JSON objects, and a null value (a tombstone) deletes a
key. Alert state and run locks share the topic under different kinds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from batchalert.config import JobConfig
from batchalert.errors import SourceError
from batchalert.source.client import consumer_settings

logger = logging.getLogger(__name__)

# Settings of kafka-python's consumer that its producer and admin client also accept.
_SHARED_SETTINGS = (
    "bootstrap_servers", "client_id", "request_timeout_ms", "security_protocol",
    "ssl_check_hostname", "ssl_cafile", "ssl_certfile", "ssl_keyfile", "sasl_mechanism",
    "sasl_plain_username", "sasl_plain_password", "reconnect_backoff_max_ms",
)
_STATE_PARTITION = 0
# Compaction settings: a dirty ratio this low keeps the topic close to one record per key.
_TOPIC_CONFIG = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1",
                 "segment.ms": "3600000"}


def state_topic_name(job: JobConfig) -> str:
    """Return the state topic: configured, or `<log topic>.batchalert-state`."""
    return job.state.topic or f"{job.source.topic}.batchalert-state"


def _client_settings(job: JobConfig) -> dict[str, Any]:
    settings = consumer_settings(job.source)
    return {key: settings[key] for key in _SHARED_SETTINGS if key in settings}


@dataclass(frozen=True)
class StateRecord:
    """One record of the state topic, as read back."""

    key: str
    value: dict[str, Any] | None
    offset: int


class StateTopic:
    """The state topic of one job: create it if missing, read it whole, append to it."""

    def __init__(self, job: JobConfig) -> None:
        self._job = job
        self.topic = state_topic_name(job)
        self._settings = _client_settings(job)
        self._producer: KafkaProducer | None = None
        self.corrupt_records = 0

    def ensure_exists(self) -> None:
        """Create the compacted topic unless it exists, or raise an error that explains how."""
        admin = self._admin()
        try:
            if self.topic in admin.list_topics():
                return
            admin.create_topics([NewTopic(self.topic, 1, -1, topic_configs=_TOPIC_CONFIG)])
            logger.info("created state topic %s (compacted, 1 partition)", self.topic)
        except TopicAlreadyExistsError:
            return
        except KafkaError as exc:
            raise SourceError(
                f"cannot create the state topic {self.topic!r}: {exc}. Create it with one "
                f"partition and cleanup.policy=compact, or set state.topic to an existing one"
            ) from exc
        finally:
            admin.close()

    def _admin(self) -> KafkaAdminClient:
        try:
            return KafkaAdminClient(**self._settings)
        except KafkaError as exc:
            raise SourceError(f"cannot connect to Kafka for the state topic: {exc}") from exc

    def read_all(self, prefix: str) -> list[StateRecord]:
        """Read every record whose key starts with `prefix`, oldest first."""
        with self._consumer() as consumer:
            tp = TopicPartition(self.topic, _STATE_PARTITION)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            end = consumer.end_offsets([tp])[tp]
            return list(self._records_until(consumer, tp, end, prefix.encode()))

    def _records_until(self, consumer: KafkaConsumer, tp: TopicPartition, end: int,
                       prefix: bytes) -> Iterator[StateRecord]:
        idle_polls = 0
        while consumer.position(tp) < end:
            polled = consumer.poll(timeout_ms=500).get(tp, [])
            idle_polls = 0 if polled else idle_polls + 1
            if idle_polls > 2 * self._job.source.timeout_seconds:
                raise SourceError(f"reading the state topic {self.topic!r} stalled at offset "
                                  f"{consumer.position(tp)} of {end}")
            for record in polled:
                if record.offset >= end or record.key is None or not record.key.startswith(prefix):
                    continue
                yield StateRecord(record.key.decode("utf-8", "replace"),
                                  self._decode(record.key, record.value), record.offset)

    def _decode(self, key: bytes, value: bytes | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            decoded = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError):
            decoded = None
        if not isinstance(decoded, dict):
            self.corrupt_records += 1
            logger.warning("state topic %s: record %r is not a JSON object; skipped (this may "
                           "repeat an alert, never lose one)", self.topic, key[:120])
            return {"corrupt": True}
        return decoded

    @contextmanager
    def _consumer(self) -> Iterator[KafkaConsumer]:
        settings = dict(self._settings, group_id=None, enable_auto_commit=False,
                        isolation_level="read_committed", allow_auto_create_topics=False)
        try:
            consumer = KafkaConsumer(**settings)
        except KafkaError as exc:
            raise SourceError(f"cannot read the state topic {self.topic!r}: {exc}") from exc
        try:
            yield consumer
        finally:
            consumer.close(autocommit=False)

    def append(self, records: dict[str, dict[str, Any] | None]) -> list[int]:
        """Append key -> value records (None deletes the key) and wait until all are stored."""
        producer = self._get_producer()
        futures = [
            producer.send(self.topic, key=key.encode(), partition=_STATE_PARTITION,
                          value=None if value is None else json.dumps(value).encode())
            for key, value in records.items()
        ]
        try:
            producer.flush(timeout=self._job.source.timeout_seconds)
            return [future.get(timeout=self._job.source.timeout_seconds).offset
                    for future in futures]
        except KafkaError as exc:
            raise SourceError(f"writing to the state topic {self.topic!r} failed: "
                              f"{exc}") from exc

    def _get_producer(self) -> KafkaProducer:
        if self._producer is None:
            try:
                self._producer = KafkaProducer(**self._settings, acks="all", linger_ms=0)
            except KafkaError as exc:
                raise SourceError(f"cannot write to the state topic {self.topic!r}: "
                                  f"{exc}") from exc
        return self._producer

    def close(self) -> None:
        """Close the producer; a broker that is gone only earns a warning here.

        Closing runs while an earlier error may be on its way up, and that error, not a
        timeout of the close, is what the run must report.
        """
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=self._job.source.timeout_seconds)
        except KafkaError as exc:
            logger.warning("closing the producer of state topic %s failed: %s", self.topic, exc)
