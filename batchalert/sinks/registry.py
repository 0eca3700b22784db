"""Choosing the sink class for a receiver type."""

from __future__ import annotations

import httpx

from batchalert.config import ReceiverConfig
from batchalert.errors import ConfigError
from batchalert.sinks.base import Sink
from batchalert.sinks.notification_manager import NotificationManagerSink


def create_sink(config: ReceiverConfig, client: httpx.Client | None = None) -> Sink:
    """Create the sink for `config.type`, with an optional pre-built HTTP client."""
    if config.type == "notification-manager":
        return NotificationManagerSink(config, client)
    raise ConfigError(f"receiver {config.name!r}: type {config.type!r} is not supported yet")
