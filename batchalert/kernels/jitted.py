"""The kernels compiled by numba at run time, when no ahead-of-time build is installed.

Importing this module loads numba, and the first call of each kernel compiles it or loads it
from numba's cache (see `batchalert.jit`).
"""

from __future__ import annotations

from batchalert.jit import jit
from batchalert.kernels import bitmasks, fields, recordsets, text

count_batches = jit(recordsets.count_batches)
scan_headers = jit(recordsets.scan_headers)
decode_batches = jit(recordsets.decode_batches)
gather = jit(recordsets.gather)
mark_invalid_utf8 = jit(text.mark_invalid_utf8)
mark_status_codes = jit(text.mark_status_codes)
screen_values = jit(text.screen_values)
classify_values = jit(bitmasks.classify_values)
locate_fields = jit(fields.locate_fields)
copy_fields = jit(fields.copy_fields)
