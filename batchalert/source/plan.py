"""Planning the offset range each partition is read over in one run.

A range starts at the consumer group's committed offset (the earliest offset on a first run, or
the offset for a time with `--since`) and ends at the high watermark read once at plan time.
Records produced after planning wait for the next run, so a run's work is fixed when it starts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from batchalert.errors import SourceError
from batchalert.events import log_partition_range

logger = logging.getLogger(__name__)

StartOrigin = Literal["committed", "earliest", "since", "end"]


@dataclass(frozen=True)
class PartitionRange:
    """Offsets [start, end) of one partition; offsets may have gaps (markers, compaction)."""

    partition: int
    start: int
    end: int
    origin: StartOrigin
    committed: int | None = None

    @property
    def is_empty(self) -> bool:
        return self.start >= self.end

    @property
    def span(self) -> int:
        """Number of offsets in the range: an upper bound of its records, because of gaps."""
        return max(0, self.end - self.start)


@dataclass(frozen=True)
class ReadPlan:
    """The ranges of every partition of a topic for one run."""

    topic: str
    group: str
    ranges: tuple[PartitionRange, ...]
    since_ms: int | None = None

    @property
    def span(self) -> int:
        return sum(r.span for r in self.ranges)

    def nonempty(self) -> list[PartitionRange]:
        return [r for r in self.ranges if not r.is_empty]


def topic_partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    """Return the topic's partitions, raising SourceError when the topic does not exist."""
    try:
        partitions = consumer.partitions_for_topic(topic)
    except KafkaError as exc:
        raise SourceError(f"cannot read metadata of topic {topic!r}: {exc}") from exc
    if not partitions:
        raise SourceError(
            f"topic {topic!r} not found on the brokers; check source.topic (Fluent Bit's Kafka "
            f"output `topics` setting) or create the topic"
        )
    return [TopicPartition(topic, p) for p in sorted(partitions)]


def _committed_offsets(
    consumer: KafkaConsumer, tps: list[TopicPartition], timeout_ms: int
) -> dict[TopicPartition, int | None]:
    return {tp: consumer.committed(tp, timeout_ms=timeout_ms) for tp in tps}


def _since_offsets(
    consumer: KafkaConsumer, tps: list[TopicPartition], since_ms: int, timeout_ms: int
) -> dict[TopicPartition, int | None]:
    found = consumer.offsets_for_times({tp: since_ms for tp in tps}, timeout_ms=timeout_ms)
    return {tp: (found[tp].offset if found.get(tp) is not None else None) for tp in tps}


def _range_from_committed(
    partition: int, committed: int | None, earliest: int, end: int
) -> PartitionRange:
    if committed is None:
        return PartitionRange(partition, earliest, end, "earliest", None)
    if committed < earliest:
        logger.warning(
            "partition %d: committed offset %d is below the earliest retained offset %d; "
            "%d offsets were deleted by retention before this job read them",
            partition, committed, earliest, earliest - committed,
        )
        return PartitionRange(partition, earliest, end, "earliest", committed)
    if committed > end:
        logger.warning(
            "partition %d: committed offset %d is past the high watermark %d (topic recreated "
            "or truncated); reading nothing from it this run",
            partition, committed, end,
        )
        return PartitionRange(partition, end, end, "end", committed)
    return PartitionRange(partition, committed, end, "committed", committed)


def plan_ranges(
    consumer: KafkaConsumer,
    topic: str,
    group: str,
    since_ms: int | None = None,
    timeout_ms: int = 30_000,
) -> ReadPlan:
    """Plan every partition's range, reading the high watermarks once."""
    tps = topic_partitions(consumer, topic)
    try:
        earliest = consumer.beginning_offsets(tps, timeout_ms=timeout_ms)
        ends = consumer.end_offsets(tps, timeout_ms=timeout_ms)
        if since_ms is None:
            committed = _committed_offsets(consumer, tps, timeout_ms)
        else:
            starts = _since_offsets(consumer, tps, since_ms, timeout_ms)
    except KafkaError as exc:
        raise SourceError(f"cannot read offsets of topic {topic!r} for group {group!r}: "
                          f"{exc}") from exc

    ranges = []
    for tp in tps:
        if since_ms is None:
            ranges.append(_range_from_committed(tp.partition, committed[tp], earliest[tp],
                                                ends[tp]))
        elif starts[tp] is None:
            ranges.append(PartitionRange(tp.partition, ends[tp], ends[tp], "end"))
        else:
            start = min(max(starts[tp], earliest[tp]), ends[tp])
            ranges.append(PartitionRange(tp.partition, start, ends[tp], "since"))
    for r in ranges:
        log_partition_range(r)
    return ReadPlan(topic, group, tuple(ranges), since_ms)
