"""Prometheus Alertmanager API v2: `POST /api/v2/alerts` to every replica, in bounded batches.

Behaviour, and why:

- Each URL of the receiver is one Alertmanager replica and gets every batch itself. Replicas
  share alerts only through their own gossip, and a load balancer would reach only one of them.
  `Delivery.delivered` counts the alerts that every replica accepted, so one replica down makes
  the run fail and commit nothing.
- A URL without the API path gets `/api/v2/alerts` appended, so `http://alertmanager:9093`
  and a route prefix such as `http://host/alertmanager` both work.
- Alertmanager identifies an alert by its labels alone, and the newest post's annotations win.
  Counts, times and samples are annotations, so a re-sent alert updates the stored one.
- A firing alert gets `startsAt` from its first log time and `endsAt` = now +
  `alertmanager_ends_after`. Each run re-sends every firing alert (`resend_firing`), so the alert
  stays active while runs keep finding matches and resolves by itself when they stop. A resolved
  alert gets `endsAt` = its resolution time, at most now, so Alertmanager resolves it at once.
- `startsAt` is always before `endsAt`, because Alertmanager rejects the alert otherwise. A start
  in the future (a skewed pod clock), before 1970 (a zero time) or too close to the end is
  replaced with the latest start that is not after now and at least one second before `endsAt`.
- Label and annotation names are rewritten to `[a-zA-Z_][a-zA-Z0-9_]*` and empty label values are
  dropped, so one bad label cannot make Alertmanager reject a batch. Text is made valid UTF-8.
- HTTP 200 accepts a batch. HTTP 400 carries Alertmanager's validation errors. It has stored
  the batch's valid alerts anyway, but the whole batch counts as undelivered, and a later run
  re-sends it, which is safe because Alertmanager de-duplicates by labels. HTTP 429, 5xx and
  transport errors are retried within `retry_budget_seconds`; other statuses fail at once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from batchalert.alerts.model import Alert, format_time
from batchalert.config import ReceiverConfig, parse_duration
from batchalert.sinks.base import ERROR_BODY_CHARS, Delivery, http_client
from batchalert.sinks.retry import Clock, RetryBudget, SystemClock, post_with_retries

logger = logging.getLogger(__name__)

API_PATH = "/api/v2/alerts"
# Alerts per POST: bounds the request body (an alert with three samples is a few KB) and the
# work one request gives Alertmanager.
BATCH_ALERTS = 500
# Minimum gap between startsAt and endsAt; whole seconds survive the millisecond formatting.
MIN_ALERT_SPAN = timedelta(seconds=1)
# Earlier starts are unset or zero times, not real log times.
EARLIEST_START = datetime(1970, 1, 1, tzinfo=UTC)

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def valid_utf8(text: str) -> str:
    """Return `text` encodable as UTF-8: surrogate pairs joined, lone surrogates as U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def label_name(name: str) -> str:
    """Return `name` in Prometheus' portable label name form, invalid characters as `_`."""
    if _LABEL_NAME.fullmatch(name):
        return name
    cleaned = _INVALID_NAME_CHARS.sub("_", name)
    return cleaned if _LABEL_NAME.fullmatch(cleaned) else "_" + cleaned


@dataclass
class CleanedNames:
    """Names rewritten or dropped while cleaning one run's alerts, for one warning per run."""

    renamed: dict[str, str] = field(default_factory=dict)
    dropped: set[str] = field(default_factory=set)


def clean_label_set(values: dict[str, str], drop_empty: bool, notes: CleanedNames
                    ) -> dict[str, str]:
    """Rewrite names to the portable form; a valid name wins over a rewritten one that collides.

    With `drop_empty`, names with empty values are dropped, as Alertmanager drops them itself.
    """
    cleaned: dict[str, str] = {}
    ordered = sorted(values.items(), key=lambda item: (label_name(item[0]) != item[0], item[0]))
    for name, value in ordered:
        if drop_empty and not value:
            continue
        new_name = label_name(name)
        if new_name in cleaned:
            notes.dropped.add(name)
            continue
        if new_name != name:
            notes.renamed[name] = new_name
        cleaned[new_name] = valid_utf8(value)
    return cleaned


def alert_times(alert: Alert, now: datetime, ends_after: timedelta) -> tuple[datetime, datetime]:
    """Return (startsAt, endsAt) for `alert`, with startsAt before endsAt and not after now."""
    if alert.status == "resolved":
        ends = min(_as_utc(alert.ends_at), now)
        if ends < EARLIEST_START:
            ends = now
    else:
        ends = now + ends_after
    latest_start = min(now, ends - MIN_ALERT_SPAN)
    starts = _as_utc(alert.starts_at)
    if starts < EARLIEST_START or starts > latest_start:
        starts = latest_start
    return starts, ends


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def api_url(url: str) -> str:
    """Return the alerts endpoint of the Alertmanager at `url`."""
    trimmed = url.rstrip("/")
    return trimmed if trimmed.endswith(API_PATH) else trimmed + API_PATH


def describe_rejection(url: str, response: httpx.Response) -> str:
    """Describe an error response from the (masked) `url`; the body is a JSON string."""
    try:
        body = response.json()
    except ValueError:
        body = response.text
    text = str(body).strip()[:ERROR_BODY_CHARS]
    message = f"Alertmanager {url} returned HTTP {response.status_code}"
    if response.status_code == httpx.codes.BAD_REQUEST:
        message += " (it stored the valid alerts of the batch; a later run re-sends them)"
    return message + (f": {text}" if text else "")


class AlertmanagerSink:
    """Posts alerts to every Alertmanager replica's API v2."""

    # The pipeline gives this sink every firing alert each run, not only new ones, because
    # Alertmanager resolves an alert that is not re-sent before its endsAt.
    resend_firing = True

    def __init__(self, config: ReceiverConfig, client: httpx.Client | None = None,
                 clock: Clock | None = None) -> None:
        self.name = config.name
        self.required = config.required
        self._urls = [api_url(url) for url in config.endpoint_urls()]
        self._ends_after = timedelta(seconds=parse_duration(config.alertmanager_ends_after))
        self._budget_seconds = config.retry_budget_seconds
        self._client = client or http_client(config)
        self._clock = clock or SystemClock()

    def send(self, alerts: list[Alert]) -> Delivery:
        delivery = Delivery(self.name, self.required, attempted=len(alerts))
        payloads = self._payloads(alerts, delivery)
        budget = RetryBudget(self._budget_seconds, self._clock)
        for start in range(0, len(payloads), BATCH_ALERTS):
            batch = payloads[start:start + BATCH_ALERTS]
            if self._post_to_replicas(batch, budget, delivery):
                delivery.delivered += len(batch)
        return delivery

    def payload(self, alert: Alert, now: datetime, notes: CleanedNames) -> dict[str, Any]:
        """Build the API v2 form of one alert."""
        starts, ends = alert_times(alert, now, self._ends_after)
        return {
            "labels": clean_label_set(alert.labels, drop_empty=True, notes=notes),
            "annotations": clean_label_set(alert.annotations, drop_empty=False, notes=notes),
            "startsAt": format_time(starts),
            "endsAt": format_time(ends),
            "generatorURL": "",
        }

    def _payloads(self, alerts: list[Alert], delivery: Delivery) -> list[dict[str, Any]]:
        now = self._clock.now()
        notes = CleanedNames()
        payloads = []
        for alert in alerts:
            payload = self.payload(alert, now, notes)
            if payload["labels"]:
                payloads.append(payload)
            else:
                delivery.failures.append(
                    f"alert with annotations {sorted(alert.annotations)} has no label with a "
                    f"value; Alertmanager needs at least one, so it was not sent")
        _warn_cleaned(notes)
        return payloads

    def _post_to_replicas(self, batch: list[dict[str, Any]], budget: RetryBudget,
                          delivery: Delivery) -> bool:
        accepted = True
        for url in self._urls:
            result = post_with_retries(self._client, url, batch, budget, receiver=self.name,
                                       count=len(batch), describe=describe_rejection)
            if result.failure is not None:
                delivery.failures.append(result.failure)
                accepted = False
        return accepted

    def close(self) -> None:
        self._client.close()


def _warn_cleaned(notes: CleanedNames) -> None:
    if notes.renamed:
        logger.warning("label or annotation names are not in Prometheus' portable form and were "
                       "rewritten: %s", notes.renamed)
    if notes.dropped:
        logger.warning("label or annotation names collide with another after rewriting and were "
                       "dropped: %s", sorted(notes.dropped))
