"""Zero-copy NumPy views of the offsets and bytes of a binary Arrow array, for the kernels."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa


def binary_values(values: pa.Array | pa.ChunkedArray) -> pa.LargeBinaryArray:
    """Return `values` as one large_binary array, whose offsets are 64-bit."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type != pa.large_binary():
        values = values.cast(pa.large_binary())
    assert isinstance(values, pa.LargeBinaryArray)
    return values


def value_buffers(values: pa.LargeBinaryArray
                  ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """Return the offsets of `values`' rows (one more than rows) and its data, without a copy.

    Arrow lets a null row span any bytes, so callers skip null rows themselves.
    """
    _, offsets_buffer, data_buffer = values.buffers()
    if offsets_buffer is None:
        return np.zeros(len(values) + 1, dtype=np.int64), np.zeros(1, dtype=np.uint8)
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[
        values.offset: values.offset + len(values) + 1]
    if data_buffer is None or data_buffer.size == 0:
        return offsets, np.zeros(1, dtype=np.uint8)
    return offsets, np.frombuffer(data_buffer, dtype=np.uint8)
