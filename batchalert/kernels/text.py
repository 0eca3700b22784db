"""Compiled loops over record values: the UTF-8 check and the envelope screen.

`batchalert.parse.utf8` and `batchalert.parse.screen` describe what these check and call them
through `batchalert.kernels.load()`. Entry points are plain functions, compiled ahead of time
by `batchalert.kernels.build` or at run time by `batchalert.kernels.jitted`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba.cpython.unsafe.numbers import trailing_zeros

from batchalert.jit import inline_jit
from batchalert.kernels.layout import ROLE_LINE, ROLE_TAG, SCREEN_MAX_DEPTH

# Parser states after a token. Each assignment wraps them in np.int64: numba's ahead-of-time
# compiler does not unify distinct integer literals.
_KEY_OR_CLOSE, _KEY, _VALUE, _VALUE_OR_CLOSE, _AFTER_VALUE = 0, 1, 2, 3, 4
_OBJECT, _ARRAY = 0, 1
# Bytes that a string may contain as they are: printable ASCII except the quote and backslash.
_PLAIN = np.zeros(256, dtype=np.bool_)
_PLAIN[0x20:0x7F] = True
_PLAIN[0x22] = _PLAIN[0x5C] = False
# Polars reads a whole number as a 128-bit integer and rejects the record when it does not
# fit (2**128 has 39 digits), and it rejects a float beyond 1.8e308 (1e309). Numbers with a
# longer integer part or a three-digit exponent are left to the full parser.
_MAX_INTEGER_DIGITS = 38
_MAX_EXPONENT_DIGITS = 2
# Bits of the byte marks of `_mark_special`, read eight at a time.
_SPECIAL_BITS = np.uint64(0x0101010101010101)


def mark_invalid_utf8(offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8],
                       invalid: npt.NDArray[np.bool_]) -> None:  # pragma: no cover - compiled
    """Set `invalid[row]` for each value that is not well-formed UTF-8 (RFC 3629)."""
    for row in range(invalid.shape[0]):
        position, end = offsets[row], offsets[row + 1]
        while position < end:
            if data[position] < 0x80:
                position += 1
                continue
            position = _utf8_sequence_end(data, position, end)
            if position < 0:
                invalid[row] = True
                break


@inline_jit
def _utf8_sequence_end(data: npt.NDArray[np.uint8], position: int,
                      end: int) -> int:  # pragma: no cover - compiled
    """Return the position after the well-formed UTF-8 sequence at `position`, or -1.

    The first continuation byte has a narrower range after some leads, which excludes overlong
    forms, surrogates and code points past U+10FFFF.
    """
    lead = data[position]
    if 0xC2 <= lead <= 0xDF:
        count, low, high = np.int64(1), np.int64(0x80), np.int64(0xBF)
    elif lead == 0xE0:
        count, low, high = np.int64(2), np.int64(0xA0), np.int64(0xBF)
    elif 0xE1 <= lead <= 0xEC or lead == 0xEE or lead == 0xEF:
        count, low, high = np.int64(2), np.int64(0x80), np.int64(0xBF)
    elif lead == 0xED:
        count, low, high = np.int64(2), np.int64(0x80), np.int64(0x9F)
    elif lead == 0xF0:
        count, low, high = np.int64(3), np.int64(0x90), np.int64(0xBF)
    elif 0xF1 <= lead <= 0xF3:
        count, low, high = np.int64(3), np.int64(0x80), np.int64(0xBF)
    elif lead == 0xF4:
        count, low, high = np.int64(3), np.int64(0x80), np.int64(0x8F)
    else:
        return -1
    if position + count >= end or not low <= data[position + 1] <= high:
        return -1
    for following in range(2, count + 1):
        if not 0x80 <= data[position + following] <= 0xBF:
            return -1
    return int(position + count + 1)


def mark_status_codes(offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8],
                      rows: npt.NDArray[np.int64], codes: npt.NDArray[np.bool_],
                      found: npt.NDArray[np.bool_]) -> None:  # pragma: no cover - compiled
    """Set `found[i]` when value `rows[i]` has a run of exactly three digits that `codes` marks.

    `codes` has 1000 entries, one per three-digit number. A longer run of digits is no
    status code, so 1404 and 4040 do not count as 404.
    """
    for index in range(rows.shape[0]):
        row = rows[index]
        run = 0
        number = 0
        for position in range(offsets[row], offsets[row + 1] + 1):
            byte = data[position] if position < offsets[row + 1] else 0
            if 0x30 <= byte <= 0x39:
                run += 1
                if run <= 3:
                    number = number * 10 + (byte - 0x30)
                continue
            if run == 3 and codes[number]:
                found[index] = True
                break
            run = 0
            number = 0


def screen_values(offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8],
                  excluded: npt.NDArray[np.bool_], max_bytes: int, names: npt.NDArray[np.uint8],
                  name_offsets: npt.NDArray[np.int64], roles: npt.NDArray[np.int8],
                  docker_line: int,
                  passed: npt.NDArray[np.bool_]) -> None:  # pragma: no cover - compiled
    """Set `passed[row]` for each value that passes the envelope screen, byte by byte.

    Rows that `excluded` marks are skipped. `bitmasks.classify_values` screens faster with the
    same results. This walk is the reference the tests compare it with, and classify_values
    uses it for rows with escapes to decode or control bytes.
    """
    stack = np.zeros(SCREEN_MAX_DEPTH, dtype=np.uint8)
    seen = np.zeros(roles.shape[0], dtype=np.bool_)
    notes = np.zeros(_NOTES, dtype=np.int64)
    lengths = _name_lengths(name_offsets, 0)
    marks = np.empty(_BLOCK_BYTES + 16, dtype=np.uint8)
    rows = passed.shape[0]
    first = 0
    while first < rows:
        base = int(offsets[first])
        last = _block_end(offsets, first, rows)
        marks = _mark_block(data, base, int(offsets[last]), marks)
        words = marks.view(np.uint64)
        for row in range(first, last):
            start, end = offsets[row], offsets[row + 1]
            if excluded[row] or end == start or end - start > max_bytes:
                continue
            passed[row] = _screen_one(data, start, end, names, name_offsets, roles,
                                      docker_line, stack, seen, notes, lengths, words, base)
        first = last


# Bytes of values marked at a time: the marks of a block and its values stay in the CPU's
# cache from the marking to the screen, and the marks take little memory.
_BLOCK_BYTES = 1 << 18


@inline_jit
def _block_end(offsets: npt.NDArray[np.int64], first: int,
               rows: int) -> int:  # pragma: no cover - compiled
    """Return the row after the block that starts at row `first`: the rows that fit in
    `_BLOCK_BYTES`, or the first row alone when it is larger."""
    base = offsets[first]
    last = first + 1
    while last < rows and offsets[last + 1] - base <= _BLOCK_BYTES:
        last += 1
    return last


@inline_jit
def _mark_block(data: npt.NDArray[np.uint8], base: int, stop: int,
                marks: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:  # pragma: no cover
    """Fill the marks of `_mark_special` for data[base:stop]; return `marks`, or a larger
    array when it is too small."""
    if marks.shape[0] < stop - base + 16:
        marks = np.empty((stop - base + 23) // 8 * 8, dtype=np.uint8)  # whole 64-bit words
    _mark_special(data, base, stop, marks)
    return marks


@inline_jit
def _has_edge_code(data: npt.NDArray[np.uint8], start: int, end: int,
                   codes: npt.NDArray[np.bool_]) -> bool:  # pragma: no cover - compiled
    """Return whether data[start:end] starts or ends with a run of exactly three digits
    that `codes` marks."""
    if _digits_end(data, start, end) - start == 3 and codes[_three_digits(data, start)]:
        return True
    last_start = end
    while last_start > start and 0x30 <= data[last_start - 1] <= 0x39:
        last_start -= 1
    return end - last_start == 3 and codes[_three_digits(data, last_start)]


@inline_jit
def _three_digits(data: npt.NDArray[np.uint8],
                  position: int) -> int:  # pragma: no cover - compiled
    """Return the number that the three digits at `position` spell."""
    return int((data[position] - 0x30) * 100 + (data[position + 1] - 0x30) * 10
               + data[position + 2] - 0x30)


@inline_jit
def _screen_one(data: npt.NDArray[np.uint8], position: int, end: int,
                names: npt.NDArray[np.uint8], name_offsets: npt.NDArray[np.int64],
                roles: npt.NDArray[np.int8], docker_line: int, stack: npt.NDArray[np.uint8],
                seen: npt.NDArray[np.bool_], notes: npt.NDArray[np.int64],
                lengths: npt.NDArray[np.bool_], words: npt.NDArray[np.uint64],
                base: int) -> bool:  # pragma: no cover - compiled
    """Check one value; see the module docstring for what passes. `words` and `base` are
    the marks of `_mark_special`, and `stack`, `seen` and `notes` are scratch space."""
    seen[:] = False
    _reset_notes(notes)
    field = -1  # tracked top-level field whose value comes next
    depth = 0
    state = np.int64(_VALUE)
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
                state = np.int64(_AFTER_VALUE)
            elif byte != 0x22:  # "
                return False
            else:
                key_start = position + 1
                position, plain_key = _key_end(data, key_start, end)
                if position < 0:
                    return False
                field = -1
                # A plain key whose length no tracked name has matches none of them.
                if depth == 1 and (not plain_key or position - key_start >= lengths.shape[0]
                                   or lengths[position - key_start]):
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
                state = np.int64(_VALUE)
        elif state in (_VALUE, _VALUE_OR_CLOSE):
            state, depth = _start_value(byte, state, depth, field, stack)
            if state < 0:
                return False
            if state != _VALUE:  # a bracket
                position += 1
                continue
            if byte == 0x22:
                value_start = position + 1
                position = _marked_string_end(data, value_start, end, words, base)
                if position < 0:
                    return False
                if field >= 0:
                    _note_string(data, roles, field, value_start, position, notes)
                position += 1
            else:
                position = _scalar_end(data, position, end)
                if position < 0:
                    return False
            field = -1
            state = np.int64(_AFTER_VALUE)
        else:  # _AFTER_VALUE
            state, depth = _after_value(byte, depth, stack)
            if state < 0:
                return False
            position += 1
            if depth == 0:
                while position < end and (data[position] == 0x20 or data[position] == 0x09):
                    position += 1
                if position != end:
                    return False
                break
    return _envelope_passes(notes, docker_line)


@inline_jit
def _start_value(byte: int, state: np.int64, depth: int, field: int,
                 stack: npt.NDArray[np.uint8]) -> tuple[np.int64, int]:  # pragma: no cover
    """Take the first byte of a value, or the `]` of an empty array; return the next state
    and depth.

    The state is _AFTER_VALUE after the `]`, the state inside the object or array that
    `byte` opens, _VALUE when a string or scalar starts at `byte`, and -1 where no value may
    start: outside the top-level object, a tracked field that is no string, or deeper than
    `SCREEN_MAX_DEPTH`.
    """
    if byte == 0x5D and state == _VALUE_OR_CLOSE:  # ]
        return np.int64(_AFTER_VALUE), depth - 1
    if depth == 0 and byte != 0x7B:  # the whole value must be an object
        return np.int64(-1), depth
    if field >= 0 and byte != 0x22:  # a tracked field that is no string
        return np.int64(-1), depth
    if byte != 0x7B and byte != 0x5B:  # { [
        return np.int64(_VALUE), depth
    if depth == SCREEN_MAX_DEPTH:
        return np.int64(-1), depth
    stack[depth] = _OBJECT if byte == 0x7B else _ARRAY
    return np.int64(_KEY_OR_CLOSE if byte == 0x7B else _VALUE_OR_CLOSE), depth + 1


@inline_jit
def _after_value(byte: int, depth: int,
                 stack: npt.NDArray[np.uint8]) -> tuple[np.int64, int]:  # pragma: no cover
    """Take the comma or closing bracket after a value, and return the next state and depth.

    The state is -1 for any other byte, and for a byte after the whole object.
    """
    if depth == 0:
        return np.int64(-1), depth
    container = stack[depth - 1]
    if byte == 0x2C:  # ,
        return np.int64(_KEY if container == _OBJECT else _VALUE), depth
    if (byte == 0x7D and container == _OBJECT) or (byte == 0x5D and container == _ARRAY):
        return np.int64(_AFTER_VALUE), depth - 1
    return np.int64(-1), depth


# What the screen notes of the tracked fields' string values, one entry each in `notes`.
_NOTE_LINE, _NOTE_NEWLINE, _NOTE_TAG, _NOTE_TAG_P, _NOTE_STREAM = range(5)
_NOTES = 5


@inline_jit
def _reset_notes(notes: npt.NDArray[np.int64]) -> None:  # pragma: no cover - compiled
    notes[:] = 0
    notes[_NOTE_LINE] = -1  # index among the shape's line fields of the line the parser reads


@inline_jit
def _note_string(data: npt.NDArray[np.uint8], roles: npt.NDArray[np.int8], field: int,
                 start: int, end: int,
                 notes: npt.NDArray[np.int64]) -> None:  # pragma: no cover - compiled
    """Note what the screen needs of data[start:end], the string value of tracked field
    `field`: which line the parser reads and whether it ends with an escaped newline, the
    log tag, and whether a stream field is there."""
    role = roles[field]
    if role == ROLE_LINE:
        # The parser reads the first line field of the shape that is present, whatever the
        # order of the keys in the value.
        found = _line_position(roles, field)
        if notes[_NOTE_LINE] < 0 or found < notes[_NOTE_LINE]:
            notes[_NOTE_LINE] = found
            notes[_NOTE_NEWLINE] = (end - start >= 2 and data[end - 1] == 0x6E
                                    and data[end - 2] == 0x5C
                                    and _escaped_backslash_run(data, start, end - 2))
    elif role == ROLE_TAG:
        notes[_NOTE_TAG] = 1
        if end - start == 1 and data[start] == 0x50:
            notes[_NOTE_TAG_P] = 1
    else:
        notes[_NOTE_STREAM] = 1


@inline_jit
def _envelope_passes(notes: npt.NDArray[np.int64],
                     docker_line: int) -> bool:  # pragma: no cover - compiled
    """Return whether the noted fields make a complete envelope: a line, no partial log tag,
    and no Docker piece without its newline."""
    if notes[_NOTE_LINE] < 0 or notes[_NOTE_TAG_P]:
        return False
    unterminated = (notes[_NOTE_LINE] == docker_line and notes[_NOTE_STREAM]
                    and not notes[_NOTE_TAG] and not notes[_NOTE_NEWLINE])
    return not unterminated


@inline_jit
def _line_position(roles: npt.NDArray[np.int8],
                       field: int) -> int:  # pragma: no cover - compiled
    """Return the position of tracked field `field` among the line fields."""
    index = 0
    for other in range(field):
        if roles[other] == ROLE_LINE:
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
    # An empty slice of `name_offsets` stands for "no parents": every name is a candidate.
    return _find_name(data, start, end, names, name_offsets, name_offsets[:0], 0)


@inline_jit
def _find_name(data: npt.NDArray[np.uint8], start: int, end: int, names: npt.NDArray[np.uint8],
               name_offsets: npt.NDArray[np.int64], parents: npt.NDArray[np.int64],
               parent: int) -> int:  # pragma: no cover - compiled
    """Return the index of the name equal to data[start:end], -1 if none, -2 if the key has an
    escape. With `parents` not empty, only names whose parent is `parent` count."""
    for position in range(start, end):
        if data[position] == 0x5C:
            return -2
    length = end - start
    for index in range(name_offsets.shape[0] - 1):
        if parents.shape[0] and parents[index] != parent:
            continue
        name_start = name_offsets[index]
        if name_offsets[index + 1] - name_start != length:
            continue
        if _same_bytes(data, start, names, name_start, length):
            return index
    return -1


@inline_jit
def _key_end(data: npt.NDArray[np.uint8], position: int,
             end: int) -> tuple[int, bool]:  # pragma: no cover - compiled
    """Return the closing quote of the key starting at `position` (-1 if invalid), and
    whether the key is plain ASCII, so without escapes. Most keys are, and take this loop."""
    start = position
    while position < end and _PLAIN[data[position]]:
        position += 1
    if position < end and data[position] == 0x22:
        return position, True
    return _string_end(data, start, end), False


@inline_jit
def _name_lengths(name_offsets: npt.NDArray[np.int64],
                  first: int) -> npt.NDArray[np.bool_]:  # pragma: no cover - compiled
    """Return 64 flags, true for the lengths of names `first` on. A plain key shorter than
    64 bytes whose length is not flagged matches none of the names."""
    lengths = np.zeros(64, dtype=np.bool_)
    for index in range(first, name_offsets.shape[0] - 1):
        length = name_offsets[index + 1] - name_offsets[index]
        if length < 64:
            lengths[length] = True
    return lengths


@inline_jit
def _same_bytes(data: npt.NDArray[np.uint8], start: int, names: npt.NDArray[np.uint8],
                name_start: int, length: int) -> bool:  # pragma: no cover - compiled
    """Return whether data[start:start + length] equals names[name_start:name_start + length]."""
    same = True
    for offset in range(length):
        if data[start + offset] != names[name_start + offset]:
            same = False
            break
    return same


@inline_jit
def _string_end(data: npt.NDArray[np.uint8], position: int,
                end: int) -> int:  # pragma: no cover - compiled
    """Return the position of the closing quote of the string starting at `position`, or -1.

    Checks escapes (no escaped lone surrogate), control characters and UTF-8 on the way.
    """
    while position < end:
        if _PLAIN[data[position]]:
            position += 1
            continue
        position, closed = _after_special(data, position, end)
        if closed or position < 0:
            return position
    return -1


@inline_jit
def _marked_string_end(data: npt.NDArray[np.uint8], position: int, end: int,
                       words: npt.NDArray[np.uint64],
                       base: int) -> int:  # pragma: no cover - compiled
    """Return what `_string_end` returns, jumping over plain bytes with the marks of
    `_mark_special` (`words`, which start at data position `base`)."""
    while position < end:
        position = _next_special(words, position, base)
        if position >= end:
            return -1
        position, closed = _after_special(data, position, end)
        if closed or position < 0:
            return position
    return -1


@inline_jit
def _after_special(data: npt.NDArray[np.uint8], position: int,
                   end: int) -> tuple[int, bool]:  # pragma: no cover - compiled
    """Check the byte at `position` inside a string, one that is not in `_PLAIN`.

    Return (its position, True) for the closing quote, (the position after it and what it
    starts, False) for an escape, DEL or a UTF-8 sequence, and (-1, False) where the string
    is invalid.
    """
    byte = data[position]
    if byte == 0x22:
        return position, True
    if byte < 0x20:
        return -1, False
    if byte == 0x5C:
        position += 1
        if position >= end:
            return -1, False
        escape = data[position]
        if escape == 0x75:  # u
            if position + 4 >= end:
                return -1, False
            code = 0
            for offset in range(1, 5):
                digit = _hex_value(data[position + offset])
                if digit < 0:
                    return -1, False
                code = code * 16 + digit
            if 0xD800 <= code <= 0xDFFF:
                return -1, False  # surrogate pairs are rare in logs; the full parser decides
            return position + 5, False
        if not (escape == 0x22 or escape == 0x5C or escape == 0x2F or escape == 0x62
                or escape == 0x66 or escape == 0x6E or escape == 0x72 or escape == 0x74):
            return -1, False
        return position + 1, False
    if byte < 0x80:
        return position + 1, False
    return _utf8_sequence_end(data, position, end), False


@inline_jit
def _mark_special(data: npt.NDArray[np.uint8], base: int, stop: int,
                  marks: npt.NDArray[np.uint8]) -> None:  # pragma: no cover - compiled
    """Set marks[i] to 1 where data[base + i] is not in `_PLAIN`, else 0, and the 16 marks
    after those to 1, which stops every search of `_next_special`.

    The loop has no branch and no table, so LLVM turns it into vector instructions. It took
    0.02 s over the 461 MB of the benchmark's records (JIT build). Indexing `data` at
    `base + index` in place of a slice kept it scalar, at 0.35 s.
    """
    values = data[base:stop]
    for index in range(values.shape[0]):
        byte = values[index]
        # DEL, bytes from 0x80 and, by wrapping around, control characters.
        shifted = np.uint8(byte - np.uint8(0x20))
        marks[index] = ((shifted >= np.uint8(0x5F)) | (byte == np.uint8(0x22))
                        | (byte == np.uint8(0x5C)))
    marks[values.shape[0]:values.shape[0] + 16] = 1


@inline_jit
def _next_special(words: npt.NDArray[np.uint64], position: int,
                  base: int) -> int:  # pragma: no cover - compiled
    """Return the first position from `position` on that `_mark_special` marked.

    Reads the marks eight at a time. The marks set past the data stop every search.
    """
    relative = position - base
    index = relative >> 3
    word = (words[index] & _SPECIAL_BITS) >> np.uint64((relative & 7) * 8)
    if word != 0:
        return position + _zero_bytes_below(word)
    index += 1
    while words[index] & _SPECIAL_BITS == 0:
        index += 1
    return base + (index << 3) + _zero_bytes_below(words[index] & _SPECIAL_BITS)


@inline_jit
def _zero_bytes_below(word: np.uint64) -> int:  # pragma: no cover - compiled
    """Return how many of the low bytes of `word` (not 0) are 0."""
    return int(trailing_zeros(word)) >> 3  # type: ignore[call-arg]


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
    """Return the position after the number or literal at `position`, or -1 if it is neither.

    Also -1 for a number that Polars' JSON reader may reject although JSON allows it (see
    _MAX_INTEGER_DIGITS), which the full parser then reports.
    """
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
        digits_start = position
        position = _digits_end(data, position, end)
        if position - digits_start > _MAX_INTEGER_DIGITS:
            return -1
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
        if after == position or after - position > _MAX_EXPONENT_DIGITS:
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
