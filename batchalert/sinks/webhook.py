"""Generic webhook: the run's alerts as one JSON document, POSTed to each URL of the receiver.

The document, version 1::

    {
      "version": 1,
      "receiver": "<receiver name>",
      "status": "firing",              # "firing" if any alert of this document fires
      "sentAt": "2025-01-31T08:00:00.000Z",
      "part": 1,                       # documents of one run are numbered from 1 ...
      "parts": 1,                      # ... to parts; more than 500 alerts make several
      "counts": {"alerts": 3, "firing": 2, "resolved": 1},   # the whole run, all parts
      "alerts": [
        {"status": "firing", "labels": {...}, "annotations": {...},
         "startsAt": "...", "endsAt": "...", "generatorURL": "", "fingerprint": "..."}
      ]
    }

Each alert has the shape of Alertmanager's webhook alerts: labels identify it (the fingerprint
is their hash), annotations carry the count, times, pods and samples, times are RFC 3339 in UTC.
The receiver's `headers` and bearer or basic `auth` go with every request.

Any 2xx status accepts a document. HTTP 429 (after `Retry-After`), 5xx and transport errors are
retried within `retry_budget_seconds`; other statuses, redirects included, fail at once.
Webhook URLs often contain a token, so messages and logs show them masked by
`batchalert.events.mask_url`: scheme, host and port stay, and the path, query and credentials
become `***`.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from batchalert.alerts.model import Alert, format_time
from batchalert.config import ReceiverConfig
from batchalert.sinks.base import Delivery, http_client
from batchalert.sinks.retry import Clock, RetryBudget, SystemClock, post_with_retries

logger = logging.getLogger(__name__)

PAYLOAD_VERSION = 1
# Alerts per document: bounds the request body, since each alert carries up to three samples.
BATCH_ALERTS = 500


def alert_counts(alerts: list[Alert]) -> dict[str, int]:
    firing = sum(1 for alert in alerts if alert.status == "firing")
    return {"alerts": len(alerts), "firing": firing, "resolved": len(alerts) - firing}


def webhook_documents(alerts: list[Alert], receiver: str, sent_at: str) -> list[dict[str, Any]]:
    """Split a run's alerts into version 1 documents of at most BATCH_ALERTS alerts each."""
    batches = [alerts[start:start + BATCH_ALERTS] for start in range(0, len(alerts), BATCH_ALERTS)]
    counts = alert_counts(alerts)
    return [
        {
            "version": PAYLOAD_VERSION,
            "receiver": receiver,
            "status": "firing" if any(a.status == "firing" for a in batch) else "resolved",
            "sentAt": sent_at,
            "part": number,
            "parts": len(batches),
            "counts": counts,
            "alerts": [alert.to_dict() for alert in batch],
        }
        for number, batch in enumerate(batches, start=1)
    ]


class WebhookSink:
    """Posts the run's alerts as JSON documents to one or more webhook URLs."""

    def __init__(self, config: ReceiverConfig, client: httpx.Client | None = None,
                 clock: Clock | None = None) -> None:
        self.name = config.name
        self.required = config.required
        self._urls = config.endpoint_urls()
        self._budget_seconds = config.retry_budget_seconds
        self._client = client or http_client(config)
        self._clock = clock or SystemClock()

    def send(self, alerts: list[Alert]) -> Delivery:
        delivery = Delivery(self.name, self.required, attempted=len(alerts))
        if not alerts:
            return delivery
        documents = webhook_documents(alerts, self.name, format_time(self._clock.now()))
        budget = RetryBudget(self._budget_seconds, self._clock)
        for document in documents:
            if self._post_everywhere(document, budget, delivery):
                delivery.delivered += len(document["alerts"])
        return delivery

    def _post_everywhere(self, document: dict[str, Any], budget: RetryBudget,
                         delivery: Delivery) -> bool:
        accepted = True
        for url in self._urls:
            result = post_with_retries(self._client, url, document, budget, receiver=self.name,
                                       count=len(document["alerts"]))
            if result.failure is not None:
                delivery.failures.append(result.failure)
                accepted = False
        return accepted

    def close(self) -> None:
        self._client.close()
