"""The status-code search and the envelope screen over 64-bit masks of the value bytes.

`classify_values` computes what `text.mark_status_codes` and `text.screen_values` compute, in
less time. For each block of values it builds, 64 bytes at a time, masks of the bytes that
matter: quotes, backslashes, blanks, control characters, bytes from 0x80 and digits. From
them it derives, without a branch per byte, which quotes are escaped and which bytes lie inside
a string (the method of simdjson's first stage: a prefix XOR over the mask of real quotes).

Most rows have strings that need no closer look: no control character, only the short
escapes, valid UTF-8. Such a row is checked by a walk over its tokens alone, which are the
bytes outside strings that are no blank, and the opening quote of each string. Strings cost
nothing unless the screen needs their contents, which it does for keys of the top level and
the fields it tracks. Every other row goes through `text._screen_one`, the byte-by-byte walk,
so both return the same result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba import types
from numba.core.extending import intrinsic
from numba.cpython.unsafe.numbers import trailing_zeros

from batchalert.jit import inline_jit, jit
from batchalert.kernels.layout import SCREEN_MAX_DEPTH
from batchalert.kernels.text import (
    _AFTER_VALUE,
    _BLOCK_BYTES,
    _KEY,
    _KEY_OR_CLOSE,
    _NOTES,
    _VALUE,
    _VALUE_OR_CLOSE,
    _after_value,
    _block_end,
    _envelope_passes,
    _has_edge_code,
    _mark_special,
    _name_lengths,
    _note_string,
    _reset_notes,
    _scalar_end,
    _screen_one,
    _start_value,
    _three_digits,
    _tracked_field,
    _utf8_sequence_end,
)

# Rows of the mask table of a block, one 64-bit word per 64 bytes.
(_REAL_QUOTES, _IN_STRING, _BLANKS, _ESCAPED, _CONTROL, _HIGH, _CODE_STARTS) = range(7)
_PLANES = 7
_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


def _masks_of_64_bytes(typingctx: Any, data: Any, position: Any, low: Any, span: Any) -> Any:
    """Return seven 64-bit masks of the 64 bytes from data[position]: quotes, backslashes,
    blanks, bytes below 0x20, bytes from 0x80, digits, and digits from `low` to `low + span`.

    Bit i stands for byte position + i. The caller makes sure that 64 bytes are there. LLVM
    compiles each mask to a vector comparison and a move of its sign bits.
    """
    numba_types: Any = types
    signature = numba_types.UniTuple(numba_types.uint64, 7)(data, position, low, span)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        array, start, low_byte, span_bytes = args
        bytes64 = ir.VectorType(ir.IntType(8), 64)
        pointer = builder.gep(context.make_array(sig.args[0])(context, builder, array).data,
                              [start])
        vector = builder.load(builder.bitcast(pointer, bytes64.as_pointer()), align=1)

        def splat(value: Any) -> Any:
            one = builder.insert_element(ir.Constant(ir.VectorType(ir.IntType(8), 1), None),
                                         builder.trunc(value, ir.IntType(8)),
                                         ir.Constant(ir.IntType(32), 0))
            return builder.shuffle_vector(
                one, one, ir.Constant(ir.VectorType(ir.IntType(32), 64), [0] * 64))

        def mask(operator: str, left: Any, right: Any) -> Any:
            return builder.bitcast(builder.icmp_unsigned(operator, left, right),
                                   ir.IntType(64))

        def byte(value: int) -> Any:
            return ir.Constant(bytes64, [value] * 64)

        masks = [mask("==", vector, byte(0x22)), mask("==", vector, byte(0x5C)),
                 mask("==", vector, byte(0x20)), mask("<", vector, byte(0x20)),
                 mask(">=", vector, byte(0x80)),
                 mask("<", builder.sub(vector, byte(0x30)), byte(10)),
                 mask("<=", builder.sub(vector, splat(low_byte)), splat(span_bytes))]
        return context.make_tuple(builder, sig.return_type, masks)

    return signature, codegen


# Called from compiled code only, as _byte_masks(data, position, low, span).
_byte_masks: Any = intrinsic(_masks_of_64_bytes)


def _view_without_owner(typingctx: Any, array: Any) -> Any:
    """Return a view of `array` that holds no reference to its memory.

    numba counts references to every array it passes to an inlined helper, with atomic
    instructions. Where the helper has loops or several returns, the counting stays in the
    hot loops, where perf measured about 40 % of the screen's time in the ahead-of-time
    build. On a view without owner the counting does nothing. The caller must keep `array`
    itself alive while it uses the view.
    """
    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        source = context.make_array(sig.args[0])(context, builder, args[0])
        view = context.make_array(sig.return_type)(context, builder)
        context.populate_array(view, data=source.data, shape=source.shape,
                               strides=source.strides, itemsize=source.itemsize, meminfo=None)
        return view._getvalue()

    return array(array), codegen


# Called from compiled code only, as _unowned(array).
_unowned: Any = intrinsic(_view_without_owner)


def classify_values(offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8],
                    nulls: npt.NDArray[np.bool_], max_bytes: int, names: npt.NDArray[np.uint8],
                    name_offsets: npt.NDArray[np.int64], roles: npt.NDArray[np.int8],
                    docker_line: int, codes: npt.NDArray[np.bool_], first_digit: int,
                    last_digit: int, candidates: npt.NDArray[np.bool_],
                    passed: npt.NDArray[np.bool_]) -> None:  # pragma: no cover - compiled
    """Set `candidates` as `mark_status_codes` would for every row, then screen the others
    as `screen_values` would, a block of rows at a time.

    `codes` has 1000 entries, one per three-digit number, and each marked number starts with
    a digit from `first_digit` to `last_digit`. Null rows are neither candidates nor passed.
    """
    rows = passed.shape[0]
    stack = np.zeros(SCREEN_MAX_DEPTH, dtype=np.uint8)
    seen = np.zeros(roles.shape[0], dtype=np.bool_)
    notes = np.zeros(_NOTES, dtype=np.int64)
    lengths = _name_lengths(name_offsets, 0)
    planes = np.empty((_PLANES, (_BLOCK_BYTES >> 6) + 1), dtype=np.uint64)
    marks = np.empty(0, dtype=np.uint8)
    tail = np.empty(64, dtype=np.uint8)
    first = 0
    while first < rows:
        base = int(offsets[first])
        last = _block_end(offsets, first, rows)
        size = int(offsets[last]) - base
        if planes.shape[1] < (size >> 6) + 1:
            planes = np.empty((_PLANES, (size >> 6) + 1), dtype=np.uint64)
        if marks.shape[0] < size + 16:
            marks = np.empty((size + 23) // 8 * 8, dtype=np.uint8)  # whole 64-bit words
        _classify_block(offsets, data, nulls, max_bytes, names, name_offsets, roles,
                        docker_line, codes, first_digit, last_digit, candidates, passed, first,
                        last, planes, marks, tail, stack, seen, notes, lengths)
        first = last


@jit
def _classify_block(offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8],
                    nulls: npt.NDArray[np.bool_], max_bytes: int,
                    names: npt.NDArray[np.uint8], name_offsets: npt.NDArray[np.int64],
                    roles: npt.NDArray[np.int8], docker_line: int,
                    codes: npt.NDArray[np.bool_], first_digit: int, last_digit: int,
                    candidates: npt.NDArray[np.bool_], passed: npt.NDArray[np.bool_],
                    first: int, last: int, planes: npt.NDArray[np.uint64],
                    marks: npt.NDArray[np.uint8], tail: npt.NDArray[np.uint8],
                    stack: npt.NDArray[np.uint8], seen: npt.NDArray[np.bool_],
                    notes: npt.NDArray[np.int64],
                    lengths: npt.NDArray[np.bool_]) -> None:  # pragma: no cover - compiled
    """Classify the rows first..last-1, one block; see `classify_values`. `planes` and
    `marks` are large enough for the block.

    A function of its own, not inlined: its caller keeps the arrays alive while it runs, so
    the loops can use views without owner (see `_view_without_owner`).
    """
    offsets, data, nulls = _unowned(offsets), _unowned(data), _unowned(nulls)
    names, name_offsets, roles = _unowned(names), _unowned(name_offsets), _unowned(roles)
    codes, candidates, passed = _unowned(codes), _unowned(candidates), _unowned(passed)
    planes, marks, tail = _unowned(planes), _unowned(marks), _unowned(tail)
    stack, seen = _unowned(stack), _unowned(seen)
    notes, lengths = _unowned(notes), _unowned(lengths)
    find_codes = codes.shape[0] > 0 and first_digit <= last_digit
    base = int(offsets[first])
    size = int(offsets[last]) - base
    count = _build_planes(data, base, size, planes, tail, 0x30 + first_digit,
                          last_digit - first_digit)
    if find_codes:
        _find_coded_rows(offsets, data, nulls, planes, count, base, first, last, codes,
                         candidates)
    marked = False  # the marks of `_mark_special`, for the rows walked byte by byte
    for row in range(first, last):
        start, end = offsets[row], offsets[row + 1]
        if nulls[row] or end == start:
            continue
        if find_codes and (candidates[row] or _has_edge_code(data, start, end, codes)):
            candidates[row] = True
            continue
        if end - start > max_bytes:
            continue
        if _strings_are_plain(data, base, start - base, end - base, planes):
            passed[row] = _walk_tokens(data, base, start - base, end - base, planes,
                                       names, name_offsets, roles, docker_line, stack,
                                       seen, notes, lengths)
            continue
        if not marked:
            _mark_special(data, base, int(offsets[last]), marks)
            marked = True
        passed[row] = _screen_one(data, start, end, names, name_offsets, roles,
                                  docker_line, stack, seen, notes, lengths,
                                  marks.view(np.uint64), base)


@inline_jit
def _build_planes(data: npt.NDArray[np.uint8], base: int, size: int,
                  planes: npt.NDArray[np.uint64], tail: npt.NDArray[np.uint8], low: int,
                  span: int) -> int:  # pragma: no cover - compiled
    """Fill the masks of data[base:base + size] into `planes` and return their words.

    Each word has six masks: real (unescaped) quotes, bytes inside a string (from an opening
    quote to the byte before its closing one), blanks, escaped bytes, control bytes, and
    bytes from 0x80. The last one marks each byte that starts a run of exactly three digits
    whose first digit is from `low` to `low + span`. The masks run across row ends: a row
    whose quotes do not pair up flips the string mask of the rows after it, which
    `_row_parity` undoes.
    """
    count = (size + 63) >> 6
    carry = np.uint64(0)  # all ones while a string continues into the next word
    escaped_next = np.uint64(0)  # 1 when the next word's first byte is escaped
    digits = first_digits = digit_before = np.uint64(0)
    for word in range(count + 1):
        at = base + (word << 6)
        if word == count:
            quotes = backslashes = blanks = control = high = np.uint64(0)
            next_digits = next_first = np.uint64(0)
        elif at + 64 <= data.shape[0]:
            (quotes, backslashes, blanks, control, high, next_digits,
             next_first) = _byte_masks(data, at, low, span)
        else:  # the last bytes of the buffer, padded with blanks
            tail[:] = 0x20
            tail[:data.shape[0] - at] = data[at:]
            (quotes, backslashes, blanks, control, high, next_digits,
             next_first) = _byte_masks(tail, 0, low, span)
        if word > 0:
            # A three-digit run needs the digits of the word after, so it lags by one.
            starts = first_digits & ~((digits << _ONE) | digit_before)
            starts &= (digits >> _ONE) | (next_digits << np.uint64(63))
            starts &= (digits >> np.uint64(2)) | (next_digits << np.uint64(62))
            starts &= ~((digits >> np.uint64(3)) | (next_digits << np.uint64(61)))
            planes[_CODE_STARTS, word - 1] = starts
            digit_before = digits >> np.uint64(63)
        digits, first_digits = next_digits, next_first
        if word == count:
            break
        escaped = escaped_next
        escaped_next = np.uint64(0)
        # Backslashes are few; each one not escaped itself escapes the byte after it.
        remaining = backslashes
        while remaining != 0:
            bit = _lowest_bit(remaining)
            remaining &= remaining - _ONE
            if (escaped >> np.uint64(bit)) & _ONE == 0:
                if bit == 63:
                    escaped_next = _ONE
                else:
                    escaped |= _ONE << np.uint64(bit + 1)
        real_quotes = quotes & ~escaped
        inside = _prefix_xor(real_quotes) ^ carry
        carry = np.uint64(0) - (inside >> np.uint64(63))
        planes[_REAL_QUOTES, word] = real_quotes
        planes[_IN_STRING, word] = inside
        planes[_BLANKS, word] = blanks
        planes[_ESCAPED, word] = escaped
        planes[_CONTROL, word] = control
        planes[_HIGH, word] = high
    return count


@inline_jit
def _prefix_xor(word: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """Return the mask whose bit i is the parity of the bits 0..i of `word`."""
    for shift in (1, 2, 4, 8, 16, 32):
        word ^= word << np.uint64(shift)
    return word


@inline_jit
def _lowest_bit(word: np.uint64) -> int:  # pragma: no cover - compiled
    """Return the index of the lowest set bit of `word` (not 0)."""
    return int(trailing_zeros(word))  # type: ignore[call-arg]


@inline_jit
def _bit(planes: npt.NDArray[np.uint64], plane: int,
         index: int) -> np.uint64:  # pragma: no cover - compiled
    """Return bit `index` of a mask, as 0 or 1."""
    return np.uint64((planes[plane, index >> 6] >> np.uint64(index & 63)) & _ONE)


@inline_jit
def _in_row(word: np.uint64, index: int, start: int,
            stop: int) -> np.uint64:  # pragma: no cover - compiled
    """Return the bits of mask word `index` that stand for bytes start..stop-1 (relative to
    the block)."""
    if index == start >> 6:
        word &= _ALL << np.uint64(start & 63)
    if index == (stop - 1) >> 6:
        word &= _ALL >> np.uint64(63 - ((stop - 1) & 63))
    return word


@inline_jit
def _row_parity(planes: npt.NDArray[np.uint64],
                start: int) -> np.uint64:  # pragma: no cover - compiled
    """Return all ones when the string mask is inverted for the row at `start`, else 0.

    The mask runs across rows, so the quotes of the rows before decide whether it starts
    inside a string. XOR with this value restores the row's own view.
    """
    if start == 0:
        return np.uint64(0)
    return np.uint64(0) - _bit(planes, _IN_STRING, start - 1)


@inline_jit
def _find_coded_rows(offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8],
                     nulls: npt.NDArray[np.bool_], planes: npt.NDArray[np.uint64], count: int,
                     base: int, first: int, last: int, codes: npt.NDArray[np.bool_],
                     candidates: npt.NDArray[np.bool_]) -> None:  # pragma: no cover
    """Set `candidates[row]` for the rows first..last-1 with a run of exactly three digits
    that `codes` marks, at a start of `_CODE_STARTS`. A run at a row's start or end may
    depend on the bytes of the neighbouring row, so `_has_edge_code` checks it."""
    row = first
    for index in range(count):
        word = planes[_CODE_STARTS, index]
        while word != 0:
            position = base + (index << 6) + _lowest_bit(word)
            word &= word - _ONE
            while row < last and offsets[row + 1] <= position:
                row += 1
            if row == last:
                return
            if nulls[row] or candidates[row] or position + 3 > offsets[row + 1]:
                continue
            if codes[_three_digits(data, position)]:
                candidates[row] = True


@inline_jit
def _strings_are_plain(data: npt.NDArray[np.uint8], base: int, start: int, stop: int,
                       planes: npt.NDArray[np.uint64]) -> bool:  # pragma: no cover - compiled
    """Return whether the strings of the row at block bytes start..stop-1 are valid as they
    are: no control byte, only the escapes that need no decoding (not \\u), well-formed
    UTF-8, quotes that pair up, and no escape reaching in from the row before. False sends
    the row to the byte-by-byte walk, which decides it."""
    if _bit(planes, _ESCAPED, start) or (
            _bit(planes, _IN_STRING, stop - 1) ^ (_row_parity(planes, start) & _ONE)):
        return False
    high = np.uint64(0)
    for index in range(start >> 6, ((stop - 1) >> 6) + 1):
        if _in_row(planes[_CONTROL, index], index, start, stop) != 0:
            return False
        escaped = _in_row(planes[_ESCAPED, index], index, start, stop)
        while escaped != 0:
            byte = data[base + (index << 6) + _lowest_bit(escaped)]
            escaped &= escaped - _ONE
            if not (byte == 0x22 or byte == 0x5C or byte == 0x2F or byte == 0x62
                    or byte == 0x66 or byte == 0x6E or byte == 0x72 or byte == 0x74):
                return False
        high |= _in_row(planes[_HIGH, index], index, start, stop)
    if high == 0:
        return True
    # Some byte is from 0x80: check the UTF-8 sequences one after another.
    position = _next_set(planes, _HIGH, start, stop)
    while position < stop:
        after = _utf8_sequence_end(data, base + position, base + stop)
        if after < 0:
            return False
        position = _next_set(planes, _HIGH, after - base, stop)
    return True


@inline_jit
def _next_set(planes: npt.NDArray[np.uint64], plane: int, position: int,
              stop: int) -> int:  # pragma: no cover - compiled
    """Return the first block position from `position` on whose bit is set in `plane`, or
    `stop` if there is none before it."""
    if position >= stop:
        return stop
    index = position >> 6
    word = planes[plane, index] & (_ALL << np.uint64(position & 63))
    while word == 0:
        index += 1
        if index > (stop - 1) >> 6:
            return stop
        word = planes[plane, index]
    return min((index << 6) + _lowest_bit(word), stop)


@inline_jit
def _tokens(planes: npt.NDArray[np.uint64], index: int, parity: np.uint64, start: int,
            stop: int) -> np.uint64:  # pragma: no cover - compiled
    """Return the tokens of mask word `index` in the row at block bytes start..stop-1: the
    bytes outside strings that are no blank or closing quote, and the opening quotes."""
    inside = planes[_IN_STRING, index] ^ parity
    quotes = planes[_REAL_QUOTES, index]
    return _in_row((~inside & ~planes[_BLANKS, index] & ~quotes) | (quotes & inside), index,
                   start, stop)


@inline_jit
def _walk_tokens(data: npt.NDArray[np.uint8], base: int, start: int, stop: int,
                 planes: npt.NDArray[np.uint64], names: npt.NDArray[np.uint8],
                 name_offsets: npt.NDArray[np.int64], roles: npt.NDArray[np.int8],
                 docker_line: int, stack: npt.NDArray[np.uint8], seen: npt.NDArray[np.bool_],
                 notes: npt.NDArray[np.int64],
                 lengths: npt.NDArray[np.bool_]) -> bool:  # pragma: no cover - compiled
    """Check the row at block bytes start..stop-1 as `text._screen_one` does, visiting only
    its tokens (see `_tokens`). `_strings_are_plain` must hold for the row."""
    seen[:] = False
    parity = _row_parity(planes, start)
    index = start >> 6
    last = (stop - 1) >> 6
    word = _tokens(planes, index, parity, start, stop)
    _reset_notes(notes)
    field = -1  # tracked top-level field whose value comes next
    depth = 0
    state = np.int64(_VALUE)
    while True:
        while word == 0:
            index += 1
            if index > last:
                return False
            word = _tokens(planes, index, parity, start, stop)
        position = base + (index << 6) + _lowest_bit(word)
        word &= word - _ONE
        byte = data[position]
        if state in (_KEY_OR_CLOSE, _KEY):
            if byte == 0x7D and state == _KEY_OR_CLOSE:  # }
                depth -= 1
                state = np.int64(_AFTER_VALUE)
                continue
            if byte != 0x22:  # "
                return False
            field = -1
            if depth == 1:
                key_start = position + 1
                key_end = base + _next_set(planes, _REAL_QUOTES, position - base + 1, stop)
                for inside in range(key_start, key_end):
                    if data[inside] == 0x5C:
                        return False  # an escaped key may spell a tracked name
                length = key_end - key_start
                if length >= lengths.shape[0] or lengths[length]:
                    field = _tracked_field(data, key_start, key_end, names, name_offsets)
                    if field >= 0:
                        if seen[field]:
                            return False
                        seen[field] = True
            # The next token must be the colon.
            while word == 0:
                index += 1
                if index > last:
                    return False
                word = _tokens(planes, index, parity, start, stop)
            if data[base + (index << 6) + _lowest_bit(word)] != 0x3A:  # :
                return False
            word &= word - _ONE
            state = np.int64(_VALUE)
        elif state in (_VALUE, _VALUE_OR_CLOSE):
            state, depth = _start_value(byte, state, depth, field, stack)
            if state < 0:
                return False
            if state != _VALUE:  # a bracket
                continue
            if byte == 0x22 and field >= 0:
                _note_string(data, roles, field, position + 1,
                             base + _next_set(planes, _REAL_QUOTES, position - base + 1, stop),
                             notes)
            elif byte != 0x22:
                after = _scalar_end(data, position, base + stop)
                if after < 0:
                    return False
                # Every byte of the scalar is a token; go on from the byte after it.
                if after - base >= stop:
                    word = np.uint64(0)
                    index = last
                elif (after - base) >> 6 == index:
                    word &= _ALL << np.uint64((after - base) & 63)
                else:
                    index = (after - base) >> 6
                    word = _tokens(planes, index, parity, start, stop) & (
                        _ALL << np.uint64((after - base) & 63))
            field = -1
            state = np.int64(_AFTER_VALUE)
        else:  # _AFTER_VALUE
            state, depth = _after_value(byte, depth, stack)
            if state < 0:
                return False
            if depth == 0:
                if word != 0:
                    return False
                for rest in range(index + 1, last + 1):
                    if _tokens(planes, rest, parity, start, stop) != 0:
                        return False
                break
    return _envelope_passes(notes, docker_line)
