"""Checking that the consumer group belongs to batchalert alone.

A group that another application also uses would have its offsets moved under it: each side
would skip what the other committed. So a run refuses a group that has active members (a
subscribed consumer of some application) or committed offsets for other topics.
"""

from __future__ import annotations

import logging
import time

from kafka.admin import KafkaAdminClient
from kafka.errors import CoordinatorNotAvailableError, KafkaError

from batchalert.config import SourceConfig
from batchalert.errors import GroupConflictError, SourceError
from batchalert.source.client import consumer_settings

logger = logging.getLogger(__name__)

# Waiting for a new group coordinator: 100 tries a tenth of a second apart, 10 s at most.
_COORDINATOR_ATTEMPTS = 100
_COORDINATOR_RETRY_SECONDS = 0.1

_ADMIN_SETTINGS = (
    "bootstrap_servers", "client_id", "request_timeout_ms", "security_protocol",
    "ssl_check_hostname", "ssl_cafile", "ssl_certfile", "ssl_keyfile", "sasl_mechanism",
    "sasl_plain_username", "sasl_plain_password",
)


def check_group_is_ours(source: SourceConfig) -> None:
    """Raise GroupConflictError when another application uses `source.group`."""
    settings = consumer_settings(source)
    try:
        admin = KafkaAdminClient(**{k: settings[k] for k in _ADMIN_SETTINGS if k in settings})
    except KafkaError as exc:
        raise SourceError(f"cannot connect to Kafka to check group {source.group!r}: "
                          f"{exc}") from exc
    try:
        members, topics = _describe(admin, source.group)
    except KafkaError as exc:
        raise SourceError(f"cannot describe consumer group {source.group!r}: {exc}") from exc
    finally:
        admin.close()
    if members:
        raise GroupConflictError(
            f"consumer group {source.group!r} has {len(members)} active member(s) "
            f"({', '.join(sorted(members)[:3])}), so another application consumes with it; "
            f"give batchalert a group of its own (source.group)"
        )
    others = sorted(topics - {source.topic})
    if others:
        raise GroupConflictError(
            f"consumer group {source.group!r} has committed offsets for other topics "
            f"({', '.join(others[:5])}), so another application uses it; give batchalert a "
            f"group of its own (source.group)"
        )


def _describe(admin: KafkaAdminClient, group: str) -> tuple[list[str], set[str]]:
    """Return the group's members and committed topics, waiting out a missing coordinator.

    The first request for any group makes the broker create its offsets topic. Until that topic
    has a leader, the coordinator is "not available", so the request is retried for a while.
    """
    for attempt in range(_COORDINATOR_ATTEMPTS):
        try:
            return _active_members(admin, group), _committed_topics(admin, group)
        except CoordinatorNotAvailableError:
            if attempt == _COORDINATOR_ATTEMPTS - 1:
                raise
            time.sleep(_COORDINATOR_RETRY_SECONDS)
    raise AssertionError("unreachable")


def _active_members(admin: KafkaAdminClient, group: str) -> list[str]:
    description = admin.describe_groups([group]).get(group) or {}
    return [
        str(member.get("client_id") or member.get("member_id") or "?")
        for member in description.get("members") or []
    ]


def _committed_topics(admin: KafkaAdminClient, group: str) -> set[str]:
    offsets = admin.list_group_offsets(group).get(group) or {}
    return {tp.topic for tp in offsets}
