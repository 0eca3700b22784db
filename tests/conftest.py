"""Shared fixtures: the real Kafka broker, local receivers and Debian services."""

import socket

import pytest

pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.receivers",
    "tests.fixtures.services",
]


@pytest.fixture
def unused_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
