"""Reading the envelope's fields with a compiled pass, where the result equals Polars' reader.

The envelope parser reads a handful of String fields (`log`, `kubernetes.pod_name`, ...) from
each JSON object. Polars' newline-delimited JSON reader does that for any input: on a chunk
of 20,000 records, it and the writing of its input took about 70 ms of the 200 ms that
parsing and aggregation took. `read_fields` took about 40 ms for the same fields.

It reads the common case in one compiled pass over the column. That case is a strict JSON
object, nested at most `FIELDS_MAX_DEPTH` levels, whose fields of interest are not repeated
and hold strings, true, false, null, integers, or decimal numbers of at most 15 significant
digits without exponent. For those values it returns what Polars' reader returns (numbers as
Polars prints them). It marks every other value, and the caller reads those with Polars.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from batchalert.kernels import load as load_kernels
from batchalert.kernels.layout import FIELD_ABSENT
from batchalert.parse.buffers import binary_values, value_buffers


@dataclass(frozen=True)
class FieldNodes:
    """The tree of dotted paths to read, as arrays for the kernel (see `locate_fields`)."""

    names: npt.NDArray[np.uint8]
    name_offsets: npt.NDArray[np.int64]
    parents: npt.NDArray[np.int64]
    columns: npt.NDArray[np.int64]
    paths: tuple[str, ...]


def field_nodes(paths: list[str]) -> FieldNodes | None:
    """Return the tree of `paths`; None when a path is also the prefix of another.

    Polars reads such a field as an object for one path and as a string for the other, which
    the kernel does not imitate.
    """
    keys: list[bytes] = [b""]
    parents = [-1]
    columns = [-1]
    index: dict[tuple[int, str], int] = {}
    for column, path in enumerate(paths):
        node = 0
        for key in path.split("."):
            if columns[node] >= 0:
                return None
            child = index.get((node, key))
            if child is None:
                child = len(keys)
                index[(node, key)] = child
                keys.append(key.encode())
                parents.append(node)
                columns.append(-1)
            node = child
        if columns[node] >= 0 or any(parent == node for parent in parents):
            return None
        columns[node] = column
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(key) for key in keys])
    return FieldNodes(
        names=np.frombuffer(b"".join(keys) or b"\0", dtype=np.uint8).copy(),
        name_offsets=offsets,
        parents=np.array(parents, dtype=np.int64),
        columns=np.array(columns, dtype=np.int64),
        paths=tuple(paths),
    )


def read_fields(text: pl.Series, nodes: FieldNodes) -> tuple[pl.DataFrame, pl.Series]:
    """Read the fields of `nodes` from each row of `text`; return them and the rows read.

    The frame has one String column per path, named by the path. Its values are only valid
    where the returned Boolean Series is true; the other rows need Polars' reader.
    """
    values = binary_values(text.to_arrow())
    rows = len(values)
    offsets, data = value_buffers(values)
    width = len(nodes.paths)
    kinds = np.zeros((rows, width), dtype=np.int8)
    starts = np.zeros((rows, width), dtype=np.int64)
    ends = np.zeros((rows, width), dtype=np.int64)
    read = np.zeros(rows, dtype=np.bool_)
    kernels = load_kernels()
    if rows:
        kernels.locate_fields(offsets, data, nodes.names, nodes.name_offsets, nodes.parents,
                              nodes.columns, kinds, starts, ends, read)
    if values.null_count:
        read &= values.is_valid().to_numpy(zero_copy_only=False)
    columns = {}
    found = (kinds != FIELD_ABSENT).any(axis=0)
    for column, path in enumerate(nodes.paths):
        if not found[column]:
            columns[path] = pl.Series(path, [None] * rows, dtype=pl.String)
            continue
        field_kinds = np.ascontiguousarray(kinds[:, column])
        field_offsets, field_data = kernels.copy_fields(data, field_kinds, starts[:, column],
                                                        ends[:, column])
        present = np.packbits(field_kinds != FIELD_ABSENT, bitorder="little")
        array = pa.LargeStringArray.from_buffers(
            rows, pa.py_buffer(field_offsets), pa.py_buffer(field_data),
            pa.py_buffer(present))
        series = pl.from_arrow(array)
        assert isinstance(series, pl.Series)
        columns[path] = series.alias(path)
    return pl.DataFrame(columns), pl.Series("read", read)
