"""A compiled check that a record value is a well-formed envelope, to skip decoding it.

With the prefilter on, a record whose raw value contains none of the rules' status codes
cannot match a rule. Skipping it outright would also skip the checks that count unreadable
records, so the screen checks those values in one pass over the Arrow buffers instead:

- the size is between 1 byte and the shape's `max_value_bytes`;
- the bytes are well-formed UTF-8 (RFC 3629);
- the value is one strict JSON object (RFC 8259), nested at most
  `batchalert.kernels.layout.SCREEN_MAX_DEPTH` levels, with no escaped lone surrogate, no
  raw line break, and no number that Polars' reader rejects (more than 38 integer digits, or
  an exponent of three digits);
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

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from batchalert.kernels import load as load_kernels
from batchalert.kernels.layout import ROLE_LINE as _LINE
from batchalert.kernels.layout import ROLE_STREAM as _STREAM
from batchalert.kernels.layout import ROLE_TAG as _TAG
from batchalert.parse.buffers import binary_values, value_buffers
from batchalert.parse.shapes import RecordShape


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
    values = binary_values(values)
    passed = np.zeros(len(values), dtype=np.bool_)
    if not len(values):
        return passed
    offsets, data = value_buffers(values)
    excluded = np.zeros(len(values), dtype=np.bool_) if skip is None else skip.copy()
    if values.null_count:
        excluded |= values.is_null().to_numpy(zero_copy_only=False)
    load_kernels().screen_values(offsets, data, excluded, max_bytes, fields.names,
                                 fields.offsets, fields.roles, fields.docker_line, passed)
    return passed


def classify_envelopes(values: pa.Array, fields: ScreenFields, max_bytes: int,
                       codes: npt.NDArray[np.bool_]
                       ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Return two masks: the values with a status code of `codes`, and the others that pass.

    The first mask is `batchalert.rules.prefilter.candidate_mask`'s, the second is
    `well_formed_envelopes`' with those values skipped; one compiled pass computes both.
    `codes` has 1000 flags, one per three-digit number.
    """
    values = binary_values(values)
    candidates = np.zeros(len(values), dtype=np.bool_)
    passed = np.zeros(len(values), dtype=np.bool_)
    if not len(values):
        return candidates, passed
    offsets, data = value_buffers(values)
    nulls = (values.is_null().to_numpy(zero_copy_only=False) if values.null_count
             else np.zeros(len(values), dtype=np.bool_))
    load_kernels().classify_values(offsets, data, nulls, max_bytes, fields.names,
                                   fields.offsets, fields.roles, fields.docker_line, codes,
                                   candidates, passed)
    return candidates, passed
