"""Running a job's rules over a local file of record values, without Kafka or receivers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa

from batchalert.alerts import Alert, AlertRenderer, build_alerts
from batchalert.config import JobConfig
from batchalert.pipeline import parse_chunk
from batchalert.rules import RunAggregator, RunCounts
from batchalert.rules.aggregate import GroupEvaluation
from batchalert.source.reader import RECORD_SCHEMA


@dataclass
class OfflineReport:
    """Report of a job's rules over a file: counts, every group's evaluation, the alerts."""

    counts: RunCounts
    evaluations: list[GroupEvaluation]
    alerts: list[Alert]


def values_batch(values: list[bytes], timestamp: datetime | None = None) -> pa.RecordBatch:
    """Wrap record values as a record batch of partition 0 with offsets 0, 1, 2, ...

    The columns are built by Polars: pa.array() of Python lists imports pandas.
    """
    stamp_ms = int((timestamp or datetime.now(UTC)).timestamp() * 1000)
    count = len(values)
    columns = [
        pl.Series([0] * count, dtype=pl.Int32),
        pl.Series(range(count), dtype=pl.Int64),
        pl.Series([stamp_ms] * count, dtype=pl.Int64),
        pl.Series([None] * count, dtype=pl.Binary),
        pl.Series(values, dtype=pl.Binary),
    ]
    return pa.record_batch([column.to_arrow().cast(field.type)
                            for column, field in zip(columns, RECORD_SCHEMA, strict=True)],
                           schema=RECORD_SCHEMA)


def run_rules_offline(job: JobConfig, values: list[bytes], chunk_records: int = 200_000
                      ) -> OfflineReport:
    """Parse, match and aggregate `values` with the job's rules, as a run would."""
    aggregator = RunAggregator(job.rules)
    for start in range(0, len(values), chunk_records):
        batch = values_batch(values[start:start + chunk_records])
        aggregator.add(parse_chunk(batch, job))
    renderer = AlertRenderer(job.language, job.templates)
    alerts = build_alerts(aggregator.groups(), job.cluster, renderer)
    return OfflineReport(aggregator.counts, aggregator.evaluations(), alerts)


def report_lines(report: OfflineReport) -> list[str]:
    """Describe the evaluation of every group, then the alerts that would be sent."""
    counts = report.counts
    lines = [f"records: {counts.records}, access lines: {counts.access}, other lines: "
             f"{counts.other}, malformed: {counts.malformed}"]
    if counts.malformed_by_reason:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(counts.malformed_by_reason.items()))
        lines.append(f"malformed by reason: {reasons}")
    for evaluation in report.evaluations:
        verdict = "FIRES" if evaluation.fires else "quiet"
        key = ", ".join(f"{k}={v}" for k, v in evaluation.key.items())
        lines.append(f"[{evaluation.rule}] {verdict}: {key}: {evaluation.reason}")
    lines.append(f"alerts that would be sent: {len(report.alerts)}")
    for alert in report.alerts:
        lines.append(f"- {alert.labels['alertname']} {alert.labels.get('severity', '')}: "
                     f"{alert.annotations['message']}")
    return lines
