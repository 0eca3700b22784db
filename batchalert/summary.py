"""The text summary printed at the end of a run."""

from __future__ import annotations

import json
from typing import Any

from batchalert.pipeline import RunResult


def summary_lines(result: RunResult) -> list[str]:
    """Describe what the run read, matched, sent and committed."""
    lines = [f"topic {result.plan.topic}, group {result.plan.group}"]
    lines += _record_lines(result)
    lines += _alert_lines(result)
    for r in result.plan.ranges:
        upto = result.next_offsets.get(r.partition, r.start)
        lines.append(f"partition {r.partition}: offsets {r.start}..{r.end} ({r.origin}), "
                     f"read up to {upto}")
    lines.append(f"commit: {result.commit_note}")
    return lines


def _record_lines(result: RunResult) -> list[str]:
    counts = result.counts
    capped = " (capped by --max-records/--max-bytes)" if result.capped else ""
    lines = [
        f"records read: {result.records_read} ({result.bytes_read} bytes){capped}",
        f"access lines: {counts.access}, other lines: {counts.other}, "
        f"malformed: {counts.malformed}",
    ]
    if counts.skipped:
        lines.append(f"not decoded: {counts.skipped} well-formed records without any of the "
                     f"rules' status codes (access and other lines above count the decoded "
                     f"records only)")
    if counts.malformed_by_reason:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(counts.malformed_by_reason.items()))
        lines.append(f"malformed by reason: {reasons}")
    return lines


def _alert_lines(result: RunResult) -> list[str]:
    lines = [f"matches: {result.counts.matches}, alerts: {len(result.alerts)}"]
    plan = result.notifications
    if plan is not None and (plan.suppressed or plan.resolved):
        lines.append(f"repeats held back (sent within realert): {plan.suppressed}, "
                     f"resolved alerts added: {len(plan.resolved)}")
    for delivery in result.deliveries:
        state = "ok" if delivery.ok else "FAILED"
        lines.append(f"receiver {delivery.receiver}: {delivery.delivered} of "
                     f"{delivery.attempted} alerts accepted ({state})")
    return lines


def alerts_json(result: RunResult) -> str:
    """Return the run's alerts as a JSON array in Alertmanager's shape."""
    payload: list[dict[str, Any]] = [alert.to_dict() for alert in result.alerts]
    return json.dumps(payload, indent=2, ensure_ascii=False)
