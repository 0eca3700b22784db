"""Choosing the sink class for a receiver type."""

from __future__ import annotations

import httpx

from batchalert.alerts.render import AlertRenderer
from batchalert.config import ReceiverConfig
from batchalert.errors import ConfigError
from batchalert.sinks.alertmanager import AlertmanagerSink
from batchalert.sinks.base import Sink
from batchalert.sinks.notification_manager import NotificationManagerSink
from batchalert.sinks.slack import SlackSink
from batchalert.sinks.webhook import WebhookSink


def create_sink(config: ReceiverConfig, client: httpx.Client | None = None,
                renderer: AlertRenderer | None = None) -> Sink:
    """Create the sink for `config.type`, with an optional pre-built HTTP client.

    `renderer` contains the job's templates and language. The Slack sink renders its text with
    it, and with the built-in English templates when it is None.
    """
    if config.type == "notification-manager":
        return NotificationManagerSink(config, client)
    if config.type == "alertmanager":
        return AlertmanagerSink(config, client)
    if config.type == "slack":
        return SlackSink(config, client, renderer)
    if config.type == "webhook":
        return WebhookSink(config, client)
    raise ConfigError(f"receiver {config.name!r}: type {config.type!r} is not supported; use "
                      f"notification-manager, alertmanager, slack or webhook")
