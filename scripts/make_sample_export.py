"""Build a small export, as `batchalert export` writes it, from generated records without Kafka.

The notebooks and their CI test read it. Records come from scripts.sample_logs, spread over a
few Kafka partitions with consecutive offsets and over `--days` days of event time, plus a burst
of 404s from the WordPress pod in demo-project, so the charts have something to show. The same
seed gives the same export.

    python -m scripts.make_sample_export notebooks/sample-export
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from batchalert.config import JobConfig, build_job
from batchalert.export import ExportOptions, ExportResult, ExportWriter, export_frame
from batchalert.pipeline import parse_chunk
from batchalert.source.plan import PartitionRange, ReadPlan
from batchalert.source.reader import RECORD_SCHEMA
from scripts.sample_logs import (
    ARTICLE_NAMESPACE,
    ARTICLE_POD,
    Pod,
    access_line,
    envelope,
    generate,
)

SAMPLE_TOPIC = "sample-logs"
SAMPLE_START = datetime(2021, 8, 24, 0, 0, 0, tzinfo=UTC)
# Fluent Bit flushes every few seconds, so a record reaches Kafka a little after its line.
_SHIPPING_DELAY = timedelta(seconds=2)
# The burst starts this far into the sample and lasts two hours.
_BURST_OFFSET = timedelta(hours=30)
_BURST_LENGTH = timedelta(hours=2)


@dataclass(frozen=True)
class SampleRecord:
    """A generated record value and the Kafka timestamp it gets."""

    value: bytes
    moment: datetime


def sample_job() -> JobConfig:
    """Return a job for parsing only: its source is never connected."""
    source = {"brokers": ["127.0.0.1:9092"], "topic": SAMPLE_TOPIC, "group": "sample-export"}
    return build_job({"name": "sample-export", "source": source}, "sample export")


def sample_records(count: int, seed: int, days: float) -> list[SampleRecord]:
    """Generate `count` records over `days` days plus a 404 burst, ordered by time."""
    span = timedelta(days=days)
    step = span / max(count, 1)
    background = [
        SampleRecord(value, SAMPLE_START + index * step)
        for index, value in enumerate(generate(count, seed=seed, start=SAMPLE_START,
                                               span_seconds=span.total_seconds(),
                                               namespaces=6, pods_per_namespace=8,
                                               rate_broken=0.01))
    ]
    burst = list(_burst(count // 20, seed))
    return sorted(background + burst, key=lambda record: record.moment)


def _burst(count: int, seed: int) -> Iterator[SampleRecord]:
    rng = random.Random(seed + 1)
    pod = Pod(ARTICLE_NAMESPACE, ARTICLE_POD, "container-nrdsp1", "wordpress:4.8-apache")
    start = SAMPLE_START + _BURST_OFFSET
    for index in range(count):
        moment = start + _BURST_LENGTH * (index / max(count, 1))
        line = access_line(rng, moment, 404)
        yield SampleRecord(json.dumps(envelope(pod, line, moment, rng)).encode(), moment)


def record_batch(partition: int, first_offset: int, records: list[SampleRecord]) -> pa.RecordBatch:
    """Build a record batch as RangeReader yields it, with consecutive offsets."""
    timestamps = [int((r.moment + _SHIPPING_DELAY).timestamp() * 1000) for r in records]
    return pa.record_batch(
        [
            pa.array([partition] * len(records), pa.int32()),
            pa.array(range(first_offset, first_offset + len(records)), pa.int64()),
            pa.array(timestamps, pa.timestamp("ms", tz="UTC")),
            pa.array([None] * len(records), pa.binary()),
            pa.array([r.value for r in records], pa.binary()),
        ],
        schema=RECORD_SCHEMA,
    )


def build_sample_export(
    output_dir: Path,
    count: int = 6000,
    seed: int = 7,
    days: float = 2.0,
    partitions: int = 3,
    chunk_records: int = 1000,
) -> ExportResult:
    """Write a sample export to `output_dir`; records go to partitions round-robin."""
    job = sample_job()
    options = ExportOptions(output_dir=output_dir, from_committed=True)
    records = sample_records(count, seed, days)
    per_partition = [records[p::partitions] for p in range(partitions)]
    ranges = tuple(PartitionRange(p, 0, len(rows), "earliest")
                   for p, rows in enumerate(per_partition))
    result = ExportResult(plan=ReadPlan(SAMPLE_TOPIC, "sample-export", ranges),
                          output_dir=output_dir.resolve())
    with ExportWriter(options, SAMPLE_TOPIC) as writer:
        for partition, rows in enumerate(per_partition):
            for start in range(0, len(rows), chunk_records):
                batch = record_batch(partition, start, rows[start:start + chunk_records])
                frame = export_frame(batch, parse_chunk(batch, job), options)
                writer.write(frame)
                result.rows_by_kind.update(dict(frame.group_by("kind").len().iter_rows()))
            result.exported_ranges[partition] = (0, len(rows))
        result.records_read = len(records)
        result.files_written, result.files_removed = writer.publish(result.exported_ranges)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path, help="directory to write the export to")
    parser.add_argument("--count", type=int, default=6000, help="background records")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    parser.add_argument("--days", type=float, default=2.0, help="days of event time")
    args = parser.parse_args()
    result = build_sample_export(args.output_dir, args.count, args.seed, args.days)
    print(f"wrote {result.rows_written} records to {len(result.files_written)} files in "
          f"{result.output_dir}")


if __name__ == "__main__":
    main()
