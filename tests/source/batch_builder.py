"""Building message-format-v2 record batches byte by byte, for decoder tests."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import crc32c

TRANSACTIONAL = 0x10
CONTROL = 0x20
LOG_APPEND_TIME = 0x08
# Byte index of the CRC field in a batch: base offset (8), length (4), leader epoch (4), magic (1).
CRC_INDEX = 17


def varint(value: int) -> bytes:
    """Encode a signed integer as Kafka's zigzag varint."""
    raw = (value << 1) ^ (value >> 63)
    raw &= (1 << 64) - 1
    out = bytearray()
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def field_bytes(data: bytes | None) -> bytes:
    """Encode a nullable key, value or header value: varint length (-1 for null), then bytes."""
    if data is None:
        return varint(-1)
    return varint(len(data)) + data


@dataclass(frozen=True)
class Record:
    """One record of a hand-built batch."""

    offset_delta: int
    value: bytes | None
    key: bytes | None = None
    timestamp_delta: int = 0
    headers: Sequence[tuple[bytes, bytes | None]] = field(default_factory=tuple)

    def encode(self) -> bytes:
        body = b"\x00" + varint(self.timestamp_delta) + varint(self.offset_delta)
        body += field_bytes(self.key) + field_bytes(self.value) + varint(len(self.headers))
        for name, header_value in self.headers:
            body += varint(len(name)) + name + field_bytes(header_value)
        return varint(len(body)) + body


def batch(
    base_offset: int,
    records: Sequence[Record],
    *,
    first_timestamp: int = 1_700_000_000_000,
    max_timestamp: int | None = None,
    attributes: int = 0,
    producer_id: int = -1,
    last_offset_delta: int | None = None,
    payload: bytes | None = None,
    record_count: int | None = None,
) -> bytes:
    """Return one batch with a valid CRC; `payload` replaces the encoded records if given."""
    body = payload if payload is not None else b"".join(r.encode() for r in records)
    if last_offset_delta is None:
        last_offset_delta = max((r.offset_delta for r in records), default=0)
    if max_timestamp is None:
        max_timestamp = first_timestamp + max((r.timestamp_delta for r in records), default=0)
    count = len(records) if record_count is None else record_count
    after_crc = struct.pack(">hiqqqhii", attributes, last_offset_delta, first_timestamp,
                            max_timestamp, producer_id, 0, 0, count) + body
    length = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, CRC, then the rest
    crc = crc32c.crc32c(after_crc)
    return struct.pack(">qiibI", base_offset, length, 0, 2, crc) + after_crc


def control_batch(offset: int, producer_id: int, abort: bool) -> bytes:
    """Return a transaction marker: a control batch whose one record's key holds the type."""
    key = struct.pack(">hh", 0, 0 if abort else 1)
    marker = Record(0, struct.pack(">hi", 0, 0), key=key)
    return batch(offset, [marker], attributes=TRANSACTIONAL | CONTROL, producer_id=producer_id)


def corrupt(data: bytes, index: int) -> bytes:
    """Return `data` with the byte at `index` inverted."""
    changed = bytearray(data)
    changed[index] ^= 0xFF
    return bytes(changed)
