"""Tests of the local Kafka broker helper: jar cache, configuration, lifecycle, CLI and TLS."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaTimeoutError

from scripts import kafka_local
from scripts.kafka_local import (
    BrokerSettings,
    LocalKafka,
    LocalKafkaError,
    OutgoingRecord,
    TlsFiles,
    ensure_jars,
    new_cluster_id,
    pick_free_ports,
    render_server_properties,
)
from tests.fixtures.kafka import TopicFactory, unique_name

REPO_ROOT = Path(__file__).resolve().parents[2]
# A failed TLS or SASL handshake makes kafka-python retry until this bootstrap timeout.
FAILING_BOOTSTRAP_TIMEOUT_MS = 5000
READ_TIMEOUT_S = 30.0


# --- helpers --------------------------------------------------------------------------------------


def read_values(topic: str, expected: int, **client_options: Any) -> list[bytes]:
    """Read ``expected`` records from every partition of ``topic``, from the beginning, in order."""
    consumer = KafkaConsumer(enable_auto_commit=False, **client_options)
    try:
        partition_ids = sorted(consumer.partitions_for_topic(topic))
        partitions = [TopicPartition(topic, p) for p in partition_ids]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    records.sort(key=lambda record: (record.partition, record.offset))
    return [record.value for record in records]


def process_exists(pid: int) -> bool:
    """Tell whether ``pid`` is a live process; a zombie left to an init that never reaps is dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def port_accepts(port: int) -> bool:
    """Tell whether a TCP connection to 127.0.0.1:port succeeds."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def run_cli(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m scripts.kafka_local`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "scripts.kafka_local", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


# --- jar cache ------------------------------------------------------------------------------------

FAKE_MVN = textwrap.dedent(
    """\
    #!/bin/bash
    # Stands in for mvn: records the call and writes one jar into -DoutputDirectory.
    echo call >> "$FAKE_MVN_CALLS"
    for arg in "$@"; do
        case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}" ;; esac
    done
    if [ "$FAKE_MVN_EXIT" != 0 ]; then echo "fake resolution failure"; exit "$FAKE_MVN_EXIT"; fi
    mkdir -p "$out"
    touch "$out/$FAKE_MVN_JAR"
    """
)


@pytest.fixture
def fake_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a fake mvn first on PATH and return the file that counts its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(FAKE_MVN)
    mvn.chmod(0o755)
    calls = tmp_path / "mvn-calls"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_MVN_CALLS", str(calls))
    monkeypatch.setenv("FAKE_MVN_EXIT", "0")
    monkeypatch.setenv("FAKE_MVN_JAR", f"kafka_2.13-{kafka_local.KAFKA_VERSION}.jar")
    return calls


def call_count(calls: Path) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


class TestEnsureJars:
    def test_download_writes_jars_and_marker(self, fake_mvn: Path, tmp_path: Path) -> None:
        cache = tmp_path / "cache"

        jars_dir = ensure_jars(cache)

        assert jars_dir == cache / "jars"
        assert (jars_dir / f"kafka_2.13-{kafka_local.KAFKA_VERSION}.jar").is_file()
        assert (cache / "download-complete").is_file()
        assert call_count(fake_mvn) == 1

    def test_complete_cache_skips_mvn(self, fake_mvn: Path, tmp_path: Path) -> None:
        cache = tmp_path / "cache"
        ensure_jars(cache)

        ensure_jars(cache)

        assert call_count(fake_mvn) == 1

    def test_missing_marker_downloads_again(self, fake_mvn: Path, tmp_path: Path) -> None:
        cache = tmp_path / "cache"
        ensure_jars(cache)
        (cache / "download-complete").unlink()
        (cache / "jars" / "left-over-from-interrupted-run.jar").touch()

        ensure_jars(cache)

        assert call_count(fake_mvn) == 2
        assert not (cache / "jars" / "left-over-from-interrupted-run.jar").exists()

    def test_other_pom_marker_downloads_again(self, fake_mvn: Path, tmp_path: Path) -> None:
        cache = tmp_path / "cache"
        ensure_jars(cache)
        (cache / "download-complete").write_text("digest-of-another-pom\n")

        ensure_jars(cache)

        assert call_count(fake_mvn) == 2

    def test_failed_mvn_writes_no_marker(
        self, fake_mvn: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("FAKE_MVN_EXIT", "1")
        cache = tmp_path / "cache"

        with pytest.raises(LocalKafkaError, match="fake resolution failure"):
            ensure_jars(cache)

        assert not (cache / "download-complete").exists()

    def test_download_without_kafka_jar_raises(
        self, fake_mvn: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("FAKE_MVN_JAR", "unrelated.jar")
        cache = tmp_path / "cache"

        with pytest.raises(LocalKafkaError, match=r"has no kafka_2\.13 jar"):
            ensure_jars(cache)

        assert not (cache / "download-complete").exists()

    def test_missing_mvn_names_package(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        empty_bin = tmp_path / "empty-bin"
        empty_bin.mkdir()
        monkeypatch.setenv("PATH", str(empty_bin))

        with pytest.raises(LocalKafkaError, match=r"mvn not found.*apt-get install maven"):
            ensure_jars(tmp_path / "cache")

    def test_default_cache_under_batchalert_cache(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("BATCHALERT_CACHE", str(tmp_path))

        cache = kafka_local.default_cache_dir()

        assert cache == tmp_path / f"kafka-{kafka_local.KAFKA_VERSION}"

    def test_pom_adds_slf4j_binding(self) -> None:
        pom = kafka_local.render_pom()

        assert "<packaging>pom</packaging>" in pom
        assert f"<version>{kafka_local.KAFKA_VERSION}</version>" in pom
        assert "<artifactId>log4j-slf4j-impl</artifactId>" in pom


# --- settings and configuration -------------------------------------------------------------------


class TestSettings:
    def test_cluster_id_is_22_url_safe_characters(self) -> None:
        for _ in range(200):
            cluster_id = new_cluster_id()
            assert len(cluster_id) == 22
            assert not cluster_id.startswith("-")
            assert set(cluster_id) <= set(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            )

    def test_free_ports_are_distinct_and_skip_excluded(self) -> None:
        busy = pick_free_ports(1)[0]

        ports = pick_free_ports(6, exclude=[busy])

        assert len(set(ports)) == 6
        assert busy not in ports

    def test_requested_port_is_kept(self) -> None:
        port = pick_free_ports(1)[0]

        settings = BrokerSettings.create(port=port, tls=True)

        assert settings.port == port
        ports = [
            settings.port,
            settings.controller_port,
            settings.ssl_port,
            settings.sasl_ssl_port,
            settings.mtls_port,
        ]
        assert len(set(ports)) == 5

    def test_settings_survive_save_and_load(self, tmp_path: Path) -> None:
        settings = BrokerSettings.create(port=None, tls=True)
        path = tmp_path / "settings.json"

        settings.save(path)

        assert BrokerSettings.load(path) == settings
        assert path.stat().st_mode & 0o077 == 0

    def test_plaintext_properties_have_no_tls(self, tmp_path: Path) -> None:
        settings = BrokerSettings.create(port=None, tls=False)

        properties = render_server_properties(settings, tmp_path / "data", None)

        assert f"listeners=PLAINTEXT://127.0.0.1:{settings.port}," in properties
        assert "ssl." not in properties
        assert "sasl." not in properties

    def test_client_auth_only_on_mtls(self, tmp_path: Path) -> None:
        settings = BrokerSettings.create(port=None, tls=True)
        tls_files = TlsFiles.in_dir(tmp_path / "tls")

        properties = render_server_properties(settings, tmp_path / "data", tls_files)

        lines = properties.splitlines()
        assert "listener.name.mtls.ssl.client.auth=required" in lines
        assert not any(line.startswith("ssl.client.auth") for line in lines)
        assert f"MTLS://127.0.0.1:{settings.mtls_port}" in properties
        assert "MTLS:SSL" in properties
        assert "inter.broker.listener.name=PLAINTEXT" in lines

    def test_every_address_is_loopback(self, tmp_path: Path) -> None:
        settings = BrokerSettings.create(port=None, tls=True)
        properties = render_server_properties(
            settings, tmp_path / "data", TlsFiles.in_dir(tmp_path / "tls")
        )

        addresses = [
            address
            for line in properties.splitlines()
            if line.startswith(("listeners=", "advertised.listeners="))
            for address in line.split("=", 1)[1].split(",")
        ]

        assert len(addresses) == 9
        assert all("://127.0.0.1:" in address for address in addresses)


class TestTlsFiles:
    def test_broker_cert_loopback_and_chain(self, tmp_path: Path) -> None:
        files = kafka_local.ensure_tls_files(tmp_path / "tls", "store-password")

        text = subprocess.run(
            ["openssl", "x509", "-in", str(files.broker_cert), "-noout", "-text"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout  # fmt: skip
        verify = subprocess.run(
            ["openssl", "verify", "-CAfile", str(files.ca_cert), str(files.broker_cert),
             str(files.client_cert)],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip

        assert "IP Address:127.0.0.1" in text
        assert "DNS:localhost" in text
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert files.all_exist()

    def test_existing_files_are_kept(self, tmp_path: Path) -> None:
        files = kafka_local.ensure_tls_files(tmp_path / "tls", "store-password")
        first_ca = files.ca_cert.read_bytes()

        kafka_local.ensure_tls_files(tmp_path / "tls", "store-password")

        assert files.ca_cert.read_bytes() == first_ca


class TestStateDirectory:
    def test_changed_options_on_existing_state_raise(self, tmp_path: Path) -> None:
        BrokerSettings.create(port=None, tls=False).save(tmp_path / "local-kafka.json")

        with pytest.raises(LocalKafkaError, match="tls=False, not tls=True"):
            LocalKafka(tmp_path, tls=True).start()

        assert not (tmp_path / "broker.pid").exists()

    def test_properties_before_first_start_raise(self, tmp_path: Path) -> None:
        broker = LocalKafka(tmp_path / "new")

        with pytest.raises(LocalKafkaError, match="never started"):
            _ = broker.bootstrap

    def test_tls_properties_of_plaintext_broker_raise(self, tmp_path: Path) -> None:
        BrokerSettings.create(port=None, tls=False).save(tmp_path / "local-kafka.json")
        broker = LocalKafka(tmp_path)

        with pytest.raises(LocalKafkaError, match="without TLS listeners"):
            _ = broker.ssl_bootstrap

    def test_saved_settings_are_reused(self, tmp_path: Path) -> None:
        settings = BrokerSettings.create(port=None, tls=True)
        settings.save(tmp_path / "local-kafka.json")

        broker = LocalKafka(tmp_path)

        assert broker.tls
        assert broker.bootstrap == f"127.0.0.1:{settings.port}"
        assert broker.sasl_ssl_bootstrap == f"127.0.0.1:{settings.sasl_ssl_port}"
        assert broker.scram_password == settings.scram_password
        assert not broker.is_running()


# --- the session broker ---------------------------------------------------------------------------


@pytest.mark.kafka
class TestBroker:
    def test_metadata_names_loopback_broker(self, kafka: LocalKafka) -> None:
        admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        try:
            cluster = admin.describe_cluster()
        finally:
            admin.close()

        assert [(b["host"], b["port"]) for b in cluster["brokers"]] == [("127.0.0.1", kafka.port)]
        assert kafka.bootstrap == f"127.0.0.1:{kafka.port}"

    def test_round_trip_keeps_count_and_bytes(
        self, kafka: LocalKafka, topic_factory: TopicFactory
    ) -> None:
        topic = topic_factory(partitions=3)
        # Binary values, an empty value and a large one: the broker must return the same bytes.
        values = [i.to_bytes(4, "big") + bytes([i % 256]) * (i % 17) for i in range(3000)]
        values[7] = b""
        values[8] = os.urandom(200_000)
        records = [OutgoingRecord(value, partition=i % 3) for i, value in enumerate(values)]

        positions = kafka.produce_many(topic, records)
        read = read_values(topic, len(values), bootstrap_servers=kafka.bootstrap)

        expected = [values[i] for p in range(3) for i in range(p, len(values), 3)]
        assert len(positions) == len(values)
        assert len(read) == len(values)
        assert read == expected

    def test_produce_returns_consecutive_offsets(
        self, kafka: LocalKafka, topic_factory: TopicFactory
    ) -> None:
        topic = topic_factory(partitions=2)

        positions = kafka.produce(topic, [b"%d" % i for i in range(5000)], partition=1)

        assert positions == [(1, offset) for offset in range(5000)]
        assert kafka.end_offsets(topic) == {0: 0, 1: 5000}

    def test_read_all_returns_records_in_offset_order(
        self, kafka: LocalKafka, topic_factory: TopicFactory
    ) -> None:
        topic = topic_factory(partitions=2)
        kafka.produce(topic, [b"a", b"b"], partition=0, key=b"k", timestamp_ms=1_700_000_000_000)
        kafka.produce(topic, [b"c"], partition=1)

        records = kafka.read_all(topic)

        assert [(r.partition, r.offset, r.value) for r in records] == [
            (0, 0, b"a"),
            (0, 1, b"b"),
            (1, 0, b"c"),
        ]
        assert records[0].key == b"k"
        assert records[0].timestamp == 1_700_000_000_000

    def test_group_commit_and_committed(
        self, kafka: LocalKafka, topic_factory: TopicFactory, group_id: str
    ) -> None:
        topic = topic_factory(partitions=2)
        kafka.produce(topic, [b"x"] * 10, partition=0)
        partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        consumer = KafkaConsumer(
            bootstrap_servers=kafka.bootstrap, group_id=group_id, enable_auto_commit=False
        )
        try:
            consumer.assign(partitions)
            consumer.commit({partitions[0]: OffsetAndMetadata(7, "", -1)})
            committed = [consumer.committed(tp) for tp in partitions]
        finally:
            consumer.close()

        assert committed == [7, None]

    def test_offsets_for_times_finds_record(
        self, kafka: LocalKafka, topic_factory: TopicFactory
    ) -> None:
        topic = topic_factory()
        base_ms = 1_700_000_000_000
        records = [OutgoingRecord(b"v", timestamp_ms=base_ms + 1000 * i) for i in range(10)]
        kafka.produce_many(topic, records)
        partition = TopicPartition(topic, 0)
        consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap)
        try:
            found = consumer.offsets_for_times({partition: base_ms + 4500})
        finally:
            consumer.close()

        assert found[partition].offset == 5
        assert found[partition].timestamp == base_ms + 5000

    def test_delete_topic_removes_it(self, kafka: LocalKafka) -> None:
        topic = unique_name("t", "delete-topic")
        kafka.create_topic(topic, partitions=2)

        kafka.delete_topic(topic)

        with kafka.admin() as admin:
            assert topic not in admin.list_topics()

    def test_create_existing_topic_raises(
        self, kafka: LocalKafka, topic_factory: TopicFactory
    ) -> None:
        topic = topic_factory()

        with pytest.raises(LocalKafkaError, match=topic):
            kafka.create_topic(topic)

    def test_topic_factory_names_are_unique(self, topic_factory: TopicFactory) -> None:
        names = {topic_factory() for _ in range(3)}

        assert len(names) == 3

    def test_restart_keeps_data_and_port(
        self, kafka: LocalKafka, topic_factory: TopicFactory
    ) -> None:
        topic = topic_factory(partitions=2)
        values = [b"before-restart-%d" % i for i in range(1000)]
        kafka.produce(topic, values, partition=0)
        port, bootstrap, old_pid = kafka.port, kafka.bootstrap, kafka.pid
        assert old_pid is not None

        kafka.stop()
        stopped_running = kafka.is_running()
        stopped_process_exists = process_exists(old_pid)
        stopped_port_accepts = port_accepts(port)
        kafka.start()

        assert not stopped_running
        assert not stopped_process_exists
        assert not stopped_port_accepts
        assert kafka.pid not in (None, old_pid)
        assert kafka.port == port
        assert kafka.bootstrap == bootstrap
        assert [record.value for record in kafka.read_all(topic)] == values

    def test_stop_twice_is_harmless(self, kafka: LocalKafka) -> None:
        kafka.stop()
        kafka.stop()

        assert not kafka.is_running()
        assert not kafka.pid_path.exists()

        kafka.start()
        assert kafka.is_running()

    def test_log_file_records_start(self, kafka: LocalKafka) -> None:
        log = kafka.log_path.read_text()

        assert "Kafka Server started" in log


# --- brokers of their own -------------------------------------------------------------------------


@pytest.fixture
def own_state_dir(tmp_path: Path) -> Iterator[Path]:
    """Return a state directory and stop whatever broker runs in it after the test."""
    state_dir = tmp_path / "broker"
    yield state_dir
    LocalKafka(state_dir).stop()


@pytest.mark.kafka
@pytest.mark.slow
class TestOwnBroker:
    def test_busy_port_fails_with_log_tail(self, own_state_dir: Path) -> None:
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            busy_port = holder.getsockname()[1]
            broker = LocalKafka(own_state_dir, port=busy_port, startup_timeout_s=60)

            with pytest.raises(LocalKafkaError) as raised:
                broker.start()

        assert "exited with code" in str(raised.value)
        assert "Address already in use" in str(raised.value)
        assert not broker.is_running()

    def test_context_manager_stops_broker(self, own_state_dir: Path) -> None:
        with LocalKafka(own_state_dir) as broker:
            pid = broker.pid
            assert pid is not None
            assert port_accepts(broker.port)

        assert not process_exists(pid)
        assert not broker.is_running()


@pytest.mark.kafka
@pytest.mark.slow
class TestCommandLine:
    def test_start_status_stop(self, own_state_dir: Path) -> None:
        started = run_cli("start", "--state-dir", str(own_state_dir))
        assert started.returncode == 0, started.stderr
        bootstrap = started.stdout.strip()
        broker = LocalKafka(own_state_dir)
        pid = broker.pid

        # The broker outlived the command that started it.
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            topics = admin.list_topics()
        finally:
            admin.close()
        running = run_cli("status", "--state-dir", str(own_state_dir))
        again = run_cli("start", "--state-dir", str(own_state_dir))
        stopped = run_cli("stop", "--state-dir", str(own_state_dir))
        after_stop = run_cli("status", "--state-dir", str(own_state_dir))

        assert bootstrap == broker.bootstrap
        assert pid is not None
        assert topics == []
        assert running.returncode == 0
        assert f"{bootstrap} running, pid {pid}" in running.stdout
        assert again.returncode == 0
        assert again.stdout.strip() == bootstrap
        assert stopped.returncode == 0, stopped.stderr
        assert after_stop.returncode == 3
        assert "stopped" in after_stop.stdout
        assert not process_exists(pid)

    def test_status_of_unknown_state_dir(self, tmp_path: Path) -> None:
        result = run_cli("status", "--state-dir", str(tmp_path / "nothing-here"))

        assert result.returncode == 3
        assert "no broker" in result.stdout

    def test_fetch_prints_cached_jar_dir(self) -> None:
        result = run_cli("fetch", timeout_s=900)

        jars_dir = Path(result.stdout.strip())
        assert result.returncode == 0, result.stderr
        assert any(jars_dir.glob("kafka_2.13-*.jar"))


# --- secure listeners -----------------------------------------------------------------------------


@pytest.fixture
def secure_topic(kafka: LocalKafka, topic_factory: TopicFactory) -> str:
    """Return a two-partition topic holding records b"secure-0" to b"secure-99"."""
    topic = topic_factory(partitions=2)
    kafka.produce_many(
        topic, [OutgoingRecord(b"secure-%d" % i, partition=i % 2) for i in range(100)]
    )
    return topic


def expected_secure_values() -> list[bytes]:
    return [b"secure-%d" % i for p in range(2) for i in range(p, 100, 2)]


@pytest.mark.kafka
class TestSecureListeners:
    def test_ssl_listener_serves_records(self, kafka: LocalKafka, secure_topic: str) -> None:
        values = read_values(
            secure_topic,
            100,
            bootstrap_servers=kafka.ssl_bootstrap,
            security_protocol="SSL",
            ssl_cafile=str(kafka.ca_file),
        )

        assert values == expected_secure_values()

    def test_sasl_ssl_reads_and_commits(
        self, kafka: LocalKafka, secure_topic: str, group_id: str
    ) -> None:
        options: dict[str, Any] = {
            "bootstrap_servers": kafka.sasl_ssl_bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": kafka.scram_username,
            "sasl_plain_password": kafka.scram_password,
            "ssl_cafile": str(kafka.ca_file),
        }
        values = read_values(secure_topic, 100, **options)
        partition = TopicPartition(secure_topic, 0)
        consumer = KafkaConsumer(group_id=group_id, enable_auto_commit=False, **options)
        try:
            consumer.assign([partition])
            consumer.commit({partition: OffsetAndMetadata(50, "", -1)})
            committed = consumer.committed(partition)
        finally:
            consumer.close()

        assert values == expected_secure_values()
        assert committed == 50

    def test_mtls_listener_serves_records(self, kafka: LocalKafka, secure_topic: str) -> None:
        values = read_values(
            secure_topic,
            100,
            bootstrap_servers=kafka.mtls_bootstrap,
            security_protocol="SSL",
            ssl_cafile=str(kafka.ca_file),
            ssl_certfile=str(kafka.client_cert_file),
            ssl_keyfile=str(kafka.client_key_file),
        )

        assert values == expected_secure_values()

    @pytest.mark.timeout(60)
    def test_wrong_scram_password_fails(self, kafka: LocalKafka) -> None:
        with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
            KafkaConsumer(
                bootstrap_servers=kafka.sasl_ssl_bootstrap,
                security_protocol="SASL_SSL",
                sasl_mechanism="SCRAM-SHA-512",
                sasl_plain_username=kafka.scram_username,
                sasl_plain_password="not-the-password",
                ssl_cafile=str(kafka.ca_file),
                bootstrap_timeout_ms=FAILING_BOOTSTRAP_TIMEOUT_MS,
            )

    @pytest.mark.timeout(60)
    def test_mtls_without_client_cert_fails(self, kafka: LocalKafka) -> None:
        with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
            KafkaConsumer(
                bootstrap_servers=kafka.mtls_bootstrap,
                security_protocol="SSL",
                ssl_cafile=str(kafka.ca_file),
                bootstrap_timeout_ms=FAILING_BOOTSTRAP_TIMEOUT_MS,
            )

    @pytest.mark.timeout(60)
    def test_ssl_without_test_ca_fails(self, kafka: LocalKafka) -> None:
        with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
            KafkaConsumer(
                bootstrap_servers=kafka.ssl_bootstrap,
                security_protocol="SSL",
                bootstrap_timeout_ms=FAILING_BOOTSTRAP_TIMEOUT_MS,
            )

    def test_secure_files_exist(self, kafka: LocalKafka) -> None:
        assert kafka.ca_file.is_file()
        assert kafka.client_cert_file.is_file()
        assert kafka.client_key_file.is_file()
        assert kafka.client_key_file.stat().st_mode & 0o077 == 0
