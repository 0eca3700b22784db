"""Benchmark of `batchalert run` against the machine's Kafka read limit and per-message handling.

Run it with `python -m bench.run`; docs/benchmarks.md describes the contenders and the results.
"""

import os

# The allocator setting of the environment the harness started in. Importing Polars writes its
# own `_RJEM_MALLOC_CONF` into os.environ, which children would inherit, and which keeps
# batchalert.allocators from setting its default (bench.run.child_environment puts it back).
STARTING_JEMALLOC_CONF = os.environ.get("_RJEM_MALLOC_CONF")

from batchalert.errors import BatchalertError  # noqa: E402


class BenchError(BatchalertError):
    """A benchmark step failed: a child process, the data load or a result check."""
