"""Alert state between runs, for repeat suppression and resolution.

Each alert identity (its fingerprint) has one state record: its labels and annotations, the
first and last log times seen, when it was last sent and when a run last saw it match. A run
then decides, per alert:

- an alert sent less than `realert` ago is not sent again to receivers that notify people
  (Notification Manager, Slack, webhooks); Alertmanager gets every firing alert every run, since
  it needs the re-sends to keep the alert firing;
- an alert that was firing and has seen no match for `resolve_after` goes out as resolved, to
  every receiver, and its state is deleted.

State is written after every required receiver accepted and before the offsets are committed.
So a crash can at worst leave state that is older than the delivery (a repeat on the next run),
never state that claims a delivery that did not happen (a lost alert). A corrupt state record is
reported and skipped, which again can only repeat an alert.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from batchalert.alerts.model import Alert, format_time
from batchalert.state.store import StateTopic

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertState:
    """The stored state of one alert identity."""

    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    ends_at: str
    last_sent_at: float
    last_match_at: float

    def to_json(self) -> dict[str, Any]:
        return {"labels": self.labels, "annotations": self.annotations,
                "starts_at": self.starts_at, "ends_at": self.ends_at,
                "last_sent_at": self.last_sent_at, "last_match_at": self.last_match_at}

    @classmethod
    def from_json(cls, fingerprint: str, value: dict[str, Any]) -> AlertState:
        return cls(
            fingerprint=fingerprint,
            labels={str(k): str(v) for k, v in dict(value["labels"]).items()},
            annotations={str(k): str(v) for k, v in dict(value.get("annotations", {})).items()},
            starts_at=str(value["starts_at"]),
            ends_at=str(value["ends_at"]),
            last_sent_at=float(value["last_sent_at"]),
            last_match_at=float(value["last_match_at"]),
        )


@dataclass
class NotificationPlan:
    """The alerts of one run, split by what each kind of receiver should get."""

    firing: list[Alert] = field(default_factory=list)
    fresh: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    suppressed: int = 0
    updates: dict[str, AlertState | None] = field(default_factory=dict)

    def for_people(self) -> list[Alert]:
        """Alerts for receivers that notify people: new or due again, and resolved."""
        return self.fresh + self.resolved

    def for_alertmanager(self) -> list[Alert]:
        """Alerts for Alertmanager: every firing alert, and resolved."""
        return self.firing + self.resolved


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _resolved_alert(state: AlertState) -> Alert:
    """Rebuild a resolved alert from its stored state; endsAt is its last log time."""
    annotations = dict(state.annotations)
    annotations["resolved"] = "no matching requests since " + annotations.get("last_seen", "")
    ends_at = _parse_time(state.ends_at)
    starts_at = min(_parse_time(state.starts_at), ends_at)
    return Alert(labels=dict(state.labels), annotations=annotations, starts_at=starts_at,
                 ends_at=ends_at, status="resolved")


def plan_notifications(alerts: list[Alert], states: dict[str, AlertState], now: float,
                       realert_seconds: float, resolve_after_seconds: float) -> NotificationPlan:
    """Split this run's alerts into fresh, suppressed and resolved ones, and new state."""
    plan = NotificationPlan(firing=list(alerts))
    seen = set()
    for alert in alerts:
        fingerprint = alert.fingerprint
        seen.add(fingerprint)
        previous = states.get(fingerprint)
        due = previous is None or now - previous.last_sent_at >= realert_seconds
        if due:
            plan.fresh.append(alert)
        else:
            plan.suppressed += 1
        plan.updates[fingerprint] = _next_state(alert, previous, now, due)
    for fingerprint, state in sorted(states.items()):
        if fingerprint in seen or now - state.last_match_at < resolve_after_seconds:
            continue
        plan.resolved.append(_resolved_alert(state))
        plan.updates[fingerprint] = None
    return plan


def _next_state(alert: Alert, previous: AlertState | None, now: float, sent: bool
                ) -> AlertState:
    starts_at = format_time(alert.starts_at)
    if previous is not None:
        starts_at = min(previous.starts_at, starts_at)
    state = AlertState(
        fingerprint=alert.fingerprint, labels=dict(alert.labels),
        annotations=dict(alert.annotations), starts_at=starts_at,
        ends_at=format_time(alert.ends_at), last_sent_at=now, last_match_at=now,
    )
    if previous is not None and not sent:
        state = replace(state, last_sent_at=previous.last_sent_at)
    return state


class AlertStateStore:
    """Alert state of one job in the state topic."""

    def __init__(self, topic: StateTopic, job_name: str) -> None:
        self._topic = topic
        self._prefix = f"alert/{job_name}/"

    def load(self) -> dict[str, AlertState]:
        """Read the latest state of every alert identity; corrupt records are skipped."""
        latest: dict[str, dict[str, Any] | None] = {}
        for record in self._topic.read_all(self._prefix):
            latest[record.key.removeprefix(self._prefix)] = record.value
        states = {}
        for fingerprint, value in latest.items():
            if value is None or value.get("corrupt"):
                continue
            try:
                states[fingerprint] = AlertState.from_json(fingerprint, value)
            except (KeyError, TypeError, ValueError) as exc:
                self._topic.corrupt_records += 1
                logger.warning("state of alert %s is unreadable (%s); skipped, so it may be "
                               "sent again", fingerprint, exc)
        return states

    def save(self, updates: dict[str, AlertState | None]) -> None:
        """Write new states and delete resolved ones."""
        if updates:
            self._topic.append({
                self._prefix + fingerprint: None if state is None else state.to_json()
                for fingerprint, state in sorted(updates.items())
            })
