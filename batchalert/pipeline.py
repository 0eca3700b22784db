"""One run of a job, from planned offset ranges to committed offsets.

The steps run in this order:
1. plan: read each partition's committed offset (or the offset for `--since`) and its high
   watermark, once;
2. read, parse and aggregate the planned ranges chunk by chunk, so memory stays bounded;
3. build the alerts from the groups that fire;
4. post them to every receiver;
5. commit each partition's next offset for the consumer group.

Invariant: nothing is committed unless every required receiver accepted every alert of the run.
A failed run leaves the group's offsets where they were, so the next run delivers the same alerts
again (at least once, never lost).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
from kafka import KafkaConsumer

from batchalert.alerts import Alert, AlertRenderer, build_alerts
from batchalert.config import JobConfig
from batchalert.errors import SinkError
from batchalert.parse import parse_batch
from batchalert.rules import AlertGroup, RunAggregator, RunCounts
from batchalert.sinks import Delivery, Sink, build_sinks
from batchalert.source import RangeReader, ReadPlan, open_consumer, plan_ranges
from batchalert.source.offsets import commit_offsets
from batchalert.source.reader import ReadLimits

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class RunOptions:
    """How one run behaves, from the command line."""

    since_seconds: float | None = None
    dry_run: bool = False
    # A look-back (`since_seconds`) commits only when asked, so it never moves the schedule.
    commit: bool = False
    max_records: int | None = None
    max_bytes: int | None = None

    @property
    def commits(self) -> bool:
        if self.dry_run:
            return False
        return self.since_seconds is None or self.commit


@dataclass
class RunResult:
    """Everything a run did, for the summary, the metrics and the tests."""

    plan: ReadPlan
    counts: RunCounts
    alerts: list[Alert] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)
    records_read: int = 0
    bytes_read: int = 0
    capped: bool = False
    committed: bool = False
    commit_note: str = ""
    seconds: float = 0.0

    @property
    def failed_required(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.required and not d.ok]


class DeliveryFailed(SinkError):
    """A required receiver did not accept every alert; carries the run's result."""

    def __init__(self, message: str, result: RunResult) -> None:
        super().__init__(message)
        self.result = result


def _parse_chunk(batch: pa.RecordBatch, job: JobConfig) -> pl.DataFrame:
    parsed = parse_batch(batch, job.shape)
    kafka_time = pl.from_arrow(batch.column("timestamp"))
    assert isinstance(kafka_time, pl.Series)
    return parsed.with_columns(
        pl.coalesce("record_time", kafka_time.cast(pl.Datetime("us", "UTC"))).alias("record_time")
    )


def run_job(
    job: JobConfig,
    options: RunOptions,
    sinks: list[Sink] | None = None,
    on_progress: ProgressCallback | None = None,
    on_plan: Callable[[ReadPlan], None] | None = None,
) -> RunResult:
    """Run `job` once: plan, read, parse, aggregate, post, commit."""
    started = time.monotonic()
    renderer = AlertRenderer(job.language, job.templates)
    since_ms = None
    if options.since_seconds is not None:
        since_ms = int((time.time() - options.since_seconds) * 1000)
    limits = ReadLimits(max_records=options.max_records, max_bytes=options.max_bytes,
                        chunk_records=job.chunk_records, stall_seconds=job.source.stall_seconds)
    timeout_ms = int(job.source.timeout_seconds * 1000)

    with open_consumer(job.source) as consumer:
        plan = plan_ranges(consumer, job.source.topic, job.source.group, since_ms, timeout_ms)
        if on_plan is not None:
            on_plan(plan)
        result, groups = _read_and_aggregate(consumer, plan, job, limits, on_progress)
        result.alerts = build_alerts(groups, job.cluster, renderer)
        if not options.dry_run:
            result.deliveries = _deliver(result.alerts, job, sinks)
        _commit_if_delivered(consumer, job, options, result, timeout_ms)
    result.seconds = time.monotonic() - started
    if result.failed_required:
        raise DeliveryFailed(_failure_message(result), result)
    return result


def _read_and_aggregate(
    consumer: KafkaConsumer,
    plan: ReadPlan,
    job: JobConfig,
    limits: ReadLimits,
    on_progress: ProgressCallback | None,
) -> tuple[RunResult, list[AlertGroup]]:
    aggregator = RunAggregator(job.rules)
    reader = RangeReader(consumer, plan, limits, on_progress)
    for batch in reader.batches():
        aggregator.add(_parse_chunk(batch, job))
    result = RunResult(plan=plan, counts=aggregator.counts, next_offsets=dict(reader.next_offsets),
                       records_read=reader.records_read, bytes_read=reader.bytes_read,
                       capped=reader.capped)
    return result, aggregator.groups()


def _deliver(alerts: list[Alert], job: JobConfig, sinks: list[Sink] | None) -> list[Delivery]:
    if not alerts:
        return []
    own_sinks = sinks is None
    active = build_sinks(job.receivers) if sinks is None else sinks
    try:
        return [sink.send(alerts) for sink in active]
    finally:
        if own_sinks:
            for sink in active:
                sink.close()


def _commit_if_delivered(
    consumer: KafkaConsumer, job: JobConfig, options: RunOptions, result: RunResult,
    timeout_ms: int,
) -> None:
    if options.dry_run:
        result.commit_note = "dry run: nothing committed"
    elif not options.commits:
        result.commit_note = "look-back run (--since) without --commit: nothing committed"
    elif result.failed_required:
        result.commit_note = "a required receiver failed: nothing committed"
    else:
        commit_offsets(consumer, job.source.topic, job.source.group, result.next_offsets,
                       timeout_ms)
        result.committed = True
        result.commit_note = "offsets committed"
    if not result.committed:
        logger.info(result.commit_note)


def _failure_message(result: RunResult) -> str:
    parts = []
    for delivery in result.failed_required:
        reasons = "; ".join(dict.fromkeys(delivery.failures)) or "not every alert was accepted"
        parts.append(f"receiver {delivery.receiver!r}: {delivery.undelivered} of "
                     f"{delivery.attempted} alerts not delivered ({reasons})")
    return ("; ".join(parts) + ". Nothing was committed; the next run delivers these alerts "
            "again.")
