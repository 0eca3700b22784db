"""Run a real Apache Kafka broker on 127.0.0.1 for tests, the demo and the benchmark.

The broker is one KRaft node that is both broker and controller. Its jars come from Maven Central
through `mvn` and are cached per Kafka version, because no release archive can be downloaded here.
All state (configuration, data, logs, TLS material, pid file) lives in one state directory, so a
stopped broker can be started again on the same data and the same ports.

With ``tls=True`` the broker also listens with TLS (server certificate only), with SASL
SCRAM-SHA-512 over TLS, and with mutual TLS, each on its own port. PLAINTEXT stays the
inter-broker listener.

Command line (run from the repository root)::

    python -m scripts.kafka_local fetch [--cache-dir DIR]
    python -m scripts.kafka_local start --state-dir DIR [--port N] [--tls]
    python -m scripts.kafka_local status --state-dir DIR [--json]
    python -m scripts.kafka_local stop --state-dir DIR

NOTE: process handling reads /proc, so this module runs on Linux only.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from batchalert.errors import BatchalertError

logger = logging.getLogger(__name__)

KAFKA_VERSION = "4.4.0"
SCALA_BINARY_VERSION = "2.13"
# Kafka 4.4.0 logs through SLF4J 1.7.36 and brings log4j-core 2.25.5, but its POM carries no SLF4J
# binding (the release archive does). Without this binding the broker writes no log at all.
LOG4J_SLF4J_BINDING_VERSION = "2.25.5"
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"

HOST = "127.0.0.1"
SCRAM_MECHANISM = "SCRAM-SHA-512"

# The first download is about 45 MB of jars; later runs only resolve from ~/.m2.
_MVN_TIMEOUT_S = 900.0
# Formatting starts one short-lived JVM, which takes about one second.
_FORMAT_TIMEOUT_S = 120.0
_OPENSSL_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 30.0
_KILL_TIMEOUT_S = 10.0
_POLL_INTERVAL_S = 0.2
_LOG_TAIL_CHARS = 4000

_COMPLETE_MARKER = "download-complete"
_SETTINGS_FILE = "local-kafka.json"
_PID_FILE = "broker.pid"
_BROKER_LOG = "broker.log"
_CONSOLE_LOG = "console.log"


class LocalKafkaError(BatchalertError):
    """The local Kafka broker could not be fetched, started, stopped or used."""


class RecordPosition(NamedTuple):
    """Partition and offset the broker assigned to a produced record."""

    partition: int
    offset: int


class OutgoingRecord(NamedTuple):
    """One record for :meth:`LocalKafka.produce_many`; None fields use the producer's default."""

    value: bytes
    key: bytes | None = None
    partition: int | None = None
    timestamp_ms: int | None = None


# --- jars -----------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """Return the jar cache for KAFKA_VERSION: ``$BATCHALERT_CACHE/kafka-<version>``.

    BATCHALERT_CACHE defaults to ``~/.cache/batchalert``.
    """
    root = os.environ.get("BATCHALERT_CACHE") or Path.home() / ".cache" / "batchalert"
    return Path(root) / f"kafka-{KAFKA_VERSION}"


def render_pom(kafka_version: str = KAFKA_VERSION) -> str:
    """Render a POM whose runtime dependencies are the broker's jars and the SLF4J binding."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.batchalert</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>{kafka_version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA_BINARY_VERSION}</artifactId>
      <version>{kafka_version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_SLF4J_BINDING_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""


def ensure_jars(cache_dir: Path | None = None, *, timeout_s: float = _MVN_TIMEOUT_S) -> Path:
    """Download the broker's jars into ``cache_dir/jars`` unless a complete copy is there.

    A marker file, written only after `mvn` succeeded, contains the POM's hash. A missing marker (an
    interrupted download) or a changed POM makes the next call download again. Returns the folder
    that holds the jars.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    pom_text = render_pom()
    jars_dir = cache_dir / "jars"
    if _jars_complete(cache_dir, pom_text):
        return jars_dir

    cache_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(cache_dir / ".lock"):
        # Another process may have finished the download while this one waited for the lock.
        if not _jars_complete(cache_dir, pom_text):
            _download_jars(cache_dir, pom_text, timeout_s)
    return jars_dir


def _pom_digest(pom_text: str) -> str:
    return hashlib.sha256(pom_text.encode()).hexdigest()


def _jars_complete(cache_dir: Path, pom_text: str) -> bool:
    marker = cache_dir / _COMPLETE_MARKER
    if not marker.is_file() or not (cache_dir / "jars").is_dir():
        return False
    return marker.read_text().strip() == _pom_digest(pom_text)


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _download_jars(cache_dir: Path, pom_text: str, timeout_s: float) -> None:
    mvn = _require_program("mvn", "maven")
    marker = cache_dir / _COMPLETE_MARKER
    jars_dir = cache_dir / "jars"
    marker.unlink(missing_ok=True)
    shutil.rmtree(jars_dir, ignore_errors=True)
    (cache_dir / "pom.xml").write_text(pom_text)

    command = [
        mvn, "-B", "-q", "-f", str(cache_dir / "pom.xml"),
        f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={jars_dir}",
    ]  # fmt: skip
    logger.info("Downloading Kafka %s jars into %s", KAFKA_VERSION, jars_dir)
    _run_tool(command, timeout_s, action=f"mvn download of Kafka {KAFKA_VERSION} jars")

    if not any(jars_dir.glob(f"kafka_{SCALA_BINARY_VERSION}-*.jar")):
        raise LocalKafkaError(
            f"mvn finished but {jars_dir} has no kafka_{SCALA_BINARY_VERSION} jar; "
            f"delete {cache_dir} and run `python -m scripts.kafka_local fetch` again"
        )
    marker.write_text(_pom_digest(pom_text) + "\n")


def _require_program(name: str, debian_package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LocalKafkaError(
            f"{name} not found on PATH; install it (apt-get install {debian_package}) "
            "or run scripts/install-deps.sh"
        )
    return path


def _find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    return _require_program("java", "openjdk-17-jre-headless")


def _run_tool(command: Sequence[str], timeout_s: float, *, action: str) -> None:
    """Run a command to completion and raise LocalKafkaError with its output when it fails."""
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise LocalKafkaError(f"{action} timed out after {timeout_s:.0f} s") from exc
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-_LOG_TAIL_CHARS:]
        raise LocalKafkaError(f"{action} failed with exit code {result.returncode}:\n{output}")


# --- state ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class BrokerSettings:
    """Ports, cluster id and secrets that stay the same across restarts, saved as JSON."""

    kafka_version: str
    cluster_id: str
    port: int
    controller_port: int
    tls: bool
    ssl_port: int | None = None
    sasl_ssl_port: int | None = None
    mtls_port: int | None = None
    store_password: str | None = None
    scram_username: str | None = None
    scram_password: str | None = None

    @classmethod
    def create(cls, *, port: int | None, tls: bool) -> BrokerSettings:
        """Make settings for a new broker with free ports and random secrets."""
        count = 5 if tls else 2
        if port is None:
            ports = pick_free_ports(count)
        else:
            ports = [port, *pick_free_ports(count - 1, exclude=(port,))]
        settings = cls(
            kafka_version=KAFKA_VERSION,
            cluster_id=new_cluster_id(),
            port=ports[0],
            controller_port=ports[1],
            tls=tls,
        )
        if tls:
            settings.ssl_port, settings.sasl_ssl_port, settings.mtls_port = ports[2:5]
            settings.store_password = secrets.token_hex(16)
            settings.scram_username = "batchalert"
            settings.scram_password = secrets.token_hex(16)
        return settings

    @classmethod
    def load(cls, path: Path) -> BrokerSettings:
        """Read settings saved by :meth:`save`."""
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise LocalKafkaError(
                f"cannot read broker settings {path}: {exc}; delete its state directory "
                "to start a new broker"
            ) from exc

    def save(self, path: Path) -> None:
        """Write the settings, readable only by the owner because they contain passwords."""
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        path.chmod(0o600)


def pick_free_ports(count: int, exclude: Iterable[int] = ()) -> list[int]:
    """Return ``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    excluded = set(exclude)
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        # Holding every socket open until all are bound keeps the kernel from repeating a port.
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
            if port not in excluded:
                ports.append(port)
    finally:
        for sock in sockets:
            sock.close()
    return ports


def new_cluster_id() -> str:
    """Return a KRaft cluster id: 16 random bytes in URL-safe base64 without padding."""
    while True:
        cluster_id = secrets.token_urlsafe(16)
        # A leading '-' would be parsed as an option by StorageTool.
        if not cluster_id.startswith("-"):
            return cluster_id


# --- configuration files --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """Paths of the throwaway CA, broker and client certificates in PEM and the broker's stores."""

    ca_cert: Path
    ca_key: Path
    broker_cert: Path
    broker_key: Path
    keystore: Path
    truststore: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def in_dir(cls, tls_dir: Path) -> TlsFiles:
        """Name the files inside ``tls_dir``."""
        return cls(
            ca_cert=tls_dir / "ca.crt",
            ca_key=tls_dir / "ca.key",
            broker_cert=tls_dir / "broker.crt",
            broker_key=tls_dir / "broker.key",
            keystore=tls_dir / "broker-keystore.p12",
            truststore=tls_dir / "broker-truststore.p12",
            client_cert=tls_dir / "client.crt",
            client_key=tls_dir / "client.key",
        )

    def all_exist(self) -> bool:
        """Tell whether every file is present."""
        return all(Path(path).is_file() for path in dataclasses.astuple(self))


_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no

[dn]

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[broker_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid

[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
"""

# Certificates outlive any test run; the CA and both leaves are made once per state directory.
_CERT_DAYS = "3650"


def ensure_tls_files(tls_dir: Path, store_password: str) -> TlsFiles:
    """Create a CA, a broker certificate, a client certificate and the broker's PKCS12 stores.

    The broker certificate names IP 127.0.0.1 and DNS localhost. Existing files are kept.
    """
    files = TlsFiles.in_dir(tls_dir)
    if files.all_exist():
        return files

    tls_dir.mkdir(parents=True, exist_ok=True)
    openssl = _require_program("openssl", "openssl")
    config = tls_dir / "openssl.cnf"
    config.write_text(_OPENSSL_CONFIG)

    _make_key(openssl, files.ca_key)
    _run_tool(
        [openssl, "req", "-x509", "-new", "-key", str(files.ca_key), "-config", str(config),
         "-extensions", "ca_ext", "-subj", "/CN=batchalert test CA", "-days", _CERT_DAYS,
         "-out", str(files.ca_cert)],
        _OPENSSL_TIMEOUT_S, action="openssl CA certificate",
    )  # fmt: skip
    _make_leaf(
        openssl, config, files, files.broker_key, files.broker_cert, "localhost", "broker_ext"
    )
    _make_leaf(
        openssl, config, files, files.client_key, files.client_cert, "batchalert-test-client",
        "client_ext",
    )  # fmt: skip
    _make_keystore(openssl, files, store_password)
    _make_truststore(files, store_password)
    return files


def _make_key(openssl: str, key_path: Path) -> None:
    _run_tool(
        [openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
         "-out", str(key_path)],
        _OPENSSL_TIMEOUT_S, action=f"openssl key {key_path.name}",
    )  # fmt: skip
    key_path.chmod(0o600)


def _make_leaf(
    openssl: str,
    config: Path,
    files: TlsFiles,
    key_path: Path,
    cert_path: Path,
    common_name: str,
    extensions: str,
) -> None:
    """Create a key and a certificate for it signed by the CA with the named extension section."""
    _make_key(openssl, key_path)
    csr_path = cert_path.with_suffix(".csr")
    _run_tool(
        [openssl, "req", "-new", "-key", str(key_path), "-config", str(config),
         "-subj", f"/CN={common_name}", "-out", str(csr_path)],
        _OPENSSL_TIMEOUT_S, action=f"openssl request {csr_path.name}",
    )  # fmt: skip
    _run_tool(
        [openssl, "x509", "-req", "-in", str(csr_path), "-CA", str(files.ca_cert),
         "-CAkey", str(files.ca_key), "-set_serial", str(secrets.randbits(63)),
         "-days", _CERT_DAYS, "-extfile", str(config), "-extensions", extensions,
         "-out", str(cert_path)],
        _OPENSSL_TIMEOUT_S, action=f"openssl signing of {cert_path.name}",
    )  # fmt: skip
    csr_path.unlink()


def _make_keystore(openssl: str, files: TlsFiles, password: str) -> None:
    _run_tool(
        [openssl, "pkcs12", "-export", "-in", str(files.broker_cert),
         "-inkey", str(files.broker_key), "-certfile", str(files.ca_cert), "-name", "broker",
         "-out", str(files.keystore), "-passout", f"pass:{password}"],
        _OPENSSL_TIMEOUT_S, action="openssl broker keystore",
    )  # fmt: skip


def _make_truststore(files: TlsFiles, password: str) -> None:
    # keytool, not openssl, because Java trusts a PKCS12 certificate entry only when it carries
    # the trusted-certificate attribute that keytool -importcert writes.
    keytool = _require_program("keytool", "openjdk-17-jre-headless")
    files.truststore.unlink(missing_ok=True)
    _run_tool(
        [keytool, "-importcert", "-noprompt", "-alias", "ca", "-file", str(files.ca_cert),
         "-keystore", str(files.truststore), "-storetype", "PKCS12", "-storepass", password],
        _OPENSSL_TIMEOUT_S, action="keytool broker truststore",
    )  # fmt: skip


def _listeners(settings: BrokerSettings) -> dict[str, tuple[str, int]]:
    """Map each broker listener name to its security protocol and port, CONTROLLER excluded."""
    listeners = {"PLAINTEXT": ("PLAINTEXT", settings.port)}
    if settings.tls:
        assert settings.ssl_port is not None
        assert settings.sasl_ssl_port is not None
        assert settings.mtls_port is not None
        listeners["SSL"] = ("SSL", settings.ssl_port)
        listeners["SASL_SSL"] = ("SASL_SSL", settings.sasl_ssl_port)
        listeners["MTLS"] = ("SSL", settings.mtls_port)
    return listeners


def render_server_properties(
    settings: BrokerSettings, data_dir: Path, tls_files: TlsFiles | None
) -> str:
    """Render server.properties for a combined broker and controller with node id 1."""
    listeners = _listeners(settings)
    addresses = ",".join(f"{name}://{HOST}:{port}" for name, (_, port) in listeners.items())
    protocols = ",".join(f"{name}:{protocol}" for name, (protocol, _) in listeners.items())
    lines = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{HOST}:{settings.controller_port}",
        f"listeners={addresses},CONTROLLER://{HOST}:{settings.controller_port}",
        f"advertised.listeners={addresses}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        f"listener.security.protocol.map={protocols},CONTROLLER:PLAINTEXT",
        f"log.dirs={data_dir}",
        "num.partitions=1",
        # One node: every internal topic gets a single replica.
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        # A single offsets partition and no rebalance delay make a test's first commit fast.
        "offsets.topic.num.partitions=1",
        "group.initial.rebalance.delay.ms=0",
    ]
    if tls_files is not None:
        lines += _tls_properties(settings, tls_files)
    return "\n".join(lines) + "\n"


def _tls_properties(settings: BrokerSettings, files: TlsFiles) -> list[str]:
    password = settings.store_password
    return [
        "ssl.keystore.type=PKCS12",
        f"ssl.keystore.location={files.keystore}",
        f"ssl.keystore.password={password}",
        f"ssl.key.password={password}",
        "ssl.truststore.type=PKCS12",
        f"ssl.truststore.location={files.truststore}",
        f"ssl.truststore.password={password}",
        "listener.name.mtls.ssl.client.auth=required",
        f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
        f"listener.name.sasl_ssl.sasl.enabled.mechanisms={SCRAM_MECHANISM}",
        # The broker needs a login module for each SASL listener. It names no user because the
        # brokers talk to each other over PLAINTEXT.
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required;",
    ]


def render_log4j2_properties(log_path: Path) -> str:
    """Render a Log4j 2 configuration writing warnings, and start and stop lines, to one file."""
    return f"""\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_path}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
logger.raft_server.name = kafka.server.KafkaRaftServer
logger.raft_server.level = INFO
logger.broker_server.name = kafka.server.BrokerServer
logger.broker_server.level = INFO
"""


# --- processes ------------------------------------------------------------------------------------


def _process_state(pid: int) -> str | None:
    """Return the one-letter state of a process from /proc, or None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name in brackets may contain spaces, so the state follows the last ')'.
    return stat.rsplit(")", 1)[1].split()[0]


def _pid_alive(pid: int) -> bool:
    state = _process_state(pid)
    return state is not None and state not in ("Z", "X")


def _pid_runs_config(pid: int, config_path: Path) -> bool:
    """Tell whether ``pid`` is a broker started with ``config_path`` (and not a reused pid)."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return str(config_path).encode() in arguments and b"kafka.Kafka" in arguments


def _wait_for_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL_S / 2)
    return True


def _tail(path: Path, chars: int = _LOG_TAIL_CHARS) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - chars))
            return handle.read().decode(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


# --- broker ---------------------------------------------------------------------------------------


class LocalKafka:
    """A Kafka broker process on 127.0.0.1 whose state lives in ``state_dir``.

    Ports, cluster id and secrets are chosen at the first start and saved in the state directory,
    so :meth:`start` after :meth:`stop` brings the broker back on the same ports and data. A new
    object on an existing state directory attaches to a broker that another process started.
    """

    def __init__(
        self,
        state_dir: Path | str,
        *,
        port: int | None = None,
        tls: bool | None = None,
        cache_dir: Path | None = None,
        heap_mb: int = 512,
        startup_timeout_s: float = 60.0,
        stop_with_parent: bool = True,
    ) -> None:
        """Describe a broker; nothing starts before :meth:`start`.

        ``port`` (PLAINTEXT) and ``tls`` apply when the state directory is new; None keeps what
        an existing state directory has, or means a free port and no TLS for a new one.

        ``stop_with_parent`` makes the kernel send SIGTERM to the broker when the thread that
        started it exits, so an interrupted test session leaves no broker behind. The command line
        turns it off for brokers that must outlive it.
        """
        self._state_dir = Path(state_dir).resolve()
        self._requested_port = port
        self._tls = tls
        self._cache_dir = cache_dir
        self._heap_mb = heap_mb
        self._startup_timeout_s = startup_timeout_s
        self._stop_with_parent = stop_with_parent
        self._process: subprocess.Popen[bytes] | None = None
        self._settings: BrokerSettings | None = None
        if self._settings_path.is_file():
            self._settings = BrokerSettings.load(self._settings_path)

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- paths and addresses

    @property
    def state_dir(self) -> Path:
        """Directory containing configuration, data, logs, TLS files and the pid file."""
        return self._state_dir

    @property
    def log_path(self) -> Path:
        """The broker's Log4j file."""
        return self._state_dir / _BROKER_LOG

    @property
    def console_log_path(self) -> Path:
        """The JVM's standard output and error (crashes before logging starts end up here)."""
        return self._state_dir / _CONSOLE_LOG

    @property
    def pid_path(self) -> Path:
        """File containing the broker's process id while it runs."""
        return self._state_dir / _PID_FILE

    @property
    def _settings_path(self) -> Path:
        return self._state_dir / _SETTINGS_FILE

    @property
    def _config_path(self) -> Path:
        return self._state_dir / "server.properties"

    @property
    def _log4j_path(self) -> Path:
        return self._state_dir / "log4j2.properties"

    @property
    def _data_dir(self) -> Path:
        return self._state_dir / "data"

    @property
    def settings(self) -> BrokerSettings:
        """Ports and secrets of this broker; they exist after the first start."""
        if self._settings is None:
            raise LocalKafkaError(
                f"the broker in {self._state_dir} was never started, so it has no ports yet; "
                "call start() first"
            )
        return self._settings

    @property
    def port(self) -> int:
        """PLAINTEXT port, also used between brokers."""
        return self.settings.port

    @property
    def bootstrap(self) -> str:
        """PLAINTEXT bootstrap address, ``127.0.0.1:PORT``."""
        return f"{HOST}:{self.port}"

    @property
    def tls(self) -> bool:
        """Whether the TLS, SASL_SSL and mutual-TLS listeners are on."""
        return self._settings.tls if self._settings is not None else bool(self._tls)

    @property
    def ssl_bootstrap(self) -> str:
        """Bootstrap address of the SSL listener (server certificate only)."""
        return f"{HOST}:{self._tls_setting('ssl_port')}"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        """Bootstrap address of the SASL_SSL listener with SCRAM-SHA-512."""
        return f"{HOST}:{self._tls_setting('sasl_ssl_port')}"

    @property
    def mtls_bootstrap(self) -> str:
        """Bootstrap address of the SSL listener that requires a client certificate."""
        return f"{HOST}:{self._tls_setting('mtls_port')}"

    @property
    def ca_file(self) -> Path:
        """PEM certificate of the CA that signed the broker and client certificates."""
        self._tls_setting("ssl_port")
        return self._tls_files.ca_cert

    @property
    def client_cert_file(self) -> Path:
        """PEM client certificate accepted by the mutual-TLS listener."""
        self._tls_setting("ssl_port")
        return self._tls_files.client_cert

    @property
    def client_key_file(self) -> Path:
        """PEM private key (PKCS8, unencrypted) of the client certificate."""
        self._tls_setting("ssl_port")
        return self._tls_files.client_key

    @property
    def scram_username(self) -> str:
        """SCRAM-SHA-512 user created when the storage was formatted."""
        return str(self._tls_setting("scram_username"))

    @property
    def scram_password(self) -> str:
        """Password of :attr:`scram_username`."""
        return str(self._tls_setting("scram_password"))

    @property
    def _tls_files(self) -> TlsFiles:
        return TlsFiles.in_dir(self._state_dir / "tls")

    def _tls_setting(self, name: str) -> int | str:
        value = getattr(self.settings, name)
        if not self.settings.tls or value is None:
            raise LocalKafkaError(
                f"the broker in {self._state_dir} runs without TLS listeners; "
                "create LocalKafka(..., tls=True) with a new state directory"
            )
        return value  # type: ignore[no-any-return]

    # --- lifecycle

    def exists(self) -> bool:
        """Tell whether the state directory contains a broker that was started at least once."""
        return self._settings is not None

    @property
    def pid(self) -> int | None:
        """Process id of the running broker, or None when it is not running."""
        if self._process is not None:
            return self._process.pid if self._process.poll() is None else None
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _pid_alive(pid) and _pid_runs_config(pid, self._config_path) else None

    def is_running(self) -> bool:
        """Tell whether the broker process of this state directory is alive."""
        return self.pid is not None

    def start(self) -> None:
        """Start the broker and wait until it responds to a metadata request.

        Downloads the jars on first use, creates settings, TLS files and the formatted storage on
        the first start, and does nothing when the broker already runs. Raises LocalKafkaError
        with the tail of the broker's log when it exits or does not answer in time.
        """
        if self.is_running():
            logger.debug("Kafka broker in %s already runs", self._state_dir)
            return

        started = time.monotonic()
        self._prepare_state()
        jars_dir = ensure_jars(self._cache_dir)
        java = _find_java()
        self._write_config_files()
        self._format_storage(java, jars_dir)
        self._spawn(java, jars_dir)
        self._wait_until_ready(started)
        logger.info(
            "Kafka broker %s started on %s in %.1f s (pid %s)",
            KAFKA_VERSION, self.bootstrap, time.monotonic() - started, self.pid,
        )  # fmt: skip

    def stop(self, timeout_s: float = _STOP_TIMEOUT_S) -> None:
        """Stop the broker with SIGTERM, or SIGKILL after ``timeout_s`` seconds; idempotent."""
        pid = self.pid
        if pid is None:
            self._forget_process()
            return

        logger.info("Stopping Kafka broker on %s (pid %d)", self.bootstrap, pid)
        os.kill(pid, signal.SIGTERM)
        if not self._wait_for_exit(pid, timeout_s):
            logger.warning(
                "Kafka broker pid %d did not stop within %.0f s of SIGTERM; sending SIGKILL",
                pid, timeout_s,
            )  # fmt: skip
            os.kill(pid, signal.SIGKILL)
            if not self._wait_for_exit(pid, _KILL_TIMEOUT_S):
                raise LocalKafkaError(f"Kafka broker pid {pid} survived SIGKILL; check `ps {pid}`")
        self._forget_process()

    def _prepare_state(self) -> None:
        self._state_dir.mkdir(parents=True, exist_ok=True)
        if self._settings is None:
            self._settings = BrokerSettings.create(port=self._requested_port, tls=bool(self._tls))
            self._settings.save(self._settings_path)
        self._check_settings_match(self._settings)
        if self._settings.tls:
            assert self._settings.store_password is not None
            ensure_tls_files(self._state_dir / "tls", self._settings.store_password)

    def _check_settings_match(self, settings: BrokerSettings) -> None:
        problems = []
        if settings.kafka_version != KAFKA_VERSION:
            problems.append(f"Kafka {settings.kafka_version}, not {KAFKA_VERSION}")
        if self._tls is not None and settings.tls != self._tls:
            problems.append(f"tls={settings.tls}, not tls={self._tls}")
        if self._requested_port is not None and settings.port != self._requested_port:
            problems.append(f"port {settings.port}, not {self._requested_port}")
        if problems:
            raise LocalKafkaError(
                f"the broker state in {self._state_dir} was created with {', '.join(problems)}; "
                "use a new state directory or the original options"
            )

    def _write_config_files(self) -> None:
        tls_files = self._tls_files if self.settings.tls else None
        self._config_path.write_text(
            render_server_properties(self.settings, self._data_dir, tls_files)
        )
        self._config_path.chmod(0o600)
        self._log4j_path.write_text(render_log4j2_properties(self.log_path))

    def _java_command(self, java: str, jars_dir: Path, main_class: str) -> list[str]:
        return [
            java,
            f"-Xmx{self._heap_mb}m",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self._log4j_path}",
            "-cp",
            f"{jars_dir}/*",
            main_class,
        ]

    def _format_storage(self, java: str, jars_dir: Path) -> None:
        if (self._data_dir / "meta.properties").is_file():
            return

        settings = self.settings
        command = self._java_command(java, jars_dir, "kafka.tools.StorageTool")
        command += ["format", "-t", settings.cluster_id, "-c", str(self._config_path)]
        if settings.tls:
            # Credentials written at format time exist before any client can connect.
            credential = f"name={settings.scram_username},password={settings.scram_password}"
            command += ["--add-scram", f"{SCRAM_MECHANISM}=[{credential}]"]
        logger.debug("Formatting KRaft storage in %s", self._data_dir)
        action = f"formatting Kafka storage in {self._data_dir}"
        _run_tool(command, _FORMAT_TIMEOUT_S, action=action)

    def _spawn(self, java: str, jars_dir: Path) -> None:
        command = [*self._java_command(java, jars_dir, "kafka.Kafka"), str(self._config_path)]
        setpriv = shutil.which("setpriv")
        if self._stop_with_parent and setpriv is not None:
            # setpriv sets the parent-death signal and then runs java in the same process.
            command = [setpriv, "--pdeathsig", "TERM", "--", *command]

        with self.console_log_path.open("ab") as console:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=self._state_dir,
                start_new_session=True,
            )
        self.pid_path.write_text(f"{self._process.pid}\n")

    def _wait_until_ready(self, started: float) -> None:
        deadline = started + self._startup_timeout_s
        while True:
            self._raise_if_exited()
            if self._answers_metadata():
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise LocalKafkaError(
                    f"Kafka broker on {self.bootstrap} did not respond to a metadata request "
                    f"within {self._startup_timeout_s:.0f} s; see {self.log_path}. "
                    f"Log tail:\n{self._log_tails()}"
                )
            time.sleep(_POLL_INTERVAL_S)

    def _answers_metadata(self) -> bool:
        if not _port_open(self.port):
            return False
        try:
            # Short timeouts keep each probe from outlasting a broker that already exited.
            admin = KafkaAdminClient(
                **self._client_options(request_timeout_ms=2000, bootstrap_timeout_ms=3000)
            )
        except KafkaError:
            return False
        try:
            cluster = admin.describe_cluster()
        except KafkaError:
            return False
        finally:
            admin.close()
        brokers = cluster.get("brokers") or []
        return any(not broker.get("is_fenced", False) for broker in brokers)

    def _raise_if_exited(self) -> None:
        if self._process is None or self._process.poll() is None:
            return
        code = self._process.returncode
        self._forget_process()
        raise LocalKafkaError(
            f"Kafka broker for {self._state_dir} exited with code {code} during start-up; "
            f"see {self.log_path}. Log tail:\n{self._log_tails()}"
        )

    def _log_tails(self) -> str:
        return (
            f"--- {self.log_path.name}\n{_tail(self.log_path)}\n"
            f"--- {self.console_log_path.name}\n{_tail(self.console_log_path)}"
        )

    def _wait_for_exit(self, pid: int, timeout_s: float) -> bool:
        if self._process is not None and self._process.pid == pid:
            try:
                self._process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                return False
            return True
        return _wait_for_exit(pid, timeout_s)

    def _forget_process(self) -> None:
        self._process = None
        self.pid_path.unlink(missing_ok=True)

    # --- clients

    def _client_options(self, **overrides: object) -> dict[str, object]:
        options: dict[str, object] = {
            "bootstrap_servers": self.bootstrap,
            "client_id": "batchalert-local-kafka",
            "request_timeout_ms": 30_000,
        }
        options.update(overrides)
        return options

    @contextlib.contextmanager
    def admin(self) -> Iterator[KafkaAdminClient]:
        """Yield an admin client on the PLAINTEXT listener and close it afterwards."""
        try:
            client = KafkaAdminClient(**self._client_options())
        except KafkaError as exc:
            raise LocalKafkaError(
                f"cannot connect an admin client to {self.bootstrap}: {exc}"
            ) from exc
        try:
            yield client
        finally:
            client.close()

    def create_topic(
        self, name: str, partitions: int = 1, config: dict[str, str] | None = None
    ) -> None:
        """Create a topic and wait until every partition has a leader."""
        topic = NewTopic(name, partitions, 1, topic_configs=config or {})
        with self.admin() as admin:
            try:
                admin.create_topics([topic], wait_for_metadata=True)
            except KafkaError as exc:
                raise LocalKafkaError(
                    f"creating topic {name!r} on {self.bootstrap} failed: {exc}"
                ) from exc

    def delete_topic(self, name: str) -> None:
        """Delete a topic."""
        with self.admin() as admin:
            try:
                admin.delete_topics([name])
            except KafkaError as exc:
                raise LocalKafkaError(
                    f"deleting topic {name!r} on {self.bootstrap} failed: {exc}"
                ) from exc

    def produce(
        self,
        topic: str,
        values: Iterable[bytes],
        partition: int | None = None,
        key: bytes | None = None,
        timestamp_ms: int | None = None,
    ) -> list[RecordPosition]:
        """Send every value with the same partition, key and timestamp; see :meth:`produce_many`."""
        records = (OutgoingRecord(value, key, partition, timestamp_ms) for value in values)
        return self.produce_many(topic, records)

    def produce_many(self, topic: str, records: Iterable[OutgoingRecord]) -> list[RecordPosition]:
        """Send records in batches, flush, and return each one's partition and offset in order.

        Raises LocalKafkaError when any record was not acknowledged.
        """
        producer = self._new_producer()
        try:
            futures = [
                producer.send(
                    topic,
                    value=record.value,
                    key=record.key,
                    partition=record.partition,
                    timestamp_ms=record.timestamp_ms,
                )
                for record in records
            ]
            producer.flush(timeout=120)
            metadata = [future.get(timeout=0) for future in futures]
        except KafkaError as exc:
            raise LocalKafkaError(
                f"producing to topic {topic!r} on {self.bootstrap} failed: {exc}"
            ) from exc
        finally:
            producer.close(timeout=10)
        return [RecordPosition(item.partition, item.offset) for item in metadata]

    def _new_producer(self) -> KafkaProducer:
        # Large batches and a short linger send thousands of small records in a few requests.
        options = self._client_options(
            acks="all",
            linger_ms=20,
            batch_size=1024 * 1024,
            max_request_size=16 * 1024 * 1024,
        )
        try:
            return KafkaProducer(**options)
        except KafkaError as exc:
            raise LocalKafkaError(f"cannot connect a producer to {self.bootstrap}: {exc}") from exc

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Return the high watermark of every partition of ``topic``."""
        with self._assigned_consumer(topic) as (consumer, partitions):
            ends = consumer.end_offsets(partitions)
        return {tp.partition: offset for tp, offset in ends.items()}

    def read_all(self, topic: str, timeout_s: float = 60.0) -> list[ConsumerRecord]:
        """Read every record of ``topic`` up to the high watermarks taken at the call.

        Records are sorted by partition and offset. Uses no consumer group and commits nothing.
        """
        records: list[ConsumerRecord] = []
        with self._assigned_consumer(topic) as (consumer, partitions):
            ends = consumer.end_offsets(partitions)
            consumer.seek_to_beginning(*partitions)
            deadline = time.monotonic() + timeout_s
            while any(consumer.position(tp) < ends[tp] for tp in partitions):
                if time.monotonic() >= deadline:
                    raise LocalKafkaError(
                        f"reading topic {topic!r} to offsets {ends} timed out after {timeout_s} s"
                    )
                for batch in consumer.poll(timeout_ms=500).values():
                    records.extend(
                        r for r in batch if r.offset < ends[TopicPartition(topic, r.partition)]
                    )
        return sorted(records, key=lambda record: (record.partition, record.offset))

    @contextlib.contextmanager
    def _assigned_consumer(
        self, topic: str
    ) -> Iterator[tuple[KafkaConsumer, list[TopicPartition]]]:
        try:
            consumer = KafkaConsumer(
                **self._client_options(group_id=None, enable_auto_commit=False)
            )
        except KafkaError as exc:
            raise LocalKafkaError(f"cannot connect a consumer to {self.bootstrap}: {exc}") from exc
        try:
            partition_ids = consumer.partitions_for_topic(topic)
            if not partition_ids:
                raise LocalKafkaError(
                    f"topic {topic!r} not found on {self.bootstrap}; create it first"
                )
            partitions = [TopicPartition(topic, p) for p in sorted(partition_ids)]
            consumer.assign(partitions)
            yield consumer, partitions
        finally:
            consumer.close()


# --- command line ---------------------------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.kafka_local",
        description=f"Run a local Apache Kafka {KAFKA_VERSION} broker on {HOST}.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    fetch = commands.add_parser("fetch", help="download the broker's jars into the cache")
    fetch.add_argument("--cache-dir", type=Path, help="jar cache (default: %(default)s)",
                       default=default_cache_dir())  # fmt: skip

    start = commands.add_parser("start", help="start a broker in the background")
    start.add_argument("--port", type=int, help="PLAINTEXT port (default: a free port)")
    start.add_argument("--tls", action="store_true", default=None,
                       help="add SSL, SASL_SSL and mTLS listeners to a new broker")  # fmt: skip
    start.add_argument(
        "--timeout", type=float, default=60.0,
        help="seconds to wait for the broker to respond (default: %(default)s)",
    )  # fmt: skip

    status = commands.add_parser("status", help="print whether the broker runs; exit 3 if not")
    status.add_argument("--json", action="store_true", help="print addresses and files as JSON")

    stop = commands.add_parser("stop", help="stop the broker")
    stop.add_argument(
        "--timeout", type=float, default=_STOP_TIMEOUT_S,
        help="seconds to wait after SIGTERM before SIGKILL (default: %(default)s)",
    )  # fmt: skip

    for command in (start, status, stop):
        command.add_argument(
            "--state-dir", type=Path, required=True,
            help="directory containing the broker's configuration, data and logs",
        )  # fmt: skip
    return parser


def _describe(broker: LocalKafka) -> dict[str, object]:
    description: dict[str, object] = {
        "running": broker.is_running(),
        "pid": broker.pid,
        "bootstrap": broker.bootstrap,
        "state_dir": str(broker.state_dir),
        "log_path": str(broker.log_path),
    }
    if broker.tls:
        description.update(
            ssl_bootstrap=broker.ssl_bootstrap,
            sasl_ssl_bootstrap=broker.sasl_ssl_bootstrap,
            mtls_bootstrap=broker.mtls_bootstrap,
            ca_file=str(broker.ca_file),
            client_cert_file=str(broker.client_cert_file),
            client_key_file=str(broker.client_key_file),
            scram_username=broker.scram_username,
            # The password stays in the owner-only settings file; print where to find it.
            scram_password_file=str(broker.state_dir / _SETTINGS_FILE),
        )
    return description


def _command_start(args: argparse.Namespace) -> int:
    broker = LocalKafka(
        args.state_dir,
        port=args.port,
        tls=args.tls,
        startup_timeout_s=args.timeout,
        stop_with_parent=False,
    )
    broker.start()
    print(broker.bootstrap)
    return 0


def _command_status(args: argparse.Namespace) -> int:
    broker = LocalKafka(args.state_dir)
    if not broker.exists():
        print(f"no broker in {args.state_dir}")
        return 3
    description = _describe(broker)
    if args.json:
        print(json.dumps(description, indent=2))
    else:
        state = f"running, pid {broker.pid}" if broker.is_running() else "stopped"
        print(f"{broker.bootstrap} {state}")
    return 0 if broker.is_running() else 3


def _command_stop(args: argparse.Namespace) -> int:
    broker = LocalKafka(args.state_dir)
    broker.stop(timeout_s=args.timeout)
    return 0


def _command_fetch(args: argparse.Namespace) -> int:
    print(ensure_jars(args.cache_dir))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit code."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # kafka-python logs every connection at INFO, which would bury this tool's own lines.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    handlers = {
        "fetch": _command_fetch,
        "start": _command_start,
        "status": _command_status,
        "stop": _command_stop,
    }
    try:
        return handlers[args.command](args)
    except LocalKafkaError as exc:
        logger.error("%s", exc)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
