"""Reading planned offset ranges with Fetch requests of our own, decoded a record batch at a time.

FastRangeReader has RangeReader's interface and output. It sends Fetch requests (versions 4 to
12, the range kafka-python 3.0's own fetcher uses) over the consumer's connections and turns each
partition's record set into Arrow columns with `recordbatch.RecordSet`, instead of letting
kafka-python build one ConsumerRecord per record. The consumer's fetcher, assignment and
positions stay unused, so the consumer can still commit afterwards.

While one response is decoded, the next Fetch request to the same broker is already out: the
offsets it needs come from the batch headers, which are read before the records.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import kafka.errors as kafka_errors
import numpy as np
import pyarrow as pa
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.future import Future
from kafka.protocol.consumer import FetchRequest, IsolationLevel

from batchalert.errors import SourceError
from batchalert.source import direct
from batchalert.source.direct import DirectFetchClient
from batchalert.source.plan import PartitionRange, ReadPlan
from batchalert.source.reader import RECORD_SCHEMA, ProgressCallback, ReaderState, ReadLimits
from batchalert.source.recordbatch import AbortedTransaction, RecordColumns, RecordSet

logger = logging.getLogger(__name__)

# How long one wait for a fetch response lasts, in seconds. It is short so that stalls and caps
# are noticed soon, and equal to RangeReader's poll timeout.
_WAIT_SECONDS = 0.5
# Fetch version 4 is the first with isolation levels. Versions 13 and later name topics by id,
# which kafka-python 3.0's own fetcher does not send either.
_MIN_FETCH_VERSION = 4
_MAX_FETCH_VERSION = 12
# Bytes one fetch response may contain, below the consumer's fetch_max_bytes (50 MiB by default).
# kafka-python's network client keeps three to four copies of a response while receiving it,
# and smaller responses overlap better with decoding. Against 50 MiB, 16 MiB cut the reader's
# peak RSS by about a third and its CPU time by about a quarter (1,000,000 records of
# scripts/read_speed.py, 10 partitions, on 2 cores). 8 MiB cut the peak from 378 to 304 MB
# for 0.26 s more (1.24 s against 0.98 s); 4 MiB saved 17 MB more for another 0.37 s.
_REQUEST_MAX_BYTES = 8 * 1024 * 1024
# Session id 0 with epoch -1 requests a full fetch that opens no incremental fetch session.
_NO_SESSION_ID = 0
_NO_SESSION_EPOCH = -1

# Decoded pieces of at least this many records are handed out without merging. Smaller ones are
# merged, because small batches slow the Polars parsing downstream. With 400,000 records from
# scripts.sample_logs on 2 cores, pipeline.parse_chunk took 2.5 times as long per record at
# 2,000 records per batch as at 200,000, and 5 % longer at 17,000.
_MIN_BATCH_RECORDS = 8192

# Partition errors after which a fetch is retried once the metadata names the current leader.
_LEADER_ERRORS = (
    kafka_errors.NotLeaderForPartitionError,
    kafka_errors.ReplicaNotAvailableError,
    kafka_errors.UnknownTopicOrPartitionError,
    kafka_errors.KafkaStorageError,
    kafka_errors.FencedLeaderEpochError,
    kafka_errors.UnknownLeaderEpochError,
)


@dataclass
class _InFlight:
    """A Fetch request sent to one broker, with the offset it asked for per partition."""

    node_id: int
    fetch_offsets: dict[int, int]
    future: Any  # kafka.future.Future of the FetchResponse


@dataclass
class _PartitionFetch:
    """One partition's record set from a fetch response: batch headers read, records not yet."""

    partition: int
    fetch_offset: int
    records: RecordSet
    aborted: list[AbortedTransaction]


class _FetchClient:
    """Sends Fetch requests over a consumer's connections and hands back completed ones.

    kafka-python has no public API for single requests, so this uses the consumer's network
    client (`KafkaConsumer._client`), as kafka-python's own fetcher does. Requests are sent on
    the consumer's IO thread; completed futures arrive through a queue.
    """

    def __init__(self, consumer: KafkaConsumer, topic: str) -> None:
        self._client = consumer._client
        self._manager = self._client._manager
        self._topic = topic
        config = consumer.config
        self._isolation = IsolationLevel.build_from(config["isolation_level"])
        self._max_wait_ms = int(config["fetch_max_wait_ms"])
        self._min_bytes = int(config["fetch_min_bytes"])
        self._max_bytes = min(int(config["fetch_max_bytes"]), _REQUEST_MAX_BYTES)
        self._partition_max_bytes = int(config["max_partition_fetch_bytes"])
        self.check_crcs = bool(config["check_crcs"])
        self.retry_backoff = float(config["retry_backoff_ms"]) / 1000
        self._done: queue.SimpleQueue[_InFlight] = queue.SimpleQueue()
        self._in_flight: dict[int, _InFlight] = {}
        # Metadata refreshes name only the topics the cluster tracks, and each refresh replaces
        # the partition leaders it knew: an untracked topic would lose its leaders.
        self._client.cluster.add_topic(topic)
        self._direct = DirectFetchClient(consumer) if direct.supports(consumer) else None

    def close(self) -> None:
        """Close the sockets of our own, if any; kafka-python's stay with the consumer."""
        if self._direct is not None:
            self._direct.close()

    @property
    def read_committed(self) -> bool:
        return bool(self._isolation == IsolationLevel.READ_COMMITTED)

    def leader(self, partition: int) -> int | None:
        """Return the leader's node id, or None while the metadata names no leader."""
        leader = self._client.cluster.leader_for_partition(TopicPartition(self._topic, partition))
        return None if leader is None or leader < 0 else int(leader)

    def request_metadata_update(self) -> None:
        self._client.cluster.request_update()

    def busy(self, node_id: int) -> bool:
        return node_id in self._in_flight

    def in_flight_partitions(self) -> set[int]:
        return {p for request in self._in_flight.values() for p in request.fetch_offsets}

    def send(self, node_id: int, fetch_offsets: dict[int, int]) -> None:
        """Send one Fetch request for `fetch_offsets` (partition -> offset) to `node_id`."""
        request = self._build_request(fetch_offsets)
        if self._direct is not None:
            future = Future()
            in_flight = _InFlight(node_id, dict(fetch_offsets), future)
            future.add_both(lambda _result: self._done.put(in_flight))
            self._direct.send(node_id, request, future)
        else:
            future = self._manager.call_soon(self._manager.send, request, node_id)
            in_flight = _InFlight(node_id, dict(fetch_offsets), future)
            future.add_both(lambda _result: self._done.put(in_flight))
        self._in_flight[node_id] = in_flight
        logger.debug("fetch from node %d: %s", node_id, fetch_offsets)

    def _build_request(self, fetch_offsets: dict[int, int]) -> Any:
        fetch_topic = FetchRequest.FetchTopic
        partitions = [
            fetch_topic.FetchPartition(
                partition=partition,
                current_leader_epoch=self._leader_epoch(partition),
                fetch_offset=offset,
                last_fetched_epoch=-1,
                partition_max_bytes=self._partition_max_bytes,
            )
            for partition, offset in fetch_offsets.items()
        ]
        return FetchRequest(
            max_wait_ms=self._max_wait_ms, min_bytes=self._min_bytes, max_bytes=self._max_bytes,
            isolation_level=self._isolation, session_id=_NO_SESSION_ID,
            session_epoch=_NO_SESSION_EPOCH,
            topics=[fetch_topic(topic=self._topic, partitions=partitions)],
            forgotten_topics_data=[], rack_id="",
            min_version=_MIN_FETCH_VERSION, max_version=_MAX_FETCH_VERSION,
        )

    def _leader_epoch(self, partition: int) -> int:
        tp = TopicPartition(self._topic, partition)
        epoch = self._client.cluster.leader_epoch_for_partition(tp)
        return -1 if epoch is None else int(epoch)

    def wait(self, timeout: float) -> list[_InFlight]:
        """Return the requests that completed, waiting up to `timeout` seconds for the first."""
        try:
            completed = [self._done.get(timeout=max(timeout, 0.0))]
        except queue.Empty:
            return []
        while not self._done.empty():
            completed.append(self._done.get_nowait())
        for request in completed:
            if self._in_flight.get(request.node_id) is request:
                del self._in_flight[request.node_id]
        return completed


@dataclass
class _Batcher:
    """Cuts decoded pieces into record batches of at most `chunk_records` records.

    A piece of at least _MIN_BATCH_RECORDS records becomes batches of its own, as zero-copy
    slices. Smaller pieces are merged (copied) until they reach that size or `chunk_bytes`.
    """

    limits: ReadLimits
    ready: list[pa.RecordBatch] = field(default_factory=list)
    small: list[pa.RecordBatch] = field(default_factory=list)
    small_rows: int = 0
    small_bytes: int = 0

    def add(self, piece: pa.RecordBatch, nbytes: int) -> None:
        if piece.num_rows >= _MIN_BATCH_RECORDS:
            self.flush()
            self._split(piece)
            return
        self.small.append(piece)
        self.small_rows += piece.num_rows
        self.small_bytes += nbytes
        enough_rows = min(_MIN_BATCH_RECORDS, self.limits.chunk_records)
        if self.small_rows >= enough_rows or self.small_bytes >= self.limits.chunk_bytes:
            self.flush()

    def flush(self) -> None:
        """Merge the small pieces into ready batches."""
        if not self.small:
            return
        table = pa.Table.from_batches(self.small, schema=RECORD_SCHEMA).combine_chunks()
        self.small, self.small_rows, self.small_bytes = [], 0, 0
        for batch in table.to_batches():
            self._split(batch)

    def _split(self, batch: pa.RecordBatch) -> None:
        step = self.limits.chunk_records
        for start in range(0, batch.num_rows, step):
            self.ready.append(batch.slice(start, step))

    def take_ready(self) -> list[pa.RecordBatch]:
        ready, self.ready = self.ready, []
        return ready


class FastRangeReader(ReaderState):
    """Reads each partition of a plan from its start to its end offset, decoding whole batches.

    The interface and the records are those of RangeReader: `batches()` yields record batches in
    RECORD_SCHEMA, and afterwards `next_offsets`, `records_read`, `bytes_read` and `capped`
    describe what was handed out. Records of different partitions may interleave in another
    order, because fetches complete in another order; within a partition they are in offset
    order.

    Raises SourceError when a fetch fails for good (offset out of range, authorization, an
    unexpected error), when a record batch fails its CRC check or does not decode, and when no
    partition makes progress for `stall_seconds`.
    """

    def __init__(
        self,
        consumer: KafkaConsumer,
        plan: ReadPlan,
        limits: ReadLimits | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        super().__init__(consumer, plan, limits, on_progress)
        self._positions = dict(self.next_offsets)
        # Partitions in the order their next fetch lists them: the least recently served first,
        # so a batch larger than the remaining response size is sent whole in a later fetch.
        self._order: dict[int, None] = {}
        self._retry_at: dict[int, float] = {}
        self._last_errors: dict[int, str] = {}

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Yield record batches of at most `chunk_records` records, in fetch order.

        Batches can be smaller than RangeReader's, because a partition's share of one fetch
        response (at most max_partition_fetch_bytes) becomes batches of its own without a copy.
        """
        pending = {r.partition for r in self._plan.nonempty()}
        self._order = dict.fromkeys(sorted(pending))
        fetcher = _FetchClient(self._consumer, self._plan.topic)
        try:
            batcher = _Batcher(self._limits)
            last_progress = time.monotonic()
            while pending and not self.capped:
                self._send_fetches(fetcher, pending)
                if self._receive(fetcher, pending, batcher):
                    last_progress = time.monotonic()
                elif time.monotonic() - last_progress > self._limits.stall_seconds:
                    raise self._stall_error(pending)
                yield from batcher.take_ready()
            batcher.flush()
            yield from batcher.take_ready()
        finally:
            fetcher.close()

    # --- sending

    def _send_fetches(self, fetcher: _FetchClient, pending: set[int]) -> None:
        """Send one request to each broker that leads a pending partition and has none out."""
        by_node: dict[int, dict[int, int]] = {}
        busy = fetcher.in_flight_partitions()
        now = time.monotonic()
        for partition in self._order:
            if partition not in pending or partition in busy:
                continue
            if self._positions[partition] >= self._ranges[partition].end:
                continue  # read to its end; finished once this response is decoded
            if self._retry_at.get(partition, 0.0) > now:
                continue
            node_id = fetcher.leader(partition)
            if node_id is None:
                self._note_error(partition, "no leader known", fetcher, now)
                continue
            if not fetcher.busy(node_id):
                by_node.setdefault(node_id, {})[partition] = self._positions[partition]
                self._retry_at.pop(partition, None)
        try:
            for node_id, fetch_offsets in by_node.items():
                fetcher.send(node_id, fetch_offsets)
        except KafkaError as exc:
            raise SourceError(f"reading topic {self._plan.topic!r} failed: {exc}") from exc

    def _note_error(self, partition: int, error: str, fetcher: _FetchClient, now: float) -> None:
        """Schedule a retry after the backoff, and refresh the metadata to find the leader."""
        if self._last_errors.get(partition) != error:
            logger.warning("fetching partition %d of topic %s at offset %d failed: %s; "
                           "retrying", partition, self._plan.topic, self._positions[partition],
                           error)
        self._last_errors[partition] = error
        self._retry_at[partition] = now + fetcher.retry_backoff
        fetcher.request_metadata_update()

    # --- receiving

    def _receive(self, fetcher: _FetchClient, pending: set[int], batcher: _Batcher) -> bool:
        """Handle the responses that complete within the wait; return whether any moved on."""
        progressed = False
        for request in fetcher.wait(self._wait_timeout()):
            fetched = self._scan_response(fetcher, request)
            progressed = progressed or any(f.records.next_offset is not None for f in fetched)
            # The next request leaves before this response is decoded: it overlaps the network.
            self._send_fetches(fetcher, pending)
            for partition_fetch in sorted(fetched, key=lambda f: f.partition):
                progressed = self._take(fetcher, partition_fetch, batcher) or progressed
                if self.capped:
                    return True
                progressed = self._finish(partition_fetch.partition, pending) or progressed
        return progressed

    def _wait_timeout(self) -> float:
        """Return how long to wait for responses: until the next retry is due, at most."""
        now = time.monotonic()
        # A retry already due waits for its broker's request in flight, like any fetch.
        delays = [due - now for due in self._retry_at.values() if due > now]
        return min([_WAIT_SECONDS, *delays])

    def _scan_response(self, fetcher: _FetchClient, request: _InFlight) -> list[_PartitionFetch]:
        """Check one response's errors and read its batch headers; advance the fetch positions."""
        now = time.monotonic()
        if request.future.failed():
            for partition in request.fetch_offsets:
                self._note_error(partition, repr(request.future.exception), fetcher, now)
            return []
        response = request.future.value
        self._check_response_error(response, request, fetcher, now)
        fetched = []
        for topic_data in response.responses:
            for data in topic_data.partitions:
                partition_fetch = self._scan_partition(fetcher, request, data, now)
                if partition_fetch is not None:
                    fetched.append(partition_fetch)
        return fetched

    def _check_response_error(self, response: Any, request: _InFlight, fetcher: _FetchClient,
                              now: float) -> None:
        error_type = kafka_errors.for_code(getattr(response, "error_code", 0))
        if error_type is kafka_errors.NoError:
            return
        if not issubclass(error_type, kafka_errors.RetriableError):
            raise SourceError(f"fetching topic {self._plan.topic!r} from node "
                              f"{request.node_id} failed: {error_type.__name__}")
        for partition in request.fetch_offsets:
            self._note_error(partition, error_type.__name__, fetcher, now)

    def _scan_partition(self, fetcher: _FetchClient, request: _InFlight, data: Any,
                        now: float) -> _PartitionFetch | None:
        partition = int(data.partition_index)
        fetch_offset = request.fetch_offsets.get(partition)
        if fetch_offset is None:
            return None
        error_type = kafka_errors.for_code(data.error_code)
        if error_type is not kafka_errors.NoError:
            self._handle_partition_error(fetcher, partition, fetch_offset, error_type, data, now)
            return None
        try:
            records = RecordSet(data.records or b"")
        except SourceError as exc:
            raise self._partition_error(partition, fetch_offset, exc) from exc
        self._last_errors.pop(partition, None)
        if records.next_offset is not None:
            self._positions[partition] = max(records.next_offset, fetch_offset)
            self._order.pop(partition, None)
            self._order[partition] = None
        return _PartitionFetch(partition, fetch_offset, records, list(data.aborted_transactions
                                                                     or []))

    def _handle_partition_error(self, fetcher: _FetchClient, partition: int, fetch_offset: int,
                                error_type: type[Exception], data: Any, now: float) -> None:
        topic = self._plan.topic
        if error_type is kafka_errors.OffsetOutOfRangeError:
            raise SourceError(
                f"offset {fetch_offset} of partition {partition} of topic {topic!r} is out of "
                f"range (log start offset {data.log_start_offset}, high watermark "
                f"{data.high_watermark}): retention or a truncation removed it after planning. "
                f"Nothing was committed; the next run plans its ranges again")
        if issubclass(error_type, _LEADER_ERRORS) or issubclass(error_type,
                                                                  kafka_errors.RetriableError):
            self._note_error(partition, error_type.__name__, fetcher, now)
            return
        raise SourceError(f"fetching partition {partition} of topic {topic!r} at offset "
                          f"{fetch_offset} failed: {error_type.__name__}")

    def _partition_error(self, partition: int, fetch_offset: int,
                         exc: SourceError) -> SourceError:
        return SourceError(f"reading partition {partition} of topic {self._plan.topic!r} from "
                           f"offset {fetch_offset} failed: {exc}. Nothing was committed")

    # --- taking records

    def _take(self, fetcher: _FetchClient, fetched: _PartitionFetch, batcher: _Batcher) -> bool:
        """Decode one partition's record set and hand out its records within the caps."""
        span = self._ranges[fetched.partition]
        try:
            pieces = fetched.records.decode(fetched.fetch_offset, span.end, fetched.aborted,
                                            fetcher.read_committed, fetcher.check_crcs)
        except SourceError as exc:
            raise self._partition_error(fetched.partition, fetched.fetch_offset, exc) from exc
        took = False
        for columns in pieces:
            if len(columns):
                took = self._take_columns(span, columns, batcher) or took
            if self.capped:
                break
        return took

    def _take_columns(self, span: PartitionRange, columns: RecordColumns,
                      batcher: _Batcher) -> bool:
        count = self._capped_count(columns)
        if count == 0:
            return False
        taken = columns.head(count)
        nbytes = int(taken.value_sizes.sum())
        batcher.add(_record_batch(span.partition, taken), nbytes)
        self.records_read += count
        self.bytes_read += nbytes
        self.next_offsets[span.partition] = int(taken.offsets[-1]) + 1
        if self._on_progress is not None:
            self._on_progress(count, nbytes)
        return True

    def _capped_count(self, columns: RecordColumns) -> int:
        """Return how many of `columns` fit under the caps, and mark the run capped if not all."""
        limits = self._limits
        count = len(columns)
        if limits.max_records is not None:
            room = limits.max_records - self.records_read
            if room < count:
                count = max(room, 0)
                self.capped = True
        if limits.max_bytes is not None:
            totals = self.bytes_read + np.cumsum(columns.value_sizes[:count])
            fitting = int(np.searchsorted(totals, limits.max_bytes, side="right"))
            if fitting < count:
                count = fitting
                self.capped = True
        return count

    def _finish(self, partition: int, pending: set[int]) -> bool:
        """Drop a partition whose position reached the range end (also across offset gaps)."""
        end = self._ranges[partition].end
        if partition not in pending:
            return False
        if self.next_offsets[partition] < end and self._positions[partition] < end:
            return False
        self.next_offsets[partition] = end
        pending.discard(partition)
        logger.debug("partition %d: read to end offset %d", partition, end)
        return True

    def _stall_error(self, pending: set[int]) -> SourceError:
        stuck = ", ".join(
            f"{p} at offset {self.next_offsets[p]} of {self._ranges[p].end}"
            for p in sorted(pending)
        )
        message = (
            f"reading topic {self._plan.topic!r} made no progress for "
            f"{self._limits.stall_seconds:g}s (partitions {stuck}); check that the brokers are "
            f"up and reachable. Nothing was committed; the next run reads the same records"
        )
        errors = "; ".join(f"partition {p}: {e}" for p, e in sorted(self._last_errors.items())
                           if p in pending)
        return SourceError(f"{message}. Last fetch errors: {errors}" if errors else message)


def _numeric_array(values: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    # From the buffer, without conversion: pa.array() with a time zone imports pandas.
    return pa.Array.from_buffers(arrow_type, len(values), [None, pa.py_buffer(values)])


def _record_batch(partition: int, columns: RecordColumns) -> pa.RecordBatch:
    return pa.record_batch(
        [
            _numeric_array(np.full(len(columns), partition, np.int32), pa.int32()),
            _numeric_array(np.ascontiguousarray(columns.offsets), pa.int64()),
            _numeric_array(np.ascontiguousarray(columns.timestamps), RECORD_SCHEMA.field(
                "timestamp").type),
            columns.keys,
            columns.values,
        ],
        schema=RECORD_SCHEMA,
    )
