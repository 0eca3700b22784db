"""Decoding Kafka record sets (message format v2) into Arrow columns a whole batch at a time.

A fetched record set is a run of record batches. Each batch has a fixed 61-byte header and then
its records, compressed together or not; each record is a sequence of zigzag varints and bytes:

    batch:  base offset i64 | length i32 | leader epoch i32 | magic i8 (2) | CRC-32C u32 |
            attributes i16 | last offset delta i32 | first timestamp i64 | max timestamp i64 |
            producer id i64 | producer epoch i16 | base sequence i32 | record count i32 | records
    record: length | attributes i8 | timestamp delta | offset delta | key length | key |
            value length | value | header count | headers (key length | key | value length | value)

The CRC covers the bytes from the attributes to the end of the batch. Numba-compiled loops walk
the batch headers and the records, so Python runs per batch (CRC check, decompression) and never
per record. The record filters follow kafka-python 3.0's fetcher: control batches are dropped,
and under read_committed so are the batches of aborted transactions, which the fetch response
lists with their producer id and first offset.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from kafka import codec
from kafka.record.memory_records import MemoryRecordsBuilder
from kafka.record.util import calc_crc32c

from batchalert.errors import SourceError
from batchalert.kernels import load as load_kernels
from batchalert.kernels.layout import (
    BATCH_HEADER_BYTES,
    COL_ATTRIBUTES,
    COL_BASE_OFFSET,
    COL_CRC,
    COL_FIRST_TIMESTAMP,
    COL_LAST_OFFSET_DELTA,
    COL_MAX_TIMESTAMP,
    COL_POSITION,
    COL_PRODUCER_ID,
    COL_RECORD_COUNT,
    COL_SIZE,
    OUT_KEY_LENGTH,
    OUT_KEY_POSITION,
    OUT_OFFSET,
    OUT_TIMESTAMP,
    OUT_VALUE_LENGTH,
    OUT_VALUE_POSITION,
    SCAN_OLD_MAGIC,
    SCAN_SHORT_BATCH,
)

logger = logging.getLogger(__name__)

# The CRC-32C covers the batch from its attributes field to its end.
CRC_START = 21
# The smallest record: length, attributes, timestamp delta, offset delta, key length, value
# length and header count of one byte each. It bounds a batch's record count by its size.
MIN_RECORD_BYTES = 7
# Uncompressed record bytes decoded in one step. It keeps each Arrow binary column below the
# 2 GiB that 32-bit offsets address, and bounds the memory of one decoding step.
DECODE_GROUP_BYTES = 256 * 1024 * 1024
_MAX_BINARY_BYTES = 2**31 - 1

CODEC_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20
_CONTROL_KEY = struct.Struct(">hh")
_ABORT_MARKER = 0

# Status codes of `decode_batches`, where 0 means the input was valid.
_RECORD_ERRORS = {
    1: "a record field runs past the end of its batch",
    2: "a record's length does not match its fields",
    3: "a record has a negative header count or header key length",
    4: "bytes are left over after the batch's last record",
    5: "a record has a negative length",
}

_DECOMPRESSORS: dict[int, tuple[str, Callable[[], bool], Callable[[bytes], bytes]]] = {
    1: ("gzip", codec.has_gzip, codec.gzip_decode),
    2: ("snappy", codec.has_snappy, codec.snappy_decode),
    3: ("lz4", codec.has_lz4, codec.lz4_decode),
    4: ("zstd", codec.has_zstd, codec.zstd_decode),
}

Int64Array = npt.NDArray[np.int64]
# Integers in compiled code: numba passes and returns numpy int64 scalars as well as ints.
Int = int | np.integer[Any]
ByteArray = npt.NDArray[np.uint8]


class CorruptBatchError(SourceError):
    """A fetched record batch failed its CRC check or does not decode."""


class AbortedTransaction(Protocol):
    """An aborted transaction as a fetch response lists it."""

    @property
    def producer_id(self) -> int: ...

    @property
    def first_offset(self) -> int: ...


@dataclass(frozen=True)
class RecordColumns:
    """Decoded records of consecutive batches of one partition, in offset order."""

    offsets: Int64Array
    timestamps: Int64Array  # milliseconds since the epoch; -1 when the producer set none
    keys: pa.BinaryArray
    values: pa.BinaryArray
    value_sizes: Int64Array  # bytes of each value, 0 for a null value

    def __len__(self) -> int:
        return len(self.offsets)

    def head(self, count: int) -> RecordColumns:
        """Return the first `count` records, without copying."""
        return RecordColumns(self.offsets[:count], self.timestamps[:count],
                             self.keys.slice(0, count), self.values.slice(0, count),
                             self.value_sizes[:count])


# --- Python side --------------------------------------------------------------------------------


def _readonly_bytes(buffer: bytes | bytearray | memoryview) -> ByteArray:
    # One array type for every input, so numba compiles (and caches) one specialisation.
    array = np.frombuffer(buffer, np.uint8)
    array.flags.writeable = False
    return array


def _binary_array(positions: Int64Array, lengths: Int64Array, raw: ByteArray,
                  side: ByteArray) -> pa.BinaryArray:
    total = int(np.maximum(lengths, 0).sum())
    if total > _MAX_BINARY_BYTES:
        raise SourceError(f"decoded record batches contain {total} bytes of keys or values, "
                          f"more than one Arrow binary column can address "
                          f"({_MAX_BINARY_BYTES}); lower "
                          f"the consumer's max_partition_fetch_bytes")
    offsets, data = load_kernels().gather(raw, side, positions, lengths)
    valid = lengths >= 0
    null_count = len(lengths) - int(np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if null_count else None
    return pa.Array.from_buffers(pa.binary(), len(lengths),
                                 [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)],
                                 null_count=null_count)


def _decompress(compression: int, payload: memoryview, base_offset: int) -> bytes:
    if compression not in _DECOMPRESSORS:
        raise CorruptBatchError(f"record batch at offset {base_offset} names unknown "
                                f"compression type {compression}")
    name, available, decompress = _DECOMPRESSORS[compression]
    if not available():
        raise SourceError(f"record batch at offset {base_offset} is {name}-compressed but the "
                          f"{name} library is not installed; install kafka-python[{name}]")
    try:
        return bytes(decompress(payload.tobytes()))
    except Exception as exc:  # each codec library raises errors of its own
        raise CorruptBatchError(f"record batch at offset {base_offset}: its {name} payload does "
                                f"not decompress ({type(exc).__name__}: {exc})") from exc


class RecordSet:
    """The complete record batches in one partition's fetched record set.

    A fetch may end with a truncated batch, which the broker sends whole in a later fetch; it is
    ignored here. Constructing a RecordSet reads the batch headers only.

    Raises CorruptBatchError when a batch length is impossible, and SourceError when a batch uses
    message format v0 or v1, which this decoder does not read.
    """

    def __init__(self, buffer: bytes | bytearray | memoryview) -> None:
        self._raw = _readonly_bytes(buffer)
        count, status, bad_position = load_kernels().count_batches(self._raw)
        if status == SCAN_OLD_MAGIC:
            raise SourceError(self._old_format_message(int(bad_position)))
        if status == SCAN_SHORT_BATCH:
            raise CorruptBatchError(f"record batch at byte {bad_position} of the record set "
                                    f"is shorter than a batch header")
        self._table = load_kernels().scan_headers(self._raw, count)

    def _old_format_message(self, position: int) -> str:
        (base_offset,) = struct.unpack_from(">q", self._raw.data, position)
        return (f"record batch at offset {base_offset} uses message format "
                f"v{self._raw[position + 16]}, which the bulk decoder does not read; read this "
                f"topic with RangeReader, which decodes through kafka-python")

    def __len__(self) -> int:
        return int(self._table.shape[0])

    def column(self, index: int) -> Int64Array:
        """Return one column of the header table (see the COL_ constants)."""
        return self._table[:, index]

    @property
    def next_offset(self) -> int | None:
        """Offset after the last complete batch, or None when there is none.

        Message format v2 keeps a batch's last offset even when compaction removed its last
        records, so fetching from here never fetches the same batch twice.
        """
        if not len(self):
            return None
        last = self._table[-1]
        return int(last[COL_BASE_OFFSET] + last[COL_LAST_OFFSET_DELTA] + 1)

    def check_crcs(self) -> None:
        """Raise CorruptBatchError for the first batch whose CRC-32C does not match."""
        view = self._raw.data
        positions = self.column(COL_POSITION).tolist()
        sizes = self.column(COL_SIZE).tolist()
        computed = [calc_crc32c(view[p + CRC_START:p + s]) for p, s in zip(positions, sizes,
                                                                            strict=True)]
        bad = np.flatnonzero(np.asarray(computed, np.int64) != self.column(COL_CRC))
        if len(bad):
            row = int(bad[0])
            raise CorruptBatchError(
                f"record batch at offset {int(self._table[row, COL_BASE_OFFSET])} failed its "
                f"CRC-32C check (stored {int(self._table[row, COL_CRC]):#010x}, computed "
                f"{computed[row]:#010x}): the data is corrupt on the broker or in transit")

    def decode(
        self,
        min_offset: int,
        max_offset: int,
        aborted_transactions: Iterable[AbortedTransaction] | None = None,
        read_committed: bool = True,
        check_crcs: bool = True,
    ) -> list[RecordColumns]:
        """Decode the records with offsets in [min_offset, max_offset) that reach a consumer.

        Control batches are dropped, and with `read_committed` so are the batches of the aborted
        transactions that the fetch response listed. Returns one RecordColumns per group of at
        most DECODE_GROUP_BYTES of uncompressed records.
        """
        if check_crcs:
            self.check_crcs()
        kept = self._visible(aborted_transactions or [], read_committed)
        kept &= self._overlaps(min_offset, max_offset)
        rows = np.flatnonzero(kept)
        return [self._decode_rows(group, min_offset, max_offset)
                for group in self._groups(rows)]

    def _overlaps(self, min_offset: int, max_offset: int) -> npt.NDArray[np.bool_]:
        base = self.column(COL_BASE_OFFSET)
        last = base + self.column(COL_LAST_OFFSET_DELTA)
        return (last >= min_offset) & (base < max_offset)

    def _visible(self, aborted: Iterable[AbortedTransaction],
                 read_committed: bool) -> npt.NDArray[np.bool_]:
        control = (self.column(COL_ATTRIBUTES) & CONTROL_MASK) != 0
        pending = deque(sorted(aborted, key=lambda txn: txn.first_offset))
        if not read_committed or not pending:
            visible: npt.NDArray[np.bool_] = np.logical_not(control)
            return visible
        return self._visible_with_aborts(control, pending)

    def _visible_with_aborts(self, control: npt.NDArray[np.bool_],
                             pending: deque[AbortedTransaction]) -> npt.NDArray[np.bool_]:
        # The same walk as kafka-python's fetcher: a producer's batches are dropped from its
        # aborted transaction's first offset up to its abort marker.
        visible = ~control
        transactional = (self.column(COL_ATTRIBUTES) & TRANSACTIONAL_MASK) != 0
        last_offsets = self.column(COL_BASE_OFFSET) + self.column(COL_LAST_OFFSET_DELTA)
        aborted_producers: set[int] = set()
        for row, producer_id in enumerate(self.column(COL_PRODUCER_ID).tolist()):
            if producer_id < 0:
                continue
            while pending and pending[0].first_offset <= last_offsets[row]:
                aborted_producers.add(pending.popleft().producer_id)
            if control[row]:
                if self._is_abort_marker(row):
                    aborted_producers.discard(producer_id)
            elif transactional[row] and producer_id in aborted_producers:
                visible[row] = False
        return visible

    def _is_abort_marker(self, row: int) -> bool:
        columns = self._decode_rows(np.array([row]), np.iinfo(np.int64).min,
                                    np.iinfo(np.int64).max)
        if not len(columns):
            return False
        key = columns.keys[0].as_py()
        if key is None or len(key) < _CONTROL_KEY.size:
            raise CorruptBatchError(f"control batch at offset "
                                    f"{int(self._table[row, COL_BASE_OFFSET])} has no valid key")
        _version, marker = _CONTROL_KEY.unpack_from(key)
        return bool(marker == _ABORT_MARKER)

    def _groups(self, rows: npt.NDArray[np.intp]) -> Iterator[npt.NDArray[np.intp]]:
        # Compressed sizes stand in for uncompressed ones here, so a group of compressed batches
        # can exceed the bound. `_binary_array` raises when a column outgrows 32-bit offsets.
        sizes = self.column(COL_SIZE)[rows]
        start = 0
        total = 0
        for index, size in enumerate(sizes.tolist()):
            if total and total + size > DECODE_GROUP_BYTES:
                yield rows[start:index]
                start, total = index, 0
            total += size
        if start < len(rows):
            yield rows[start:]

    def _decode_rows(self, rows: npt.NDArray[np.intp], min_offset: int,
                     max_offset: int) -> RecordColumns:
        side, payloads = self._payloads(rows)
        capacity = int(payloads[:, 3].sum()) if len(rows) else 0
        count, out, status, bad = load_kernels().decode_batches(
            self._raw, side, payloads, min_offset, max_offset, capacity)
        if status:
            row = int(rows[bad])
            raise CorruptBatchError(f"record batch at offset "
                                    f"{int(self._table[row, COL_BASE_OFFSET])} does not decode: "
                                    f"{_RECORD_ERRORS[int(status)]}")
        out = out[:, :count]
        value_lengths = out[OUT_VALUE_LENGTH]
        return RecordColumns(
            offsets=out[OUT_OFFSET],
            timestamps=out[OUT_TIMESTAMP],
            keys=_binary_array(out[OUT_KEY_POSITION], out[OUT_KEY_LENGTH], self._raw, side),
            values=_binary_array(out[OUT_VALUE_POSITION], value_lengths, self._raw, side),
            value_sizes=np.maximum(value_lengths, 0),
        )

    def _payloads(self, rows: npt.NDArray[np.intp]) -> tuple[ByteArray, Int64Array]:
        """Decompress where needed and describe each batch's records for `decode_batches`."""
        table = self._table[rows]
        payloads = np.empty((len(rows), 8), np.int64)
        payloads[:, 0] = 0
        payloads[:, 1] = table[:, COL_POSITION] + BATCH_HEADER_BYTES
        payloads[:, 2] = table[:, COL_POSITION] + table[:, COL_SIZE]
        payloads[:, 3] = table[:, COL_RECORD_COUNT]
        payloads[:, 4] = table[:, COL_BASE_OFFSET]
        payloads[:, 5] = table[:, COL_FIRST_TIMESTAMP]
        payloads[:, 6] = table[:, COL_MAX_TIMESTAMP]
        payloads[:, 7] = (table[:, COL_ATTRIBUTES] & TIMESTAMP_TYPE_MASK) != 0
        side = self._decompress_into(table, payloads)
        self._check_record_counts(table, payloads)
        return side, payloads

    def _decompress_into(self, table: Int64Array, payloads: Int64Array) -> ByteArray:
        compressed = np.flatnonzero(table[:, COL_ATTRIBUTES] & CODEC_MASK)
        view = self._raw.data
        parts = []
        size = 0
        for row in compressed.tolist():
            start, end = int(payloads[row, 1]), int(payloads[row, 2])
            part = _decompress(int(table[row, COL_ATTRIBUTES] & CODEC_MASK), view[start:end],
                               int(table[row, COL_BASE_OFFSET]))
            payloads[row, 0:3] = (1, size, size + len(part))
            parts.append(part)
            size += len(part)
        return _readonly_bytes(b"".join(parts))

    def _check_record_counts(self, table: Int64Array, payloads: Int64Array) -> None:
        counts = payloads[:, 3]
        room = (payloads[:, 2] - payloads[:, 1]) // MIN_RECORD_BYTES
        bad = np.flatnonzero((counts < 0) | (counts > room))
        if len(bad):
            row = int(bad[0])
            raise CorruptBatchError(f"record batch at offset {int(table[row, COL_BASE_OFFSET])} "
                                    f"claims {int(counts[row])} records, more than its "
                                    f"{int(payloads[row, 2] - payloads[row, 1])} bytes can hold")


def warm_up() -> int:
    """Load the kernels and decode one record, so that a timed read leaves set-up out.

    With the ahead-of-time kernels this takes milliseconds; with numba's just-in-time ones it
    compiles the decoder or loads it from numba's cache. Returns the records decoded (one).
    """
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1024)
    builder.append(timestamp=0, key=b"key", value=b"value", headers=[])
    builder.close()
    return sum(len(columns.offsets) for columns in RecordSet(bytes(builder.buffer())).decode(0, 1))
