"""Compiled loops over record sets: batch headers, records, and Arrow binary columns.

`batchalert.source.recordbatch` describes the format and calls these through
`batchalert.kernels.load()`. Entry points are plain functions, compiled ahead of time by
`batchalert.kernels.build` or at run time by `batchalert.kernels.jitted`. Helpers are numba
functions, which both compile into the entry points.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from batchalert.jit import jit
from batchalert.kernels.layout import (
    BATCH_HEADER_BYTES,
    COL_ATTRIBUTES,
    COL_BASE_OFFSET,
    COL_CRC,
    COL_FIRST_TIMESTAMP,
    COL_LAST_OFFSET_DELTA,
    COL_MAGIC,
    COL_MAX_TIMESTAMP,
    COL_POSITION,
    COL_PRODUCER_ID,
    COL_RECORD_COUNT,
    COL_SIZE,
    HEADER_COLUMNS,
    LOG_OVERHEAD_BYTES,
    OUT_KEY_LENGTH,
    OUT_KEY_POSITION,
    OUT_OFFSET,
    OUT_TIMESTAMP,
    OUT_VALUE_LENGTH,
    OUT_VALUE_POSITION,
    SCAN_OLD_MAGIC,
    SCAN_SHORT_BATCH,
)

Int64Array = npt.NDArray[np.int64]
# Integers in compiled code: numba passes and returns numpy int64 scalars as well as ints.
Int = int | np.integer[Any]
ByteArray = npt.NDArray[np.uint8]


@jit
def _be_uint(buf: ByteArray, pos: Int, width: Int) -> Int:
    value = np.uint64(0)
    for i in range(width):
        value = (value << np.uint64(8)) | np.uint64(buf[pos + i])
    return value


@jit
def _be_int(buf: ByteArray, pos: Int, width: Int) -> Int:
    """Read a big-endian two's-complement integer of `width` bytes."""
    value = np.int64(_be_uint(buf, pos, width))
    if width < 8 and value >= np.int64(1) << np.int64(8 * width - 1):
        value -= np.int64(1) << np.int64(8 * width)
    return value


@jit
def read_varint(buf: ByteArray, pos: Int, end: Int) -> tuple[Int, Int]:
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


def count_batches(buf: ByteArray) -> tuple[Int, Int, Int]:
    """Count the complete batches; return (count, status, position of the bad batch)."""
    size = len(buf)
    pos = 0
    count = 0
    while size - pos >= LOG_OVERHEAD_BYTES:
        length = _be_int(buf, pos + 8, 4)
        if size - pos >= 17 and buf[pos + 16] != 2:
            return count, SCAN_OLD_MAGIC, pos
        if length < BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES:
            return count, SCAN_SHORT_BATCH, pos
        if pos + LOG_OVERHEAD_BYTES + length > size:
            break
        count += 1
        pos += LOG_OVERHEAD_BYTES + length
    return count, 0, pos


def scan_headers(buf: ByteArray, count: Int) -> npt.NDArray[np.int64]:
    """Read the headers of the first `count` batches, which `count_batches` found complete."""
    table = np.empty((count, HEADER_COLUMNS), np.int64)
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


@jit
def _skip_bytes(buf: ByteArray, pos: Int, end: Int, allow_null: bool) -> tuple[Int, Int, Int]:
    """Read a length-prefixed field; return (start, length, next position).

    The length is -1 for a null field; the next position is -1 when the field is truncated and
    -2 when its length is negative where null is not allowed.
    """
    length, pos = read_varint(buf, pos, end)
    if pos < 0:
        return 0, 0, -1
    if length < 0:
        if allow_null:
            return pos, -1, pos
        return 0, 0, -2
    if length > end - pos:
        return 0, 0, -1
    return pos, length, pos + length


@jit
def _skip_headers(buf: ByteArray, pos: Int, end: Int) -> Int:
    """Step over a record's headers; return the next position, -1 or -2 as `_skip_bytes`."""
    count, pos = read_varint(buf, pos, end)
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


@jit
def _read_record(buf: ByteArray, pos: Int, end: Int) -> tuple[Int, ...]:
    """Read the record at `pos` of a batch ending at `end`.

    Returns (status, next position, timestamp delta, offset delta, key start, key length, value
    start, value length), where a length of -1 means null and status is 0 or a key of
    _RECORD_ERRORS.
    """
    length, pos = read_varint(buf, pos, end)
    if pos < 0:
        return 1, 0, 0, 0, 0, 0, 0, 0
    if length < 0:
        return 5, 0, 0, 0, 0, 0, 0, 0
    record_end = pos + length
    if record_end > end:
        return 1, 0, 0, 0, 0, 0, 0, 0
    pos += 1  # attributes, unused in message format v2
    timestamp_delta, pos = read_varint(buf, pos, record_end)
    if pos < 0:
        return 1, 0, 0, 0, 0, 0, 0, 0
    offset_delta, pos = read_varint(buf, pos, record_end)
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


def decode_batches(raw: ByteArray, side: ByteArray, batches: npt.NDArray[np.int64],
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


def gather(raw: ByteArray, side: ByteArray, positions: Int64Array,
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
