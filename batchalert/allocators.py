"""Allocator settings for the `batchalert` command, set before Polars and pyarrow load.

Polars allocates through its own jemalloc, which its `__init__` configures to keep freed
pages for 0.5 s, then 1 s more, before returning them to the system. Polars appends the value
of `_RJEM_MALLOC_CONF` to that configuration, and later options win. pyarrow allocates from
its own pool too. A run frees most of each chunk soon after parsing it, so those kept pages
add up. On 1,000,000 records, peak memory fell from 405-418 MiB to 345-353 MiB with both
settings below. The wall time grew by about 0.2 s (docs/benchmarks.md).

Each setting applies only when the environment does not set it already, so an operator can
still choose other values. The libraries read them when they load, so `batchalert.cli`
imports this module before anything imports Polars or pyarrow.
"""

from __future__ import annotations

import os
import sys

DEFAULTS = {
    # Return freed pages to the system at once instead of after 0.5 s and 1 s.
    "_RJEM_MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0",
    # pyarrow's allocations go through the C library's malloc.
    "ARROW_DEFAULT_MEMORY_POOL": "system",
}


def apply() -> bool:
    """Set the defaults the environment lacks; return False if a library had loaded already."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    return not any(library in sys.modules for library in ("polars", "pyarrow"))


# Whether the settings took effect; tests/test_allocators.py checks it for the command.
APPLIED = apply()
