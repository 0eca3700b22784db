"""Real Prometheus Alertmanager and Pushgateway processes on 127.0.0.1, for tests and demos.

Both run the binaries of the Debian packages prometheus-alertmanager and prometheus-pushgateway
on a free port, with their state in a temporary directory that stop() removes. Alertmanager runs
without clustering, so it opens no gossip port and sends nothing off the machine. Each instance
is independent, so two AlertmanagerProcess objects act as two replicas that a sink posts to one
by one::

    with AlertmanagerProcess() as alertmanager:
        alertmanager.post_alerts([{"labels": {"alertname": "Test"}}])
        print(alertmanager.alerts(['alertname="Test"']))
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Final, Self
from urllib.parse import urlsplit

import httpx
import yaml

from batchalert.errors import BatchalertError

logger = logging.getLogger(__name__)

LOOPBACK_HOST: Final = "127.0.0.1"
# Both binaries were ready within a second on a 2-core test machine; the margin covers loaded ones.
_STARTUP_TIMEOUT_SECONDS: Final = 30.0
_READY_POLL_SECONDS: Final = 0.1
_STOP_TIMEOUT_SECONDS: Final = 10.0  # after SIGTERM, before SIGKILL
# Another process can take a free port between probing it and the binary binding it.
_PORT_ATTEMPTS: Final = 3
_REQUEST_TIMEOUT_SECONDS: Final = 10.0
_LOG_TAIL_LINES: Final = 20
_LOOPBACK_NAMES: Final = frozenset({"127.0.0.1", "localhost", "::1"})


class ServiceError(BatchalertError):
    """A local Alertmanager or Pushgateway is missing, did not start, or failed a request."""


def find_binary(name: str, package: str) -> Path:
    """Return the path of `name` on PATH, or raise ServiceError naming the Debian package."""
    path = shutil.which(name)
    if path is None:
        raise ServiceError(
            f"{name} not found on PATH; install the Debian package with "
            f"`apt-get install -y {package}`"
        )
    return Path(path)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK_HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class ServiceProcess:
    """Base of the service processes: start on a free port, wait until ready, stop.

    The process writes its output to a log file in the state directory; errors quote its tail.
    """

    binary_name: ClassVar[str]
    package: ClassVar[str]

    def __init__(
        self,
        *,
        binary: str | Path | None = None,
        startup_timeout: float = _STARTUP_TIMEOUT_SECONDS,
    ) -> None:
        self._binary = Path(binary) if binary is not None else None
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._state_dir: Path | None = None
        self._port: int | None = None
        self._client: httpx.Client | None = None

    # Lifecycle

    def start(self) -> Self:
        """Start the binary on a free port and wait until it is ready.

        Raises ServiceError when the binary is missing, exits early, or is not ready within the
        startup timeout.
        """
        if self._process is not None:
            raise ServiceError(f"{self.binary_name} is already running at {self.url}")
        binary = self._resolve_binary()
        self._state_dir = Path(tempfile.mkdtemp(prefix=f"batchalert-{self.binary_name}-"))
        try:
            self._prepare(self._state_dir)
            # trust_env=False: a proxy from the environment must never see these local requests.
            self._client = httpx.Client(timeout=_REQUEST_TIMEOUT_SECONDS, trust_env=False)
            self._launch_until_ready(binary)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and remove its state directory."""
        if self._process is not None:
            self._terminate()
            logger.info("stopped %s on port %s", self.binary_name, self._port)
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Addresses and state

    @property
    def port(self) -> int:
        if self._port is None:
            raise ServiceError(f"{self.binary_name} is not running; call start() first")
        return self._port

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, the form prometheus_client's push functions take."""
        return f"{LOOPBACK_HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def state_dir(self) -> Path:
        if self._state_dir is None:
            raise ServiceError(f"{self.binary_name} is not running; call start() first")
        return self._state_dir

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_text(self) -> str:
        """Return what the process wrote to standard output and standard error so far."""
        return (self.state_dir / "service.log").read_text(encoding="utf-8", errors="replace")

    # Hooks for the services

    def _prepare(self, state_dir: Path) -> None:
        """Write the files the process needs before it starts."""

    def _command(self, binary: Path, port: int) -> list[str]:
        raise NotImplementedError

    # HTTP helpers

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        if self._client is None:
            raise ServiceError(f"{self.binary_name} is not running; call start() first")
        try:
            return self._client.request(method, self.url + path, **options)
        except httpx.TransportError as exc:
            raise ServiceError(
                f"{method} {self.url}{path} failed: {exc}; the log ends with:\n{self._log_tail()}"
            ) from exc

    def _get_ok(self, path: str, **options: Any) -> httpx.Response:
        response = self._request("GET", path, **options)
        if response.status_code != httpx.codes.OK:
            raise ServiceError(
                f"GET {self.url}{path} returned {response.status_code}: {response.text[:500]}"
            )
        return response

    # Process management

    def _resolve_binary(self) -> Path:
        if self._binary is None:
            return find_binary(self.binary_name, self.package)
        if not self._binary.is_file():
            raise ServiceError(
                f"{self._binary} does not exist; pass the path of {self.binary_name}, or install "
                f"the Debian package with `apt-get install -y {self.package}`"
            )
        return self._binary

    def _launch_until_ready(self, binary: Path) -> None:
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = free_port()
            self._launch(binary, port)
            if self._wait_until_ready(port):
                self._port = port
                logger.info("started %s at %s", self.binary_name, self.url)
                return
            log_tail = self._log_tail()
            exit_code = self._terminate()
            if "address already in use" not in log_tail:
                raise ServiceError(
                    f"{self.binary_name} exited with code {exit_code} before it was ready; "
                    f"the log ends with:\n{log_tail}"
                )
            logger.warning(
                "port %d was taken before %s bound it; attempt %d of %d",
                port, self.binary_name, attempt, _PORT_ATTEMPTS,
            )  # fmt: skip
        raise ServiceError(
            f"{self.binary_name} found no free port on {LOOPBACK_HOST} in {_PORT_ATTEMPTS} attempts"
        )

    def _launch(self, binary: Path, port: int) -> None:
        command = self._command(binary, port)
        logger.debug("running %s", " ".join(command))
        self._log_file = (self.state_dir / "service.log").open("wb")
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.state_dir,
        )

    def _wait_until_ready(self, port: int) -> bool:
        """Return True once /-/ready returns 200, or False when the process exits first."""
        assert self._process is not None and self._client is not None
        ready_url = f"http://{LOOPBACK_HOST}:{port}/-/ready"
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            if self._is_ready(ready_url):
                return True
            time.sleep(_READY_POLL_SECONDS)
        raise ServiceError(
            f"{self.binary_name} on port {port} was not ready within {self._startup_timeout} s; "
            f"the log ends with:\n{self._log_tail()}"
        )

    def _is_ready(self, ready_url: str) -> bool:
        assert self._client is not None
        try:
            return self._client.get(ready_url, timeout=1.0).status_code == httpx.codes.OK
        except httpx.TransportError:
            return False

    def _terminate(self) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM; killing it", self.binary_name)
                process.kill()
                process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return process.returncode

    def _log_tail(self) -> str:
        try:
            lines = self.log_text().splitlines()
        except (OSError, ServiceError):
            return "(no log)"
        return "\n".join(lines[-_LOG_TAIL_LINES:])


def _require_loopback_url(url: str) -> None:
    if urlsplit(url).hostname not in _LOOPBACK_NAMES:
        raise ValueError(
            f"webhook_url {url!r} must point to 127.0.0.1 or localhost, because a test "
            "Alertmanager must not send notifications off the machine"
        )


class AlertmanagerProcess(ServiceProcess):
    """Prometheus Alertmanager from the Debian package, with API v2 on 127.0.0.1.

    By default one route leads to a receiver without integrations, so alerts are only stored.
    With `webhook_url` (on 127.0.0.1), the route sends webhook notifications there, with resolved
    alerts; group_wait and group_interval are short so that tests see them within seconds.
    """

    binary_name = "prometheus-alertmanager"
    package = "prometheus-alertmanager"

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        resolve_timeout: str = "5m",
        group_wait: str = "1s",
        group_interval: str = "1s",
        binary: str | Path | None = None,
        startup_timeout: float = _STARTUP_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(binary=binary, startup_timeout=startup_timeout)
        if webhook_url is not None:
            _require_loopback_url(webhook_url)
        self._webhook_url = webhook_url
        self._resolve_timeout = resolve_timeout
        self._group_wait = group_wait
        self._group_interval = group_interval

    @property
    def alerts_url(self) -> str:
        """The API v2 alerts URL that sinks post to."""
        return f"{self.url}/api/v2/alerts"

    def config(self) -> dict[str, Any]:
        """Return the Alertmanager configuration this process runs with."""
        receiver: dict[str, Any] = {"name": "null"}
        if self._webhook_url is not None:
            webhook = {"url": self._webhook_url, "send_resolved": True}
            receiver = {"name": "webhook", "webhook_configs": [webhook]}
        route = {
            "receiver": receiver["name"],
            "group_by": ["alertname"],
            "group_wait": self._group_wait,
            "group_interval": self._group_interval,
            "repeat_interval": "4h",
        }
        return {
            "global": {"resolve_timeout": self._resolve_timeout},
            "route": route,
            "receivers": [receiver],
        }

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> httpx.Response:
        """Post alerts to API v2 and return the response, whatever its status."""
        return self._request("POST", "/api/v2/alerts", json=list(alerts))

    def alerts(self, filters: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Return the stored alerts from ``GET /api/v2/alerts``.

        `filters` are label matchers such as ``'alertname="Test"'``; an alert must match all.
        """
        response = self._get_ok("/api/v2/alerts", params=[("filter", f) for f in filters])
        alerts: list[dict[str, Any]] = response.json()
        return alerts

    def _prepare(self, state_dir: Path) -> None:
        config_text = yaml.safe_dump(self.config(), sort_keys=False)
        (state_dir / "alertmanager.yml").write_text(config_text, encoding="utf-8")

    def _command(self, binary: Path, port: int) -> list[str]:
        return [
            str(binary),
            f"--config.file={self.state_dir / 'alertmanager.yml'}",
            f"--storage.path={self.state_dir / 'data'}",
            f"--web.listen-address={LOOPBACK_HOST}:{port}",
            f"--web.external-url=http://{LOOPBACK_HOST}:{port}",
            "--cluster.listen-address=",  # empty: no gossip, so no HA peer port
        ]


class PushgatewayProcess(ServiceProcess):
    """Prometheus Pushgateway from the Debian package, on 127.0.0.1, metrics in memory only.

    The admin API is on, so wipe() can clear every group.
    """

    binary_name = "prometheus-pushgateway"
    package = "prometheus-pushgateway"

    def metrics_text(self) -> str:
        """Return ``GET /metrics``: every pushed metric in the Prometheus text format."""
        return self._get_ok("/metrics").text

    def groups(self) -> list[dict[str, Any]]:
        """Return the metric groups from ``GET /api/v1/metrics``, each with its ``labels``."""
        body: dict[str, Any] = self._get_ok("/api/v1/metrics").json()
        groups: list[dict[str, Any]] = body["data"]
        return groups

    def find_group(self, job: str, **grouping_key: str) -> dict[str, Any] | None:
        """Return the group whose labels are exactly `job` plus `grouping_key`, or None."""
        expected = {"job": job, **grouping_key}
        for group in self.groups():
            if group["labels"] == expected:
                return group
        return None

    def wipe(self) -> None:
        """Delete every metric group."""
        response = self._request("PUT", "/api/v1/admin/wipe")
        if response.status_code != httpx.codes.ACCEPTED:
            raise ServiceError(f"wiping {self.url} returned {response.status_code}")

    def _command(self, binary: Path, port: int) -> list[str]:
        return [
            str(binary),
            f"--web.listen-address={LOOPBACK_HOST}:{port}",
            "--persistence.file=",  # empty: keep metrics in memory only
            "--web.enable-admin-api",
        ]
