"""Shared fixtures: the real Kafka broker, local receivers and Debian services."""

import logging
import socket
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.kernels",
    "tests.fixtures.receivers",
    "tests.fixtures.services",
]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Put back the root logger's handlers after each test.

    The CLI configures logging to the runner's captured stderr, which is closed after the test;
    a handler left behind would write to a closed file.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in ("kafka", "kafka.net.selector", "httpx"):
        logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.fixture
def unused_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
