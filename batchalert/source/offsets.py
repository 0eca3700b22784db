"""Committing the consumer group's offsets once a run's alerts were delivered."""

from __future__ import annotations

import logging

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from batchalert.errors import SourceError

logger = logging.getLogger(__name__)


def commit_offsets(
    consumer: KafkaConsumer,
    topic: str,
    group: str,
    next_offsets: dict[int, int],
    timeout_ms: int = 30_000,
) -> None:
    """Commit `next_offsets` (partition -> next offset to read) for `group`, synchronously."""
    offsets = {
        TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
        for partition, offset in sorted(next_offsets.items())
    }
    try:
        consumer.commit(offsets, timeout_ms=timeout_ms)
    except KafkaError as exc:
        raise SourceError(
            f"committing offsets of topic {topic!r} for group {group!r} failed: {exc}. The "
            f"alerts were delivered; the next run delivers them again (at least once)"
        ) from exc
    summary = ", ".join(f"{p}:{o}" for p, o in sorted(next_offsets.items()))
    logger.info("committed offsets for group %s on topic %s: %s", group, topic, summary)
