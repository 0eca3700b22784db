"""Reading planned offset ranges into Arrow record batches, and nothing beyond them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from batchalert.errors import SourceError
from batchalert.source.plan import PartitionRange, ReadPlan

logger = logging.getLogger(__name__)

RECORD_SCHEMA = pa.schema(
    [
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("key", pa.binary()),
        ("value", pa.binary()),
    ]
)

# How long one poll waits for data, in milliseconds; short so stalls and caps are noticed soon.
_POLL_TIMEOUT_MS = 500
# Bytes of record values buffered before a batch is cut, besides the record-count limit.
_CHUNK_BYTES = 64 * 1024 * 1024

ProgressCallback = Callable[[int, int], None]


@dataclass
class _Buffer:
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    nbytes: int = 0

    def __len__(self) -> int:
        return len(self.offsets)

    def to_batch(self) -> pa.RecordBatch:
        return pa.record_batch(
            [
                pa.array(self.partitions, pa.int32()),
                pa.array(self.offsets, pa.int64()),
                pa.array(self.timestamps, pa.timestamp("ms", tz="UTC")),
                pa.array(self.keys, pa.binary()),
                pa.array(self.values, pa.binary()),
            ],
            schema=RECORD_SCHEMA,
        )


@dataclass
class ReadLimits:
    """Caps on one run; a capped run processes and commits only the prefix it read."""

    max_records: int | None = None
    max_bytes: int | None = None
    chunk_records: int = 10_000
    chunk_bytes: int = _CHUNK_BYTES
    stall_seconds: float = 60.0


class ReaderState:
    """Position and counters that every range reader keeps, and the settings it reads with."""

    def __init__(
        self,
        consumer: KafkaConsumer,
        plan: ReadPlan,
        limits: ReadLimits | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self._consumer = consumer
        self._plan = plan
        self._limits = limits or ReadLimits()
        self._on_progress = on_progress
        self._ranges = {r.partition: r for r in plan.ranges}
        self.next_offsets: dict[int, int] = {r.partition: r.start for r in plan.ranges}
        self.records_read = 0
        self.bytes_read = 0
        self.capped = False


class RangeReader(ReaderState):
    """Reads each partition of a plan from its start to its end offset.

    After the iteration, `next_offsets` holds, per partition, the offset after the last record
    handed out (or the range end when the partition was read to the end): the offsets that may
    be committed once the records before them are delivered.
    """

    def _tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self._plan.topic, partition)

    def _assign(self) -> set[int]:
        pending = {r.partition for r in self._plan.nonempty()}
        self._consumer.assign([self._tp(p) for p in sorted(pending)])
        for partition in sorted(pending):
            self._consumer.seek(self._tp(partition), self._ranges[partition].start)
        return pending

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Yield record batches of at most `chunk_records` records, in fetch order."""
        pending = self._assign()
        buffer = _Buffer()
        last_progress = time.monotonic()
        while pending and not self.capped:
            progressed = self._poll_once(pending, buffer)
            if progressed:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > self._limits.stall_seconds:
                raise self._stall_error(pending)
            if self._chunk_full(buffer):
                yield buffer.to_batch()
                buffer = _Buffer()
        if len(buffer):
            yield buffer.to_batch()
        self._consumer.assign([])

    def _chunk_full(self, buffer: _Buffer) -> bool:
        limits = self._limits
        return len(buffer) >= limits.chunk_records or buffer.nbytes >= limits.chunk_bytes

    def _poll_once(self, pending: set[int], buffer: _Buffer) -> bool:
        try:
            polled = self._consumer.poll(timeout_ms=_POLL_TIMEOUT_MS)
        except KafkaError as exc:
            raise SourceError(f"reading topic {self._plan.topic!r} failed: {exc}") from exc
        progressed = False
        for tp, records in sorted(polled.items(), key=lambda item: item[0].partition):
            if tp.partition in pending and records:
                self._take(self._ranges[tp.partition], records, buffer)
                progressed = True
            if self.capped:
                return True
        return self._finish_partitions(pending) or progressed

    def _take(self, span: PartitionRange, records: list[ConsumerRecord], buffer: _Buffer) -> None:
        wanted = [r for r in records if r.offset < span.end]
        wanted = self._apply_caps(wanted)
        if not wanted:
            return
        count = len(wanted)
        sizes = [len(r.value) if r.value is not None else 0 for r in wanted]
        buffer.partitions.extend([span.partition] * count)
        buffer.offsets.extend([r.offset for r in wanted])
        buffer.timestamps.extend([r.timestamp for r in wanted])
        buffer.keys.extend([r.key for r in wanted])
        buffer.values.extend([r.value for r in wanted])
        nbytes = sum(sizes)
        buffer.nbytes += nbytes
        self.records_read += count
        self.bytes_read += nbytes
        self.next_offsets[span.partition] = wanted[-1].offset + 1
        if self._on_progress is not None:
            self._on_progress(count, nbytes)

    def _apply_caps(self, records: list[ConsumerRecord]) -> list[ConsumerRecord]:
        limits = self._limits
        if limits.max_records is not None:
            room = limits.max_records - self.records_read
            if room < len(records):
                records = records[: max(room, 0)]
                self.capped = True
        if limits.max_bytes is not None:
            kept, total = [], self.bytes_read
            for record in records:
                total += len(record.value) if record.value is not None else 0
                if total > limits.max_bytes:
                    self.capped = True
                    break
                kept.append(record)
            records = kept
        return records

    def _finish_partitions(self, pending: set[int]) -> bool:
        """Drop partitions whose position reached the range end (also across offset gaps)."""
        finished = False
        for partition in sorted(pending):
            tp = self._tp(partition)
            end = self._ranges[partition].end
            if self.next_offsets[partition] >= end or self._consumer.position(tp) >= end:
                self.next_offsets[partition] = end
                self._consumer.pause(tp)
                pending.discard(partition)
                finished = True
                logger.debug("partition %d: read to end offset %d", partition, end)
        return finished

    def _stall_error(self, pending: set[int]) -> SourceError:
        stuck = ", ".join(
            f"{p} at offset {self.next_offsets[p]} of {self._ranges[p].end}"
            for p in sorted(pending)
        )
        return SourceError(
            f"reading topic {self._plan.topic!r} made no progress for "
            f"{self._limits.stall_seconds:g}s (partitions {stuck}); check that the brokers are "
            f"up and reachable. Nothing was committed; the next run reads the same records"
        )
