"""Micro-benchmark: parse, rules and aggregation on Arrow record batches already in memory.

    python -m bench.parse_only [--records N] [--repeat 3] [--json]

The batches have the reader's schema and are cut at the job's `chunk_records`, as the reader
cuts them. Each repetition feeds every batch to `batchalert.pipeline.aggregate_batches`, as
`batchalert run` does (one thread screens while another parses), then builds the alert groups
once. Two paths are timed, alternating: with the prefilter (the default of a job: the
envelope screen and the status-code test, then a full parse of the records left) and without
it (a full parse of every record). A small batch goes through both before timing, so loading
the compiled code and compiling the regular expressions are not counted.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from batchalert.config import JobConfig
from batchalert.pipeline import ChunkAggregator, aggregate_batches, uses_prefilter
from batchalert.source.reader import RECORD_SCHEMA
from bench.job import offline_job
from bench.load import CACHE_DIR, DEFAULT_SEED, PARTITIONS, ensure_dataset, read_values

logger = logging.getLogger(__name__)

# Kafka timestamp of the first record, in milliseconds since the epoch (2021-08-25T01:00Z).
_FIRST_TIMESTAMP_MS = 1_629_853_200_000
_WARM_UP_RECORDS = 1000


@dataclass(frozen=True)
class PassTiming:
    """One pass over all batches."""

    seconds: float
    cpu_seconds: float
    matches: int
    groups: int


def build_batches(values: list[bytes], chunk_records: int) -> list[pa.RecordBatch]:
    """Cut `values` into record batches with the reader's schema, spread over 10 partitions."""
    batches = []
    for start in range(0, len(values), chunk_records):
        chunk = values[start:start + chunk_records]
        offsets = range(start, start + len(chunk))
        columns = [
            pa.array([offset % PARTITIONS for offset in offsets], pa.int32()),
            pa.array(offsets, pa.int64()),
            pa.array([_FIRST_TIMESTAMP_MS + offset for offset in offsets],
                     pa.timestamp("ms", tz="UTC")),
            pa.nulls(len(chunk), pa.binary()),
            pa.array(chunk, pa.binary()),
        ]
        batches.append(pa.record_batch(columns, schema=RECORD_SCHEMA))
    return batches


def time_pass(batches: list[pa.RecordBatch], job: JobConfig, prefilter: bool) -> PassTiming:
    """Parse and aggregate every batch once, as a run does, and build the alert groups."""
    cpu_started = time.process_time()
    started = time.perf_counter()
    aggregator = aggregate_batches(iter(batches), ChunkAggregator(job, prefilter))
    groups = aggregator.groups()
    return PassTiming(time.perf_counter() - started, time.process_time() - cpu_started,
                      aggregator.counts.matches, len(groups))


def _summary(passes: list[PassTiming], records: int, value_bytes: int) -> dict[str, Any]:
    seconds = statistics.median(p.seconds for p in passes)
    return {
        "seconds": seconds,
        "seconds_each": [p.seconds for p in passes],
        "cpu_seconds": statistics.median(p.cpu_seconds for p in passes),
        "records_per_second": records / seconds,
        "mb_per_second": value_bytes / 1e6 / seconds,
        "matches": passes[0].matches,
        "groups": passes[0].groups,
    }


def run_parse_only(records: int, repeat: int, seed: int = DEFAULT_SEED,
                   cache_dir: Path = CACHE_DIR) -> dict[str, Any]:
    """Time `repeat` passes of each path over `records` generated values; return the medians.

    The top-level figures are those of the prefilter path, which a job takes by default;
    `full_parse` contains those of parsing every record.
    """
    dataset = ensure_dataset(records, seed, cache_dir)
    job = offline_job()
    if not uses_prefilter(job):
        raise SystemExit("the benchmark job does not use the prefilter; check bench/job.py")
    batches = build_batches(read_values(dataset), job.chunk_records)
    for prefilter in (True, False):
        time_pass([batches[0].slice(0, _WARM_UP_RECORDS)], job, prefilter)

    filtered: list[PassTiming] = []
    full: list[PassTiming] = []
    for _ in range(repeat):
        filtered.append(time_pass(batches, job, prefilter=True))
        full.append(time_pass(batches, job, prefilter=False))
    if (filtered[0].matches, filtered[0].groups) != (full[0].matches, full[0].groups):
        raise SystemExit(f"the prefilter changed the result: {filtered[0]} against {full[0]}")
    return {
        "records": records,
        "value_bytes": dataset.value_bytes,
        "chunk_records": job.chunk_records,
        "repeat": repeat,
        **_summary(filtered, records, dataset.value_bytes),
        "full_parse": _summary(full, records, dataset.value_bytes),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.parse_only",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000,
                        help="records to generate and parse (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed passes over all batches (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR,
                        help="directory of the generated record files (default: bench/.cache)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.records < 1 or args.repeat < 1:
        parser.error("--records and --repeat must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    result = run_parse_only(args.records, args.repeat, args.seed, args.cache_dir)
    if args.json:
        print(json.dumps(result))
    else:
        full = result["full_parse"]
        print(f"{result['records']:,} records, {result['repeat']} passes (medians): "
              f"with the prefilter {result['seconds']:.2f} s, "
              f"{result['records_per_second']:,.0f} records/s, "
              f"{result['mb_per_second']:,.1f} MB/s, CPU {result['cpu_seconds']:.2f} s; "
              f"full parse {full['seconds']:.2f} s, {full['records_per_second']:,.0f} records/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
