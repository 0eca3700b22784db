"""Local stand-ins for KubeSphere Notification Manager and Slack incoming webhooks.

Each server binds to 127.0.0.1 and returns what the real receiver returns, error responses
included, so sink code can be tested against every status it may see. Tests also inject faults:
failed responses, slow responses, dropped connections and a closed port.

Contracts followed:

- Notification Manager (kubesphere/notification-manager v2.6.0, handler read from its source)
  takes ``POST /api/v2/alerts`` with Alertmanager's webhook payload and returns 200
  ``{"Status":200,"Message":"Notification request accepted"}``. It returns 400
  ``{"Status":400,"Message":"<decode error>"}`` for an empty body, invalid JSON, a field of the
  wrong type or a ``startsAt``/``endsAt`` that is not RFC 3339. It returns 500 when an alert
  has no ``labels`` object, because the handler then writes to a nil map and the router's
  panic recovery (chi v4 Recoverer) turns the panic into a 500.
- Slack incoming webhooks (Slack's published API pages): 200 ``ok``; 400 ``invalid_payload``;
  403 ``action_prohibited``; 404 ``no_service``; 410 ``channel_is_archived``; 429 with
  ``Retry-After`` in seconds; 500 ``rollup_error``.

Run one from a shell until SIGINT or SIGTERM, writing one accepted payload per line::

    python -m scripts.fake_receivers notification-manager --port 19093 --out alerts.jsonl
    python -m scripts.fake_receivers slack --port 0
"""

from __future__ import annotations

import argparse
import base64
import calendar
import contextlib
import hmac
import json
import logging
import re
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, ClassVar, Final, Self
from urllib.parse import urlsplit

from batchalert.errors import BatchalertError

logger = logging.getLogger(__name__)

LOOPBACK_HOST: Final = "127.0.0.1"
# Longer than the sinks' request timeouts, so a delay can trigger them, but still bounded.
MAX_DELAY_SECONDS: Final = 60.0
# Above httpx's 5 s keep-alive expiry, so clients drop idle connections before the server does.
_IDLE_CONNECTION_TIMEOUT_SECONDS: Final = 30.0
# Interval at which serve_forever checks for a shutdown request, short so that stop() returns fast.
_SERVE_POLL_SECONDS: Final = 0.05
# Maximum length of a chunk-size or trailer line, the limit http.server sets for header lines.
_MAX_LINE_BYTES: Final = 65_536
_CERTIFICATE_DAYS: Final = 2  # certificates only need to outlive one test session


class FakeReceiverError(BatchalertError):
    """A fake receiver could not listen, or did not receive what a test waited for."""


class Mode(StrEnum):
    """Handling of POST requests by a fake receiver."""

    NORMAL = "normal"
    # Read the request, then close the connection without a response, as a crashing server does.
    DROP_CONNECTION = "drop-connection"


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request a fake receiver read, with the response it sent."""

    method: str
    path: str  # request target, query string included
    headers: dict[str, str]  # header names in lower case
    body: bytes
    payload: Any  # the parsed JSON body, or None when the body is not JSON
    status: int | None  # None when the connection was dropped without a response
    response_body: bytes
    received_at: datetime  # UTC
    accepted: bool  # True when the receiver accepted the payload under its contract


@dataclass(frozen=True)
class LocalCertificates:
    """A private CA and a server certificate for 127.0.0.1 and localhost signed by it."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _IncomingRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class _Fault:
    status: int
    body: str | bytes | None
    retry_after: int | None


@dataclass(frozen=True)
class _Plan:
    """Fault settings for one POST request, read together under the state lock."""

    delay_seconds: float
    drop_connection: bool
    fault: _Fault | None


def _shutdown_socket(connection: socket.socket) -> None:
    # The plain socket's shutdown leaves an SSLSocket's state alone for the thread still using it.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(connection, socket.SHUT_RDWR)


def _parse_json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class _ReceiverHttpServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that hands every request to its fake receiver."""

    daemon_threads = True
    # socketserver's default backlog of 5 drops connections from a burst of parallel posts, and
    # the clients then wait a second for the SYN retransmission.
    request_queue_size = 128

    def __init__(
        self, port: int, receiver: FakeReceiver, ssl_context: ssl.SSLContext | None
    ) -> None:
        self.receiver = receiver
        self.ssl_context = ssl_context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._closing = False
        super().__init__((LOOPBACK_HOST, port), _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host up with getfqdn; a fixed name avoids any DNS query.
        socketserver.TCPServer.server_bind(self)
        self.server_name = LOOPBACK_HOST
        self.server_port = self.socket.getsockname()[1]

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        # The handler writes headers and body in separate sends; with Nagle's algorithm the
        # body waits for the client's delayed ACK (about 40 ms). Go's net/http, which the real
        # receivers use, turns Nagle off on every connection too.
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            # The handler thread runs the handshake, so a slow client cannot stall accept().
            connection = self.ssl_context.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, address

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            if self._closing:
                _shutdown_socket(connection)
                return
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut down every open connection, so kept-alive clients see the server go away."""
        with self._connections_lock:
            self._closing = True
            connections = list(self._connections)
        for connection in connections:
            _shutdown_socket(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up, fail the TLS handshake or hit a refuse() end up here.
        logger.debug("connection from %s failed", client_address, exc_info=True)


class _RequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive like the real receivers, so clients reuse them.
    protocol_version = "HTTP/1.1"
    timeout = _IDLE_CONNECTION_TIMEOUT_SECONDS
    server: _ReceiverHttpServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def handle(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                logger.debug("TLS handshake with %s failed: %s", self.client_address, exc)
                return
        super().handle()

    def finish(self) -> None:
        self.server.untrack(self.connection)
        super().finish()

    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(HTTPStatus.BAD_REQUEST, "invalid Content-Length or chunk size")
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = _IncomingRequest(self.command, self.path, headers, body)

        self._write(self.server.receiver._respond(request))

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked_body()
        length = int(self.headers.get("Content-Length", "0"))
        if length < 0:
            raise ValueError(f"negative Content-Length {length}")
        return self.rfile.read(length)

    def _read_chunked_body(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size_line = self.rfile.readline(_MAX_LINE_BYTES)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                self._skip_trailers()
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(_MAX_LINE_BYTES)

    def _skip_trailers(self) -> None:
        while self.rfile.readline(_MAX_LINE_BYTES) not in (b"\r\n", b"\n", b""):
            pass

    def _write(self, response: _Response | None) -> None:
        if response is None:
            self.close_connection = True
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)


class FakeReceiver:
    """Base of the fake receivers: lifecycle, request records and fault injection.

    Handler threads and the test thread share the state under one condition variable, so every
    method is thread-safe. Faults, delays, modes and authentication apply to POST requests only,
    which keeps health checks working. Use it as a context manager, or call start() and stop().
    """

    endpoint_path: ClassVar[str] = "/"

    def __init__(
        self,
        *,
        port: int = 0,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        on_accept: Callable[[RecordedRequest], None] | None = None,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if bearer_token is not None and basic_auth is not None:
            raise ValueError("set bearer_token or basic_auth, not both")
        self._requested_port = port
        self._tls_files = (Path(tls_cert), Path(tls_key)) if tls_cert and tls_key else None
        self._authorization = _expected_authorization(bearer_token, basic_auth)
        self._on_accept = on_accept

        self._state = threading.Condition()
        self._records: list[RecordedRequest] = []
        self._faults: deque[_Fault] = deque()
        self._delay_seconds = 0.0
        self._mode = Mode.NORMAL
        # Set while the server is down, so delayed handlers return at once on stop() or refuse().
        self._wake = threading.Event()

        self._server: _ReceiverHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # Lifecycle

    def start(self) -> Self:
        """Start listening on 127.0.0.1, on a free port unless the constructor set one."""
        if self._server is not None:
            raise FakeReceiverError(f"{self._name} is already listening on {self.base_url}")
        self._serve(self._requested_port)
        return self

    def stop(self) -> None:
        """Stop listening and close every open connection. Records stay readable."""
        self._close_server()

    def refuse(self) -> None:
        """Stop listening but keep the port, so clients get "connection refused" until resume()."""
        if self._server is None:
            raise FakeReceiverError(f"{self._name} is not listening; call start() first")
        self._close_server()

    def resume(self) -> None:
        """Listen again on the port used before refuse()."""
        if self._server is not None:
            return
        if self._port is None:
            raise FakeReceiverError(f"{self._name} never started; call start() first")
        self._serve(self._port)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Addresses

    @property
    def port(self) -> int:
        if self._port is None:
            raise FakeReceiverError(f"{self._name} has no port yet; call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        scheme = "https" if self._tls_files else "http"
        return f"{scheme}://{LOOPBACK_HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The URL a sink posts to."""
        return self.base_url + self.endpoint_path

    @property
    def is_listening(self) -> bool:
        return self._server is not None

    # Records

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request read so far, in arrival order, health checks included."""
        with self._state:
            return list(self._records)

    @property
    def received(self) -> list[Any]:
        """The parsed JSON payloads of the accepted POST requests, in arrival order."""
        with self._state:
            return [record.payload for record in self._records if record.accepted]

    @property
    def rejected(self) -> list[RecordedRequest]:
        """The POST requests that got an error response or a dropped connection."""
        with self._state:
            return [r for r in self._records if r.method == "POST" and not r.accepted]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Any]:
        """Wait until at least `count` payloads were accepted, and return all accepted payloads.

        Raises FakeReceiverError after `timeout` seconds.
        """
        with self._state:
            if not self._state.wait_for(lambda: self._accepted_count() >= count, timeout):
                raise FakeReceiverError(
                    f"{self._name} accepted {self._accepted_count()} payloads within {timeout} s, "
                    f"expected {count}; check that the sender posts to {self.url}"
                )
            return [record.payload for record in self._records if record.accepted]

    # Fault injection

    def fail_next(
        self,
        n: int,
        status: int,
        body: str | bytes | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Return `status` to the next `n` POST requests, whatever their payload.

        A bytes `body` is sent unchanged. A str `body` becomes the message in the receiver's own
        error format, and None selects the receiver's usual body for that status.
        `retry_after` sets a Retry-After header, in seconds.
        """
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status from 100 to 599, got {status}")
        if retry_after is not None and retry_after < 0:
            raise ValueError(f"retry_after must be zero or more seconds, got {retry_after}")
        with self._state:
            self._faults.extend([_Fault(status, body, retry_after)] * n)

    def delay(self, seconds: float) -> None:
        """Wait `seconds` before responding to each POST request; 0 turns the delay off."""
        if not 0 <= seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"delay must be from 0 to {MAX_DELAY_SECONDS} seconds, got {seconds}")
        with self._state:
            self._delay_seconds = seconds

    def set_mode(self, mode: Mode | str) -> None:
        """Select how POST requests are handled; see Mode."""
        with self._state:
            self._mode = Mode(mode)

    def reset(self) -> None:
        """Clear faults, delay, mode and records, as after a fresh start."""
        with self._state:
            self._faults.clear()
            self._delay_seconds = 0.0
            self._mode = Mode.NORMAL
            self._records.clear()
            self._reset_receiver_state()

    # Hooks for the receivers

    def _respond_to_post(self, route: str, body: bytes) -> tuple[_Response, Any]:
        """Build the contract response and the parsed payload. Called with the state locked."""
        raise NotImplementedError

    def _respond_to_other(self, method: str, route: str) -> _Response:
        """Build the response to a request other than POST."""
        raise NotImplementedError

    def _error_response(self, status: int, body: str | bytes | None) -> _Response:
        """Build an error response in the receiver's format; see fail_next for `body`."""
        raise NotImplementedError

    def _default_retry_after(self, status: int) -> int | None:
        return None

    def _reset_receiver_state(self) -> None:
        """Clear the receiver's own state. The caller holds the state lock."""

    # Request handling

    def _respond(self, request: _IncomingRequest) -> _Response | None:
        route = urlsplit(request.path).path
        if request.method != "POST":
            return self._finish(request, self._respond_to_other(request.method, route), None)
        if not self._is_authorized(request.headers):
            return self._finish(request, self._unauthorized_response(), None)

        plan = self._take_plan()
        if plan.delay_seconds > 0:
            self._wake.wait(plan.delay_seconds)
        if plan.drop_connection:
            return self._finish(request, None, _parse_json_or_none(request.body))
        if plan.fault is not None:
            response = self._fault_response(plan.fault)
            return self._finish(request, response, _parse_json_or_none(request.body))

        with self._state:
            response, payload = self._respond_to_post(route, request.body)
        return self._finish(request, response, payload, accepted=response.status == HTTPStatus.OK)

    def _take_plan(self) -> _Plan:
        with self._state:
            drop = self._mode is Mode.DROP_CONNECTION
            fault = self._faults.popleft() if self._faults and not drop else None
            return _Plan(self._delay_seconds, drop, fault)

    def _finish(
        self,
        request: _IncomingRequest,
        response: _Response | None,
        payload: Any,
        *,
        accepted: bool = False,
    ) -> _Response | None:
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            headers=request.headers,
            body=request.body,
            payload=payload,
            status=response.status if response else None,
            response_body=response.body if response else b"",
            received_at=request.received_at,
            accepted=accepted,
        )
        with self._state:
            self._records.append(record)
            self._state.notify_all()
        if accepted and self._on_accept is not None:
            self._on_accept(record)
        return response

    def _fault_response(self, fault: _Fault) -> _Response:
        response = self._error_response(fault.status, fault.body)
        retry_after = fault.retry_after
        if retry_after is None:
            retry_after = self._default_retry_after(fault.status)
        if retry_after is None:
            return response
        return replace(response, headers=(*response.headers, ("Retry-After", str(retry_after))))

    def _is_authorized(self, headers: Mapping[str, str]) -> bool:
        if self._authorization is None:
            return True
        sent = headers.get("authorization", "").encode()
        return hmac.compare_digest(sent, self._authorization.encode())

    def _unauthorized_response(self) -> _Response:
        response = self._error_response(HTTPStatus.UNAUTHORIZED, None)
        scheme = self._authorization.split(" ", 1)[0] if self._authorization else "Bearer"
        challenge = ("WWW-Authenticate", f'{scheme} realm="{self._name}"')
        return replace(response, headers=(*response.headers, challenge))

    # Server management

    @property
    def _name(self) -> str:
        return type(self).__name__

    def _accepted_count(self) -> int:
        return sum(1 for record in self._records if record.accepted)

    def _serve(self, port: int) -> None:
        try:
            server = _ReceiverHttpServer(port, self, self._make_ssl_context())
        except OSError as exc:
            raise FakeReceiverError(
                f"{self._name} cannot listen on {LOOPBACK_HOST}:{port}: {exc}; "
                "another process may hold the port, so choose another one or 0 for a free one"
            ) from exc
        self._wake.clear()
        self._server = server
        self._port = server.server_port
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _SERVE_POLL_SECONDS},
            name=f"{self._name}-{self._port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("%s listening on %s", self._name, self.base_url)

    def _close_server(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = None
        self._thread = None
        self._wake.set()

        server.shutdown()
        server.close_connections()
        server.server_close()  # joins the handler threads, which the steps above released
        if thread is not None:
            thread.join()
        logger.info("%s stopped listening on port %d", self._name, server.server_port)

    def _make_ssl_context(self) -> ssl.SSLContext | None:
        if self._tls_files is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert, key = self._tls_files
        context.load_cert_chain(certfile=cert, keyfile=key)
        return context


def _expected_authorization(
    bearer_token: str | None, basic_auth: tuple[str, str] | None
) -> str | None:
    if bearer_token is not None:
        return f"Bearer {bearer_token}"
    if basic_auth is not None:
        user, password = basic_auth
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return None


# Notification Manager

ALERTS_PATH: Final = "/api/v2/alerts"
ACCEPTED_MESSAGE: Final = "Notification request accepted"
# Notification Manager 1.x returned this 500 when its worker queue stayed full; use with fail_next.
QUEUE_FULL_MESSAGE: Final = "Running out of queue capacity with error: context deadline exceeded"

# Fields of Alertmanager's template.Data and template.Alert that the handler decodes, with their
# Go kinds. Other fields (version, groupKey, truncatedAlerts) are ignored, as Go's decoder does.
_DATA_FIELDS: Final = {
    "receiver": "string",
    "status": "string",
    "alerts": "alerts",
    "groupLabels": "kv",
    "commonLabels": "kv",
    "commonAnnotations": "kv",
    "externalURL": "string",
}
_ALERT_FIELDS: Final = {
    "status": "string",
    "labels": "kv",
    "annotations": "kv",
    "startsAt": "time",
    "endsAt": "time",
    "generatorURL": "string",
    "fingerprint": "string",
}
_GO_TYPES: Final = {
    "string": "string",
    "kv": "template.KV",
    "alerts": "template.Alerts",
    "alert": "template.Alert",
    "time": "time.Time",
}
_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,]\d+)?(Z|[+-](\d{2}):(\d{2}))",
    re.ASCII,
)
# Go's net/http returns this body for an unknown route.
_NOT_FOUND = _Response(HTTPStatus.NOT_FOUND, b"404 page not found\n")
# chi v4's Recoverer returns this response after a handler panics.
_PANIC = _Response(HTTPStatus.INTERNAL_SERVER_ERROR, b"Internal Server Error\n")
_METHOD_NOT_ALLOWED = _Response(HTTPStatus.METHOD_NOT_ALLOWED, b"")


class _PayloadError(ValueError):
    """A payload that Go's JSON decoder would reject; the message is the 400 response's."""


def _go_json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else "value"


def _type_error(value: Any, path: str, kind: str) -> _PayloadError:
    return _PayloadError(
        f"json: cannot unmarshal {_go_json_kind(value)} into Go struct field {path} "
        f"of type {_GO_TYPES[kind]}"
    )


def _is_rfc3339(value: str) -> bool:
    match = _RFC3339.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(max(year, 1), month)[1]:
        return False
    if hour > 23 or minute > 59 or second > 59:
        return False
    if match[7] == "Z":
        return True
    return int(match[8]) <= 23 and int(match[9]) <= 59


def _match_fields(value: dict[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    """Map JSON keys to struct fields case-insensitively, the last duplicate winning, as Go does."""
    names = {name.lower(): name for name in fields}
    matched: dict[str, Any] = {}
    for key, item in value.items():
        name = names.get(key.lower())
        if name is not None:
            matched[name] = item
    return matched


def _check_field(value: Any, kind: str, path: str) -> None:
    if value is None:
        return  # JSON null leaves a Go field at its zero value
    if kind == "string" and not isinstance(value, str):
        raise _type_error(value, path, kind)
    if kind == "kv":
        _check_kv(value, path)
    if kind == "time":
        _check_time(value)
    if kind == "alerts":
        _check_alerts(value, path)


def _check_kv(value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise _type_error(value, path, "kv")
    for item in value.values():
        if item is not None and not isinstance(item, str):
            raise _type_error(item, path, "string")


def _check_time(value: Any) -> None:
    if not isinstance(value, str):
        raise _PayloadError("Time.UnmarshalJSON: input is not a JSON string")
    if not _is_rfc3339(value):
        raise _PayloadError(
            f'parsing time {json.dumps(value)} as "2006-01-02T15:04:05Z07:00": '
            "not an RFC 3339 time"
        )


def _check_alerts(value: Any, path: str) -> None:
    if not isinstance(value, list):
        raise _type_error(value, path, "alerts")
    for alert in value:
        if alert is None:
            continue
        if not isinstance(alert, dict):
            raise _type_error(alert, path, "alert")
        for name, item in _match_fields(alert, _ALERT_FIELDS).items():
            _check_field(item, _ALERT_FIELDS[name], f"{path}.{name}")


def _reject_constant(name: str) -> Any:
    raise _PayloadError(f"invalid character {name[0]!r} looking for beginning of value")


def decode_webhook_payload(body: bytes) -> Any:
    """Decode a request body as Notification Manager's handler does, and return the payload.

    Like Go's json.Decoder, this reads the first JSON value, ignores what follows it, replaces
    invalid UTF-8 and matches field names case-insensitively. Raises ValueError with the message
    of the 400 response.
    """
    # NOTE: type and time errors use Go's wording; the text of syntax errors is Python's.
    text = body.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if not text:
        raise _PayloadError("EOF")
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    try:
        payload, _ = decoder.raw_decode(text)
    except json.JSONDecodeError as exc:
        raise _PayloadError(f"invalid JSON at offset {exc.pos}: {exc.msg}") from exc
    if payload is None:
        return None
    if not isinstance(payload, dict):
        raise _PayloadError(
            f"json: cannot unmarshal {_go_json_kind(payload)} into Go value of type template.Data"
        )
    for name, value in _match_fields(payload, _DATA_FIELDS).items():
        _check_field(value, _DATA_FIELDS[name], f"Data.{name}")
    return payload


def find_alert_without_labels(payload: Any) -> int | None:
    """Return the index of the first alert whose labels are missing or null, else None."""
    if not isinstance(payload, dict):
        return None
    alerts = _match_fields(payload, _DATA_FIELDS).get("alerts")
    if not isinstance(alerts, list):
        return None
    for index, alert in enumerate(alerts):
        if not isinstance(alert, dict) or _match_fields(alert, _ALERT_FIELDS).get("labels") is None:
            return index
    return None


def _go_json_bytes(value: Mapping[str, Any]) -> bytes:
    # Go's json.Marshal escapes HTML characters and line separators; match its bytes.
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for character, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(character, escape)
    return text.encode()


def _status_response(status: int, message: str) -> _Response:
    # The handler writes without a Content-Type, and Go sniffs JSON text as text/plain.
    return _Response(status, _go_json_bytes({"Status": status, "Message": message}))


class NotificationManagerServer(FakeReceiver):
    """Fake KubeSphere Notification Manager webhook: ``POST /api/v2/alerts``.

    Accepted payloads are only recorded; nothing is grouped or sent on. ``/-/ready`` and
    ``/-/live`` return 200 with the messages the upstream handlers write.
    """

    endpoint_path = ALERTS_PATH

    def _respond_to_post(self, route: str, body: bytes) -> tuple[_Response, Any]:
        if route != ALERTS_PATH:
            return _NOT_FOUND, _parse_json_or_none(body)
        try:
            payload = decode_webhook_payload(body)
        except ValueError as exc:
            logger.debug("rejected payload with 400: %s", exc)
            return _status_response(HTTPStatus.BAD_REQUEST, str(exc)), _parse_json_or_none(body)

        index = find_alert_without_labels(payload)
        if index is not None:
            logger.debug("alert %d has no labels; the real handler panics, so 500", index)
            return _PANIC, payload
        return _status_response(HTTPStatus.OK, ACCEPTED_MESSAGE), payload

    def _respond_to_other(self, method: str, route: str) -> _Response:
        health = {"/-/ready": "health check", "/-/live": "ready"}
        if route in health:
            if method == "GET":
                return _status_response(HTTPStatus.OK, health[route])
            return _METHOD_NOT_ALLOWED
        if route == ALERTS_PATH:
            return _METHOD_NOT_ALLOWED
        return _NOT_FOUND

    def _error_response(self, status: int, body: str | bytes | None) -> _Response:
        if isinstance(body, bytes):
            return _Response(status, body)
        return _status_response(status, body if body is not None else _status_phrase(status))


# Slack

SLACK_WEBHOOK_PATH: Final = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
SLACK_MAX_BLOCKS: Final = 50
SLACK_MAX_SECTION_TEXT: Final = 3000  # characters
# Error codes Slack's incoming webhooks return with each status.
SLACK_ERRORS: Final = {
    400: "invalid_payload",
    403: "action_prohibited",
    404: "no_service",
    410: "channel_is_archived",
    429: "rate_limited",
    500: "rollup_error",
}


def find_slack_message_error(message: Any) -> str | None:
    """Return why Slack would reject the message with invalid_payload, or None if it is valid."""
    if not isinstance(message, dict):
        return "the body is not a JSON object"
    text, blocks = message.get("text"), message.get("blocks")
    if text is not None and not isinstance(text, str):
        return "text is not a string"
    if blocks is not None and not isinstance(blocks, list):
        return "blocks is not an array"
    if not text and not blocks:
        return "neither text nor blocks is set"
    blocks = blocks or []
    if len(blocks) > SLACK_MAX_BLOCKS:
        return f"{len(blocks)} blocks exceed the maximum of {SLACK_MAX_BLOCKS}"
    for index, block in enumerate(blocks):
        error = _find_block_error(block)
        if error is not None:
            return f"block {index}: {error}"
    return None


def _find_block_error(block: Any) -> str | None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        return "not an object with a string type"
    if block["type"] != "section":
        return None
    text = block.get("text")
    if text is None:
        return None if block.get("fields") else "a section needs text or fields"
    if not isinstance(text, dict) or not isinstance(text.get("text"), str):
        return "the section's text is not a text object"
    if len(text["text"]) > SLACK_MAX_SECTION_TEXT:
        return (
            f"the section's text has {len(text['text'])} characters, "
            f"more than {SLACK_MAX_SECTION_TEXT}"
        )
    return None


class SlackWebhookServer(FakeReceiver):
    """Fake Slack incoming webhook, which accepts POSTs to any path.

    `url` has the form of a real webhook URL. limit_rate() turns on Slack's per-webhook rate
    limit, which is off by default so that tests posting quickly are not throttled.
    """

    endpoint_path = SLACK_WEBHOOK_PATH
    _min_interval_seconds: float | None = None
    _retry_after_seconds: int = 1
    _last_accepted_at: float | None = None  # time.monotonic() of the last accepted POST

    def limit_rate(self, min_interval_seconds: float | None = 1.0, retry_after: int = 1) -> None:
        """Return 429 with Retry-After to POSTs within `min_interval_seconds` of the last accepted.

        Slack allows about one message per second per webhook; None turns the limit off.
        """
        if min_interval_seconds is not None and min_interval_seconds <= 0:
            raise ValueError(f"min_interval_seconds must be positive, got {min_interval_seconds}")
        if retry_after < 0:
            raise ValueError(f"retry_after must be zero or more seconds, got {retry_after}")
        with self._state:
            self._min_interval_seconds = min_interval_seconds
            self._retry_after_seconds = retry_after

    def _respond_to_post(self, route: str, body: bytes) -> tuple[_Response, Any]:
        payload = _parse_json_or_none(body)
        if self._is_rate_limited():
            response = self._error_response(HTTPStatus.TOO_MANY_REQUESTS, None)
            retry_after = ("Retry-After", str(self._retry_after_seconds))
            return replace(response, headers=(retry_after,)), payload

        error = find_slack_message_error(payload)
        if error is not None:
            logger.debug("rejected Slack message with invalid_payload: %s", error)
            return self._error_response(HTTPStatus.BAD_REQUEST, None), payload
        self._last_accepted_at = time.monotonic()
        return _Response(HTTPStatus.OK, b"ok"), payload

    def _is_rate_limited(self) -> bool:
        if self._min_interval_seconds is None or self._last_accepted_at is None:
            return False
        return time.monotonic() - self._last_accepted_at < self._min_interval_seconds

    def _respond_to_other(self, method: str, route: str) -> _Response:
        return _METHOD_NOT_ALLOWED

    def _error_response(self, status: int, body: str | bytes | None) -> _Response:
        if isinstance(body, bytes):
            return _Response(status, body)
        if body is None:
            body = SLACK_ERRORS.get(status, _status_phrase(status))
        return _Response(status, body.encode())

    def _default_retry_after(self, status: int) -> int | None:
        # Slack sends Retry-After with every 429.
        return 1 if status == HTTPStatus.TOO_MANY_REQUESTS else None

    def _reset_receiver_state(self) -> None:
        self._min_interval_seconds = None
        self._retry_after_seconds = 1
        self._last_accepted_at = None


# Certificates for HTTPS tests

_OPENSSL_CONFIG: Final = """\
[req]
distinguished_name = subject
prompt = no

[subject]
CN = batchalert test

[ca_extensions]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_extensions]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def write_local_certificates(directory: Path) -> LocalCertificates:
    """Create a private CA and a server certificate for 127.0.0.1 in `directory`, with openssl.

    The CA file plays a custom CA bundle; the server files go to a fake receiver's tls_cert and
    tls_key. Both certificates expire after two days.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FakeReceiverError(
            "openssl not found on PATH; install it with `apt-get install -y openssl`"
        )
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "openssl.cnf"
    config.write_text(_OPENSSL_CONFIG, encoding="utf-8")
    files = LocalCertificates(
        directory / "ca.crt", directory / "server.crt", directory / "server.key"
    )
    for arguments in _certificate_commands(directory, config, files):
        _run_openssl(openssl, arguments)
    return files


def _certificate_commands(
    directory: Path, config: Path, files: LocalCertificates
) -> list[list[str]]:
    ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc"]
    days = ["-days", str(_CERTIFICATE_DAYS)]
    ca_key, csr = directory / "ca.key", directory / "server.csr"
    return [
        ["req", "-x509", *ec_key, "-keyout", str(ca_key), "-out", str(files.ca_cert),
         "-config", str(config), "-extensions", "ca_extensions",
         "-subj", "/CN=batchalert test CA", *days],
        ["req", "-new", *ec_key, "-keyout", str(files.server_key), "-out", str(csr),
         "-config", str(config), "-subj", f"/CN={LOOPBACK_HOST}"],
        ["x509", "-req", "-in", str(csr), "-CA", str(files.ca_cert), "-CAkey", str(ca_key),
         "-CAcreateserial", "-CAserial", str(directory / "ca.srl"), "-out",
         str(files.server_cert), "-extfile", str(config), "-extensions", "server_extensions",
         *days],
    ]  # fmt: skip


def _run_openssl(openssl: str, arguments: list[str]) -> None:
    result = subprocess.run(
        [openssl, *arguments], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise FakeReceiverError(
            f"openssl {arguments[0]} failed with exit code {result.returncode}: "
            f"{result.stderr.strip()}"
        )


# Command line


class _PayloadWriter:
    """Writes each accepted payload as one JSON line and flushes, so readers see it at once."""

    def __init__(self, output: IO[str]) -> None:
        self._output = output
        self._lock = threading.Lock()

    def __call__(self, record: RecordedRequest) -> None:
        line = json.dumps(record.payload, ensure_ascii=False)
        with self._lock:
            self._output.write(line + "\n")
            self._output.flush()


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.fake_receivers",
        description="Serve a fake receiver on 127.0.0.1 until SIGINT or SIGTERM.",
    )
    receivers = parser.add_subparsers(dest="receiver", required=True)
    for name, help_text in (
        ("notification-manager", "KubeSphere Notification Manager, POST /api/v2/alerts"),
        ("slack", "Slack incoming webhook, POST to any path"),
    ):
        command = receivers.add_parser(name, help=help_text)
        command.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
        command.add_argument(
            "--out", type=Path, help="file for the accepted payloads, one JSON line each; "
            "truncated at start (default: standard output)"
        )
        command.add_argument("--tls-cert", type=Path, help="PEM certificate; serves HTTPS")
        command.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert")
    return parser.parse_args(argv)


@contextlib.contextmanager
def _open_output(path: Path | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    with path.open("w", encoding="utf-8") as output:
        yield output


def _make_receiver(arguments: argparse.Namespace, writer: _PayloadWriter) -> FakeReceiver:
    server_class: type[FakeReceiver] = (
        NotificationManagerServer
        if arguments.receiver == "notification-manager"
        else SlackWebhookServer
    )
    return server_class(
        port=arguments.port,
        tls_cert=arguments.tls_cert,
        tls_key=arguments.tls_key,
        on_accept=writer,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Serve one fake receiver until SIGINT or SIGTERM; return the exit code."""
    arguments = _parse_arguments(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    with _open_output(arguments.out) as output:
        receiver = _make_receiver(arguments, _PayloadWriter(output))
        with receiver:
            logger.info("serving %s at %s", arguments.receiver, receiver.url)
            # Wake regularly, because a signal may arrive while the main thread waits.
            while not stop_requested.wait(0.5):
                pass
    logger.info("stopped %s", arguments.receiver)
    return 0


if __name__ == "__main__":
    sys.exit(main())
