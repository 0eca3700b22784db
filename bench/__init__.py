"""Benchmark of `batchalert run` against the machine's Kafka read limit and per-message handling.

Run it with `python -m bench.run`; docs/benchmarks.md describes the contenders and the results.
"""

from batchalert.errors import BatchalertError


class BenchError(BatchalertError):
    """A benchmark step failed: a child process, the data load or a result check."""
