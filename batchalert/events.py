"""Structured INFO events of a run: start, planned ranges, posts, commit and end.

Each helper logs one INFO line and passes its fields through `extra=`, so JsonFormatter writes
them as keys of the JSON object next to `message`. Every line carries an `event` field
(`run_start`, `partition_range`, `post`, `commit`, `run_end`) to filter on.

No helper logs a secret: receiver URLs go through `mask_url`, and the job is described by its
name, topic and consumer group only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from batchalert.config import JobConfig
    from batchalert.pipeline import RunOptions, RunResult
    from batchalert.source.plan import PartitionRange

logger = logging.getLogger(__name__)

MASK = "***"
# Paths that receivers share and that carry no token, so logs may show them. Any other path can
# hold a secret: Slack and most webhook URLs are credentials in themselves.
PUBLIC_PATHS = frozenset({"", "/", "/api/v2/alerts"})


def mask_url(url: str) -> str:
    """Return `url` with its user info, query, fragment and non-public path replaced by `***`.

    Scheme, host and port stay, so the log still names the server. The path stays only when it
    is in PUBLIC_PATHS. A string that is not an absolute URL is masked whole. Masking a masked
    URL returns it unchanged.
    """
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        return MASK
    if not parts.scheme or not parts.netloc:
        return MASK

    _userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = f"{MASK}@{hostport}" if at else hostport
    path = parts.path if parts.path in PUBLIC_PATHS else "/" + MASK
    query = "?" + MASK if parts.query else ""
    fragment = "#" + MASK if parts.fragment else ""
    return f"{parts.scheme}://{netloc}{path}{query}{fragment}"


def log_run_start(job: JobConfig, options: RunOptions) -> None:
    """Log the start of a run: job, topic, consumer group and the run options."""
    source = job.source
    logger.info(
        "run of job %s started: topic %s, group %s", job.name, source.topic, source.group,
        extra={
            "event": "run_start",
            "job": job.name,
            "topic": source.topic,
            "group": source.group,
            "since_seconds": options.since_seconds,
            "dry_run": options.dry_run,
            "commits": options.commits,
            "max_records": options.max_records,
            "max_bytes": options.max_bytes,
        },
    )


def log_partition_range(r: PartitionRange) -> None:
    """Log one partition's planned offset range [start, end) and where its start came from."""
    logger.info(
        "partition %d: planned offsets %d..%d (%s)", r.partition, r.start, r.end, r.origin,
        extra={
            "event": "partition_range",
            "partition": r.partition,
            "start_offset": r.start,
            "end_offset": r.end,
            "origin": r.origin,
            "committed_offset": r.committed,
            "span": r.span,
        },
    )


def log_post(receiver: str, url: str, status: int | None, count: int) -> None:
    """Log one request that posted `count` alerts to a receiver, with its HTTP status.

    `status` is None when no response arrived (connection refused, timeout). The caller passes
    `url` masked already; it is masked again here, so an unmasked URL never reaches the log.
    """
    masked_url = mask_url(url)
    logger.info(
        "posted %d %s to receiver %s at %s: HTTP %s", count,
        "alert" if count == 1 else "alerts", receiver, masked_url,
        status if status is not None else "no response",
        extra={"event": "post", "receiver": receiver, "url": masked_url, "status": status,
               "count": count},
    )


def log_commit(offsets: Mapping[int, int]) -> None:
    """Log the committed next offset of each partition."""
    ordered = {partition: offsets[partition] for partition in sorted(offsets)}
    described = ", ".join(f"{p}: {o}" for p, o in ordered.items())
    logger.info(
        "committed offsets (partition: next offset) %s", described or "none",
        # JSON object keys are strings, so partitions are written as "0", "1", ...
        extra={"event": "commit", "offsets": {str(p): o for p, o in ordered.items()}},
    )


def log_run_end(result: RunResult) -> None:
    """Log what a run read, matched, sent and committed, as one line."""
    counts = result.counts
    logger.info(
        "run finished in %.1f s: %d records read, %d matches, %d alerts, %s",
        result.seconds, result.records_read, counts.matches, len(result.alerts),
        "offsets committed" if result.committed else "nothing committed",
        extra={"event": "run_end", **_run_end_fields(result)},
    )


def _run_end_fields(result: RunResult) -> dict[str, Any]:
    counts = result.counts
    return {
        "records_read": result.records_read,
        "bytes_read": result.bytes_read,
        "capped": result.capped,
        "access_lines": counts.access,
        "other_lines": counts.other,
        "malformed_records": counts.malformed,
        "matches": counts.matches,
        "alerts": len(result.alerts),
        "deliveries": {
            d.receiver: {"attempted": d.attempted, "delivered": d.delivered, "ok": d.ok}
            for d in result.deliveries
        },
        "committed": result.committed,
        "commit_note": result.commit_note,
        "seconds": round(result.seconds, 3),
    }
