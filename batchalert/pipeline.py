"""One run of a job, from planned offset ranges to committed offsets.

The steps run in this order:
1. lock: take the run lock of the job and consumer group in the state topic, so that two runs
   never overlap (dry runs and look-back runs that do not commit skip the lock);
2. plan: read each partition's committed offset (or the offset for `--since`) and its high
   watermark, once;
3. read, parse and aggregate the planned ranges chunk by chunk, so memory stays bounded;
4. build the alerts from the groups that fire, and decide with the stored state which ones are
   new, which are repeats to suppress and which have resolved;
5. post them to every receiver;
6. write the new state, then commit each partition's next offset for the consumer group.

Invariant: nothing is committed, and no state is written, unless every required receiver
accepted every alert of the run. A failed run leaves the group's offsets where they were, so the
next run delivers the same alerts again (at least once, never lost).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from batchalert.alerts import Alert, AlertRenderer, build_alerts
from batchalert.config import JobConfig
from batchalert.deadletter import prepare_directory, write_dead_letters
from batchalert.errors import SinkError, SourceError
from batchalert.events import log_commit
from batchalert.heap import release_free_memory
from batchalert.parallel import MIN_SPAN_FOR_WORKERS, aggregate_in_workers
from batchalert.parse.values import parse_batch
from batchalert.readahead import ReadAhead
from batchalert.rules import AlertGroup, RunAggregator, RunCounts
from batchalert.rules.prefilter import rows_to_decode, rules_allow_prefilter
from batchalert.sinks import Delivery, Sink, build_sinks
from batchalert.source.client import ConsumerStart, open_consumer
from batchalert.source.group import check_group_is_ours
from batchalert.source.offsets import commit_offsets
from batchalert.source.plan import ReadPlan, plan_ranges, topic_partitions
from batchalert.source.reader import RECORD_SCHEMA, RangeReader, ReadLimits
from batchalert.state import (
    AlertStateStore,
    NotificationPlan,
    RunLock,
    StateTopic,
    plan_notifications,
)

if TYPE_CHECKING:
    from batchalert.source.fastread import FastRangeReader

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class RunOptions:
    """Options of one run, from the command line."""

    since_seconds: float | None = None
    dry_run: bool = False
    # A look-back (`since_seconds`) commits only when asked, so it never moves the schedule.
    commit: bool = False
    max_records: int | None = None
    max_bytes: int | None = None
    # Directory for the raw values of malformed records, as Parquet; None writes nothing.
    dead_letter_dir: Path | None = None

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
    notifications: NotificationPlan | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)
    records_read: int = 0
    bytes_read: int = 0
    capped: bool = False
    committed: bool = False
    commit_note: str = ""
    corrupt_state_records: int = 0
    # Offsets left to read per partition after the run: high watermark now minus next offset.
    lag: dict[int, int] | None = None
    seconds: float = 0.0

    @property
    def failed_required(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.required and not d.ok]


class DeliveryFailed(SinkError):
    """A required receiver did not accept every alert; carries the run's result."""

    def __init__(self, message: str, result: RunResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class _StateSession:
    topic: StateTopic
    store: AlertStateStore
    lock: RunLock


@contextmanager
def _state_session(job: JobConfig, options: RunOptions) -> Iterator[_StateSession | None]:
    """Hold the run lock and the alert state for runs that commit; yield None otherwise."""
    if not job.state.enabled or not options.commits:
        yield None
        return
    topic = StateTopic(job)
    try:
        topic.ensure_exists()
        lock = RunLock(topic, job.name, job.source.group, job.state.lock_lease_seconds)
        lock.acquire()
        try:
            yield _StateSession(topic, AlertStateStore(topic, job.name), lock)
        finally:
            _release_quietly(lock)
    finally:
        topic.close()


def _release_quietly(lock: RunLock) -> None:
    """Release the run lock; if Kafka is gone, leave it to expire and keep the run's own error."""
    try:
        lock.release()
    except SourceError as exc:
        logger.warning("releasing run lock %s failed (%s); it expires by itself after %g s",
                       lock.run_id, exc, lock.lease_seconds)


# Threads that screen reader batches. Screening takes about half the CPU time of
# `bench.parse_only`, and with one thread for it a core sat idle there.
_SCREEN_WORKERS = 2
# Chunks that parse at once while the read goes on, each in a thread of its own. A second
# one sped up `bench.parse_only` by about 0.02 s. It did not speed up `batchalert run`,
# whose read is slower than the parse, and it took 17 MiB more at the peak of a run.
PARSE_THREADS = 1


def uses_prefilter(job: JobConfig) -> bool:
    """Return whether this run skips records that cannot match, before decoding them."""
    return job.prefilter and rules_allow_prefilter(job.rules)


def prefilter_batch(batch: pa.RecordBatch, job: JobConfig
                    ) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """Return the records a rule may match, and the others that may be unreadable.

    See `rows_to_decode`. The rest of the batch, well-formed records that no rule can match,
    is skipped.
    """
    candidates, suspects = rows_to_decode(batch.column("value"), job.rules, job.shape)
    if candidates.all():
        return batch, batch.slice(0, 0)
    return batch.filter(_boolean_array(candidates)), batch.filter(_boolean_array(suspects))


def _boolean_array(mask: npt.NDArray[np.bool_]) -> pa.Array:
    """Return a NumPy mask as an Arrow array, without pa.array(), which imports pandas."""
    bits = np.packbits(mask, bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(bits)])


def parse_chunk(batch: pa.RecordBatch, job: JobConfig) -> pl.DataFrame:
    parsed = parse_batch(batch, job.shape)
    kafka_time = pl.from_arrow(batch.column("timestamp"))
    assert isinstance(kafka_time, pl.Series)
    return parsed.with_columns(
        pl.coalesce("record_time", kafka_time.cast(pl.Datetime("us", "UTC"))).alias("record_time")
    )


@dataclass(frozen=True)
class _RunSetup:
    """Settings and callbacks of one run besides the job and options."""

    renderer: AlertRenderer
    limits: ReadLimits
    since_ms: int | None
    timeout_ms: int
    clock: Callable[[], float]
    dry_run: bool
    sinks: list[Sink] | None
    on_progress: ProgressCallback | None
    on_plan: Callable[[ReadPlan], None] | None


def run_job(
    job: JobConfig,
    options: RunOptions,
    sinks: list[Sink] | None = None,
    on_progress: ProgressCallback | None = None,
    on_plan: Callable[[ReadPlan], None] | None = None,
    clock: Callable[[], float] = time.time,
    consumer_start: ConsumerStart | None = None,
) -> RunResult:
    """Run `job` once: lock, plan, read, parse, aggregate, post, save state, commit.

    `consumer_start`, when given, opened the job's consumer already; the run takes it.
    """
    started = time.monotonic()
    since_ms = None
    if options.since_seconds is not None:
        since_ms = int((clock() - options.since_seconds) * 1000)
    setup = _RunSetup(
        renderer=AlertRenderer(job.language, job.templates),
        limits=ReadLimits(max_records=options.max_records, max_bytes=options.max_bytes,
                          chunk_records=job.chunk_records,
                          stall_seconds=job.source.stall_seconds),
        since_ms=since_ms, timeout_ms=int(job.source.timeout_seconds * 1000), clock=clock,
        dry_run=options.dry_run, sinks=sinks, on_progress=on_progress, on_plan=on_plan,
    )
    if options.dead_letter_dir is not None:
        prepare_directory(options.dead_letter_dir)

    with open_consumer(job.source, consumer_start) as consumer:
        # The topic is checked first, so that a misspelt topic is not reported as a group
        # shared with another application.
        topic_partitions(consumer, job.source.topic)
        if options.commits:
            check_group_is_ours(job.source)
        result = _run_with_consumer(consumer, job, options, setup)
    result.seconds = time.monotonic() - started
    if result.failed_required:
        raise DeliveryFailed(_failure_message(result), result)
    return result


def _run_with_consumer(consumer: KafkaConsumer, job: JobConfig, options: RunOptions,
                       setup: _RunSetup) -> RunResult:
    """Lock, plan, read, aggregate, post, save state and commit, on an open consumer."""
    with _state_session(job, options) as session, _PreparedSinks(job, setup) as sinks:
        plan = plan_ranges(consumer, job.source.topic, job.source.group, setup.since_ms,
                           setup.timeout_ms)
        if setup.on_plan is not None:
            setup.on_plan(plan)
        result, groups = _read_and_aggregate(consumer, plan, job, setup.limits, options,
                                             setup.on_progress)
        result.alerts = build_alerts(groups, job.cluster, setup.renderer)
        result.notifications = _plan_notifications(session, result, job, setup.clock())
        if not options.dry_run:
            result.deliveries = _deliver(result.notifications, sinks.get())
        _finish(consumer, session, job, options, result, setup.timeout_ms)
    return result


def make_reader(
    kind: str,
    consumer: KafkaConsumer,
    plan: ReadPlan,
    limits: ReadLimits,
    on_progress: ProgressCallback | None,
) -> RangeReader | FastRangeReader:
    """Create the reader that `source.reader` names; the fast one is imported only when used."""
    if kind == "fast":
        from batchalert.source.fastread import FastRangeReader

        return FastRangeReader(consumer, plan, limits, on_progress)
    return RangeReader(consumer, plan, limits, on_progress)


def aggregate_ranges(
    consumer: KafkaConsumer,
    plan: ReadPlan,
    job: JobConfig,
    limits: ReadLimits,
    prefilter: bool,
    dead_letter_dir: Path | None,
    on_progress: ProgressCallback | None,
) -> tuple[RunAggregator, RangeReader | FastRangeReader]:
    """Read the plan's ranges chunk by chunk, parsing and aggregating each chunk at once.

    With the prefilter, the records left to decode are gathered over several reader batches
    until they fill a chunk: the few records of each batch parse far faster together.
    """
    reader = make_reader(job.source.reader, consumer, plan, limits, on_progress)

    def dead_letters(batch: pa.RecordBatch, parsed: pl.DataFrame) -> None:
        if dead_letter_dir is not None:
            write_dead_letters(batch, parsed, plan.topic, dead_letter_dir)

    chunks = ChunkAggregator(job, prefilter, dead_letters)
    return aggregate_batches(reader.batches(), chunks), reader


def aggregate_batches(batches: Iterator[pa.RecordBatch], chunks: ChunkAggregator
                      ) -> RunAggregator:
    """Feed `batches` to `chunks` and return the aggregator.

    A thread reads the batches and two more screen them (`ChunkAggregator.screen`) while this
    one gathers what they screened and hands each full chunk to the parse threads of
    `chunks`. The cores share the work, since the reader's sockets, the compiled kernels and
    Polars release the GIL.
    """
    try:
        with ReadAhead(batches, chunks.screen, size_of=Screened.nbytes,
                       workers=_SCREEN_WORKERS) as screened:
            for item in screened:
                chunks.take(item)
        return chunks.finish()
    finally:
        chunks.close()


class ChunkAggregator:
    """Parse reader batches a chunk at a time and aggregate them into one `RunAggregator`.

    With `prefilter`, each batch first goes through `prefilter_batch`. Its candidates and its
    suspects are gathered apart over several batches, each until they fill
    `job.chunk_records`: the few records of each batch parse far faster together. Suspects
    are parsed apart because they are mostly malformed, and a malformed record sends the JSON
    reader of its whole chunk down a slower path that takes more memory.

    Full chunks parse in threads, at most `PARSE_THREADS` at a time while batches come. One
    more full chunk is held until a thread frees or the end comes, and the caller's thread
    waits only when a second one fills meanwhile. Each thread adds its chunk to
    the aggregator under a lock. Counts, first and last times and the samples (the earliest
    by time, partition and offset) do not depend on the order of the chunks, so no alert
    does. `on_parsed` receives each parsed chunk with its records, for the dead-letter files,
    also under that lock. Call `finish` for the result, and `close` in any case.
    """

    def __init__(self, job: JobConfig, prefilter: bool,
                 on_parsed: Callable[[pa.RecordBatch, pl.DataFrame], None] | None = None
                 ) -> None:
        self.aggregator = RunAggregator(job.rules)
        self._job = job
        self._prefilter = prefilter
        self._on_parsed = on_parsed
        self._candidates = _Gathered()
        self._suspects = _Gathered()
        self._pool: ThreadPoolExecutor | None = None
        self._parsing: list[Future[None]] = []
        self._held_chunk: tuple[pa.RecordBatch, int] | None = None
        self._lock = threading.Lock()

    def add(self, batch: pa.RecordBatch) -> None:
        """Take one reader batch; parse what has gathered once it fills a chunk."""
        self.take(self.screen(batch))

    def screen(self, batch: pa.RecordBatch) -> Screened:
        """Split one reader batch for `take`; safe to call from another thread."""
        if not self._prefilter:
            return Screened(batch, None, 0)
        candidates, suspects = prefilter_batch(batch, self._job)
        skipped = batch.num_rows - candidates.num_rows - suspects.num_rows
        return Screened(candidates, suspects, skipped)

    def take(self, screened: Screened) -> None:
        """Gather one screened batch's records; start parsing them once they fill a chunk."""
        if self._held_chunk is not None and self._busy() < PARSE_THREADS:
            self._start(*self._held_chunk)
            self._held_chunk = None
        if screened.suspects is None:
            self._submit(screened.candidates, 0)
            return
        self._candidates.add(screened.candidates, screened.skipped)
        self._suspects.add(screened.suspects, 0)
        for gathered in (self._candidates, self._suspects):
            if gathered.rows >= self._job.chunk_records:
                self._submit(*gathered.take())

    def finish(self) -> RunAggregator:
        """Parse what is still gathered, wait for every chunk and return the aggregator.

        The held chunk, the last candidates and the suspects (which rarely fill a chunk and
        so wait for the end) start at once, next to the chunks still parsing.
        """
        if self._held_chunk is not None:
            self._start(*self._held_chunk)
            self._held_chunk = None
        for gathered in (self._candidates, self._suspects):
            if gathered.batches or gathered.skipped:
                self._start(*gathered.take())
        self._wait(0)
        return self.aggregator

    def close(self) -> None:
        """Stop the parse threads; chunks not started are dropped. Safe to call twice."""
        self._held_chunk = None
        if self._pool is not None:
            for future in self._parsing:
                future.cancel()
            self._pool.shutdown(wait=True)
            self._pool = None
            self._parsing = []

    def _submit(self, batch: pa.RecordBatch, skipped: int) -> None:
        """Start parsing a full chunk, or hold it while every parse thread is busy.

        One chunk is held. It starts when a thread frees, or with the last chunks at the
        end, where it would otherwise wait for the chunk before it while a core idles. A
        second full chunk waits for a free thread.
        """
        if self._busy() < PARSE_THREADS:
            self._start(batch, skipped)
            return
        if self._held_chunk is not None:
            self._wait(PARSE_THREADS - 1)
            self._start(*self._held_chunk)
        self._held_chunk = (batch, skipped)

    def _start(self, batch: pa.RecordBatch, skipped: int) -> None:
        if self._pool is None:
            # Three more threads for the end, where the held chunk, the last candidates and
            # the suspects start at once, next to the chunks still parsing.
            self._pool = ThreadPoolExecutor(PARSE_THREADS + 3,
                                            thread_name_prefix="batchalert-parse")
        self._parsing.append(self._pool.submit(self._consume, batch, skipped))

    def _busy(self) -> int:
        """Return how many chunks are parsing; raise the error of a failed one."""
        self._wait(len(self._parsing))
        return len(self._parsing)

    def _wait(self, busy: int) -> None:
        """Wait until at most `busy` chunks are parsing; raise the error of a failed one."""
        while True:
            running = []
            for future in self._parsing:
                if future.done():
                    future.result()
                else:
                    running.append(future)
            self._parsing = running
            if len(running) <= busy:
                return
            wait(running, return_when=FIRST_COMPLETED)

    def _consume(self, batch: pa.RecordBatch, skipped: int) -> None:
        parsed = parse_chunk(batch, self._job) if batch.num_rows else None
        with self._lock:
            if parsed is None:
                self.aggregator.counts.records += skipped
                self.aggregator.counts.skipped += skipped
            else:
                self.aggregator.add(parsed, skipped=skipped)
                if self._on_parsed is not None:
                    self._on_parsed(batch, parsed)
        del parsed
        release_free_memory()


@dataclass(frozen=True)
class Screened:
    """One reader batch after the prefilter: the records to parse, and how many were skipped.

    Without the prefilter, `candidates` is the whole batch and `suspects` is None.
    """

    candidates: pa.RecordBatch
    suspects: pa.RecordBatch | None
    skipped: int

    def nbytes(self) -> int:
        """Return the bytes of the records it holds."""
        size = int(self.candidates.nbytes)
        if self.suspects is not None:
            size += int(self.suspects.nbytes)
        return size


@dataclass
class _Gathered:
    """Records left to decode from several reader batches, and how many were skipped."""

    batches: list[pa.RecordBatch] = field(default_factory=list)
    rows: int = 0
    skipped: int = 0

    def add(self, batch: pa.RecordBatch, skipped: int) -> None:
        if batch.num_rows:
            self.batches.append(batch)
            self.rows += batch.num_rows
        self.skipped += skipped

    def take(self) -> tuple[pa.RecordBatch, int]:
        """Return the gathered records as one batch, and the skipped count; then start over."""
        if self.batches:
            batch = pa.concat_batches(self.batches)
        else:
            batch = pa.RecordBatch.from_pylist([], schema=RECORD_SCHEMA)
        skipped = self.skipped
        self.batches, self.rows, self.skipped = [], 0, 0
        return batch, skipped


def _uses_workers(job: JobConfig, options: RunOptions, plan: ReadPlan) -> bool:
    """Return whether to read in worker processes: several asked, and a large, uncapped plan."""
    uncapped = options.max_records is None and options.max_bytes is None
    large = plan.span >= MIN_SPAN_FOR_WORKERS and len(plan.nonempty()) > 1
    return job.workers > 1 and uncapped and large and options.dead_letter_dir is None


def _read_and_aggregate(
    consumer: KafkaConsumer,
    plan: ReadPlan,
    job: JobConfig,
    limits: ReadLimits,
    options: RunOptions,
    on_progress: ProgressCallback | None,
) -> tuple[RunResult, list[AlertGroup]]:
    prefilter = uses_prefilter(job)
    if _uses_workers(job, options, plan):
        aggregator, workers = aggregate_in_workers(job, plan, job.workers, limits, prefilter,
                                                   on_progress)
        next_offsets = {r.partition: r.start for r in plan.ranges}
        for worker in workers:
            next_offsets.update(worker.next_offsets)
        result = RunResult(plan=plan, counts=aggregator.counts, next_offsets=next_offsets,
                           records_read=sum(w.records_read for w in workers),
                           bytes_read=sum(w.bytes_read for w in workers))
        return result, aggregator.groups()
    aggregator, reader = aggregate_ranges(consumer, plan, job, limits, prefilter,
                                          options.dead_letter_dir, on_progress)
    result = RunResult(plan=plan, counts=aggregator.counts, next_offsets=dict(reader.next_offsets),
                       records_read=reader.records_read, bytes_read=reader.bytes_read,
                       capped=reader.capped)
    return result, aggregator.groups()


def _plan_notifications(session: _StateSession | None, result: RunResult, job: JobConfig,
                        now: float) -> NotificationPlan:
    if session is None:
        return NotificationPlan(firing=list(result.alerts), fresh=list(result.alerts))
    states = session.store.load()
    result.corrupt_state_records = session.topic.corrupt_records
    plan = plan_notifications(result.alerts, states, now, job.state.realert_seconds,
                              job.state.resolve_after_seconds)
    logger.info("alerts: %d firing, %d new or due, %d suppressed as repeats, %d resolved",
                len(plan.firing), len(plan.fresh), plan.suppressed, len(plan.resolved))
    return plan


def _alerts_for(sink: Sink, notifications: NotificationPlan) -> list[Alert]:
    if getattr(sink, "resend_firing", False):
        return notifications.for_alertmanager()
    return notifications.for_people()


def _deliver(notifications: NotificationPlan, sinks: list[Sink]) -> list[Delivery]:
    deliveries = []
    for sink in sinks:
        alerts = _alerts_for(sink, notifications)
        deliveries.append(sink.send(alerts) if alerts else Delivery(sink.name, sink.required))
    return deliveries


class _PreparedSinks:
    """The run's sinks, created in a thread while the run reads, and closed at the end.

    Creating them imports httpcore and loads the CA bundle for each HTTP client: about 0.2 s
    that would otherwise come after the read. Dry runs create none. Sinks passed to `run_job`
    are used as they are and left open.
    """

    def __init__(self, job: JobConfig, setup: _RunSetup) -> None:
        self._passed_in = setup.sinks
        self._receivers = job.receivers
        self._renderer = setup.renderer
        self._building = setup.sinks is None and not setup.dry_run
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="batchalert-sinks")
        self._future: Future[list[Sink]] | None = None

    def __enter__(self) -> _PreparedSinks:
        if self._building:
            self._future = self._pool.submit(build_sinks, self._receivers,
                                             renderer=self._renderer)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(wait=True)
        future = self._future
        if future is not None and future.exception() is None:
            for sink in future.result():
                sink.close()

    def get(self) -> list[Sink]:
        """Return the sinks; raise the error that creating them raised."""
        if self._passed_in is not None:
            return self._passed_in
        return self._future.result() if self._future is not None else []


def _finish(
    consumer: KafkaConsumer,
    session: _StateSession | None,
    job: JobConfig,
    options: RunOptions,
    result: RunResult,
    timeout_ms: int,
) -> None:
    """Save state and commit offsets, in that order, when every required receiver accepted."""
    if options.dry_run:
        result.commit_note = "dry run: nothing committed"
    elif not options.commits:
        result.commit_note = "look-back run (--since) without --commit: nothing committed"
    elif result.failed_required:
        result.commit_note = "a required receiver failed: nothing committed"
    else:
        if session is not None and result.notifications is not None:
            session.store.save(result.notifications.updates)
        commit_offsets(consumer, job.source.topic, job.source.group, result.next_offsets,
                       timeout_ms)
        log_commit(result.next_offsets)
        result.committed = True
        result.commit_note = "offsets committed"
    if not result.committed:
        logger.info(result.commit_note)
    result.lag = _remaining_lag(consumer, job.source.topic, result.next_offsets, timeout_ms)


def _remaining_lag(consumer: KafkaConsumer, topic: str, next_offsets: dict[int, int],
                   timeout_ms: int) -> dict[int, int] | None:
    """Return, per partition, how many offsets remain after this run; None if unknown."""
    partitions = [TopicPartition(topic, p) for p in sorted(next_offsets)]
    try:
        ends = consumer.end_offsets(partitions, timeout_ms=timeout_ms)
    except KafkaError as exc:
        logger.warning("cannot read the high watermarks for the lag metric: %s", exc)
        return None
    return {tp.partition: max(0, ends[tp] - next_offsets[tp.partition]) for tp in partitions}


def _failure_message(result: RunResult) -> str:
    """Return the run's error: per failed receiver, the first failure and how many followed.

    A receiver that is down fails every POST of the run with the same error, and each
    message ends in its own retry count. The log has a line for each of them.
    """
    parts = []
    for delivery in result.failed_required:
        failures = list(dict.fromkeys(delivery.failures))
        reasons = failures[0] if failures else "not every alert was accepted"
        if len(failures) > 1:
            reasons += f"; {len(failures) - 1} more failed POST(s), each logged"
        parts.append(f"receiver {delivery.receiver!r}: {delivery.undelivered} of "
                     f"{delivery.attempted} alerts not delivered ({reasons})")
    return ("; ".join(parts) + ". Nothing was committed; the next run delivers these alerts "
            "again.")
