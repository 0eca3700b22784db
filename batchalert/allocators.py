"""Allocator settings for the `batchalert` command, set before Polars and pyarrow load.

Polars allocates through its own jemalloc, which its `__init__` configures to keep freed
pages for 0.5 s, then 1 s more, before returning them to the system. Polars appends the value
of `_RJEM_MALLOC_CONF` to that configuration, and later options win. pyarrow allocates from
its own pool too. A run frees most of each chunk soon after parsing it, so those kept pages
add up. On 1,000,000 records, peak memory fell from 405-418 MiB to 345-353 MiB with both
settings below. The wall time grew by about 0.2 s (docs/benchmarks.md).

glibc's malloc, which pyarrow now uses, adjusts its mmap and trim thresholds as a program
runs, and then shrinks and grows its heap with every chunk. Over 5,000,000 records that took
8.8 s of system time in a 17.5 s run. Fixed thresholds (see MALLOPT_DEFAULTS), with the heap
trimmed after each chunk by `batchalert.heap.release_free_memory`, took the run to 13.5 s
with the same peak memory.

Each setting applies only when the environment does not set it already, so an operator can
still choose other values. The libraries read the variables when they load, so
`batchalert.cli` imports this module before anything imports Polars or pyarrow.
"""

from __future__ import annotations

import ctypes
import os
import sys

DEFAULTS = {
    # Return freed pages to the system at once instead of after 0.5 s and 1 s.
    "_RJEM_MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0",
    # pyarrow's allocations go through the C library's malloc.
    "ARROW_DEFAULT_MEMORY_POOL": "system",
}


# glibc's mallopt parameters and the environment variables that set them at start-up.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MALLOPT_DEFAULTS = {
    # Blocks from 16 MiB up get their own mapping, returned to the system when freed.
    "MALLOC_MMAP_THRESHOLD_": (_M_MMAP_THRESHOLD, 16 * 1024 * 1024),
    # The heap shrinks on its own only past 64 MiB of free space at its top. Between chunks,
    # batchalert.heap.release_free_memory returns the free pages instead.
    "MALLOC_TRIM_THRESHOLD_": (_M_TRIM_THRESHOLD, 64 * 1024 * 1024),
}


def apply() -> bool:
    """Set the defaults the environment lacks; return False if a library had loaded already."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    _set_malloc_options()
    return not any(library in sys.modules for library in ("polars", "pyarrow"))


def _set_malloc_options() -> None:
    """Fix glibc's mmap and trim thresholds, unless the environment sets them."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return  # not glibc
    for variable, (parameter, value) in MALLOPT_DEFAULTS.items():
        if variable not in os.environ:
            mallopt(parameter, value)


# Whether the settings took effect; tests/test_allocators.py checks it for the command.
APPLIED = apply()

