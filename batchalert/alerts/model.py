"""The Alert: identity in labels, everything that changes from run to run in annotations."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from batchalert.alerts.render import AlertRenderer
from batchalert.rules.aggregate import AlertGroup

# Maximum label value kept whole, in characters; longer paths keep a prefix and a hash suffix so
# that distinct paths still give distinct alerts.
LABEL_MAX_CHARS = 200
# Pods listed in the `pods` annotation before "and N more".
PODS_LISTED = 10


@dataclass(frozen=True)
class Alert:
    """One alert, in the form every receiver gets it."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    # The matches behind a firing alert; None for a resolved alert rebuilt from state.
    group: AlertGroup | None = None
    status: Literal["firing", "resolved"] = "firing"

    @property
    def fingerprint(self) -> str:
        """A stable hash of the labels: the alert's identity across runs."""
        return label_fingerprint(self.labels)

    def to_dict(self) -> dict[str, Any]:
        """Return the alert in Alertmanager's JSON shape."""
        return {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": format_time(self.starts_at),
            "endsAt": format_time(self.ends_at),
            "generatorURL": "",
            "fingerprint": self.fingerprint,
        }


def label_fingerprint(labels: dict[str, str]) -> str:
    text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def format_time(moment: datetime) -> str:
    """Format as RFC 3339 in UTC with milliseconds, as Alertmanager and Go parse it."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bounded_label(value: str) -> str:
    if len(value) <= LABEL_MAX_CHARS:
        return value
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]
    return f"{value[: LABEL_MAX_CHARS - 14]}…{digest}"


def alert_labels(group: AlertGroup, cluster: str) -> dict[str, str]:
    """Identity labels: rule, group key and routing labels; never counts or times."""
    alertname = group.rule.resolved_alertname
    if group.is_summary:
        alertname += "Overflow"
    labels = {
        "alertname": alertname,
        "rule": group.rule.name,
        "severity": group.severity,
        "rule_level": "namespace",
        "cluster": cluster,
    }
    labels.update({key: bounded_label(value) for key, value in group.key.items()})
    return labels


def _pods_text(pods: tuple[str, ...]) -> str:
    listed = ", ".join(pods[:PODS_LISTED])
    hidden = len(pods) - PODS_LISTED
    return f"{listed} and {hidden} more" if hidden > 0 else listed


def alert_annotations(group: AlertGroup, renderer: AlertRenderer) -> dict[str, str]:
    annotations = {
        "message": renderer.message(group),
        "summary": renderer.summary(group),
        "count": str(group.count),
        "first_seen": format_time(group.first),
        "last_seen": format_time(group.last),
        "pods": _pods_text(group.pods),
    }
    if group.samples:
        annotations["samples"] = "\n".join(group.samples)
    if group.requests is not None:
        annotations["requests"] = str(group.requests)
        annotations["ratio"] = f"{group.count / group.requests:.4f}" if group.requests else "0"
    if group.is_summary:
        annotations["folded_groups"] = str(group.folded_groups)
    return annotations


def build_alerts(groups: list[AlertGroup], cluster: str, renderer: AlertRenderer) -> list[Alert]:
    """Turn alert groups into alerts whose times come from the log records."""
    return [
        Alert(
            labels=alert_labels(group, cluster),
            annotations=alert_annotations(group, renderer),
            starts_at=group.first,
            ends_at=group.last,
            group=group,
        )
        for group in groups
    ]
