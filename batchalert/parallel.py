"""Reading partitions in several processes, so that every core parses and aggregates.

kafka-python decodes records in Python, under one interpreter lock, so one process keeps one
core busy. With `workers: N` the planned partitions are dealt out to N processes. Each reads its
ranges with its own consumer, parses and aggregates them, and returns its partial aggregates.
The parent merges them and goes on to post and commit as usual, because workers never commit.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import polars as pl

from batchalert.config import JobConfig
from batchalert.rules import RunAggregator, RunCounts
from batchalert.source.client import open_consumer
from batchalert.source.plan import ReadPlan
from batchalert.source.reader import ReadLimits

logger = logging.getLogger(__name__)

# Below this many planned offsets, starting processes (about a second each, for imports) costs
# more than a second core gains.
MIN_SPAN_FOR_WORKERS = 200_000

ProgressCallback = Callable[[int, int], None]
Partials = list[tuple[pl.DataFrame | None, pl.DataFrame | None]]


@dataclass
class WorkerResult:
    """Result of one worker: its counts, partial aggregates and read positions."""

    counts: RunCounts
    partials: Partials
    next_offsets: dict[int, int]
    records_read: int
    bytes_read: int
    capped: bool


def deal_partitions(plan: ReadPlan, workers: int) -> list[list[int]]:
    """Split the non-empty partitions into at most `workers` lists of similar total span."""
    shares: list[list[int]] = [[] for _ in range(workers)]
    spans = [0] * workers
    for r in sorted(plan.nonempty(), key=lambda r: (-r.span, r.partition)):
        lightest = spans.index(min(spans))
        shares[lightest].append(r.partition)
        spans[lightest] += r.span
    return [sorted(share) for share in shares if share]


def _subplan(plan: ReadPlan, partitions: list[int]) -> ReadPlan:
    ranges = tuple(r for r in plan.ranges if r.partition in partitions)
    return ReadPlan(plan.topic, plan.group, ranges, plan.since_ms)


def _work(job_json: str, plan: ReadPlan, partitions: list[int], limits: ReadLimits,
          prefilter: bool, progress: queue.Queue[tuple[int, int]] | None) -> WorkerResult:
    """Read, parse and aggregate the given partitions of the plan (runs in a worker process)."""
    from batchalert.pipeline import aggregate_ranges

    job = JobConfig.model_validate_json(job_json)

    def report(records: int, nbytes: int) -> None:
        if progress is not None:
            progress.put((records, nbytes))

    with open_consumer(job.source) as consumer:
        aggregator, reader = aggregate_ranges(consumer, _subplan(plan, partitions), job, limits,
                                              prefilter, None, report)
    return WorkerResult(aggregator.counts, aggregator.partials(), dict(reader.next_offsets),
                        reader.records_read, reader.bytes_read, reader.capped)


def _forward_progress(progress: queue.Queue[tuple[int, int] | None],
                      on_progress: ProgressCallback) -> None:
    while (item := progress.get()) is not None:
        on_progress(*item)


def aggregate_in_workers(job: JobConfig, plan: ReadPlan, workers: int, limits: ReadLimits,
                         prefilter: bool, on_progress: ProgressCallback | None
                         ) -> tuple[RunAggregator, list[WorkerResult]]:
    """Aggregate the plan's ranges in up to `workers` processes and merge the results."""
    shares = deal_partitions(plan, workers)
    context = multiprocessing.get_context("spawn")
    manager = context.Manager() if on_progress is not None else None
    progress = manager.Queue() if manager is not None else None
    forwarder = None
    if progress is not None and on_progress is not None:
        forwarder = threading.Thread(target=_forward_progress, args=(progress, on_progress),
                                     daemon=True)
        forwarder.start()
    logger.info("reading %d partitions in %d worker processes", len(plan.nonempty()),
                len(shares))
    try:
        with ProcessPoolExecutor(max_workers=len(shares), mp_context=context) as pool:
            futures = [pool.submit(_work, job.model_dump_json(), plan, share, limits,
                                   prefilter, progress) for share in shares]
            results = [future.result() for future in futures]
    finally:
        if progress is not None:
            progress.put(None)
        if forwarder is not None:
            forwarder.join(timeout=5)
        if manager is not None:
            manager.shutdown()
    aggregator = RunAggregator(job.rules)
    for result in results:
        aggregator.merge(result.counts, result.partials)
    return aggregator, results
