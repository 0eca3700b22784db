"""State between runs, in a compacted Kafka topic: sent alerts, firing alerts, run locks."""

from batchalert.state.alerts import (
    AlertState,
    AlertStateStore,
    NotificationPlan,
    plan_notifications,
)
from batchalert.state.lock import RunLock
from batchalert.state.store import StateTopic, state_topic_name

__all__ = [
    "AlertState",
    "AlertStateStore",
    "NotificationPlan",
    "RunLock",
    "StateTopic",
    "plan_notifications",
    "state_topic_name",
]
