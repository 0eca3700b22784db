"""Building kafka-python consumers from the job's source settings."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from kafka import KafkaConsumer
from kafka.errors import KafkaError, KafkaTimeoutError

from batchalert.config import SourceConfig, resolve_secret
from batchalert.errors import ConfigError, SourceError

logger = logging.getLogger(__name__)

# Bytes fetched per partition per request: large fetches amortise kafka-python's per-request cost.
_MAX_PARTITION_FETCH_BYTES = 8 * 1024 * 1024
# Records handed back by one poll; the reader slices them into chunks itself.
_MAX_POLL_RECORDS = 50_000


def consumer_settings(source: SourceConfig) -> dict[str, Any]:
    """Translate the source settings into KafkaConsumer keyword arguments.

    Auto-commit is off because offsets move only after delivery, and auto topic creation is off
    so that a misspelt topic fails instead of silently creating an empty one.
    """
    timeout_ms = int(source.timeout_seconds * 1000)
    settings: dict[str, Any] = {
        "bootstrap_servers": list(source.brokers),
        "client_id": source.client_id,
        "group_id": source.group,
        "enable_auto_commit": False,
        "allow_auto_create_topics": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "bootstrap_timeout_ms": timeout_ms,
        "request_timeout_ms": max(timeout_ms, 1000),
        "max_partition_fetch_bytes": _MAX_PARTITION_FETCH_BYTES,
        "max_poll_records": _MAX_POLL_RECORDS,
        "reconnect_backoff_max_ms": 2000,
    }
    settings.update(_security_settings(source))
    return settings


def _security_settings(source: SourceConfig) -> dict[str, Any]:
    security = source.security
    settings: dict[str, Any] = {"security_protocol": security.protocol}
    if security.protocol in ("SSL", "SASL_SSL"):
        # kafka-python reports a missing file only as a broker it cannot reach.
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(security, name)
            if path is not None and not path.is_file():
                raise ConfigError(f"source.security.{name}: {path} is not a file; check the "
                                  f"path, and that the Secret holding it is mounted there")
        settings["ssl_check_hostname"] = security.check_hostname
        if security.ca_file is not None:
            settings["ssl_cafile"] = str(security.ca_file)
        if security.cert_file is not None and security.key_file is not None:
            settings["ssl_certfile"] = str(security.cert_file)
            settings["ssl_keyfile"] = str(security.key_file)
    if security.protocol.startswith("SASL_"):
        username = resolve_secret(security.username, "source.security.username",
                                  redacted=False)
        password = resolve_secret(security.password, "source.security.password")
        settings["sasl_mechanism"] = security.sasl_mechanism
        settings["sasl_plain_username"] = username.get_secret_value() if username else None
        settings["sasl_plain_password"] = password.get_secret_value() if password else None
    return settings


@contextmanager
def open_consumer(source: SourceConfig, start: ConsumerStart | None = None
                  ) -> Iterator[KafkaConsumer]:
    """Open a consumer that is assigned partitions by hand, and close it on exit.

    With `start`, the consumer is the one it opened, or its error is raised here.
    """
    consumer = start.take() if start is not None else _new_consumer(source)
    try:
        yield consumer
    finally:
        consumer.close(autocommit=False)


def _new_consumer(source: SourceConfig) -> KafkaConsumer:
    brokers = ",".join(source.brokers)
    try:
        consumer = KafkaConsumer(**consumer_settings(source))
    except KafkaTimeoutError as exc:
        raise SourceError(
            f"no Kafka broker reachable at {brokers} within {source.timeout_seconds:g}s; "
            f"check source.brokers and the network path, and if the brokers are up, "
            f"source.security: a wrong password, CA or client certificate also ends here"
        ) from exc
    except KafkaError as exc:
        raise SourceError(f"cannot connect to Kafka at {brokers}: {exc}") from exc
    logger.debug("connected to Kafka at %s as group %s", brokers, source.group)
    return consumer


class ConsumerStart:
    """A consumer opened in a thread, with the topic's partitions already in its metadata.

    Connecting waits on the network. kafka-python 3.0 also waits 100 ms after its bootstrap
    before it requests topic metadata, whatever `retry_backoff_ms` is, because its cluster
    metadata keeps the default backoff. The CLI imports the modules of a run meanwhile.
    `open_consumer` takes the consumer, and `abandon` closes it when no run will.
    """

    def __init__(self, source: SourceConfig) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._claimed = False
        self._opened: Future[KafkaConsumer] = Future()
        threading.Thread(target=self._open, name="batchalert-connect", daemon=True).start()

    def take(self) -> KafkaConsumer:
        """Wait for the consumer and return it, or raise the error that kept it from opening.

        That is a SourceError, or a ConfigError for a TLS file or secret that is missing.
        """
        with self._lock:
            if self._claimed:
                raise RuntimeError("the started consumer was already taken or abandoned")
            self._claimed = True
        return self._opened.result()

    def abandon(self) -> None:
        """Close the consumer once it is open, unless it was taken."""
        with self._lock:
            if self._claimed:
                return
            self._claimed = True
        self._opened.add_done_callback(_close_opened)

    def _open(self) -> None:
        try:
            consumer = _new_consumer(self._source)
        except BaseException as exc:  # raised again by take()
            self._opened.set_exception(exc)
            return
        try:
            consumer.partitions_for_topic(self._source.topic)
        except KafkaError as exc:
            # The run requests the metadata again and reports what fails then.
            logger.debug("reading metadata of topic %r failed: %s", self._source.topic, exc)
        self._opened.set_result(consumer)


def _close_opened(opened: Future[KafkaConsumer]) -> None:
    if opened.exception() is None:
        opened.result().close(autocommit=False)
