"""Fetch requests over sockets of our own, for brokers reached in plain text.

kafka-python's network thread receives a response 4 KiB at a time, appending each piece to a
list under the GIL and copying the whole three to four times. A 460 MB read costs that thread
about 1.4 s of CPU, on a machine whose other core should be parsing. `DirectFetchClient` sends
the same Fetch requests, encoded by kafka-python, on one blocking socket per broker and reads
each response into one buffer of its announced size: `recv_into` copies each byte once and
holds no GIL while it waits.

It speaks only PLAINTEXT. With TLS or SASL in the consumer's configuration the fast reader
keeps kafka-python's connections (see `batchalert.source.fastread`).
"""

from __future__ import annotations

import io
import itertools
import logging
import queue
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Any

import kafka.errors as kafka_errors
from kafka import KafkaConsumer
from kafka.future import Future

logger = logging.getLogger(__name__)

_SIZE = struct.Struct(">i")
# A response larger than this is a protocol error, not data: fetch_max_bytes is 50 MiB.
_MAX_RESPONSE_BYTES = 1 << 30
# A response header is a correlation id and tagged fields, far below this.
_HEADER_MAX_BYTES = 64 * 1024


def supports(consumer: KafkaConsumer) -> bool:
    """Return whether the consumer's brokers can be reached by this client (PLAINTEXT only)."""
    return str(consumer.config.get("security_protocol", "PLAINTEXT")).upper() == "PLAINTEXT"


@dataclass
class _Exchange:
    """One request for a broker, and the future its response completes."""

    request: Any
    future: Future


class _BrokerLink:
    """One blocking socket to one broker, served by a thread that sends and receives in turn."""

    def __init__(self, node_id: int, address: tuple[str, int], client_id: str,
                 timeout: float) -> None:
        self.node_id = node_id
        self._address = address
        self._client_id = client_id
        self._timeout = timeout
        self._socket: socket.socket | None = None
        # Receives every response, reused: a fresh buffer per response costs page faults.
        self._buffer = bytearray()
        self._correlation = itertools.count(1)
        self._queue: queue.SimpleQueue[_Exchange | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name=f"batchalert-fetch-{node_id}")
        self._thread.start()

    def submit_request(self, request: Any, future: Future) -> None:
        """Queue `request` (its API_VERSION set); the link's thread completes `future`."""
        self._queue.put(_Exchange(request, future))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=self._timeout + 1)

    def _serve(self) -> None:
        try:
            while (exchange := self._queue.get()) is not None:
                try:
                    exchange.future.success(self._exchange(exchange.request))
                except Exception as exc:
                    # The connection may be mid-response: start the next request afresh.
                    self._disconnect()
                    exchange.future.failure(self._as_kafka_error(exc))
        finally:
            self._disconnect()

    def _as_kafka_error(self, exc: Exception) -> kafka_errors.KafkaError:
        """Return `exc` as the error the reader retries on; socket errors name the broker."""
        if isinstance(exc, kafka_errors.KafkaError):
            return exc
        where = f"node {self.node_id} at {self._address[0]}:{self._address[1]}"
        if isinstance(exc, OSError):
            return kafka_errors.KafkaConnectionError(f"{where}: {exc}")
        return kafka_errors.KafkaProtocolError(f"{where}: {type(exc).__name__}: {exc}")

    def _exchange(self, request: Any) -> Any:
        connection = self._connect()
        correlation_id = next(self._correlation)
        request.with_header(correlation_id=correlation_id, client_id=self._client_id)
        connection.sendall(request.encode(framed=True, header=True))
        size = _SIZE.unpack(self._receive(connection, 4))[0]
        if not 0 < size <= _MAX_RESPONSE_BYTES:
            raise kafka_errors.KafkaProtocolError(f"response of {size} bytes from node "
                                                  f"{self.node_id}")
        if len(self._buffer) < size:
            self._buffer = bytearray(size)
        payload = memoryview(self._buffer)[:size]
        self._receive_into(connection, payload)
        response_type = request.header.get_response_class()
        try:
            head = io.BytesIO(payload[:_HEADER_MAX_BYTES])
            header = response_type.parse_header(head)
            if header.correlation_id != correlation_id:
                raise kafka_errors.CorrelationIdError(
                    f"node {self.node_id} sent the response to request "
                    f"{header.correlation_id}, not to {correlation_id}")
            # Decoded from a view, kafka-python copies only the fields (records as bytes),
            # so the buffer can take the next response.
            return response_type.decode(payload[head.tell():])
        except (ValueError, struct.error) as exc:
            raise kafka_errors.KafkaProtocolError(
                f"cannot decode the fetch response of node {self.node_id}: {exc}") from exc

    def _connect(self) -> socket.socket:
        if self._socket is None:
            connection = socket.create_connection(self._address, timeout=self._timeout)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._socket = connection
        return self._socket

    def _disconnect(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _receive(self, connection: socket.socket, size: int) -> bytes:
        buffer = bytearray(size)
        self._receive_into(connection, memoryview(buffer))
        return bytes(buffer)

    def _receive_into(self, connection: socket.socket, view: memoryview) -> None:
        while view.nbytes:
            received = connection.recv_into(view)
            if received == 0:
                raise kafka_errors.KafkaConnectionError(
                    f"node {self.node_id} closed the connection in the middle of a response")
            view = view[received:]


class DirectFetchClient:
    """Sends requests to brokers on sockets of its own; completed ones come back in a queue.

    `send` takes a kafka-python request with its version range and returns at once. Each
    broker's requests go out one after the other on a thread of its own, which completes the
    request's future.
    """

    def __init__(self, consumer: KafkaConsumer) -> None:
        self._client = consumer._client
        self._client_id = str(consumer.config["client_id"])
        self._timeout = float(consumer.config["request_timeout_ms"]) / 1000
        self._links: dict[int, _BrokerLink] = {}
        self._lock = threading.Lock()

    def send(self, node_id: int, request: Any, future: Future) -> None:
        """Send `request` to `node_id`; the broker's thread completes `future` with the response.

        `future` fails at once when the broker's address or API versions are unknown.
        """
        try:
            request.API_VERSION = self._api_version(request)
            link = self._link(node_id)
        except kafka_errors.KafkaError as exc:
            future.failure(exc)
            return
        link.submit_request(request, future)

    def close(self) -> None:
        with self._lock:
            links, self._links = list(self._links.values()), {}
        for link in links:
            link.close()

    def _api_version(self, request: Any) -> int:
        versions = self._client._manager.broker_version_data
        if versions is None:
            raise kafka_errors.NodeNotReadyError("the broker's API versions are not known yet")
        return int(versions.api_version(request))

    def _link(self, node_id: int) -> _BrokerLink:
        with self._lock:
            link = self._links.get(node_id)
            if link is None:
                broker = self._client.cluster.broker_metadata(node_id)
                if broker is None:
                    raise kafka_errors.NodeNotReadyError(f"node {node_id} is not in the metadata")
                link = _BrokerLink(node_id, (str(broker.host), int(broker.port)),
                                   self._client_id, self._timeout)
                self._links[node_id] = link
            return link
