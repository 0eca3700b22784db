"""A kafka-python consumer with batchalert's settings that reads a whole static topic.

The plain and the per-message contenders share it, so they differ from batchalert only in what
they do with the records. The settings come from `batchalert.source.client.consumer_settings`,
so fetch sizes and poll limits stay those of batchalert when they change there.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from batchalert.config import SourceConfig
from batchalert.source.client import consumer_settings
from bench import BenchError

logger = logging.getLogger(__name__)

# Milliseconds one poll waits for data; short, so the deadline is checked often.
_POLL_TIMEOUT_MS = 500

RecordHandler = Callable[[list[ConsumerRecord]], None]


def open_consumer(brokers: list[str], topic: str, group: str) -> KafkaConsumer:
    """Open a consumer with batchalert's settings; it is assigned partitions by hand."""
    source = SourceConfig(brokers=brokers, topic=topic, group=group)
    return KafkaConsumer(**consumer_settings(source))


def read_topic(consumer: KafkaConsumer, topic: str, handle: RecordHandler,
               timeout_s: float) -> int:
    """Hand every record of `topic`, up to the end offsets read at the start, to `handle`.

    Returns the number of records handed out. The topic must not grow during the read, because
    whole fetched batches are handed out, without cutting them at the end offsets.
    """
    partition_ids = consumer.partitions_for_topic(topic)
    if not partition_ids:
        raise BenchError(f"topic {topic!r} not found; load it before reading")
    partitions = [TopicPartition(topic, p) for p in sorted(partition_ids)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    ends = consumer.end_offsets(partitions)

    deadline = time.monotonic() + timeout_s
    pending = _unfinished(consumer, partitions, ends)
    records = 0
    while pending:
        if time.monotonic() > deadline:
            raise BenchError(f"reading topic {topic!r} did not finish within {timeout_s:.0f} s; "
                             f"partitions still pending: {sorted(tp.partition for tp in pending)}")
        for batch in consumer.poll(timeout_ms=_POLL_TIMEOUT_MS).values():
            handle(batch)
            records += len(batch)
        pending = _unfinished(consumer, pending, ends)
    return records


def _unfinished(consumer: KafkaConsumer, partitions: list[TopicPartition],
                ends: dict[TopicPartition, int]) -> list[TopicPartition]:
    return [tp for tp in partitions if consumer.position(tp) < ends[tp]]


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that name the broker, topic and time limit of a consumer child."""
    parser.add_argument("--brokers", required=True, help="bootstrap servers, HOST:PORT")
    parser.add_argument("--topic", required=True, help="topic to read from the beginning")
    parser.add_argument("--group", default="bench-reader",
                        help="consumer group id; nothing is committed for it")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds after which the read fails (default: %(default)s)")
