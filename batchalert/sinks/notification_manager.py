"""KubeSphere Notification Manager: Alertmanager's webhook payload, one POST per namespace.

Notification Manager queues what it accepts (HTTP 200) and does no de-duplication, so each
accepted POST becomes notifications. Every alert needs a `labels` object, because the server
panics without one and returns HTTP 500.
"""

from __future__ import annotations

import logging
from itertools import groupby
from typing import Any

import httpx

from batchalert.alerts.model import Alert
from batchalert.config import ReceiverConfig
from batchalert.sinks.base import Delivery, http_client
from batchalert.sinks.retry import Clock, RetryBudget, post_with_retries

logger = logging.getLogger(__name__)


def common_labels(alerts: list[Alert]) -> dict[str, str]:
    """Labels that every alert of the list has with the same value."""
    first = alerts[0].labels
    return {k: v for k, v in first.items() if all(a.labels.get(k) == v for a in alerts[1:])}


def webhook_payload(alerts: list[Alert], receiver: str, group_labels: dict[str, str]
                    ) -> dict[str, Any]:
    """Build Alertmanager's webhook message (version 4) for one notification group."""
    status = "firing" if any(a.status == "firing" for a in alerts) else "resolved"
    group_key = "{}:{" + ",".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}"
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common_labels(alerts),
        "commonAnnotations": {},
        "externalURL": "",
        "alerts": [alert.to_dict() for alert in alerts],
    }


def group_alerts(alerts: list[Alert], group_by: list[str]) -> list[tuple[dict[str, str],
                                                                          list[Alert]]]:
    """Split alerts into notification groups by the `group_by` labels, keeping their order."""
    def key(alert: Alert) -> tuple[str, ...]:
        return tuple(alert.labels.get(label, "") for label in group_by)

    ordered = sorted(alerts, key=key)
    return [
        (dict(zip(group_by, values, strict=True)), list(members))
        for values, members in groupby(ordered, key=key)
    ]


class NotificationManagerSink:
    """Posts alerts to Notification Manager's `/api/v2/alerts`."""

    def __init__(self, config: ReceiverConfig, client: httpx.Client | None = None,
                 group_by: list[str] | None = None, clock: Clock | None = None) -> None:
        self.name = config.name
        self.required = config.required
        self._urls = config.endpoint_urls()
        self._client = client or http_client(config)
        self._group_by = group_by or list(config.group_by)
        self._budget_seconds = config.retry_budget_seconds
        self._clock = clock

    def send(self, alerts: list[Alert]) -> Delivery:
        """POST each notification group; 429, 5xx and transport errors are retried."""
        delivery = Delivery(self.name, self.required, attempted=len(alerts))
        budget = RetryBudget(self._budget_seconds, self._clock)
        for group_labels, members in group_alerts(alerts, self._group_by):
            payload = webhook_payload(members, self.name, group_labels)
            if self._post_everywhere(payload, delivery, budget):
                delivery.delivered += len(members)
        return delivery

    def _post_everywhere(self, payload: dict[str, Any], delivery: Delivery,
                         budget: RetryBudget) -> bool:
        return all([self._post(url, payload, delivery, budget) for url in self._urls])

    def _post(self, url: str, payload: dict[str, Any], delivery: Delivery,
              budget: RetryBudget) -> bool:
        result = post_with_retries(self._client, url, payload, budget, receiver=self.name,
                                   count=len(payload["alerts"]))
        if result.failure is not None:
            delivery.failures.append(result.failure)
        return result.ok

    def close(self) -> None:
        self._client.close()
