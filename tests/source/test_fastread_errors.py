"""FastRangeReader's handling of fetch errors, with scripted fetch responses and no broker.

One broker cannot show a leader change or a lost connection, so a stand-in for the reader's
fetch client replays responses built with kafka-python's own FetchResponse classes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka.errors import KafkaConnectionError
from kafka.protocol.consumer import FetchResponse

from batchalert.errors import SourceError
from batchalert.source import fastread
from batchalert.source.fastread import FastRangeReader
from batchalert.source.plan import PartitionRange, ReadPlan
from batchalert.source.reader import ReadLimits
from tests.source.batch_builder import Record, batch

TOPIC = "logs"
PartitionData: Any = FetchResponse.FetchableTopicResponse.PartitionData
NOT_LEADER = 6
TOPIC_AUTHORIZATION_FAILED = 29
CORRUPT_MESSAGE = 2


@dataclass
class ScriptedFuture:
    value: Any = None
    exception: Exception | None = None

    def failed(self) -> bool:
        return self.exception is not None


@dataclass
class ScriptedFetchClient:
    """Replies to each Fetch request with the next scripted reply: partition -> data or error."""

    replies: deque[dict[int, Any] | Exception]
    leader_id: int | None = 1
    read_committed: bool = True
    check_crcs: bool = True
    retry_backoff: float = 0.01
    sent: list[dict[int, int]] = field(default_factory=list)
    metadata_updates: int = 0
    closed: bool = False
    _in_flight: list[fastread._InFlight] = field(default_factory=list)

    def leader(self, partition: int) -> int | None:
        return self.leader_id

    def request_metadata_update(self) -> None:
        self.metadata_updates += 1

    def busy(self, node_id: int) -> bool:
        return bool(self._in_flight)

    def in_flight_partitions(self) -> set[int]:
        return {p for request in self._in_flight for p in request.fetch_offsets}

    def send(self, node_id: int, fetch_offsets: dict[int, int]) -> None:
        self.sent.append(dict(fetch_offsets))
        reply = self.replies.popleft() if self.replies else {}
        if isinstance(reply, Exception):
            future = ScriptedFuture(exception=reply)
        else:
            future = ScriptedFuture(value=response(reply))
        self._in_flight.append(fastread._InFlight(node_id, dict(fetch_offsets), future))

    def wait(self, timeout: float) -> list[fastread._InFlight]:
        completed, self._in_flight = self._in_flight, []
        return completed

    def close(self) -> None:
        self.closed = True


def response(partitions: dict[int, Any]) -> Any:
    topic = FetchResponse.FetchableTopicResponse(topic=TOPIC, partitions=list(partitions.values()))
    return FetchResponse(throttle_time_ms=0, error_code=0, session_id=0, responses=[topic])


def records(partition: int, first_offset: int, count: int) -> Any:
    data = batch(first_offset, [Record(i, b"value %d" % (first_offset + i)) for i in range(count)])
    return PartitionData(partition_index=partition, error_code=0, high_watermark=100,
                         records=data)


def error(partition: int, code: int) -> Any:
    return PartitionData(partition_index=partition, error_code=code, high_watermark=100,
                         records=b"")


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedFetchClient]:
    client = ScriptedFetchClient(deque())
    monkeypatch.setattr(fastread, "_FetchClient", lambda consumer, topic: client)
    yield client


def read_values(end: int, stall_seconds: float = 5.0) -> list[bytes]:
    plan = ReadPlan(TOPIC, "group", (PartitionRange(0, 0, end, "committed", 0),))
    reader = FastRangeReader(None, plan, ReadLimits(stall_seconds=stall_seconds))
    return [v for b in reader.batches() for v in b.column("value").to_pylist()]


class TestRetries:
    def test_not_leader_retried(self, scripted: ScriptedFetchClient) -> None:
        scripted.replies.extend([{0: error(0, NOT_LEADER)}, {0: records(0, 0, 3)}])

        values = read_values(3)

        assert values == [b"value 0", b"value 1", b"value 2"]
        assert scripted.sent == [{0: 0}, {0: 0}]
        assert scripted.metadata_updates == 1
        assert scripted.closed

    def test_lost_connection_retried(self, scripted: ScriptedFetchClient) -> None:
        scripted.replies.extend([KafkaConnectionError("reset by peer"), {0: records(0, 0, 2)}])

        assert read_values(2) == [b"value 0", b"value 1"]
        assert len(scripted.sent) == 2

    def test_fetches_continue_from_next_batch(self, scripted: ScriptedFetchClient) -> None:
        scripted.replies.extend([{0: records(0, 0, 2)}, {0: records(0, 2, 2)}])

        assert len(read_values(4)) == 4
        assert scripted.sent == [{0: 0}, {0: 2}]


class TestFailures:
    def test_authorization_failure_names_partition(self, scripted: ScriptedFetchClient) -> None:
        scripted.replies.append({0: error(0, TOPIC_AUTHORIZATION_FAILED)})

        with pytest.raises(SourceError, match=r"partition 0 of topic 'logs' at offset 0 failed: "
                                              r"TopicAuthorizationFailedError"):
            read_values(3)
        assert scripted.closed

    def test_corrupt_message_error_raises(self, scripted: ScriptedFetchClient) -> None:
        scripted.replies.append({0: error(0, CORRUPT_MESSAGE)})

        with pytest.raises(SourceError, match="CorruptRecordError"):
            read_values(3)

    def test_persistent_not_leader_stalls(self, scripted: ScriptedFetchClient) -> None:
        scripted.replies.extend([{0: error(0, NOT_LEADER)}] * 10_000)

        with pytest.raises(SourceError, match="Last fetch errors: partition 0: "
                                              "NotLeaderForPartitionError"):
            read_values(3, stall_seconds=0.3)

    def test_unknown_leader_stalls(self, scripted: ScriptedFetchClient) -> None:
        scripted.leader_id = None

        with pytest.raises(SourceError, match="partition 0: no leader known"):
            read_values(3, stall_seconds=0.3)

        assert scripted.sent == []
        assert scripted.metadata_updates >= 1
