"""Compiled reading of a few fields from JSON objects, for the envelope parser's common case.

`batchalert.parse.fields` describes the contract and calls these through
`batchalert.kernels.load()`. A value is read here only when the result is certain to equal
what Polars' JSON reader returns for it. Every other value is marked for that reader.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from batchalert.jit import inline_jit, jit
from batchalert.kernels.bitmasks import _unowned
from batchalert.kernels.layout import (
    FIELD_ABSENT,
    FIELD_DECIMAL,
    FIELD_STRING,
    FIELD_TEXT,
    FIELDS_MAX_DEPTH,
)
from batchalert.kernels.text import (
    _AFTER_VALUE,
    _KEY,
    _KEY_OR_CLOSE,
    _VALUE,
    _VALUE_OR_CLOSE,
    _digits_end,
    _find_name,
    _hex_value,
    _key_end,
    _name_lengths,
    _scalar_end,
    _string_end,
)

# Decimal numbers with more significant digits than this may print differently once read as
# a 64-bit float, which is what Polars does with a number read into a String column.
_MAX_DECIMAL_DIGITS = 15
# Zeros after "0." up to which a decimal stays a normal 64-bit float (1e-300 does; 2.2e-308
# is the smallest). Below it a float keeps fewer digits.
_MAX_LEADING_ZEROS = 300


def locate_fields(offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8],
                  names: npt.NDArray[np.uint8], name_offsets: npt.NDArray[np.int64],
                  parents: npt.NDArray[np.int64], columns: npt.NDArray[np.int64],
                  kinds: npt.NDArray[np.int8], starts: npt.NDArray[np.int64],
                  ends: npt.NDArray[np.int64],
                  read: npt.NDArray[np.bool_]) -> None:  # pragma: no cover - compiled
    """Find the tracked fields of each value; set `read[row]` where the row needs nothing else.

    The tracked paths form a tree: node 0 is the object itself, node i > 0 is the key
    names[name_offsets[i]:name_offsets[i + 1]] inside node parents[i], and columns[i] is the
    output column of a leaf, -1 for an inner node. For a row that is read, kinds[row, column]
    is one of the FIELD_ constants and starts/ends delimit the bytes to copy (a string's
    content, or the number or literal).
    """
    nodes = parents.shape[0]
    stack = np.zeros(FIELDS_MAX_DEPTH, dtype=np.int64)  # tracked node of each open object, or -1
    arrays = np.zeros(FIELDS_MAX_DEPTH, dtype=np.bool_)
    seen = np.zeros(nodes, dtype=np.bool_)
    lengths = _name_lengths(name_offsets, 1)
    _locate_rows(offsets, data, names, name_offsets, parents, columns, kinds, starts, ends,
                 read, stack, arrays, seen, lengths)


@jit
def _locate_rows(offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8],
                 names: npt.NDArray[np.uint8], name_offsets: npt.NDArray[np.int64],
                 parents: npt.NDArray[np.int64], columns: npt.NDArray[np.int64],
                 kinds: npt.NDArray[np.int8], starts: npt.NDArray[np.int64],
                 ends: npt.NDArray[np.int64], read: npt.NDArray[np.bool_],
                 stack: npt.NDArray[np.int64], arrays: npt.NDArray[np.bool_],
                 seen: npt.NDArray[np.bool_],
                 lengths: npt.NDArray[np.bool_]) -> None:  # pragma: no cover - compiled
    """Run `locate_fields` over every row, on views without owner of the arrays, which the
    caller keeps alive (see `bitmasks._view_without_owner`)."""
    offsets, data, names = _unowned(offsets), _unowned(data), _unowned(names)
    name_offsets, parents, columns = _unowned(name_offsets), _unowned(parents), _unowned(columns)
    kinds, starts, ends, read = _unowned(kinds), _unowned(starts), _unowned(ends), _unowned(read)
    stack, arrays = _unowned(stack), _unowned(arrays)
    seen, lengths = _unowned(seen), _unowned(lengths)
    for row in range(read.shape[0]):
        start, end = offsets[row], offsets[row + 1]
        if end == start:
            continue
        seen[:] = False
        read[row] = _locate_one(data, start, end, names, name_offsets, parents, columns,
                                kinds[row], starts[row], ends[row], stack, arrays, seen,
                                lengths)


@inline_jit
def _blank_end(data: npt.NDArray[np.uint8], position: int,
               end: int) -> int:  # pragma: no cover - compiled
    while position < end and (data[position] == 0x20 or data[position] == 0x09):
        position += 1
    return position


@inline_jit
def _number_kind(data: npt.NDArray[np.uint8], start: int,
                 end: int) -> np.int64:  # pragma: no cover - compiled
    """Return FIELD_TEXT or FIELD_DECIMAL for a number Polars prints as written; else -1."""
    position = start
    if data[position] == 0x2D:  # -
        position += 1
    integer_start = position
    position = _digits_end(data, position, end)
    integer_digits = position - integer_start
    if position == end:
        if integer_digits == 1 and data[integer_start] == 0x30 and integer_start > start:
            return np.int64(-1)  # Polars prints -0 as 0
        return np.int64(FIELD_TEXT)
    if data[position] != 0x2E:  # an exponent
        return np.int64(-1)
    if integer_digits == 1 and data[integer_start] == 0x30 and integer_start > start:
        return np.int64(-1)  # -0.x
    fraction_end = _digits_end(data, position + 1, end)
    if fraction_end != end:
        return np.int64(-1)
    last = end
    while last > position + 1 and data[last - 1] == 0x30:
        last -= 1
    significant = last - (position + 1)
    if not (integer_digits == 1 and data[integer_start] == 0x30):
        significant += integer_digits
    else:
        leading = position + 1
        while leading < last and data[leading] == 0x30:
            leading += 1
            significant -= 1
        if leading - (position + 1) > _MAX_LEADING_ZEROS:
            return np.int64(-1)  # below the normal floats, Polars prints fewer digits
    if significant > _MAX_DECIMAL_DIGITS:
        return np.int64(-1)
    return np.int64(FIELD_DECIMAL)


@inline_jit
def _locate_one(data: npt.NDArray[np.uint8], position: int, end: int,
                names: npt.NDArray[np.uint8], name_offsets: npt.NDArray[np.int64],
                parents: npt.NDArray[np.int64], columns: npt.NDArray[np.int64],
                kinds: npt.NDArray[np.int8], starts: npt.NDArray[np.int64],
                ends: npt.NDArray[np.int64], stack: npt.NDArray[np.int64],
                arrays: npt.NDArray[np.bool_], seen: npt.NDArray[np.bool_],
                lengths: npt.NDArray[np.bool_]) -> bool:  # pragma: no cover - compiled
    """Read one value; return false where Polars' reader must read it instead."""
    kinds[:] = FIELD_ABSENT
    node = np.int64(0)  # tracked node whose value comes next, or -1; the root first
    depth = 0
    state = np.int64(_VALUE)
    while True:
        position = _blank_end(data, position, end)
        if position >= end:
            return False
        byte = data[position]
        if state in (_KEY_OR_CLOSE, _KEY):
            if byte == 0x7D and state == _KEY_OR_CLOSE:  # }
                depth -= 1
                position += 1
                state = np.int64(_AFTER_VALUE)
                continue
            if byte != 0x22:
                return False
            key_start = position + 1
            position, plain_key = _key_end(data, key_start, end)
            if position < 0:
                return False
            node = np.int64(-1)
            parent = stack[depth - 1]
            if parent >= 0 and (not plain_key or position - key_start >= lengths.shape[0]
                                or lengths[position - key_start]):
                node = np.int64(_find_name(data, key_start, position, names, name_offsets,
                                           parents, parent))
                if node == -2:
                    return False
                if node >= 0:
                    if seen[node]:
                        return False  # a duplicate key
                    seen[node] = True
            position = _blank_end(data, position + 1, end)
            if position >= end or data[position] != 0x3A:  # :
                return False
            position += 1
            state = np.int64(_VALUE)
        elif state in (_VALUE, _VALUE_OR_CLOSE):
            if byte == 0x5D and state == _VALUE_OR_CLOSE:  # ]
                depth -= 1
                position += 1
                state = np.int64(_AFTER_VALUE)
                continue
            if depth == 0 and byte != 0x7B:
                return False  # the value must be an object
            column = columns[node] if node >= 0 else np.int64(-1)
            if byte == 0x7B or byte == 0x5B:  # { [
                if column >= 0 or depth == FIELDS_MAX_DEPTH:
                    return False  # Polars prints a container as text its own way
                stack[depth] = node if byte == 0x7B else -1
                arrays[depth] = byte == 0x5B
                depth += 1
                position += 1
                node = np.int64(-1)
                state = np.int64(_KEY_OR_CLOSE if byte == 0x7B else _VALUE_OR_CLOSE)
                continue
            if node >= 0 and column < 0 and byte != 0x6E:
                return False  # a tracked object that is neither an object nor null
            if byte == 0x22:
                value_start = position + 1
                position = _string_end(data, value_start, end)
                if position < 0:
                    return False
                if column >= 0:
                    kinds[column] = FIELD_STRING
                    starts[column] = value_start
                    ends[column] = position
                position += 1
            else:
                value_end = _scalar_end(data, position, end)
                if value_end < 0:
                    return False
                if column >= 0 and byte != 0x6E:  # a null stays absent
                    kind = np.int64(FIELD_TEXT)
                    if byte != 0x74 and byte != 0x66:  # a number, not true or false
                        kind = _number_kind(data, position, value_end)
                        if kind < 0:
                            return False
                    kinds[column] = kind
                    starts[column] = position
                    ends[column] = value_end
                position = value_end
            node = np.int64(-1)
            state = np.int64(_AFTER_VALUE)
        else:  # _AFTER_VALUE
            if depth == 0:
                return False  # an empty object, or something after the object
            in_array = arrays[depth - 1]
            if byte == 0x2C:  # ,
                state = np.int64(_VALUE if in_array else _KEY)
            elif (byte == 0x7D and not in_array) or (byte == 0x5D and in_array):
                depth -= 1
            else:
                return False
            position += 1
            if depth == 0:
                return _blank_end(data, position, end) == end


def copy_fields(data: npt.NDArray[np.uint8], kinds: npt.NDArray[np.int8],
                starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64],
                offsets: npt.NDArray[np.int64],
                out: npt.NDArray[np.uint8]) -> None:  # pragma: no cover - compiled
    """Write each row's field as Polars' reader returns it; offsets gets one more than rows.

    `out` needs room for the sum of ends - starts: no field grows.
    """
    # The caller owns the arrays, so views without owner are safe here.
    data, kinds, starts, ends = _unowned(data), _unowned(kinds), _unowned(starts), _unowned(ends)
    offsets, out = _unowned(offsets), _unowned(out)
    length = 0
    offsets[0] = 0
    for row in range(kinds.shape[0]):
        kind = kinds[row]
        if kind == FIELD_STRING:
            length = _unescape(data, starts[row], ends[row], out, length)
        elif kind != FIELD_ABSENT:
            last = ends[row]
            if kind == FIELD_DECIMAL:
                while data[last - 1] == 0x30:
                    last -= 1
                if data[last - 1] == 0x2E:
                    last -= 1
            for position in range(starts[row], last):
                out[length] = data[position]
                length += 1
        offsets[row + 1] = length


@inline_jit
def _unescape(data: npt.NDArray[np.uint8], position: int, end: int, out: npt.NDArray[np.uint8],
              length: int) -> int:  # pragma: no cover - compiled
    """Write the string data[position:end] with its escapes decoded; return the new length.

    `locate_fields` passes only strings whose escapes `_string_end` checked, which excludes
    surrogates, so every \\u escape is one code point below U+10000.
    """
    while position < end:
        byte = data[position]
        if byte != 0x5C:
            out[length] = byte
            length += 1
            position += 1
            continue
        escape = data[position + 1]
        position += 2
        if escape == 0x75:  # u
            code = 0
            for offset in range(4):
                code = code * 16 + _hex_value(data[position + offset])
            position += 4
            if code < 0x80:
                out[length] = code
                length += 1
            elif code < 0x800:
                out[length] = 0xC0 | (code >> 6)
                out[length + 1] = 0x80 | (code & 0x3F)
                length += 2
            else:
                out[length] = 0xE0 | (code >> 12)
                out[length + 1] = 0x80 | ((code >> 6) & 0x3F)
                out[length + 2] = 0x80 | (code & 0x3F)
                length += 3
            continue
        if escape == 0x62:  # b
            out[length] = 0x08
        elif escape == 0x66:  # f
            out[length] = 0x0C
        elif escape == 0x6E:  # n
            out[length] = 0x0A
        elif escape == 0x72:  # r
            out[length] = 0x0D
        elif escape == 0x74:  # t
            out[length] = 0x09
        else:  # " \ /
            out[length] = escape
        length += 1
    return length
