"""Kafka over TLS, SASL SCRAM-SHA-512 and mutual TLS, and secrets that never reach any output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchalert.config import JobConfig, build_job
from batchalert.errors import ConfigError, SourceError
from batchalert.pipeline import RunOptions, run_job
from tests.test_pipeline import fluent_bit_value

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parent.parent


def secure_job(bootstrap: str, topic: str, group: str, security: dict[str, Any]) -> JobConfig:
    return build_job({
        "name": "secure",
        "source": {"brokers": [bootstrap], "topic": topic, "group": group,
                   "timeout_seconds": 8, "security": security},
    }, "test")


@pytest.fixture
def secure_topic(kafka, topic_factory) -> str:  # type: ignore[no-untyped-def]
    topic = topic_factory(partitions=1)
    kafka.produce(topic, [fluent_bit_value(404)] * 3)
    return topic


def test_tls_with_custom_ca(kafka, secure_topic, group_id) -> None:  # type: ignore[no-untyped-def]
    job = secure_job(kafka.ssl_bootstrap, secure_topic, group_id,
                     {"protocol": "SSL", "ca_file": str(kafka.ca_file)})

    result = run_job(job, RunOptions(dry_run=True))

    assert result.records_read == 3
    assert result.alerts[0].annotations["count"] == "3"


def test_tls_without_ca_fails_clearly(kafka, secure_topic, group_id) -> None:  # type: ignore[no-untyped-def]
    job = secure_job(kafka.ssl_bootstrap, secure_topic, group_id, {"protocol": "SSL"})

    with pytest.raises(SourceError, match=r"source\.security"):
        run_job(job, RunOptions(dry_run=True))


def test_sasl_scram_over_tls_commits(kafka, secure_topic, group_id,  # type: ignore[no-untyped-def]
                                     monkeypatch, nm_server) -> None:
    monkeypatch.setenv("TEST_KAFKA_USER", kafka.scram_username)
    monkeypatch.setenv("TEST_KAFKA_PASSWORD", kafka.scram_password)
    job = secure_job(kafka.sasl_ssl_bootstrap, secure_topic, group_id, {
        "protocol": "SASL_SSL", "ca_file": str(kafka.ca_file), "sasl_mechanism": "SCRAM-SHA-512",
        "username": {"env": "TEST_KAFKA_USER"}, "password": {"env": "TEST_KAFKA_PASSWORD"}})
    job = job.model_copy(update={"receivers": build_job({
        "source": {"brokers": ["x:1"], "topic": "t", "group": "g"},
        "receivers": [{"url": nm_server.url}]}, "test").receivers})

    result = run_job(job, RunOptions())

    assert result.committed
    assert len(nm_server.received) == 1


def test_sasl_wrong_password_fails_in_bounded_time(kafka, secure_topic, group_id,  # type: ignore[no-untyped-def]
                                                   tmp_path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("not-the-password\n")
    job = secure_job(kafka.sasl_ssl_bootstrap, secure_topic, group_id, {
        "protocol": "SASL_SSL", "ca_file": str(kafka.ca_file), "sasl_mechanism": "SCRAM-SHA-512",
        "username": {"file": str(_write(tmp_path / "user", kafka.scram_username))},
        "password": {"file": str(password_file)}})

    with pytest.raises(SourceError, match="wrong password"):
        run_job(job, RunOptions(dry_run=True))


def test_mutual_tls_with_client_certificate(kafka, secure_topic, group_id) -> None:  # type: ignore[no-untyped-def]
    job = secure_job(kafka.mtls_bootstrap, secure_topic, group_id, {
        "protocol": "SSL", "ca_file": str(kafka.ca_file),
        "cert_file": str(kafka.client_cert_file), "key_file": str(kafka.client_key_file)})

    result = run_job(job, RunOptions(dry_run=True))

    assert result.records_read == 3


def test_mutual_tls_without_certificate_fails(kafka, secure_topic, group_id) -> None:  # type: ignore[no-untyped-def]
    job = secure_job(kafka.mtls_bootstrap, secure_topic, group_id,
                     {"protocol": "SSL", "ca_file": str(kafka.ca_file)})

    with pytest.raises(SourceError):
        run_job(job, RunOptions(dry_run=True))


@pytest.mark.parametrize("name", ["ca_file", "cert_file", "key_file"])
def test_missing_tls_file_names_it(tmp_path: Path, name: str) -> None:
    files = {key: _write(tmp_path / f"{key}.pem", "x") for key in ("ca_file", "cert_file",
                                                                   "key_file")}
    files[name] = tmp_path / "missing" / f"{name}.pem"
    job = secure_job("127.0.0.1:9", "t", "g", {"protocol": "SSL",
                                               **{key: str(path) for key, path in files.items()}})

    with pytest.raises(ConfigError, match=f"source.security.{name}: {files[name]} is not a "
                                          f"file"):
        run_job(job, RunOptions(dry_run=True))


def test_inline_password_is_rejected() -> None:
    with pytest.raises(Exception, match="password"):
        build_job({"source": {"brokers": ["x:1"], "topic": "t", "group": "g", "security": {
            "protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "password": "hunter2"}}}, "test")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_no_secret_in_any_output(kafka, secure_topic, group_id, nm_server,  # type: ignore[no-untyped-def]
                                 slack_server, tmp_path) -> None:
    """A run with every kind of secret prints none of them, even when receivers fail."""
    slack_secret = "T000SECRET/B000SECRET/XXXXSECRETPATH"
    token = "bearer-secret-token-123"
    job = {
        "name": "secrets",
        "source": {"brokers": [kafka.sasl_ssl_bootstrap], "topic": secure_topic,
                   "group": group_id, "timeout_seconds": 8, "security": {
                       "protocol": "SASL_SSL", "ca_file": str(kafka.ca_file),
                       "sasl_mechanism": "SCRAM-SHA-512", "username": {"env": "T_USER"},
                       "password": {"env": "T_PASSWORD"}}},
        "receivers": [
            {"name": "nm", "url": nm_server.url,
             "auth": {"type": "bearer", "token": {"env": "T_TOKEN"}}},
            {"name": "slack", "type": "slack", "url_env": "T_SLACK_URL",
             "retry_budget_seconds": 0},
        ],
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    env = dict(os.environ, T_USER=kafka.scram_username, T_PASSWORD=kafka.scram_password,
               T_TOKEN=token, T_SLACK_URL=f"{slack_server.base_url}/services/{slack_secret}",
               PYTHONPATH=str(ROOT))
    slack_server.fail_next(5, 500)
    outputs = []
    for extra in (["--dry-run"], ["--verbose"]):
        completed = subprocess.run(
            [sys.executable, "-m", "batchalert.cli", "run", "--job", str(path), *extra],
            env=env, capture_output=True, text=True, timeout=300, check=False)
        outputs.append(completed.stdout + completed.stderr)
    assert "HTTP 500" in outputs[1]

    for output in outputs:
        assert kafka.scram_password not in output
        assert token not in output
        assert slack_secret not in output
        assert "SECRET" not in output
