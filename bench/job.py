"""The batchalert job that the benchmark runs: every 404 response of every namespace and pod.

The rule has no namespace or pod filter, so batchalert does the same work as the per-message
contender, which also matches every namespace and pod. The alert state is disabled, so every
repetition posts the same alerts instead of suppressing the repeats of the one before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from batchalert.config import JobConfig
from bench import BenchError

JOB_NAME = "bench-404"


JobOverrides = tuple[tuple[str, Any], ...]


def job_document(brokers: str, topic: str, group: str, receiver_url: str,
                 overrides: JobOverrides = ()) -> dict[str, Any]:
    """Return the job as the YAML document `batchalert run --job` reads.

    Each override is a dotted key (`source.stall_seconds`) and the value to set there.
    """
    document = _base_document(brokers, topic, group, receiver_url)
    for key, value in overrides:
        apply_override(document, key, value)
    return document


def apply_override(document: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted `key` of `document` to `value`, creating mappings on the way."""
    *parents, last = key.split(".")
    node = document
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise BenchError(f"invalid job option {key!r}: {part!r} is not a mapping in the "
                             f"job document; set a key of a mapping such as source")
        node = child
    node[last] = value


def _base_document(brokers: str, topic: str, group: str, receiver_url: str) -> dict[str, Any]:
    return {
        "name": JOB_NAME,
        "cluster": "bench",
        "source": {"brokers": [brokers], "topic": topic, "group": group},
        "rules": [{"name": "http-404", "status": [404]}],
        "receivers": [{"name": "notification-manager", "type": "notification-manager",
                       "url": receiver_url}],
        "state": {"enabled": False},
    }


def write_job(path: Path, brokers: str, topic: str, group: str, receiver_url: str,
              overrides: JobOverrides = ()) -> Path:
    """Write the job file to `path` and return the path."""
    document = job_document(brokers, topic, group, receiver_url, overrides)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def offline_job(overrides: JobOverrides = ()) -> JobConfig:
    """Return the job for in-memory runs; its broker and receiver are never contacted."""
    # Port 9 (discard) on the loopback address: nothing connects to it in an in-memory run.
    document = job_document("127.0.0.1:9", "bench", "bench", "http://127.0.0.1:9/api/v2/alerts",
                            overrides)
    return JobConfig.model_validate(document)
