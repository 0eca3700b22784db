"""The bulk record-batch decoder on hand-built bytes and on kafka-python's own encoder."""

from __future__ import annotations

import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pytest
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder
from kafka.record.util import encode_varint

from batchalert import jit
from batchalert.errors import SourceError
from batchalert.kernels.recordsets import read_varint as read_varint_kernel
from batchalert.source import recordbatch
from batchalert.source.recordbatch import CorruptBatchError, RecordColumns, RecordSet
from tests.source.batch_builder import (
    CONTROL,
    CRC_INDEX,
    LOG_APPEND_TIME,
    TRANSACTIONAL,
    Record,
    batch,
    control_batch,
    corrupt,
    varint,
)

# Every test runs with the ahead-of-time kernels and with the just-in-time ones.
pytestmark = pytest.mark.usefixtures("kernel_backend")

ALL_OFFSETS = (np.iinfo(np.int64).min, np.iinfo(np.int64).max)
# numba fills its config module at import time, so its attributes have no static types.
NUMBA_CONFIG: Any = numba.config


@dataclass(frozen=True)
class Aborted:
    producer_id: int
    first_offset: int


def decode_all(data: bytes, min_offset: int = ALL_OFFSETS[0], max_offset: int = ALL_OFFSETS[1],
               **options: object) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Decode `data` and return (offset, timestamp, key, value) per record."""
    pieces = RecordSet(data).decode(min_offset, max_offset, **options)  # type: ignore[arg-type]
    return [row for piece in pieces for row in rows_of(piece)]


def rows_of(columns: RecordColumns) -> list[tuple[int, int, bytes | None, bytes | None]]:
    return list(zip(columns.offsets.tolist(), columns.timestamps.tolist(),
                    columns.keys.to_pylist(), columns.values.to_pylist(), strict=True))


def kafka_python_rows(data: bytes) -> list[tuple[int, int, bytes | None, bytes | None]]:
    records = MemoryRecords(data)
    return [(r.offset, r.timestamp, r.key, r.value) for b in records for r in b]


def read_varint(data: bytes) -> tuple[int, int]:
    array = np.frombuffer(data, np.uint8)
    value, position = read_varint_kernel(array, 0, len(array))
    return int(value), int(position)


class TestVarint:
    @pytest.mark.parametrize(("data", "expected"), [
        (b"\x00", 0), (b"\x01", -1), (b"\x02", 1), (b"\x7f", -64), (b"\x80\x01", 64),
        (b"\xac\x02", 150), (b"\xfe\xff\xff\xff\x0f", 2**31 - 1), (b"\xff\xff\xff\xff\x0f", -2**31),
    ])
    def test_known_encodings(self, data: bytes, expected: int) -> None:
        assert read_varint(data) == (expected, len(data))

    @pytest.mark.parametrize("value", [0, 1, -1, 300, -300, 2**31, -2**40, 2**63 - 1, -2**63])
    def test_round_trip_with_kafka_python(self, value: int) -> None:
        encoded = bytearray()
        encode_varint(value, encoded.append)

        assert read_varint(bytes(encoded)) == (value, len(encoded))

    def test_builder_matches_kafka_python(self) -> None:
        for value in (0, -5, 127, 128, -129, 2**35):
            encoded = bytearray()
            encode_varint(value, encoded.append)
            assert varint(value) == bytes(encoded)

    def test_truncated_varint(self) -> None:
        assert read_varint(b"\x80\x80") == (0, -1)


class TestDecode:
    def test_fields_of_hand_built_batch(self) -> None:
        records = [
            Record(0, b"first", key=b"k0"),
            Record(1, None, key=b"k1", timestamp_delta=5),
            Record(2, b"", timestamp_delta=9),
            Record(3, b"with header", headers=[(b"trace", b"abc"), (b"empty", None)]),
        ]
        data = batch(100, records, first_timestamp=1_000)

        assert decode_all(data) == [
            (100, 1_000, b"k0", b"first"),
            (101, 1_005, b"k1", None),
            (102, 1_009, None, b""),
            (103, 1_000, None, b"with header"),
        ]

    def test_value_sizes_count_null_as_zero(self) -> None:
        data = batch(0, [Record(0, b"abc"), Record(1, None), Record(2, b"")])

        (columns,) = RecordSet(data).decode(*ALL_OFFSETS)

        assert columns.value_sizes.tolist() == [3, 0, 0]
        assert columns.values.null_count == 1

    def test_several_batches_in_order(self) -> None:
        data = batch(0, [Record(0, b"a"), Record(1, b"b")]) + batch(2, [Record(0, b"c")])

        assert [row[0] for row in decode_all(data)] == [0, 1, 2]

    def test_log_append_time_uses_max_timestamp(self) -> None:
        records = [Record(0, b"a", timestamp_delta=1), Record(1, b"b", timestamp_delta=2)]
        data = batch(0, records, first_timestamp=500, max_timestamp=9_000,
                     attributes=LOG_APPEND_TIME)

        assert [row[1] for row in decode_all(data)] == [9_000, 9_000]

    def test_offsets_outside_range_dropped(self) -> None:
        data = batch(10, [Record(i, b"v%d" % i) for i in range(6)])

        assert [row[0] for row in decode_all(data, 12, 15)] == [12, 13, 14]

    def test_batch_outside_range_skipped(self) -> None:
        data = batch(0, [Record(0, b"early")]) + batch(1, [Record(0, b"late")])

        assert [row[3] for row in decode_all(data, 1, 2)] == [b"late"]

    def test_offset_gaps_kept(self) -> None:
        data = batch(0, [Record(0, b"a"), Record(5, b"b")], last_offset_delta=7)
        record_set = RecordSet(data)

        assert [row[0] for row in decode_all(data)] == [0, 5]
        assert record_set.next_offset == 8

    def test_truncated_last_batch_ignored(self) -> None:
        first = batch(0, [Record(0, b"whole")])
        second = batch(1, [Record(0, b"cut short")])
        record_set = RecordSet(first + second[:-3])

        assert len(record_set) == 1
        assert record_set.next_offset == 1
        assert [row[3] for row in decode_all(first + second[:-3])] == [b"whole"]

    def test_empty_record_set(self) -> None:
        record_set = RecordSet(b"")

        assert record_set.next_offset is None
        assert record_set.decode(*ALL_OFFSETS) == []

    def test_large_output_split_in_groups(self, monkeypatch: pytest.MonkeyPatch) -> None:
        data = b"".join(batch(i, [Record(0, bytes([i]) * 100)]) for i in range(5))
        expected = decode_all(data)
        monkeypatch.setattr(recordbatch, "DECODE_GROUP_BYTES", 300)

        pieces = RecordSet(data).decode(*ALL_OFFSETS)

        assert len(pieces) > 1
        assert [row for piece in pieces for row in rows_of(piece)] == expected


class TestKafkaPythonBatches:
    @pytest.mark.parametrize("compression", [0, 1, 2, 3, 4],
                             ids=["none", "gzip", "snappy", "lz4", "zstd"])
    def test_same_records_as_kafka_python(self, compression: int) -> None:
        builder = MemoryRecordsBuilder(magic=2, compression_type=compression,
                                       batch_size=1024 * 1024, offset=40)
        for i in range(300):
            key = None if i % 4 == 0 else b"key-%d" % i
            value = None if i % 7 == 0 else b"v" * (i * 13 % 900)
            builder.append(timestamp=1_600_000_000_000 + i, key=key, value=value,
                           headers=[("h", b"x")] if i % 5 == 0 else [])
        builder.close()
        data = bytes(builder.buffer())

        assert decode_all(data) == kafka_python_rows(data)

    def test_compressed_batch_from_middle(self) -> None:
        builder = MemoryRecordsBuilder(magic=2, compression_type=4, batch_size=1024 * 1024)
        for i in range(50):
            builder.append(timestamp=i, key=None, value=b"value-%d" % i, headers=[])
        builder.close()

        rows = decode_all(bytes(builder.buffer()), 17, 50)

        assert [row[0] for row in rows] == list(range(17, 50))
        assert rows[0][3] == b"value-17"


class TestTransactions:
    def test_control_batch_dropped_and_counted_in_offsets(self) -> None:
        data = (batch(0, [Record(0, b"a"), Record(1, b"b")], attributes=TRANSACTIONAL,
                      producer_id=7)
                + control_batch(2, producer_id=7, abort=False))
        record_set = RecordSet(data)

        assert [row[3] for row in decode_all(data)] == [b"a", b"b"]
        assert record_set.next_offset == 3

    def test_aborted_transaction_dropped(self) -> None:
        data = (batch(0, [Record(0, b"kept")], producer_id=3)
                + batch(1, [Record(0, b"aborted")], attributes=TRANSACTIONAL, producer_id=9)
                + control_batch(2, producer_id=9, abort=True)
                + batch(3, [Record(0, b"committed")], attributes=TRANSACTIONAL, producer_id=9)
                + control_batch(4, producer_id=9, abort=False))

        rows = decode_all(data, aborted_transactions=[Aborted(9, 1)])

        assert [row[3] for row in rows] == [b"kept", b"committed"]

    def test_other_producer_kept_during_abort(self) -> None:
        data = (batch(0, [Record(0, b"aborted")], attributes=TRANSACTIONAL, producer_id=9)
                + batch(1, [Record(0, b"other")], attributes=TRANSACTIONAL, producer_id=4)
                + control_batch(2, producer_id=9, abort=True))

        rows = decode_all(data, aborted_transactions=[Aborted(9, 0)])

        assert [row[3] for row in rows] == [b"other"]

    def test_read_uncommitted_keeps_aborted(self) -> None:
        data = (batch(0, [Record(0, b"aborted")], attributes=TRANSACTIONAL, producer_id=9)
                + control_batch(1, producer_id=9, abort=True))

        rows = decode_all(data, aborted_transactions=[Aborted(9, 0)], read_committed=False)

        assert [row[3] for row in rows] == [b"aborted"]

    def test_marker_without_key_is_corrupt(self) -> None:
        data = (batch(0, [Record(0, b"a")], attributes=TRANSACTIONAL, producer_id=9)
                + batch(1, [Record(0, b"x")], attributes=TRANSACTIONAL | CONTROL, producer_id=9))

        with pytest.raises(CorruptBatchError, match="control batch at offset 1"):
            decode_all(data, aborted_transactions=[Aborted(9, 0)])


class TestCorruption:
    def test_crc_mismatch_raises(self) -> None:
        data = batch(0, [Record(0, b"a")]) + batch(1, [Record(0, b"payload")])
        damaged = corrupt(data, len(data) - 2)

        with pytest.raises(CorruptBatchError, match="offset 1 failed its CRC-32C") as caught:
            decode_all(damaged)

        assert isinstance(caught.value, SourceError)

    def test_crc_field_damage_raises(self) -> None:
        data = corrupt(batch(5, [Record(0, b"a")]), CRC_INDEX)

        with pytest.raises(CorruptBatchError, match="offset 5"):
            decode_all(data)

    def test_crc_check_can_be_skipped(self) -> None:
        data = corrupt(batch(0, [Record(0, b"value")]), CRC_INDEX)

        assert [row[3] for row in decode_all(data, check_crcs=False)] == [b"value"]

    @pytest.mark.parametrize(("codec", "name"), [(1, "gzip"), (2, "snappy"), (3, "lz4"),
                                                  (4, "zstd")])
    def test_payload_that_does_not_decompress(self, codec: int, name: str) -> None:
        # A valid CRC over a payload its codec rejects, as a faulty producer could write it.
        data = batch(3, [Record(0, b"plain")], attributes=codec)

        with pytest.raises(CorruptBatchError, match=f"offset 3: its {name} payload does not"):
            decode_all(data)

    def test_record_length_mismatch(self) -> None:
        good = Record(0, b"abc").encode()
        bad_length = varint(len(good)) + good[1:] + b"\x00"  # one byte too long a record
        data = batch(0, [Record(0, b"abc")], payload=bad_length)

        with pytest.raises(CorruptBatchError, match="length does not match"):
            decode_all(data)

    def test_value_past_batch_end(self) -> None:
        payload = b"\x0e\x00\x00\x00\x01" + varint(100) + b"short"
        data = batch(0, [Record(0, b"x")], payload=payload)

        with pytest.raises(CorruptBatchError, match="runs past the end"):
            decode_all(data)

    def test_leftover_bytes_after_records(self) -> None:
        payload = Record(0, b"a").encode() + b"\x00\x00"
        data = batch(0, [Record(0, b"a")], payload=payload)

        with pytest.raises(CorruptBatchError, match="left over"):
            decode_all(data)

    def test_impossible_record_count(self) -> None:
        data = batch(0, [Record(0, b"a")], record_count=1000)

        with pytest.raises(CorruptBatchError, match="claims 1000 records"):
            decode_all(data)

    def test_short_batch_length(self) -> None:
        data = struct.pack(">qiib", 0, 20, 0, 2) + bytes(40)

        with pytest.raises(CorruptBatchError, match="shorter than a batch header"):
            RecordSet(data)

    def test_old_message_format_rejected(self) -> None:
        builder = MemoryRecordsBuilder(magic=1, compression_type=0, batch_size=1024)
        builder.append(timestamp=1, key=None, value=b"old", headers=[])
        builder.close()

        with pytest.raises(SourceError, match="message format v1"):
            RecordSet(bytes(builder.buffer()))


class TestNumbaCache:
    def test_read_only_cache_copied_to_temp(self, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
        seed = tmp_path / "image-cache"
        (seed / "source_0123").mkdir(parents=True)
        (seed / "source_0123" / "recordbatch.decode-1.py311.nbi").write_bytes(b"index")
        temp = tmp_path / "temp"
        monkeypatch.setenv("NUMBA_CACHE_DIR", str(seed))
        monkeypatch.setattr(NUMBA_CONFIG, "CACHE_DIR", str(seed))
        monkeypatch.setattr(tempfile, "tempdir", str(temp))

        def writable_except_seed(path: Path) -> bool:
            # Root may write anywhere, so the seed directory is read-only by decree.
            path.mkdir(parents=True, exist_ok=True)
            return path != seed

        monkeypatch.setattr(jit, "_writable_dir", writable_except_seed)

        assert jit._configure_numba_cache()

        copied = temp / "batchalert-numba" / "source_0123" / "recordbatch.decode-1.py311.nbi"
        cache_dir = NUMBA_CONFIG.CACHE_DIR
        assert copied.read_bytes() == b"index"
        assert cache_dir == str(temp / "batchalert-numba")

    def test_writable_cache_left_alone(self, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
        monkeypatch.setattr(NUMBA_CONFIG, "CACHE_DIR", str(tmp_path))

        assert jit._configure_numba_cache()

        cache_dir = NUMBA_CONFIG.CACHE_DIR
        assert cache_dir == str(tmp_path)

    def test_warm_up_decodes(self) -> None:
        assert recordbatch.warm_up() == 1
