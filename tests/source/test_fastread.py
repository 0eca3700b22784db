"""FastRangeReader against the real broker: the same records and offsets as RangeReader."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from batchalert.config import SourceConfig
from batchalert.errors import SourceError
from batchalert.source import direct, fastread
from batchalert.source.client import consumer_settings
from batchalert.source.fastread import FastRangeReader
from batchalert.source.offsets import commit_offsets
from batchalert.source.plan import PartitionRange, ReadPlan, plan_ranges
from batchalert.source.reader import RECORD_SCHEMA, RangeReader, ReadLimits
from batchalert.source.recordbatch import RecordSet
from tests.source.batch_builder import corrupt

pytestmark = pytest.mark.kafka

# One outgoing record: partition, key, value.
Outgoing = tuple[int, bytes | None, bytes | None]
ReaderClass = type[RangeReader] | type[FastRangeReader]
MEGABYTE_VALUE = 1_000_000  # fits the broker's default 1 MiB message size with its overhead


@dataclass
class ReadResult:
    table: pa.Table  # every record, sorted by partition and offset
    batch_rows: list[int]
    next_offsets: dict[int, int]
    records_read: int
    bytes_read: int
    capped: bool


@contextmanager
def batchalert_consumer(bootstrap: str, topic: str, group: str) -> Iterator[KafkaConsumer]:
    source = SourceConfig(brokers=[bootstrap], topic=topic, group=group, timeout_seconds=10)
    consumer = KafkaConsumer(**consumer_settings(source))
    try:
        yield consumer
    finally:
        consumer.close(autocommit=False)


def produce(bootstrap: str, topic: str, records: Iterable[Outgoing], **options: Any) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=2 * MEGABYTE_VALUE,
                             **options)
    try:
        for partition, key, value in records:
            producer.send(topic, value=value, key=key, partition=partition)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)


def read(reader_class: ReaderClass, bootstrap: str, topic: str, group: str,
         limits: ReadLimits | None = None, plan: ReadPlan | None = None) -> ReadResult:
    with batchalert_consumer(bootstrap, topic, group) as consumer:
        plan = plan or plan_ranges(consumer, topic, group)
        reader = reader_class(consumer, plan, limits)
        batches = list(reader.batches())
    table = pa.Table.from_batches(batches, schema=RECORD_SCHEMA)
    table = table.sort_by([("partition", "ascending"), ("offset", "ascending")])
    return ReadResult(table, [b.num_rows for b in batches], dict(reader.next_offsets),
                      reader.records_read, reader.bytes_read, reader.capped)


def read_both(bootstrap: str, topic: str, group: str, limits: ReadLimits | None = None,
              plan: ReadPlan | None = None) -> tuple[ReadResult, ReadResult]:
    """Read with RangeReader, then with FastRangeReader; return (default, fast)."""
    default = read(RangeReader, bootstrap, topic, group, limits, plan)
    fast = read(FastRangeReader, bootstrap, topic, group, limits, plan)
    return default, fast


def assert_same_read(default: ReadResult, fast: ReadResult) -> None:
    assert fast.table.schema == RECORD_SCHEMA
    assert fast.table.num_rows == default.table.num_rows
    for row, (expected, actual) in enumerate(zip(default.table.to_pylist(),
                                                 fast.table.to_pylist(), strict=True)):
        assert actual == expected, f"row {row} differs"
    assert fast.next_offsets == default.next_offsets
    assert fast.records_read == default.records_read
    assert fast.bytes_read == default.bytes_read
    assert fast.capped == default.capped


def mixed_values(count: int) -> Iterator[bytes | None]:
    """Cycle through null, empty, one-byte and ever longer values."""
    sizes = itertools.cycle([None, 0, 1, 17, 250, 4_000, 65_000])
    for i, size in zip(range(count), sizes, strict=False):
        yield None if size is None else bytes([65 + i % 26]) * size


def values_of(result: ReadResult) -> list[bytes | None]:
    values: list[bytes | None] = result.table.column("value").to_pylist()
    return values


class TestSameRecords:
    def test_partitions_keys_and_value_sizes(self, kafka, topic_factory, group_id) -> None:  # type: ignore[no-untyped-def]
        topic = topic_factory(partitions=4)
        # kafka-python rejects a record with neither key nor value, so null values get a key.
        records: list[Outgoing] = [(0, b"key-%d" % i if i % 3 or value is None else None, value)
                                   for i, value in enumerate(mixed_values(700))]
        records += [(1, b"big", bytes([i]) * MEGABYTE_VALUE) for i in range(3)]
        records += [(1, None, b"small after big")]
        records += [(3, b"k%d" % i, b"value %d" % i) for i in range(5000)]
        produce(kafka.bootstrap, topic, records, linger_ms=20)

        default, fast = read_both(kafka.bootstrap, topic, group_id)

        assert_same_read(default, fast)
        assert fast.records_read == len(records)
        assert fast.next_offsets[2] == 0
        assert None in values_of(fast)
        assert b"" in values_of(fast)
        assert values_of(fast).count(bytes([2]) * MEGABYTE_VALUE) == 1

    def test_sockets_of_its_own_and_kafka_pythons_agree(  # type: ignore[no-untyped-def]
            self, kafka, topic_factory, group_id, monkeypatch: pytest.MonkeyPatch) -> None:
        topic = topic_factory(partitions=3)
        produce(kafka.bootstrap, topic, [(i % 3, None, b"v%d" % i) for i in range(3000)])
        sent: list[int] = []
        original_send = direct.DirectFetchClient.send

        def counting_send(client: direct.DirectFetchClient, node_id: int, request: Any,
                          future: Any) -> None:
            sent.append(node_id)
            original_send(client, node_id, request, future)

        monkeypatch.setattr(direct.DirectFetchClient, "send", counting_send)
        own = read(FastRangeReader, kafka.bootstrap, topic, group_id)
        assert sent, "a PLAINTEXT broker is read on sockets of our own"
        monkeypatch.setattr(direct, "supports", lambda consumer: False)
        sent.clear()
        kafka_pythons = read(FastRangeReader, kafka.bootstrap, topic, group_id)

        assert not sent
        assert_same_read(kafka_pythons, own)
        assert own.records_read == 3000

    @pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "zstd"])
    def test_compression(self, kafka, topic_factory, group_id, compression: str) -> None:  # type: ignore[no-untyped-def]
        topic = topic_factory(partitions=2)
        records = [(i % 2, b"key" if i % 5 == 0 or value is None else None, value)
                   for i, value in enumerate(mixed_values(3000))]
        produce(kafka.bootstrap, topic, records, compression_type=compression, linger_ms=20,
                batch_size=256 * 1024)

        default, fast = read_both(kafka.bootstrap, topic, group_id)

        assert_same_read(default, fast)
        assert fast.records_read == 3000

    def test_range_starting_mid_batch(self, kafka, topic_factory, group_id) -> None:  # type: ignore[no-untyped-def]
        topic = topic_factory(partitions=1)
        produce(kafka.bootstrap, topic, [(0, None, b"value %d" % i) for i in range(100)],
                linger_ms=500, batch_size=1024 * 1024, compression_type="lz4")
        plan = ReadPlan(topic, group_id, (PartitionRange(0, 37, 90, "committed", 37),))

        default, fast = read_both(kafka.bootstrap, topic, group_id, plan=plan)

        assert_same_read(default, fast)
        assert fast.table.column("offset").to_pylist() == list(range(37, 90))
        assert fast.next_offsets == {0: 90}

    def test_chunks_hold_at_most_chunk_records(self, kafka, topic_factory, group_id) -> None:  # type: ignore[no-untyped-def]
        topic = topic_factory(partitions=3)
        produce(kafka.bootstrap, topic, [(i % 3, None, b"v%d" % i) for i in range(3000)],
                linger_ms=20)
        limits = ReadLimits(chunk_records=700)

        default, fast = read_both(kafka.bootstrap, topic, group_id, limits)

        assert_same_read(default, fast)
        assert max(fast.batch_rows) <= 700
        assert sum(fast.batch_rows) == 3000

    def test_progress_callback_totals(self, kafka, topic_factory, group_id) -> None:  # type: ignore[no-untyped-def]
        topic = topic_factory(partitions=2)
        produce(kafka.bootstrap, topic, [(i % 2, None, b"x" * i) for i in range(400)])
        calls: list[tuple[int, int]] = []

        with batchalert_consumer(kafka.bootstrap, topic, group_id) as consumer:
            plan = plan_ranges(consumer, topic, group_id)
            reader = FastRangeReader(consumer, plan, on_progress=lambda n, b: calls.append((n, b)))
            for _ in reader.batches():
                pass

        assert sum(n for n, _ in calls) == reader.records_read == 400
        assert sum(b for _, b in calls) == reader.bytes_read == sum(range(400))


class TestTransactions:
    def test_aborted_records_skipped(self, kafka, topic_factory, group_id) -> None:  # type: ignore[no-untyped-def]
        topic = topic_factory(partitions=2)
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap,
                                 transactional_id=f"tx-{topic}")
        try:
            producer.init_transactions()
            for round_number, outcome in enumerate(["commit", "abort", "commit", "abort"]):
                producer.begin_transaction()
                for i in range(50):
                    value = f"{outcome} {round_number} {i}".encode()
                    producer.send(topic, value, partition=i % 2)
                producer.flush()
                if outcome == "commit":
                    producer.commit_transaction()
                else:
                    producer.abort_transaction()
        finally:
            producer.close(timeout=10)
        produce(kafka.bootstrap, topic, [(0, None, b"plain after transactions")])

        default, fast = read_both(kafka.bootstrap, topic, group_id)

        assert_same_read(default, fast)
        values = values_of(fast)
        assert fast.records_read == 101
        assert not [v for v in values if v is not None and v.startswith(b"abort")]
        # 25 records per partition in each of the 4 transactions, plus 4 transaction markers.
        assert fast.next_offsets == kafka.end_offsets(topic) == {0: 105, 1: 104}


class TestCaps:
    def test_max_records(self, kafka, topic_factory, group_id) -> None:  # type: ignore[no-untyped-def]
        topic = topic_factory(partitions=1)
        produce(kafka.bootstrap, topic, [(0, None, b"v%d" % i) for i in range(1000)],
                linger_ms=20)

        default, fast = read_both(kafka.bootstrap, topic, group_id, ReadLimits(max_records=333))

        assert_same_read(default, fast)
        assert fast.capped
        assert fast.next_offsets == {0: 333}

    def test_max_bytes(self, kafka, topic_factory, group_id) -> None:  # type: ignore[no-untyped-def]
        topic = topic_factory(partitions=1)
        produce(kafka.bootstrap, topic, [(0, None, b"x" * 100) for _ in range(1000)],
                linger_ms=20)

        default, fast = read_both(kafka.bootstrap, topic, group_id, ReadLimits(max_bytes=25_050))

        assert_same_read(default, fast)
        assert fast.records_read == 250
        assert fast.bytes_read == 25_000
        assert fast.capped

    def test_cap_across_partitions_keeps_prefixes(self, kafka, topic_factory, group_id) -> None:  # type: ignore[no-untyped-def]
        topic = topic_factory(partitions=3)
        produce(kafka.bootstrap, topic, [(i % 3, None, b"v%d" % i) for i in range(3000)],
                linger_ms=20)

        fast = read(FastRangeReader, kafka.bootstrap, topic, group_id,
                    ReadLimits(max_records=500))

        assert fast.records_read == 500
        for partition, next_offset in fast.next_offsets.items():
            rows = fast.table.filter(pa.compute.equal(fast.table["partition"], partition))
            assert rows.column("offset").to_pylist() == list(range(next_offset))

    def test_exact_fit_is_not_capped(self, kafka, topic_factory, group_id) -> None:  # type: ignore[no-untyped-def]
        topic = topic_factory(partitions=1)
        produce(kafka.bootstrap, topic, [(0, None, b"v") for _ in range(50)])

        default, fast = read_both(kafka.bootstrap, topic, group_id, ReadLimits(max_records=50))

        assert_same_read(default, fast)
        assert not fast.capped


class TestErrors:
    def test_offset_out_of_range(self, kafka, topic_factory, group_id) -> None:  # type: ignore[no-untyped-def]
        topic = topic_factory(partitions=1)
        produce(kafka.bootstrap, topic, [(0, None, b"v") for _ in range(5)])
        plan = ReadPlan(topic, group_id, (PartitionRange(0, 15, 20, "committed", 15),))

        with pytest.raises(SourceError, match=r"offset 15 of partition 0 .* out of range"):
            read(FastRangeReader, kafka.bootstrap, topic, group_id, plan=plan)

    def test_stall_message_same_as_default(self, kafka, topic_factory, group_id) -> None:  # type: ignore[no-untyped-def]
        topic = topic_factory(partitions=1)
        produce(kafka.bootstrap, topic, [(0, None, b"v") for _ in range(5)])
        # The range ends past the high watermark, so the last offsets never arrive.
        plan = ReadPlan(topic, group_id, (PartitionRange(0, 0, 8, "committed", 0),))
        limits = ReadLimits(stall_seconds=1.5)
        messages = []

        for reader_class in (RangeReader, FastRangeReader):
            with pytest.raises(SourceError, match=r"made no progress for 1\.5s") as caught:
                read(reader_class, kafka.bootstrap, topic, group_id, limits, plan)
            messages.append(str(caught.value))

        assert messages[1] == messages[0]
        assert "partitions 0 at offset 5 of 8" in messages[1]

    def test_corrupt_batch_names_partition(self, kafka, topic_factory, group_id,  # type: ignore[no-untyped-def]
                                           monkeypatch: pytest.MonkeyPatch) -> None:
        topic = topic_factory(partitions=2)
        produce(kafka.bootstrap, topic, [(1, None, b"value %d" % i) for i in range(10)])

        class DamagedRecordSet(RecordSet):
            def __init__(self, buffer: bytes) -> None:
                super().__init__(corrupt(buffer, len(buffer) - 1) if buffer else buffer)

        monkeypatch.setattr(fastread, "RecordSet", DamagedRecordSet)

        with pytest.raises(SourceError, match=r"partition 1 of topic .* CRC-32C"):
            read(FastRangeReader, kafka.bootstrap, topic, group_id)


class TestAfterReading:
    def test_consumer_commits_next_offsets(self, kafka, topic_factory, group_id) -> None:  # type: ignore[no-untyped-def]
        topic = topic_factory(partitions=2)
        produce(kafka.bootstrap, topic, [(i % 2, None, b"v") for i in range(9)])

        with batchalert_consumer(kafka.bootstrap, topic, group_id) as consumer:
            plan = plan_ranges(consumer, topic, group_id)
            reader = FastRangeReader(consumer, plan)
            for _ in reader.batches():
                pass
            commit_offsets(consumer, topic, group_id, reader.next_offsets)
            committed = {r.partition: consumer.committed(TopicPartition(topic, r.partition))
                         for r in plan.ranges}

        assert committed == {0: 5, 1: 4}
