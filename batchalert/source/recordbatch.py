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

logger = logging.getLogger(__name__)

BATCH_HEADER_BYTES = 61
# Base offset and length precede the rest of every batch, and `length` counts the bytes after them.
LOG_OVERHEAD_BYTES = 12
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

# Columns of the header table that `_scan_headers` builds, one row per complete batch.
(COL_POSITION, COL_SIZE, COL_BASE_OFFSET, COL_MAGIC, COL_CRC, COL_ATTRIBUTES,
 COL_LAST_OFFSET_DELTA, COL_FIRST_TIMESTAMP, COL_MAX_TIMESTAMP, COL_PRODUCER_ID,
 COL_RECORD_COUNT) = range(11)
_HEADER_COLUMNS = 11

# Status codes of the compiled loops, where 0 means the input was valid.
_SCAN_SHORT_BATCH = 1
_SCAN_OLD_MAGIC = 2
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


from batchalert.jit import jit as _jit  # noqa: E402


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


# --- compiled loops ---------------------------------------------------------------------------


@_jit
def _be_uint(buf: ByteArray, pos: Int, width: Int) -> Int:
    value = np.uint64(0)
    for i in range(width):
        value = (value << np.uint64(8)) | np.uint64(buf[pos + i])
    return value


@_jit
def _be_int(buf: ByteArray, pos: Int, width: Int) -> Int:
    """Read a big-endian two's-complement integer of `width` bytes."""
    value = np.int64(_be_uint(buf, pos, width))
    if width < 8 and value >= np.int64(1) << np.int64(8 * width - 1):
        value -= np.int64(1) << np.int64(8 * width)
    return value


@_jit
def _read_varint(buf: ByteArray, pos: Int, end: Int) -> tuple[Int, Int]:
    """Read a zigzag varint; return (value, next position), or (0, -1) when it is truncated."""
    raw = np.uint64(0)
    shift = np.uint64(0)
    while pos < end and shift < np.uint64(64):
        byte = np.uint64(buf[pos])
        pos += 1
        raw |= (byte & np.uint64(0x7F)) << shift
        if byte < np.uint64(0x80):
            return np.int64(raw >> np.uint64(1)) ^ -np.int64(raw & np.uint64(1)), pos
        shift += np.uint64(7)
    return np.int64(0), -1


@_jit
def _count_batches(buf: ByteArray) -> tuple[Int, Int, Int]:
    """Count the complete batches; return (count, status, position of the bad batch)."""
    size = len(buf)
    pos = 0
    count = 0
    while size - pos >= LOG_OVERHEAD_BYTES:
        length = _be_int(buf, pos + 8, 4)
        if size - pos >= 17 and buf[pos + 16] != 2:
            return count, _SCAN_OLD_MAGIC, pos
        if length < BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES:
            return count, _SCAN_SHORT_BATCH, pos
        if pos + LOG_OVERHEAD_BYTES + length > size:
            break
        count += 1
        pos += LOG_OVERHEAD_BYTES + length
    return count, 0, pos


@_jit
def _scan_headers(buf: ByteArray, count: Int) -> npt.NDArray[np.int64]:
    """Read the headers of the first `count` batches, which `_count_batches` found complete."""
    table = np.empty((count, _HEADER_COLUMNS), np.int64)
    pos = 0
    for row in range(count):
        size = LOG_OVERHEAD_BYTES + _be_int(buf, pos + 8, 4)
        table[row, COL_POSITION] = pos
        table[row, COL_SIZE] = size
        table[row, COL_BASE_OFFSET] = _be_int(buf, pos, 8)
        table[row, COL_MAGIC] = buf[pos + 16]
        table[row, COL_CRC] = np.int64(_be_uint(buf, pos + 17, 4))
        table[row, COL_ATTRIBUTES] = _be_int(buf, pos + 21, 2)
        table[row, COL_LAST_OFFSET_DELTA] = _be_int(buf, pos + 23, 4)
        table[row, COL_FIRST_TIMESTAMP] = _be_int(buf, pos + 27, 8)
        table[row, COL_MAX_TIMESTAMP] = _be_int(buf, pos + 35, 8)
        table[row, COL_PRODUCER_ID] = _be_int(buf, pos + 43, 8)
        table[row, COL_RECORD_COUNT] = _be_int(buf, pos + 57, 4)
        pos += size
    return table


@_jit
def _skip_bytes(buf: ByteArray, pos: Int, end: Int, allow_null: bool) -> tuple[Int, Int, Int]:
    """Read a length-prefixed field; return (start, length, next position).

    The length is -1 for a null field; the next position is -1 when the field is truncated and
    -2 when its length is negative where null is not allowed.
    """
    length, pos = _read_varint(buf, pos, end)
    if pos < 0:
        return 0, 0, -1
    if length < 0:
        if allow_null:
            return pos, -1, pos
        return 0, 0, -2
    if length > end - pos:
        return 0, 0, -1
    return pos, length, pos + length


@_jit
def _skip_headers(buf: ByteArray, pos: Int, end: Int) -> Int:
    """Step over a record's headers; return the next position, -1 or -2 as `_skip_bytes`."""
    count, pos = _read_varint(buf, pos, end)
    if pos < 0:
        return -1
    if count < 0:
        return -2
    for _ in range(count):
        _, _, pos = _skip_bytes(buf, pos, end, False)
        if pos < 0:
            return pos
        _, _, pos = _skip_bytes(buf, pos, end, True)
        if pos < 0:
            return pos
    return pos


@_jit
def _read_record(buf: ByteArray, pos: Int, end: Int) -> tuple[Int, ...]:
    """Read the record at `pos` of a batch ending at `end`.

    Returns (status, next position, timestamp delta, offset delta, key start, key length, value
    start, value length), where a length of -1 means null and status is 0 or a key of
    _RECORD_ERRORS.
    """
    length, pos = _read_varint(buf, pos, end)
    if pos < 0:
        return 1, 0, 0, 0, 0, 0, 0, 0
    if length < 0:
        return 5, 0, 0, 0, 0, 0, 0, 0
    record_end = pos + length
    if record_end > end:
        return 1, 0, 0, 0, 0, 0, 0, 0
    pos += 1  # attributes, unused in message format v2
    timestamp_delta, pos = _read_varint(buf, pos, record_end)
    if pos < 0:
        return 1, 0, 0, 0, 0, 0, 0, 0
    offset_delta, pos = _read_varint(buf, pos, record_end)
    if pos < 0:
        return 1, 0, 0, 0, 0, 0, 0, 0
    key_start, key_length, pos = _skip_bytes(buf, pos, record_end, True)
    if pos < 0:
        return 1, 0, 0, 0, 0, 0, 0, 0
    value_start, value_length, pos = _skip_bytes(buf, pos, record_end, True)
    if pos < 0:
        return 1, 0, 0, 0, 0, 0, 0, 0
    pos = _skip_headers(buf, pos, record_end)
    if pos == -2:
        return 3, 0, 0, 0, 0, 0, 0, 0
    if pos != record_end:
        return 2, 0, 0, 0, 0, 0, 0, 0
    return (0, pos, timestamp_delta, offset_delta, key_start, key_length, value_start,
            value_length)


# Rows of the output table of `_decode_batches`, one column per decoded record.
(OUT_OFFSET, OUT_TIMESTAMP, OUT_KEY_POSITION, OUT_KEY_LENGTH, OUT_VALUE_POSITION,
 OUT_VALUE_LENGTH) = range(6)


@_jit
def _decode_batches(raw: ByteArray, side: ByteArray, batches: npt.NDArray[np.int64],
                    min_offset: Int, max_offset: Int,
                    capacity: Int) -> tuple[Int, npt.NDArray[np.int64], Int, Int]:
    """Decode the records of `batches` whose offsets lie in [min_offset, max_offset).

    Each row of `batches` is (in side buffer?, payload start, payload end, record count, base
    offset, first timestamp, max timestamp, log-append time?). Returns (record count, output
    table with the OUT_ rows, status, index of the bad batch). Key and value positions at or
    past len(raw) point into `side`. The status is 0 or a key of _RECORD_ERRORS.
    """
    out = np.empty((6, capacity), np.int64)
    n = 0
    for b in range(batches.shape[0]):
        in_side = batches[b, 0] != 0
        buf = side if in_side else raw
        shift = len(raw) if in_side else 0
        pos = batches[b, 1]
        end = batches[b, 2]
        for _ in range(batches[b, 3]):
            (status, pos, timestamp_delta, offset_delta, key_start, key_length, value_start,
             value_length) = _read_record(buf, pos, end)
            if status:
                return n, out, status, b
            offset = batches[b, 4] + offset_delta
            if offset < min_offset or offset >= max_offset:
                continue
            out[OUT_OFFSET, n] = offset
            log_append_time = batches[b, 7] != 0
            out[OUT_TIMESTAMP, n] = batches[b, 6] if log_append_time else (
                batches[b, 5] + timestamp_delta)
            out[OUT_KEY_POSITION, n] = key_start + shift
            out[OUT_KEY_LENGTH, n] = key_length
            out[OUT_VALUE_POSITION, n] = value_start + shift
            out[OUT_VALUE_LENGTH, n] = value_length
            n += 1
        if pos != end:
            return n, out, 4, b
    return n, out, 0, -1


@_jit
def _gather(raw: ByteArray, side: ByteArray, positions: Int64Array,
            lengths: Int64Array) -> tuple[npt.NDArray[np.int32], ByteArray]:
    """Copy fields into one data buffer; return Arrow's 32-bit offsets and the data."""
    count = len(positions)
    offsets = np.empty(count + 1, np.int32)
    total = 0
    offsets[0] = 0
    for i in range(count):
        total += max(lengths[i], 0)
        offsets[i + 1] = total
    data = np.empty(total, np.uint8)
    raw_size = len(raw)
    for i in range(count):
        length = max(lengths[i], 0)
        start = positions[i]
        buf = side if start >= raw_size else raw
        if start >= raw_size:
            start -= raw_size
        # An element loop between two slices: LLVM turns it into a block copy. Slice assignment
        # runs slower and takes seconds longer to compile.
        target = data[offsets[i]:offsets[i] + length]
        source = buf[start:start + length]
        for j in range(length):
            target[j] = source[j]
    return offsets, data


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
    offsets, data = _gather(raw, side, positions, lengths)
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
    return bytes(decompress(payload.tobytes()))


class RecordSet:
    """The complete record batches in one partition's fetched record set.

    A fetch may end with a truncated batch, which the broker sends whole in a later fetch; it is
    ignored here. Constructing a RecordSet reads the batch headers only.

    Raises CorruptBatchError when a batch length is impossible, and SourceError when a batch uses
    message format v0 or v1, which this decoder does not read.
    """

    def __init__(self, buffer: bytes | bytearray | memoryview) -> None:
        self._raw = _readonly_bytes(buffer)
        count, status, bad_position = _count_batches(self._raw)
        if status == _SCAN_OLD_MAGIC:
            raise SourceError(self._old_format_message(int(bad_position)))
        if status == _SCAN_SHORT_BATCH:
            raise CorruptBatchError(f"record batch at byte {bad_position} of the record set "
                                    f"is shorter than a batch header")
        self._table = _scan_headers(self._raw, count)

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
        count, out, status, bad = _decode_batches(self._raw, side, payloads, min_offset,
                                                  max_offset, capacity)
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
        """Decompress where needed and describe each batch's records for `_decode_batches`."""
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


def warm_up() -> None:
    """Compile the decoder now, or load it from numba's cache, instead of at the first fetch.

    A cold compilation takes a few seconds; loading from the cache a fraction of a second.
    Running this once while building a container image, with NUMBA_CACHE_DIR set, stores the
    compiled code in the image.
    """
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1024)
    builder.append(timestamp=0, key=b"key", value=b"value", headers=[])
    builder.close()
    RecordSet(bytes(builder.buffer())).decode(0, 1)
