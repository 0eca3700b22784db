"""Micro-benchmark: parse, rules and aggregation on Arrow record batches already in memory.

    python -m bench.parse_only [--records N] [--repeat 3] [--json]

The batches have the reader's schema and are cut at the job's `chunk_records`, as `batchalert
run` cuts them. Each repetition times `batchalert.pipeline.parse_chunk` over every batch, then
`RunAggregator.add` for each parsed batch and `RunAggregator.groups()` once. A small batch is
parsed once before timing, so compiling the regular expressions is not counted.
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
from batchalert.pipeline import parse_chunk
from batchalert.rules import RunAggregator
from batchalert.source.reader import RECORD_SCHEMA
from bench.job import offline_job
from bench.load import CACHE_DIR, DEFAULT_SEED, PARTITIONS, ensure_dataset, read_values

logger = logging.getLogger(__name__)

# Kafka timestamp of the first record, in milliseconds since the epoch (2021-08-25T01:00Z).
_FIRST_TIMESTAMP_MS = 1_629_853_200_000
_WARM_UP_RECORDS = 1000


@dataclass(frozen=True)
class PassTiming:
    """Seconds one pass over all batches took."""

    parse_seconds: float
    aggregate_seconds: float
    cpu_seconds: float
    matches: int
    groups: int

    @property
    def total_seconds(self) -> float:
        return self.parse_seconds + self.aggregate_seconds


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


def time_pass(batches: list[pa.RecordBatch], job: JobConfig) -> PassTiming:
    """Parse and aggregate every batch once, timing the two steps apart."""
    aggregator = RunAggregator(job.rules)
    parse_seconds = aggregate_seconds = 0.0
    cpu_started = time.process_time()
    for batch in batches:
        started = time.perf_counter()
        parsed = parse_chunk(batch, job)
        parsed_at = time.perf_counter()
        aggregator.add(parsed)
        parse_seconds += parsed_at - started
        aggregate_seconds += time.perf_counter() - parsed_at
    started = time.perf_counter()
    groups = aggregator.groups()
    aggregate_seconds += time.perf_counter() - started
    return PassTiming(parse_seconds, aggregate_seconds, time.process_time() - cpu_started,
                      aggregator.counts.matches, len(groups))


def run_parse_only(records: int, repeat: int, seed: int = DEFAULT_SEED,
                   cache_dir: Path = CACHE_DIR) -> dict[str, Any]:
    """Time `repeat` passes over `records` generated values and return the medians."""
    dataset = ensure_dataset(records, seed, cache_dir)
    job = offline_job()
    batches = build_batches(read_values(dataset), job.chunk_records)
    parse_chunk(batches[0].slice(0, _WARM_UP_RECORDS), job)

    passes = [time_pass(batches, job) for _ in range(repeat)]
    total = statistics.median(p.total_seconds for p in passes)
    return {
        "records": records,
        "value_bytes": dataset.value_bytes,
        "chunk_records": job.chunk_records,
        "repeat": repeat,
        "parse_seconds": statistics.median(p.parse_seconds for p in passes),
        "aggregate_seconds": statistics.median(p.aggregate_seconds for p in passes),
        "total_seconds": total,
        "total_seconds_each": [p.total_seconds for p in passes],
        "cpu_seconds": statistics.median(p.cpu_seconds for p in passes),
        "records_per_second": records / total,
        "mb_per_second": dataset.value_bytes / 1e6 / total,
        "matches": passes[0].matches,
        "groups": passes[0].groups,
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
        print(f"{result['records']:,} records, {result['repeat']} passes (medians): "
              f"parse {result['parse_seconds']:.2f} s, rules and aggregation "
              f"{result['aggregate_seconds']:.2f} s, {result['records_per_second']:,.0f} "
              f"records/s, {result['mb_per_second']:,.1f} MB/s, CPU {result['cpu_seconds']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
