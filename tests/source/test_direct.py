"""The fetch client's own sockets, against a stand-in broker on 127.0.0.1.

The real broker never misbehaves on cue, so a small server replies to each request as a
test scripts it: a proper response, a connection closed in the middle, a wrong correlation id.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import kafka.errors as kafka_errors
import pytest
from kafka.future import Future
from kafka.protocol.consumer import FetchRequest, FetchResponse

from batchalert.source.direct import _BrokerLink

FETCH_VERSION = 12
# How the stand-in replies to one request: from its correlation id to the bytes it sends back.
Answer = Callable[[int], bytes]


def fetch_request() -> Any:
    request = FetchRequest(max_wait_ms=10, min_bytes=1, max_bytes=1 << 20, isolation_level=1,
                           session_id=0, session_epoch=-1, topics=[], forgotten_topics_data=[],
                           rack_id="")
    request.API_VERSION = FETCH_VERSION
    return request


def fetch_response(correlation_id: int, session_id: int = 0) -> bytes:
    response = FetchResponse(throttle_time_ms=0, error_code=0, session_id=session_id,
                             responses=[])
    response.API_VERSION = FETCH_VERSION
    response.with_header(correlation_id=correlation_id)
    return bytes(response.encode(framed=True, header=True))


class StandInBroker:
    """Accepts connections on 127.0.0.1 and replies to each request with the next scripted reply."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.connections = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = self._server.getsockname()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            with connection:
                while self._answer_one(connection):
                    pass

    def _answer_one(self, connection: socket.socket) -> bool:
        head = connection.recv(4, socket.MSG_WAITALL)
        if len(head) < 4:
            return False
        body = connection.recv(struct.unpack(">i", head)[0], socket.MSG_WAITALL)
        correlation_id = struct.unpack(">i", body[4:8])[0]
        reply = self.answers.pop(0)(correlation_id)
        connection.sendall(reply)
        return not reply.endswith(b"<close>")

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def broker() -> Iterator[StandInBroker]:
    stand_in = StandInBroker()
    yield stand_in
    stand_in.close()


@pytest.fixture
def link(broker: StandInBroker) -> Iterator[_BrokerLink]:
    opened = _BrokerLink(1, broker.address, "batchalert-test", timeout=5)
    yield opened
    opened.close()


def exchange(link: _BrokerLink) -> Future:
    future = Future()
    done = threading.Event()
    future.add_both(lambda _result: done.set())
    link.submit_request(fetch_request(), future)
    assert done.wait(10), "the link never completed the request"
    return future


def test_response_decoded(broker: StandInBroker, link: _BrokerLink) -> None:
    broker.answers.append(lambda correlation_id: fetch_response(correlation_id, session_id=42))

    future = exchange(link)

    assert future.succeeded()
    assert future.value.session_id == 42


def test_connection_closed_mid_response_fails_then_reconnects(broker: StandInBroker,
                                                              link: _BrokerLink) -> None:
    broker.answers.append(lambda correlation_id: fetch_response(correlation_id)[:9] + b"<close>")
    broker.answers.append(fetch_response)

    first = exchange(link)
    second = exchange(link)

    assert first.failed()
    assert isinstance(first.exception, kafka_errors.KafkaConnectionError)
    assert "node 1 closed the connection in the middle of a response" in str(first.exception)
    assert second.succeeded()
    assert broker.connections == 2


def test_wrong_correlation_id_fails(broker: StandInBroker, link: _BrokerLink) -> None:
    broker.answers.append(lambda correlation_id: fetch_response(correlation_id + 1))

    future = exchange(link)

    assert future.failed()
    assert isinstance(future.exception, kafka_errors.CorrelationIdError)


def test_absurd_size_fails(broker: StandInBroker, link: _BrokerLink) -> None:
    broker.answers.append(lambda correlation_id: struct.pack(">i", -5) + b"<close>")

    future = exchange(link)

    assert future.failed()
    assert isinstance(future.exception, kafka_errors.KafkaProtocolError)
    assert "-5 bytes" in str(future.exception)


def test_unreachable_broker_fails_with_its_address() -> None:
    with socket.create_server(("127.0.0.1", 0)) as unused:
        address = unused.getsockname()
    dead = _BrokerLink(3, address, "batchalert-test", timeout=2)
    try:
        future = exchange(dead)
    finally:
        dead.close()

    assert future.failed()
    assert isinstance(future.exception, kafka_errors.KafkaConnectionError)
    assert f"node 3 at 127.0.0.1:{address[1]}" in str(future.exception)


def test_decoder_error_fails_one_request(
        broker: StandInBroker, link: _BrokerLink, monkeypatch: pytest.MonkeyPatch) -> None:
    broker.answers.append(fetch_response)
    broker.answers.append(fetch_response)
    real_decode = FetchResponse.decode.__func__  # type: ignore[attr-defined]
    calls: list[int] = []

    def decode_once_badly(cls: type, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise TypeError("unexpected field")
        return real_decode(cls, *args, **kwargs)

    monkeypatch.setattr(FetchResponse, "decode", classmethod(decode_once_badly))
    first = exchange(link)
    second = exchange(link)

    assert first.failed()
    assert isinstance(first.exception, kafka_errors.KafkaProtocolError)
    assert "TypeError: unexpected field" in str(first.exception)
    assert second.succeeded()


def test_reused_buffer_decodes_each_response(broker: StandInBroker, link: _BrokerLink) -> None:
    # The first response is the larger one, so the second is read into a longer buffer.
    broker.answers.append(lambda correlation_id: big_response(correlation_id, session_id=7))
    broker.answers.append(lambda correlation_id: fetch_response(correlation_id, session_id=8))

    first = exchange(link)
    second = exchange(link)

    assert first.value.session_id == 7
    assert len(first.value.responses) == 50
    assert second.value.session_id == 8
    assert second.value.responses == []


def big_response(correlation_id: int, session_id: int) -> bytes:
    topics = [FetchResponse.FetchableTopicResponse(topic=f"topic-{index}", partitions=[])
              for index in range(50)]
    response = FetchResponse(throttle_time_ms=0, error_code=0, session_id=session_id,
                             responses=topics)
    response.API_VERSION = FETCH_VERSION
    response.with_header(correlation_id=correlation_id)
    return bytes(response.encode(framed=True, header=True))
