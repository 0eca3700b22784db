"""A topic whose records' alert groups are known, and the checks run against it.

The expected groups come from the records the test produced (scripts.chaos.TrafficGenerator
notes each 404 line's namespace, workload, method and path), never from batchalert's own
parsing, so the checks stay independent of the code under test.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from batchalert.config import JobConfig, build_job
from scripts.chaos import (
    PARTITIONS,
    CliRun,
    CommitViolation,
    GroupIdentity,
    JobSettings,
    OffsetLedger,
    TrafficGenerator,
    cli_environment,
    job_document,
    produce_records,
    read_committed,
)
from scripts.kafka_local import LocalKafka

# Index of the namespace in a GroupIdentity (see scripts.chaos.IDENTITY_LABELS).
_NAMESPACE = 2


@dataclass
class Scenario:
    """A topic and a consumer group whose records' alert groups are known."""

    kafka: LocalKafka
    topic: str
    group: str
    traffic: TrafficGenerator
    ledger: OffsetLedger = field(default_factory=OffsetLedger)

    def produce(self, new_groups: int = 3, repeats: int = 4, noise: int = 20,
                bulk: int = 0) -> None:
        """Produce 404s of new and known groups, noise, and `bulk` padded records."""
        records = self.traffic.batch(new_groups, repeats, noise)
        if bulk:
            records += self.traffic.bulk(bulk)
        produce_records(self.kafka, self.topic, records, self.ledger)

    def committed(self) -> dict[int, int | None]:
        return read_committed(self.kafka.bootstrap, self.topic, self.group)

    def end_offsets(self) -> dict[int, int | None]:
        return dict(self.kafka.end_offsets(self.topic))

    @staticmethod
    def nothing_committed() -> dict[int, int | None]:
        return dict.fromkeys(range(PARTITIONS))

    def violations(self, delivered: Collection[GroupIdentity]) -> list[CommitViolation]:
        """Return the records below the committed offsets whose group is not in `delivered`."""
        return self.ledger.undelivered_below(self.committed(), delivered)

    def lost(self, delivered: Collection[GroupIdentity]) -> set[GroupIdentity]:
        """Return the groups produced so far that are not in `delivered`."""
        return self.ledger.expected - set(delivered)

    def namespaces(self) -> int:
        """Count the namespaces of the groups produced so far: the POSTs of a full read."""
        return len({identity[_NAMESPACE] for identity in self.ledger.expected})

    def job(self, receiver_url: str, settings: JobSettings) -> JobConfig:
        """Build the job for an in-process run, as the job file and environment would."""
        data = job_document(settings)
        data["source"].update(brokers=[self.kafka.bootstrap], topic=self.topic,
                              group=self.group)
        data["receivers"][0]["url"] = receiver_url
        return build_job(data, "reliability test job")

    def start_cli(self, job_file: Path, receiver_url: str) -> CliRun:
        """Start `batchalert run --job job_file` against this topic and group."""
        env = cli_environment(self.kafka.bootstrap, self.topic, self.group, receiver_url)
        return CliRun(job_file, env)

    def run_cli(self, job_file: Path, receiver_url: str) -> int:
        """Run `batchalert run` to its end and return the exit code."""
        run = self.start_cli(job_file, receiver_url)
        try:
            return run.finish()
        finally:
            run.close()
