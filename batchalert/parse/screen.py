"""A compiled check that a record value is a well-formed envelope, to skip decoding it.

With the prefilter on, a record whose raw value contains none of the rules' status codes
cannot match a rule. Skipping it outright would also skip the checks that count unreadable
records, so the screen checks those values in one pass over the Arrow buffers instead:

- the size is between 1 byte and the shape's `max_value_bytes`;
- the bytes are well-formed UTF-8 (RFC 3629);
- the value is one strict JSON object (RFC 8259), nested at most `MAX_DEPTH` levels, with no
  escaped lone surrogate and no raw line break;
- the object has a line: a top-level line field of the shape whose value is a string, and every
  line field it has is a string;
- the line is no fragment: no log tag "P", and no unterminated Docker piece (see
  `RecordShape.docker_split_field`).

A value that passes is a well-formed envelope whose line the run does not need; it is counted
as skipped. Every other value goes to the full parser, which finds the reason and counts it.
The screen errs one way only: where it cannot decide cheaply (an escaped key, a duplicate
field, a field of an unexpected type, white space other than blanks and tabs), the value is
parsed in full.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from batchalert.jit import CACHE, inline_jit, limit_threads
from batchalert.parse.shapes import RecordShape
from batchalert.parse.utf8 import invalid_utf8_rows, utf8_sequence_end

# Helpers are inlined into the one compiled entry point, which splits the rows into blocks of
# _BLOCK_ROWS and checks the blocks on all cores (numba's prange).
_parallel = numba.njit(cache=CACHE, nogil=True, parallel=True)
_BLOCK_ROWS = 1024

MAX_DEPTH = 64  # serde_json allows 128; deeper values are left to the full parser

# Roles of the top-level fields the screen looks at.
_LINE, _TAG, _STREAM = 0, 1, 2

# Parser states after a token.
_KEY_OR_CLOSE, _KEY, _VALUE, _VALUE_OR_CLOSE, _AFTER_VALUE = 0, 1, 2, 3, 4
_OBJECT, _ARRAY = 0, 1


@dataclass(frozen=True)
class ScreenFields:
    """The top-level field names the screen matches, as one byte buffer with offsets."""

    names: npt.NDArray[np.uint8]
    offsets: npt.NDArray[np.int64]
    roles: npt.NDArray[np.int8]
    # Position among the line fields of `docker_split_field`, or -1.
    docker_line: int


def screen_fields(shape: RecordShape) -> ScreenFields | None:
    """Return the fields to match for `shape`, or None when the screen cannot decide for it.

    Dotted line fields are never matched, so values that carry their line only there are
    parsed in full. A dotted log tag or stream field would hide a fragment, so such a shape
    is not screened at all.
    """
    optional = [shape.stream_field] if shape.stream_field is not None else []
    if any("." in path for path in [*shape.logtag_fields, *optional]):
        return None
    entries: list[tuple[str, int]] = [(path, _LINE) for path in shape.line_fields
                                      if "." not in path]
    if not entries:
        return None
    entries += [(path, _TAG) for path in shape.logtag_fields]
    entries += [(path, _STREAM) for path in optional]
    encoded = [name.encode() for name, _ in entries]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(name) for name in encoded])
    line_names = [name for name, role in entries if role == _LINE]
    docker = shape.docker_split_field
    return ScreenFields(
        names=np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(),
        offsets=offsets,
        roles=np.array([role for _, role in entries], dtype=np.int8),
        docker_line=line_names.index(docker) if docker in line_names else -1,
    )


def well_formed_envelopes(values: pa.Array, fields: ScreenFields, max_bytes: int,
                          skip: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.bool_]:
    """Return true for each value that passes the screen; rows where `skip` is true are false.

    `values` is a binary Arrow array; `skip` marks rows that are parsed in full anyway.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type != pa.large_binary():
        values = values.cast(pa.large_binary())
    passed = np.zeros(len(values), dtype=np.bool_)
    validity, offsets_buffer, data_buffer = values.buffers()
    if not len(values) or offsets_buffer is None or data_buffer is None:
        return passed
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[
        values.offset: values.offset + len(values) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    excluded = np.zeros(len(values), dtype=np.bool_) if skip is None else skip.copy()
    if validity is not None:
        excluded |= values.is_null().to_numpy(zero_copy_only=False)
    limit_threads()
    _screen(offsets, data, excluded, max_bytes, fields.names, fields.offsets, fields.roles,
            fields.docker_line, passed)
    return passed


@_parallel
def _screen(offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8],
            excluded: npt.NDArray[np.bool_], max_bytes: int, names: npt.NDArray[np.uint8],
            name_offsets: npt.NDArray[np.int64], roles: npt.NDArray[np.int8], docker_line: int,
            passed: npt.NDArray[np.bool_]) -> None:  # pragma: no cover - compiled
    rows = passed.shape[0]
    blocks = (rows + _BLOCK_ROWS - 1) // _BLOCK_ROWS
    for block in numba.prange(blocks):
        stack = np.zeros(MAX_DEPTH, dtype=np.uint8)
        seen = np.zeros(roles.shape[0], dtype=np.bool_)
        for row in range(block * _BLOCK_ROWS, min(rows, (block + 1) * _BLOCK_ROWS)):
            if excluded[row]:
                continue
            start, end = offsets[row], offsets[row + 1]
            if end == start or end - start > max_bytes:
                continue
            passed[row] = _screen_one(data, start, end, names, name_offsets, roles,
                                      docker_line, stack, seen)


@inline_jit
def _screen_one(data: npt.NDArray[np.uint8], position: int, end: int,
                names: npt.NDArray[np.uint8], name_offsets: npt.NDArray[np.int64],
                roles: npt.NDArray[np.int8], docker_line: int, stack: npt.NDArray[np.uint8],
                seen: npt.NDArray[np.bool_]) -> bool:  # pragma: no cover - compiled
    """Check one value; see the module docstring for what passes."""
    seen[:] = False
    line_index = -1  # index among line fields of the first line found
    line_ends_with_newline = False
    tag_is_p = False
    has_tag = False
    has_stream = False
    field = -1  # tracked top-level field whose value comes next
    depth = 0
    state = _VALUE
    while True:
        while position < end and (data[position] == 0x20 or data[position] == 0x09):
            position += 1
        if position >= end:
            return False
        byte = data[position]
        if state in (_KEY_OR_CLOSE, _KEY):
            if byte == 0x7D and state == _KEY_OR_CLOSE:  # }
                depth -= 1
                position += 1
                state = _AFTER_VALUE
            elif byte != 0x22:  # "
                return False
            else:
                key_start = position + 1
                position = _string_end(data, key_start, end)
                if position < 0:
                    return False
                field = -1
                if depth == 1:
                    field = _tracked_field(data, key_start, position, names, name_offsets)
                    if field == -2:
                        return False
                    if field >= 0:
                        if seen[field]:
                            return False
                        seen[field] = True
                position += 1
                while position < end and (data[position] == 0x20 or data[position] == 0x09):
                    position += 1
                if position >= end or data[position] != 0x3A:  # :
                    return False
                position += 1
                state = _VALUE
        elif state in (_VALUE, _VALUE_OR_CLOSE):
            if byte == 0x5D and state == _VALUE_OR_CLOSE:  # ]
                depth -= 1
                position += 1
                state = _AFTER_VALUE
                continue
            if depth == 0 and byte != 0x7B:  # the whole value must be an object
                return False
            if field >= 0 and byte != 0x22:  # a tracked field that is no string
                return False
            if byte == 0x7B or byte == 0x5B:  # { [
                if depth == MAX_DEPTH:
                    return False
                stack[depth] = _OBJECT if byte == 0x7B else _ARRAY
                depth += 1
                position += 1
                state = _KEY_OR_CLOSE if byte == 0x7B else _VALUE_OR_CLOSE
                continue
            if byte == 0x22:
                value_start = position + 1
                position = _string_end(data, value_start, end)
                if position < 0:
                    return False
                if field >= 0:
                    role = roles[field]
                    length = position - value_start
                    if role == _LINE:
                        if line_index < 0:
                            line_index = _line_position(roles, field)
                            line_ends_with_newline = (
                                length >= 2 and data[position - 1] == 0x6E
                                and data[position - 2] == 0x5C
                                and _escaped_backslash_run(data, value_start, position - 2))
                    elif role == _TAG:
                        has_tag = True
                        tag_is_p = tag_is_p or (length == 1 and data[value_start] == 0x50)
                    else:
                        has_stream = True
                position += 1
            else:
                position = _scalar_end(data, position, end)
                if position < 0:
                    return False
            field = -1
            state = _AFTER_VALUE
        else:  # _AFTER_VALUE
            if depth == 0:
                return False  # something after the object
            container = stack[depth - 1]
            if byte == 0x2C:  # ,
                state = _KEY if container == _OBJECT else _VALUE
            elif (byte == 0x7D and container == _OBJECT) or (byte == 0x5D and container == _ARRAY):
                depth -= 1
            else:
                return False
            position += 1
            if depth == 0:
                while position < end and (data[position] == 0x20 or data[position] == 0x09):
                    position += 1
                if position != end:
                    return False
                break
    if line_index < 0 or tag_is_p:
        return False
    unterminated = (line_index == docker_line and has_stream and not has_tag
                    and not line_ends_with_newline)
    return not unterminated


@inline_jit
def _line_position(roles: npt.NDArray[np.int8],
                       field: int) -> int:  # pragma: no cover - compiled
    """Return the position of tracked field `field` among the line fields."""
    index = 0
    for other in range(field):
        if roles[other] == _LINE:
            index += 1
    return index


@inline_jit
def _escaped_backslash_run(data: npt.NDArray[np.uint8], start: int,
                           backslash: int) -> bool:  # pragma: no cover - compiled
    """Return true when the backslash at `backslash` starts an escape (an even run before it)."""
    run = 0
    position = backslash - 1
    while position >= start and data[position] == 0x5C:
        run += 1
        position -= 1
    return run % 2 == 0


@inline_jit
def _tracked_field(data: npt.NDArray[np.uint8], start: int, end: int,
                   names: npt.NDArray[np.uint8],
                   name_offsets: npt.NDArray[np.int64]) -> int:  # pragma: no cover - compiled
    """Return the index of the tracked name equal to data[start:end], -1 if none, -2 if escaped.

    An escaped key could spell a tracked name in another way, which the screen does not decode.
    """
    for position in range(start, end):
        if data[position] == 0x5C:
            return -2
    length = end - start
    for index in range(name_offsets.shape[0] - 1):
        name_start = name_offsets[index]
        if name_offsets[index + 1] - name_start != length:
            continue
        same = True
        for offset in range(length):
            if data[start + offset] != names[name_start + offset]:
                same = False
                break
        if same:
            return index
    return -1


@inline_jit
def _string_end(data: npt.NDArray[np.uint8], position: int,
                end: int) -> int:  # pragma: no cover - compiled
    """Return the position of the closing quote of the string starting at `position`, or -1.

    Checks escapes (no escaped lone surrogate), control characters and UTF-8 on the way.
    """
    while position < end:
        byte = data[position]
        if (0x22 < byte < 0x7F and byte != 0x5C) or byte == 0x20 or byte == 0x21:
            position += 1
            continue
        if byte == 0x22:
            return position
        if byte < 0x20:
            return -1
        if byte == 0x5C:
            position += 1
            if position >= end:
                return -1
            escape = data[position]
            if escape == 0x75:  # u
                if position + 4 >= end:
                    return -1
                code = 0
                for offset in range(1, 5):
                    digit = _hex_value(data[position + offset])
                    if digit < 0:
                        return -1
                    code = code * 16 + digit
                if 0xD800 <= code <= 0xDFFF:
                    return -1  # surrogate pairs are rare in logs; the full parser decides
                position += 5
                continue
            if not (escape == 0x22 or escape == 0x5C or escape == 0x2F or escape == 0x62
                    or escape == 0x66 or escape == 0x6E or escape == 0x72 or escape == 0x74):
                return -1
            position += 1
            continue
        if byte < 0x80:
            position += 1
            continue
        position = utf8_sequence_end(data, position, end)
        if position < 0:
            return -1
    return -1


@inline_jit
def _hex_value(byte: int) -> int:  # pragma: no cover - compiled
    if 0x30 <= byte <= 0x39:
        return byte - 0x30
    if 0x61 <= byte <= 0x66:
        return byte - 0x61 + 10
    if 0x41 <= byte <= 0x46:
        return byte - 0x41 + 10
    return -1


@inline_jit
def _scalar_end(data: npt.NDArray[np.uint8], position: int,
                end: int) -> int:  # pragma: no cover - compiled
    """Return the position after the number or literal at `position`, or -1 if it is neither."""
    byte = data[position]
    if byte == 0x74:  # true
        return _literal_end(data, position, end, 0x72, 0x75, 0x65, 0)
    if byte == 0x66:  # false
        return _literal_end(data, position, end, 0x61, 0x6C, 0x73, 0x65)
    if byte == 0x6E:  # null
        return _literal_end(data, position, end, 0x75, 0x6C, 0x6C, 0)
    if byte == 0x2D:  # -
        position += 1
    if position >= end:
        return -1
    if data[position] == 0x30:
        position += 1
    elif 0x31 <= data[position] <= 0x39:
        position = _digits_end(data, position, end)
    else:
        return -1
    if position < end and data[position] == 0x2E:  # .
        after = _digits_end(data, position + 1, end)
        if after == position + 1:
            return -1
        position = after
    if position < end and (data[position] == 0x65 or data[position] == 0x45):  # e E
        position += 1
        if position < end and (data[position] == 0x2B or data[position] == 0x2D):
            position += 1
        after = _digits_end(data, position, end)
        if after == position:
            return -1
        position = after
    return position


@inline_jit
def _digits_end(data: npt.NDArray[np.uint8], position: int,
                end: int) -> int:  # pragma: no cover - compiled
    while position < end and 0x30 <= data[position] <= 0x39:
        position += 1
    return position


@inline_jit
def _literal_end(data: npt.NDArray[np.uint8], position: int, end: int, second: int, third: int,
                 fourth: int, fifth: int) -> int:  # pragma: no cover - compiled
    """Return the position after the literal whose first byte is at `position`, or -1.

    `fifth` is 0 for the four-letter literals.
    """
    length = 4 if fifth == 0 else 5
    if position + length > end:
        return -1
    if data[position + 1] != second or data[position + 2] != third:
        return -1
    if data[position + 3] != fourth or (fifth != 0 and data[position + 4] != fifth):
        return -1
    return position + length


def warm_up() -> None:
    """Compile the screen and the UTF-8 check now, or load them from numba's cache.

    Like `batchalert.source.recordbatch.warm_up`, for a container image build.
    """
    values = pa.array([b'{"log":"x\\n"}', b"\xff"], pa.binary())
    fields = screen_fields(RecordShape())
    assert fields is not None
    well_formed_envelopes(values, fields, 64)
    invalid_utf8_rows(pl.Series(values))
