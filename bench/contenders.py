"""The four contenders: how each one is started and how its output is checked.

- (a) kcat reads the whole topic to /dev/null, the read limit of this machine and broker.
- (b) A kafka-python consumer with batchalert's settings reads the records and drops them.
- (c) The per-message handler that batchalert replaces posts one alert per matching record.
- (d) `batchalert run`, the real command line, runs with a fresh consumer group each time.
  Variants of (d) add job-file keys.

Each check raises BenchError unless the contender read every record of the topic, so a figure
never comes from a run that stopped early.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import BenchError
from bench.job import JobOverrides, write_job
from bench.load import kcat_path


@dataclass(frozen=True)
class Target:
    """The topic a contender reads and the receiver it posts to."""

    bootstrap: str
    topic: str
    records: int
    receiver_url: str
    workdir: Path
    timeout_s: float
    job_overrides: JobOverrides = ()


@dataclass(frozen=True)
class Outcome:
    """Record count and details that a contender reported about its run."""

    records: int
    details: dict[str, Any] = field(default_factory=dict)


class Contender(ABC):
    """A way of reading the topic, run as a child process."""

    key: str  # used in options and file names
    letter: str  # the letter used in docs/benchmarks.md
    title: str
    # True when the child's standard output is the data itself and goes to /dev/null.
    discards_output = False

    @abstractmethod
    def command(self, target: Target, attempt: int) -> list[str]:
        """Return the command line of one run."""

    @abstractmethod
    def outcome(self, stdout: str, stderr: str) -> Outcome:
        """Read the records count and details from the child's output."""

    def check_posts(self, outcome: Outcome, accepted: int, requests: int) -> None:
        """Raise BenchError when the receiver did not get what the contender reports it sent.

        This default is for contenders that post nothing.
        """
        if requests:
            raise BenchError(f"the receiver got {requests} requests during a {self.title} run, "
                             f"which posts nothing; another process posts to it")


class KcatReader(Contender):
    """kcat consuming every partition from the beginning, printing each value to /dev/null."""

    key = "kcat"
    letter = "a"
    title = "kcat to /dev/null"
    discards_output = True

    def command(self, target: Target, attempt: int) -> list[str]:
        # Without -q, kcat writes one "Reached end" line per partition to standard error,
        # which the check counts the records from.
        return [kcat_path(), "-C", "-b", target.bootstrap, "-t", target.topic, "-o", "beginning",
                "-e", "-f", "%s\n"]

    def outcome(self, stdout: str, stderr: str) -> Outcome:
        ends = re.findall(r"Reached end of topic \S+ \[(\d+)\] at offset (\d+)", stderr)
        if not ends:
            raise BenchError(f"kcat reported no end of partition; its standard error was:\n"
                             f"{stderr[-2000:]}")
        # Every partition of a freshly loaded topic starts at offset 0.
        return Outcome(sum(int(offset) for _, offset in ends), {"partitions": len(ends)})


class PlainConsumer(Contender):
    """kafka-python with batchalert's fetch settings, dropping every record."""

    key = "plain"
    letter = "b"
    title = "kafka-python, records dropped"
    module = "bench.plain_consumer"

    def command(self, target: Target, attempt: int) -> list[str]:
        return [sys.executable, "-m", self.module, "--brokers", target.bootstrap,
                "--topic", target.topic, "--timeout", str(target.timeout_s)]

    def outcome(self, stdout: str, stderr: str) -> Outcome:
        report = _last_json_line(stdout, self.title)
        return Outcome(int(report.pop("records")), report)


class PerMessage(PlainConsumer):
    """The per-record string tests of the Go function and one POST per matching record."""

    key = "per-message"
    letter = "c"
    title = "per-message handler, one POST per 404"
    module = "bench.per_message"

    def command(self, target: Target, attempt: int) -> list[str]:
        return [*super().command(target, attempt), "--url", target.receiver_url]

    def check_posts(self, outcome: Outcome, accepted: int, requests: int) -> None:
        posted, failed = outcome.details["posted"], outcome.details["failed"]
        if failed or posted != accepted:
            raise BenchError(f"the per-message handler posted {posted} alerts with {failed} "
                             f"failures, and the receiver accepted {accepted}; expected no "
                             f"failures and equal counts")


class BatchalertRun(Contender):
    """`batchalert run --job FILE` with a fresh consumer group, posting and committing."""

    key = "batchalert"
    letter = "d"
    title = "batchalert run"

    def __init__(self, overrides: JobOverrides = ()) -> None:
        # A variant sets job-file keys on top of the run's own; it is keyed and titled by them.
        self.overrides = overrides
        if overrides:
            described = ", ".join(f"{key}={json.dumps(value)}" for key, value in overrides)
            self.key = f"batchalert[{described}]"
            self.letter = "d*"
            self.title = f"batchalert run with {described}"

    def command(self, target: Target, attempt: int) -> list[str]:
        group = f"bench-batchalert-{attempt}-{uuid.uuid4().hex[:8]}"
        name = uuid.uuid4().hex[:8]
        path = target.workdir / f"job-{target.topic}-{attempt}-{name}.yaml"
        write_job(path, target.bootstrap, target.topic, group, target.receiver_url,
                  (*target.job_overrides, *self.overrides))
        return [sys.executable, "-m", "batchalert.cli", "run", "--job", str(path), "--quiet"]

    def outcome(self, stdout: str, stderr: str) -> Outcome:
        read = _search(r"records read: (\d+) \((\d+) bytes\)", stdout)
        matched = _search(r"matches: (\d+), alerts: (\d+)", stdout)
        if "commit: offsets committed" not in stdout:
            raise BenchError(f"batchalert did not commit; its summary was:\n{stdout[-2000:]}")
        details: dict[str, Any] = {"bytes": int(read[1]), "matches": int(matched[0]),
                                   "alerts": int(matched[1])}
        accepted = re.search(r"receiver \S+: (\d+) of (\d+) alerts accepted \(ok\)", stdout)
        details["alerts_accepted"] = int(accepted.group(1)) if accepted else 0
        return Outcome(int(read[0]), details)

    def check_posts(self, outcome: Outcome, accepted: int, requests: int) -> None:
        if outcome.details["alerts"] and not accepted:
            raise BenchError(f"batchalert built {outcome.details['alerts']} alerts but the "
                             f"receiver accepted no request")


CONTENDERS: dict[str, Contender] = {
    c.key: c for c in (KcatReader(), PlainConsumer(), PerMessage(), BatchalertRun())
}


def _search(pattern: str, text: str) -> tuple[str, ...]:
    found = re.search(pattern, text)
    if found is None:
        raise BenchError(f"output has no line matching {pattern!r}:\n{text[-2000:]}")
    return found.groups()


def _last_json_line(stdout: str, name: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise BenchError(f"{name} printed no JSON report; its output was:\n{stdout[-2000:]}")
    report: dict[str, Any] = json.loads(lines[-1])
    return report
