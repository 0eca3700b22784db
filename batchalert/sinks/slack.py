"""Slack incoming webhooks: one message per run, with one section block per alert.

Behaviour, and why:

- Each run posts a single message, because Slack allows about one message per second per
  webhook and a channel reads better with one message per run than with a burst. The message
  has a header section, up to 48 alert sections and, when alerts are left out, a last section
  that counts them. That stays within Slack's 50 blocks. Alerts are shown firing first, then by
  count, largest first. `Delivery.delivered` counts every alert of an accepted message, those
  only counted in the last section included.
- `text` is the notification fallback: the header and the first alerts' headlines, cut at
  3,000 characters, far below Slack's 40,000.
- Each section contains at most 3,000 characters: the headline from the job's `slack` template,
  the first pods with "and N more", and the sample lines, each cut at 400 characters. Parts
  that do not fit are left out, and a headline that alone is too long is cut.
- Every value that came from a log is escaped (`&`, `<`, `>`), because Slack reads `<...>` as
  a control sequence: a request for `/<!channel>` must not ping the channel, and
  `/<https://example.com|Reset password>` must not render as a link. The template's own text is
  not escaped, so a job may still write mentions or links in it.
- HTTP 429 is retried after `Retry-After`, 5xx and transport errors with exponential backoff,
  all within `retry_budget_seconds`. Other 4xx statuses are final, and the failure names Slack's
  error code and what it means.
- The webhook URL is a secret: messages and log lines show it as `https://hooks.slack.com/***`
  (see `batchalert.events.mask_url`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from batchalert.alerts.model import Alert
from batchalert.alerts.render import AlertRenderer
from batchalert.config import ReceiverConfig
from batchalert.sinks.base import ERROR_BODY_CHARS, Delivery, http_client
from batchalert.sinks.retry import Clock, RetryBudget, SystemClock, post_with_retries

logger = logging.getLogger(__name__)

MAX_BLOCKS = 50  # Slack's limit per message
SECTION_MAX_CHARS = 3000  # Slack's limit for a section's text
# Slack cuts `text` at 40,000 characters; a notification shows only its first lines anyway.
FALLBACK_MAX_CHARS = 3000
# Alert sections when some are left out: the header and the "N more" section take two blocks.
ALERT_SECTIONS = MAX_BLOCKS - 2
PODS_SHOWN = 5
SAMPLE_SHOWN_CHARS = 400
ELLIPSIS = "…"

# Slack's error codes for incoming webhooks, with what each means for the operator.
SLACK_ERRORS = {
    "invalid_payload": "Slack could not read the message; report it as a batchalert bug",
    "action_prohibited": "a workspace admin restricted posting to this channel or app",
    "no_service": "webhook revoked or disabled; create a new incoming webhook and update the "
                  "secret",
    "channel_not_found": "the webhook's channel was deleted; create a webhook for an existing "
                         "channel",
    "channel_is_archived": "the webhook's channel is archived; unarchive it or create a webhook "
                           "for another channel",
    "posting_to_general_channel_denied": "only admins may post to this channel",
    "rate_limited": "too many messages; Slack allows about one per second per webhook",
    "rollup_error": "Slack had an internal error",
}


@dataclass(frozen=True)
class Phrases:
    """The words the sink adds around the rendered templates, in one language."""

    header: str
    more_alerts: str
    more_items: str
    pods: str
    resolved: str


PHRASES = {
    "en": Phrases(
        header="*{total} alerts* in cluster `{cluster}`: {firing} firing, {resolved} resolved",
        more_alerts="…and {count} more alerts not shown ({firing} firing, {resolved} resolved)",
        more_items=" and {count} more",
        pods="Pods: ",
        resolved="*Resolved:* ",
    ),
    # Chinese text takes full-width punctuation, which ruff's RUF001 takes for look-alikes.
    "zh-CN": Phrases(
        header="集群 `{cluster}` 中有 *{total} 条告警*：{firing} 条触发，{resolved} 条已恢复",  # noqa: RUF001
        more_alerts="…另有 {count} 条告警未显示（{firing} 条触发，{resolved} 条已恢复）",  # noqa: RUF001
        more_items="，另有 {count} 个",  # noqa: RUF001
        pods="Pod：",  # noqa: RUF001
        resolved="*已恢复：*",  # noqa: RUF001
    ),
}


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack reads as control characters in mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut_escaped(text: str, limit: int) -> str:
    """Cut escaped text to `limit` characters with an ellipsis, never inside an `&...;` entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def fit_parts(parts: list[str], limit: int) -> str:
    """Join parts with newlines while they fit in `limit`; the first part is cut if needed."""
    text = cut_escaped(parts[0], limit)
    for part in parts[1:]:
        if len(text) + 1 + len(part) > limit:
            break
        text += "\n" + part
    return text


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _count(alert: Alert) -> int:
    try:
        return int(alert.annotations.get("count", "0"))
    except ValueError:
        return 0


def order_alerts(alerts: list[Alert]) -> list[Alert]:
    """Return firing alerts before resolved ones, each by count, largest first."""
    return sorted(alerts, key=lambda alert: (alert.status != "firing", -_count(alert)))


class SlackMessageBuilder:
    """Builds a run's Slack message from its alerts."""

    def __init__(self, renderer: AlertRenderer) -> None:
        self._renderer = renderer
        self._phrases = PHRASES.get(renderer.language, PHRASES["en"])

    def message(self, alerts: list[Alert]) -> dict[str, Any]:
        """Return `{"text": ..., "blocks": [...]}` for a non-empty list of alerts."""
        ordered = order_alerts(alerts)
        visible = ordered if len(ordered) < MAX_BLOCKS else ordered[:ALERT_SECTIONS]
        left_out = ordered[len(visible):]
        header = self.header(ordered)
        sections = [self.alert_text(alert) for alert in visible]
        blocks = [section(header)] + [section(text) for text in sections]
        if left_out:
            blocks.append(section(self._more_alerts(left_out)))
        fallback = fit_parts([header] + [text.split("\n", 1)[0] for text in sections],
                             FALLBACK_MAX_CHARS)
        return {"text": fallback, "blocks": blocks}

    def header(self, alerts: list[Alert]) -> str:
        firing = sum(1 for alert in alerts if alert.status == "firing")
        cluster = escape_mrkdwn(alerts[0].labels.get("cluster", "-"))
        text = self._phrases.header.format(total=len(alerts), cluster=cluster, firing=firing,
                                           resolved=len(alerts) - firing)
        return cut_escaped(text, SECTION_MAX_CHARS)

    def alert_text(self, alert: Alert) -> str:
        """Return one alert's section text: headline, pods and samples, within 3,000 characters."""
        if alert.group is None or alert.status == "resolved":
            return fit_parts([self._resolved_headline(alert)], SECTION_MAX_CHARS)
        headline = self._renderer.slack(alert.group, escape=escape_mrkdwn)
        parts = [headline]
        if alert.group.pods:
            parts.append(self._phrases.pods + self.listed(list(alert.group.pods), PODS_SHOWN))
        parts.extend(self._sample_text(line) for line in alert.group.samples)
        return fit_parts(parts, SECTION_MAX_CHARS)

    def listed(self, items: list[str], limit: int) -> str:
        """Return the first `limit` items, escaped and comma-separated, and "and N more"."""
        text = ", ".join(escape_mrkdwn(item) for item in items[:limit])
        hidden = len(items) - limit
        return text + self._phrases.more_items.format(count=hidden) if hidden > 0 else text

    def _resolved_headline(self, alert: Alert) -> str:
        summary = alert.annotations.get("summary") or alert.annotations.get("message", "")
        detail = alert.annotations.get("resolved", "")
        prefix = self._phrases.resolved if alert.status == "resolved" else ""
        text = prefix + escape_mrkdwn(summary)
        return text + (f"\n{escape_mrkdwn(detail)}" if detail else "")

    def _sample_text(self, line: str) -> str:
        # A code span keeps Slack from formatting the log line; backticks inside would end it.
        escaped = cut_escaped(escape_mrkdwn(line.replace("`", "'")), SAMPLE_SHOWN_CHARS)
        return f"`{escaped}`"

    def _more_alerts(self, left_out: list[Alert]) -> str:
        firing = sum(1 for alert in left_out if alert.status == "firing")
        return self._phrases.more_alerts.format(count=len(left_out), firing=firing,
                                                resolved=len(left_out) - firing)


def describe_slack_error(display_url: str, response: httpx.Response) -> str:
    """Name Slack's error code for a failed response and what it means."""
    code = response.text.strip()[:ERROR_BODY_CHARS]
    meaning = SLACK_ERRORS.get(code)
    message = f"Slack webhook {display_url} returned HTTP {response.status_code}"
    if code:
        message += f" {code}"
    return message + (f": {meaning}" if meaning else "")


class SlackSink:
    """Posts one message per run to a Slack incoming webhook."""

    def __init__(self, config: ReceiverConfig, client: httpx.Client | None = None,
                 renderer: AlertRenderer | None = None, clock: Clock | None = None) -> None:
        self.name = config.name
        self.required = config.required
        self._urls = config.endpoint_urls()
        self._budget_seconds = config.retry_budget_seconds
        self._client = client or http_client(config)
        self._builder = SlackMessageBuilder(renderer or AlertRenderer())
        self._clock = clock or SystemClock()

    def send(self, alerts: list[Alert]) -> Delivery:
        delivery = Delivery(self.name, self.required, attempted=len(alerts))
        if not alerts:
            return delivery
        message = self._builder.message(alerts)
        budget = RetryBudget(self._budget_seconds, self._clock)
        accepted = True
        for url in self._urls:
            result = post_with_retries(self._client, url, message, budget, receiver=self.name,
                                       count=len(alerts), describe=describe_slack_error)
            if result.failure is not None:
                delivery.failures.append(result.failure)
                accepted = False
        if accepted:
            delivery.delivered = len(alerts)
        logger.info("Slack message with %d blocks for %d alerts: %s", len(message["blocks"]),
                    len(alerts), "accepted" if accepted else "failed")
        return delivery

    def close(self) -> None:
        self._client.close()
