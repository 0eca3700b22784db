"""Fault injection over many runs of `batchalert run`, checking at-least-once delivery.

Each iteration produces new Fluent Bit records whose alert groups are known in advance, injects
one fault, runs ``python -m batchalert.cli run`` as a subprocess and then checks that no
committed offset is ahead of what the receiver accepted. Receiver faults are refused
connections, HTTP 500, 400 and 429, read timeouts, dropped connections and slow responses.
Broker faults crash the broker during a read, and it comes back either within
`source.stall_seconds` or after the run failed. Kill faults send SIGKILL to the run after a
random delay or at a chosen point: while reading, when the receiver accepts a POST, after the
first POST, or after the commit. After the last iteration the faults clear and runs repeat
until one exits 0; every alert group produced must then have reached the receiver.

Command line (run from the repository root)::

    python -m scripts.chaos --iterations 100 --seed 1 --state off --out chaos.json

The script starts its own Kafka broker (scripts.kafka_local) in a temporary directory and fake
Notification Managers (scripts.fake_receivers) on 127.0.0.1, and stops them at the end. The
tests in tests/reliability use the same classes with the session's broker.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kafka import KafkaConsumer, TopicPartition

from batchalert.state.lock import LEASE_SECONDS
from scripts.fake_receivers import Mode, NotificationManagerServer, RecordedRequest
from scripts.kafka_local import KAFKA_VERSION, LocalKafka, OutgoingRecord, RecordPosition

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent

# Labels that identify an alert group; the expected set is built from these alone.
IDENTITY_LABELS = ("alertname", "rule", "namespace", "workload", "method", "path")
ALERT_NAME = "HTTP404NotFound"
RULE_NAME = "http-404"
NAMESPACES = ("shop", "blog", "payments", "search")
WORKLOADS = ("web-v1", "api", "worker-v2")
METHODS = ("GET", "POST", "DELETE")
PARTITIONS = 3
# Characters Kubernetes uses in generated pod-name suffixes, so pod names map to workloads.
_POD_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Size of the padding in bulk records, in bytes. batchalert's consumer fetches at most 8 MiB per
# partition per request (source/client.py), so a few thousand padded records take several.
PADDING_BYTES = 3000

KILLED = -signal.SIGKILL
# Exit code of `batchalert run` when another run holds the run lock.
LOCK_BUSY = 5

NO_FAULT = "none"
RECEIVER_FAULTS = (
    "connection-refused", "http-500", "http-500-once", "http-500-retried", "http-400",
    "http-429", "read-timeout", "connection-dropped", "slow-response",
)
KILL_FAULTS = (
    "kill-random", "kill-reading", "kill-after-accept", "kill-after-post", "kill-after-commit",
)
BROKER_FAULTS = ("broker-restart", "broker-outage")
ALL_FAULTS = (NO_FAULT, *RECEIVER_FAULTS, *KILL_FAULTS, *BROKER_FAULTS)

# How often each fault is chosen, relative to the others.
FAULT_WEIGHTS: dict[str, float] = {
    NO_FAULT: 1.0,
    **dict.fromkeys(RECEIVER_FAULTS, 0.6),
    "kill-random": 3.0, "kill-reading": 2.0, "kill-after-accept": 2.0, "kill-after-post": 2.0,
    "kill-after-commit": 1.0,
    "broker-restart": 0.4, "broker-outage": 0.4,
}

# Exit codes each fault may lead to; a state-enabled run may also exit LOCK_BUSY.
_RECEIVER_FAILURE_EXITS = frozenset({4})
EXPECTED_EXITS: dict[str, frozenset[int]] = {
    NO_FAULT: frozenset({0}),
    **dict.fromkeys(RECEIVER_FAULTS, _RECEIVER_FAILURE_EXITS),
    "http-500-retried": frozenset({0}),
    "slow-response": frozenset({0}),
    **dict.fromkeys(KILL_FAULTS, frozenset({KILLED, 0})),
    "kill-after-accept": frozenset({KILLED}),
    # A crash that lands after the read fails the commit instead, which exits 3.
    "broker-restart": frozenset({0, 3}),
    "broker-outage": frozenset({3}),
}

# Receiver timeouts in the job, in seconds; the read-timeout fault delays responses longer.
RECEIVER_READ_TIMEOUT = 1.0
_SLOW_RESPONSE_SECONDS = 0.3
_TIMEOUT_RESPONSE_SECONDS = 2.5
# Stall timeouts: longer than a restart after a crash (about 15 s on a 2-core machine), or
# short, so that an outage fails the run soon.
LONG_STALL_SECONDS = 40.0
SHORT_STALL_SECONDS = 3.0
# Upper bound of one run, in seconds; a run still alive then counts as a hang and is killed.
RUN_TIMEOUT_SECONDS = 120.0
# How long convergence may wait for a killed run's lock: its lease, plus margin for the runs.
LOCK_WAIT_SECONDS = LEASE_SECONDS + 45.0
_LOCK_RETRY_SECONDS = 5.0

GroupIdentity = tuple[str, ...]


# --- records with known alert groups -------------------------------------------------------


@dataclass(frozen=True)
class GroupKey:
    """The group key of a 404 line under the job's rule: namespace, workload, method, path."""

    namespace: str
    workload: str
    method: str
    path: str

    def identity(self) -> GroupIdentity:
        return (ALERT_NAME, RULE_NAME, self.namespace, self.workload, self.method, self.path)


@dataclass(frozen=True)
class PlannedRecord:
    """A record to produce, and the alert group it belongs to (None: it matches no rule)."""

    value: bytes
    partition: int
    identity: GroupIdentity | None


def identity_of(labels: Mapping[str, str]) -> GroupIdentity:
    """Return the identity of an alert from its labels."""
    return tuple(str(labels.get(name, "")) for name in IDENTITY_LABELS)


def access_log_time(moment: datetime) -> str:
    """Format a time as the access log does: 25/Aug/2021:01:54:36 +0000."""
    month = _MONTHS[moment.month - 1]
    return f"{moment.day:02d}/{month}/{moment.year}:{moment:%H:%M:%S} +0000"


def fluent_bit_record(namespace: str, pod: str, line: str, padding: int = 0) -> bytes:
    """Build the JSON record Fluent Bit writes for one container line."""
    now = datetime.now(UTC)
    kubernetes: dict[str, Any] = {"pod_name": pod, "namespace_name": namespace,
                                  "container_name": "app"}
    if padding:
        kubernetes["annotations"] = {"example.com/padding": "x" * padding}
    record = {"@timestamp": now.timestamp(), "log": line, "stream": "stdout",
              "time": now.isoformat().replace("+00:00", "Z"), "kubernetes": kubernetes}
    return json.dumps(record).encode()


def access_line(method: str, path: str, status: int) -> str:
    moment = datetime.now(UTC)
    return (f'198.51.100.7 - - [{access_log_time(moment)}] "{method} {path} HTTP/1.1" '
            f'{status} 153 "-" "chaos/1.0"\n')


class TrafficGenerator:
    """Fluent Bit records whose alert groups are known; the same seed gives the same records.

    Pod names follow the Deployment pattern `<workload>-<template hash>-<suffix>`, so the
    workload of each 404 line is the name the pod was built from.
    """

    def __init__(self, rng: random.Random, partitions: int = PARTITIONS) -> None:
        self._rng = rng
        self._partitions = partitions
        self._pods = {(namespace, workload): [self._pod_name(workload) for _ in range(2)]
                      for namespace in NAMESPACES for workload in WORKLOADS}
        self._groups: list[GroupKey] = []

    def _pod_name(self, workload: str) -> str:
        template_hash = "".join(self._rng.choice(_POD_NAME_CHARS) for _ in range(9))
        suffix = "".join(self._rng.choice(_POD_NAME_CHARS) for _ in range(5))
        return f"{workload}-{template_hash}-{suffix}"

    def _new_group(self) -> GroupKey:
        rng = self._rng
        group = GroupKey(rng.choice(NAMESPACES), rng.choice(WORKLOADS), rng.choice(METHODS),
                         f"/missing/page-{len(self._groups)}")
        self._groups.append(group)
        return group

    def _not_found(self, group: GroupKey, padding: int = 0) -> PlannedRecord:
        pod = self._rng.choice(self._pods[(group.namespace, group.workload)])
        line = access_line(group.method, group.path, 404)
        value = fluent_bit_record(group.namespace, pod, line, padding)
        return PlannedRecord(value, self._rng.randrange(self._partitions), group.identity())

    def _noise(self, padding: int = 0, partition: int | None = None) -> PlannedRecord:
        """Build a record that matches no rule: another status, an application line or bad
        JSON."""
        rng = self._rng
        namespace, workload = rng.choice(list(self._pods))
        pod = rng.choice(self._pods[(namespace, workload)])
        kind = rng.random()
        if kind < 0.7:
            line = access_line(rng.choice(METHODS), "/healthy", rng.choice([200, 301, 403, 500]))
            value = fluent_bit_record(namespace, pod, line, padding)
        elif kind < 0.95:
            value = fluent_bit_record(namespace, pod, 'level=info msg="cache warmed"\n', padding)
        else:
            value = b'{"log": "truncated record'
        chosen = rng.randrange(self._partitions) if partition is None else partition
        return PlannedRecord(value, chosen, None)

    def batch(self, new_groups: int, repeats: int, noise: int) -> list[PlannedRecord]:
        """Records for `new_groups` new groups, `repeats` more 404s of known groups and noise."""
        records = [self._not_found(self._new_group()) for _ in range(new_groups)]
        if self._groups:
            records += [self._not_found(self._rng.choice(self._groups)) for _ in range(repeats)]
        records += [self._noise() for _ in range(noise)]
        self._rng.shuffle(records)
        return records

    def bulk(self, count: int) -> list[PlannedRecord]:
        """Padded noise in one partition, so that reading it takes several fetches."""
        partition = self._rng.randrange(self._partitions)
        return [self._noise(PADDING_BYTES, partition) for _ in range(count)]


@dataclass(frozen=True)
class CommitViolation:
    """A record below a committed offset whose alert group the receiver never accepted."""

    partition: int
    offset: int
    committed: int
    identity: GroupIdentity


class OffsetLedger:
    """The alert group of every produced record, by partition and offset."""

    def __init__(self) -> None:
        self._groups: dict[int, dict[int, GroupIdentity]] = defaultdict(dict)
        self.expected: set[GroupIdentity] = set()
        self.records = 0

    def add(self, records: Sequence[PlannedRecord], positions: Sequence[RecordPosition]) -> None:
        for record, position in zip(records, positions, strict=True):
            self.records += 1
            if record.identity is not None:
                self._groups[position.partition][position.offset] = record.identity
                self.expected.add(record.identity)

    def undelivered_below(self, committed: Mapping[int, int | None],
                          delivered: Collection[GroupIdentity]) -> list[CommitViolation]:
        """Return each record below its partition's committed offset whose group is missing."""
        violations = []
        for partition, offset_limit in sorted(committed.items()):
            if offset_limit is None:
                continue
            for offset, identity in sorted(self._groups[partition].items()):
                if offset < offset_limit and identity not in delivered:
                    violations.append(CommitViolation(partition, offset, offset_limit, identity))
        return violations


def produce_records(kafka: LocalKafka, topic: str, records: Sequence[PlannedRecord],
                    ledger: OffsetLedger) -> None:
    """Produce the records and note the partition and offset of each in the ledger."""
    outgoing = (OutgoingRecord(r.value, partition=r.partition) for r in records)
    ledger.add(records, kafka.produce_many(topic, outgoing))


def delivered_identities(payloads: Iterable[Any]) -> Counter[GroupIdentity]:
    """Count the firing alerts of accepted webhook payloads by alert group."""
    counts: Counter[GroupIdentity] = Counter()
    for payload in payloads:
        for alert in payload.get("alerts") or []:
            if alert.get("status") == "firing":
                counts[identity_of(alert.get("labels") or {})] += 1
    return counts


def read_committed(bootstrap: str, topic: str, group: str,
                   partitions: int = PARTITIONS) -> dict[int, int | None]:
    """Read the consumer group's committed offset of every partition (None: never committed)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, request_timeout_ms=15_000)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        consumer.close()


# --- receivers ------------------------------------------------------------------------------


class ReceiverPool:
    """Fake Notification Managers, a fresh one per run, whose accepted alerts add up.

    A fresh receiver per run drops fault settings that a run left unused. Stopped receivers
    stay in the pool because a response delayed past the client's timeout is still recorded as
    accepted when it completes, as a real receiver would process it.
    """

    def __init__(self) -> None:
        self._receivers: list[NotificationManagerServer] = []
        self._lock = threading.Lock()
        self._kill_target: CliRun | None = None
        self._kill_at_accept = 0
        self._accepted_since_armed = 0

    def new(self) -> NotificationManagerServer:
        receiver = NotificationManagerServer(on_accept=self._on_accept).start()
        self._receivers.append(receiver)
        return receiver

    def arm_kill_on_accept(self, run: CliRun, nth: int) -> None:
        """SIGKILL `run` when the receivers accept its `nth` POST, before the response leaves."""
        with self._lock:
            self._kill_target, self._kill_at_accept = run, nth
            self._accepted_since_armed = 0

    def disarm(self) -> None:
        with self._lock:
            self._kill_target = None

    def _on_accept(self, record: RecordedRequest) -> None:
        # Runs in the server's handler thread after recording the payload and before it writes
        # the response, so the killed run never learns that the POST succeeded.
        with self._lock:
            self._accepted_since_armed += 1
            target = self._kill_target
            if target is None or self._accepted_since_armed < self._kill_at_accept:
                return
            self._kill_target = None
        target.kill()

    def delivered(self) -> Counter[GroupIdentity]:
        """Count every firing alert any receiver of the pool accepted, by alert group."""
        return delivered_identities(p for r in self._receivers for p in r.received)

    def close(self) -> None:
        for receiver in self._receivers:
            receiver.stop()


def apply_receiver_fault(receiver: NotificationManagerServer, fault: str,
                         posts: int = 1000) -> None:
    """Set `receiver` up to fail (or slow down) the way `fault` names; others change nothing.

    The HTTP 500, 400 and 429 faults fail the next `posts` POST requests. The default is
    more than any run sends.
    """
    persistent = posts
    actions: dict[str, Callable[[], None]] = {
        "connection-refused": receiver.refuse,
        "http-500": lambda: receiver.fail_next(persistent, 500),
        "http-500-once": lambda: receiver.fail_next(1, 500),
        "http-500-retried": lambda: receiver.fail_next(1, 500),
        "http-400": lambda: receiver.fail_next(persistent, 400),
        "http-429": lambda: receiver.fail_next(persistent, 429, retry_after=1),
        "read-timeout": lambda: receiver.delay(_TIMEOUT_RESPONSE_SECONDS),
        "connection-dropped": lambda: receiver.set_mode(Mode.DROP_CONNECTION),
        "slow-response": lambda: receiver.delay(_SLOW_RESPONSE_SECONDS),
    }
    action = actions.get(fault)
    if action is not None:
        action()


# --- the job and the command line -----------------------------------------------------------


@dataclass(frozen=True)
class JobSettings:
    """Settings of the job file that the faults depend on."""

    state: bool = False
    timeout_seconds: float = 5.0
    stall_seconds: float = LONG_STALL_SECONDS
    read_timeout_seconds: float = RECEIVER_READ_TIMEOUT
    # 0 turns retries off, so that every receiver fault fails the run.
    retry_budget_seconds: float = 0.0
    # Run lock lease in seconds; short leases let a killed run's lock expire within a test.
    lock_lease_seconds: float = 60.0


def job_document(settings: JobSettings) -> dict[str, Any]:
    """Return the job file's content; brokers, topic, group and URL come from the environment."""
    return {
        "name": "chaos",
        "cluster": "chaos",
        "source": {"timeout_seconds": settings.timeout_seconds,
                   "stall_seconds": settings.stall_seconds},
        # A high max_alerts keeps every group its own alert, since folding groups into a
        # summary alert would hide their identity from the check.
        "rules": [{"name": RULE_NAME, "alertname": ALERT_NAME, "status": [404],
                   "max_alerts": 100_000}],
        "receivers": [{"name": "kubesphere", "type": "notification-manager",
                       "timeout": {"connect": 1.0, "read": settings.read_timeout_seconds},
                       "retry_budget_seconds": settings.retry_budget_seconds}],
        "state": {"enabled": settings.state, "lock_lease_seconds": settings.lock_lease_seconds},
    }


def write_job_file(path: Path, settings: JobSettings) -> Path:
    path.write_text(yaml.safe_dump(job_document(settings), sort_keys=False), encoding="utf-8")
    return path


def cli_environment(bootstrap: str, topic: str, group: str, receiver_url: str
                    ) -> dict[str, str]:
    """Return the environment for `batchalert run`: this one without BATCHALERT_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHALERT_")}
    env.update(BATCHALERT_BROKERS=bootstrap, BATCHALERT_TOPIC=topic, BATCHALERT_GROUP=group,
               BATCHALERT_RECEIVER_URL=receiver_url)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


class CliRun:
    """One `batchalert run` subprocess whose JSON log lines can trigger a SIGKILL.

    The process runs in its own process group, and `kill` sends SIGKILL to the whole group.
    Off a terminal the command line logs one JSON object per line on standard error. A reader
    thread collects them, so callers can wait for an event such as `partition_range` or `post`.
    """

    def __init__(self, job_file: Path, env: Mapping[str, str]) -> None:
        command = [sys.executable, "-m", "batchalert.cli", "run", "--job", str(job_file)]
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=dict(env), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self.hung = False
        self._changed = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read_stderr, name="chaos-stderr",
                                        daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            event = _parse_json_line(line)
            with self._changed:
                self.lines.append(line)
                if event is not None:
                    self.events.append(event)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool],
                 timeout: float) -> bool:
        """Wait until `predicate(events)` holds; False when the output ended or time ran out."""
        with self._changed:
            return self._changed.wait_for(
                lambda: predicate(self.events) or self._ended, timeout
            ) and predicate(self.events)

    def kill(self) -> None:
        """Send SIGKILL to the run's process group, unless it already exited."""
        if self.process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def finish(self, timeout: float = RUN_TIMEOUT_SECONDS) -> int:
        """Wait for the exit code; a run still alive after `timeout` seconds is a hang."""
        try:
            code = self.process.wait(timeout=max(0.0, self.started + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.hung = True
            self.kill()
            code = self.process.wait(timeout=30)
        self._reader.join(timeout=30)
        return code

    def close(self) -> None:
        """Kill the run if it still runs and release its pipe."""
        self.kill()
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def stderr_tail(self, lines: int = 15) -> str:
        with self._changed:
            return "\n".join(self.lines[-lines:])


def _parse_json_line(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def count_events(events: Iterable[Mapping[str, Any]], name: str) -> int:
    return sum(1 for event in events if event.get("event") == name)


def plan_logged(partitions: int) -> Callable[[list[dict[str, Any]]], bool]:
    """Predicate: every partition's planned range is logged, so the read has started."""
    return lambda events: count_events(events, "partition_range") >= partitions


def event_logged(name: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: count_events(events, name) > 0


def lock_acquired(events: list[dict[str, Any]]) -> bool:
    """Predicate: the run logged that it holds the run lock."""
    return any(str(e.get("message", "")).startswith("run lock ") and
               "acquired" in str(e.get("message", "")) for e in events)


def kill_moment(events: Iterable[Mapping[str, Any]]) -> str:
    """Name the last step a killed run had logged: starting, reading, posting or committed."""
    names = {event.get("event") for event in events}
    if "commit" in names:
        return "after-commit"
    if "post" in names:
        return "posting"
    if "partition_range" in names:
        return "reading"
    return "starting"


# --- the broker -----------------------------------------------------------------------------


def crash_broker(kafka: LocalKafka) -> None:
    """Kill the broker with SIGKILL at once, as a crashed node; its data stays on disk."""
    pid = kafka.pid
    if pid is not None:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # stop() reaps the killed process and deletes its pid file.
    kafka.stop()


# --- the chaos run --------------------------------------------------------------------------


@dataclass
class ChaosSettings:
    """Settings of a chaos run: iterations, faults, and whether runs keep state."""

    iterations: int
    seed: int
    # off: state disabled in every run; on: enabled in every run; mixed: chosen per run.
    state_mode: str = "off"
    faults: tuple[str, ...] = ALL_FAULTS
    # Stop starting iterations after this many seconds; None: run them all.
    max_seconds: float | None = None
    # Faults in this order, repeated, instead of random choices from `faults`.
    schedule: tuple[str, ...] | None = None


@dataclass
class IterationRecord:
    """The fault, exit code and check result of one iteration."""

    index: int
    fault: str
    state: bool
    exit_code: int
    moment: str | None
    seconds: float
    violations: int


@dataclass
class ChaosSummary:
    """The figures of a chaos run."""

    seed: int
    state_mode: str
    iterations_planned: int
    iterations: int = 0
    runs: int = 0
    records_produced: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    exit_codes: dict[str, Counter[int]] = field(default_factory=dict)
    kill_moments: Counter[str] = field(default_factory=Counter)
    lock_busy_runs: int = 0
    unexpected_exits: list[dict[str, Any]] = field(default_factory=list)
    hangs: int = 0
    commit_checks: int = 0
    commits_ahead_of_delivery: int = 0
    ahead_examples: list[dict[str, Any]] = field(default_factory=list)
    groups_expected: int = 0
    groups_delivered: int = 0
    groups_lost: list[list[str]] = field(default_factory=list)
    groups_repeated: int = 0
    repeat_deliveries: int = 0
    final_attempts: int = 0
    final_exit_code: int | None = None
    unread_partitions: dict[int, list[int | None]] = field(default_factory=dict)
    wall_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["faults"] = dict(sorted(self.faults.items()))
        data["exit_codes"] = {k: {str(c): n for c, n in sorted(v.items())}
                              for k, v in sorted(self.exit_codes.items())}
        data["kill_moments"] = dict(sorted(self.kill_moments.items()))
        data["groups_lost_count"] = len(self.groups_lost)
        return data


def summary_document(summary: ChaosSummary, iterations: Sequence[IterationRecord],
                     command: str) -> dict[str, Any]:
    """Return the JSON document of a chaos run: command, machine, figures, each iteration."""
    return {"command": command, "machine": machine_description(), **summary.to_json(),
            "per_iteration": [asdict(record) for record in iterations]}


class ChaosRun:
    """Iterations of produce, inject a fault, run, check; then convergence and the verdict.

    `kafka` must be running. Broker faults stop and start it, so pass a broker of your own
    when `settings.faults` contains any of BROKER_FAULTS. Call `run` from the thread that
    started `kafka`: LocalKafka ties a broker to the thread that started it.
    """

    def __init__(self, kafka: LocalKafka, topic: str, group: str, workdir: Path,
                 settings: ChaosSettings) -> None:
        self._kafka = kafka
        self._topic = topic
        self._group = group
        self._workdir = workdir
        self._settings = settings
        self._rng = random.Random(settings.seed)
        self._traffic = TrafficGenerator(random.Random(settings.seed + 1))
        self.ledger = OffsetLedger()
        self.receivers = ReceiverPool()
        self.summary = ChaosSummary(settings.seed, settings.state_mode, settings.iterations)
        self.records: list[IterationRecord] = []
        self._weights = [FAULT_WEIGHTS[f] for f in settings.faults]
        self._last_committed: dict[int, int | None] = {}

    def run(self) -> ChaosSummary:
        """Run the iterations, then converge and fill in the summary."""
        started = time.monotonic()
        self._last_committed = read_committed(self._kafka.bootstrap, self._topic, self._group)
        try:
            for index in range(self._settings.iterations):
                if self._out_of_time(started):
                    break
                self._iteration(index)
            self._converge()
            self._verdict()
        finally:
            self.receivers.close()
        self.summary.wall_seconds = round(time.monotonic() - started, 1)
        return self.summary

    def _out_of_time(self, started: float) -> bool:
        limit = self._settings.max_seconds
        return limit is not None and time.monotonic() - started > limit

    def _choose_fault(self, index: int) -> str:
        schedule = self._settings.schedule
        if schedule:
            return schedule[index % len(schedule)]
        return self._rng.choices(self._settings.faults, self._weights)[0]

    def _choose_state(self) -> bool:
        mode = self._settings.state_mode
        return mode == "on" or (mode == "mixed" and self._rng.random() < 0.5)

    def _produce(self, fault: str) -> None:
        rng = self._rng
        records = self._traffic.batch(new_groups=rng.randint(1, 3), repeats=rng.randint(0, 6),
                                      noise=rng.randint(5, 40))
        if fault in BROKER_FAULTS:
            records += self._traffic.bulk(10_000)
        elif fault == "kill-reading" or rng.random() < 0.1:
            records += self._traffic.bulk(6_000)
        produce_records(self._kafka, self._topic, records, self.ledger)

    def _job_file(self, fault: str, state: bool) -> Path:
        settings = JobSettings(
            state=state,
            stall_seconds=SHORT_STALL_SECONDS if fault == "broker-outage" else LONG_STALL_SECONDS,
            retry_budget_seconds=5.0 if fault == "http-500-retried" else 0.0,
        )
        return write_job_file(self._workdir / f"job-{fault}-{int(state)}.yaml", settings)

    def _start_run(self, job_file: Path, receiver: NotificationManagerServer) -> CliRun:
        env = cli_environment(self._kafka.bootstrap, self._topic, self._group, receiver.url)
        self.summary.runs += 1
        return CliRun(job_file, env)

    def _iteration(self, index: int) -> None:
        fault = self._choose_fault(index)
        state = self._choose_state()
        self._produce(fault)
        receiver = self.receivers.new()
        apply_receiver_fault(receiver, fault)
        job_file = self._job_file(fault, state)
        run = self._start_run(job_file, receiver)
        try:
            self._inject(fault, run)
            code = run.finish()
        finally:
            run.close()
            self.receivers.disarm()
            self._kafka.start()  # does nothing while the broker runs
            receiver.stop()
        self._record(index, fault, state, run, code, receiver)

    def _inject(self, fault: str, run: CliRun) -> None:
        """Inject a kill or broker fault into the running `run`; receiver faults are set."""
        rng = self._rng
        if fault == "kill-random":
            self._kill_at(run, rng.uniform(0.0, 2.2))
        elif fault == "kill-reading":
            self._kill_after(run, plan_logged(PARTITIONS), rng.uniform(0.0, 0.3))
        elif fault == "kill-after-accept":
            self.receivers.arm_kill_on_accept(run, rng.randint(1, 2))
        elif fault == "kill-after-post":
            self._kill_after(run, event_logged("post"), rng.uniform(0.0, 0.12))
        elif fault == "kill-after-commit":
            self._kill_after(run, event_logged("commit"), 0.0)
        elif fault in BROKER_FAULTS:
            self._broker_fault(fault, run)

    def _kill_at(self, run: CliRun, delay: float) -> None:
        with suppress(subprocess.TimeoutExpired):
            run.process.wait(timeout=delay)
            return
        run.kill()

    def _kill_after(self, run: CliRun, predicate: Callable[[list[dict[str, Any]]], bool],
                    delay: float) -> None:
        if run.wait_for(predicate, RUN_TIMEOUT_SECONDS):
            time.sleep(delay)
            run.kill()

    def _broker_fault(self, fault: str, run: CliRun) -> None:
        """Crash the broker once the read started; restart it at once or after the run."""
        if not run.wait_for(plan_logged(PARTITIONS), RUN_TIMEOUT_SECONDS):
            return
        crash_broker(self._kafka)
        if fault == "broker-outage":
            run.finish()
        self._kafka.start()

    def _record(self, index: int, fault: str, state: bool, run: CliRun, code: int,
                receiver: NotificationManagerServer) -> None:
        summary = self.summary
        summary.iterations += 1
        summary.faults[fault] += 1
        summary.exit_codes.setdefault(fault, Counter())[code] += 1
        violations, moved = self._check_commits()
        moment = self._kill_moment(run, code, moved, bool(receiver.requests))
        if moment is not None:
            summary.kill_moments[moment] += 1
        summary.lock_busy_runs += code == LOCK_BUSY
        summary.hangs += run.hung
        expected = EXPECTED_EXITS[fault] | ({LOCK_BUSY} if state else set())
        if code not in expected or run.hung:
            summary.unexpected_exits.append({"iteration": index, "fault": fault,
                                             "state": state, "exit_code": code,
                                             "stderr_tail": run.stderr_tail()})
        self.records.append(IterationRecord(index, fault, state, code, moment,
                                            round(time.monotonic() - run.started, 2),
                                            violations))
        logger.info("iteration %d: %s, state %s, exit %d%s, %d commit violations", index,
                    fault, "on" if state else "off", code, f" ({moment})" if moment else "",
                    violations)

    @staticmethod
    def _kill_moment(run: CliRun, code: int, moved: bool, posted: bool) -> str | None:
        """Name where a killed run stopped; None when the run was not killed.

        `posted` is True when the run's receiver got a request. The run logs a POST only once
        the response arrives, so a kill in between leaves no `post` event.
        """
        if code != KILLED:
            return None
        moment = kill_moment(run.events)
        if posted and moment in ("starting", "reading"):
            moment = "posting"
        # Offsets that moved without a logged commit: the kill landed inside the commit.
        return "during-commit" if moved and moment != "after-commit" else moment

    def _check_commits(self) -> tuple[int, bool]:
        """Count records below committed offsets whose group the receivers never accepted.

        Also return whether the committed offsets moved since the previous check.
        """
        committed = read_committed(self._kafka.bootstrap, self._topic, self._group)
        delivered = self.receivers.delivered()
        violations = self.ledger.undelivered_below(committed, delivered)
        self.summary.commit_checks += 1
        self.summary.commits_ahead_of_delivery += len(violations)
        for violation in violations[: max(0, 10 - len(self.summary.ahead_examples))]:
            self.summary.ahead_examples.append(asdict(violation))
        moved = committed != self._last_committed
        self._last_committed = committed
        return len(violations), moved

    def _converge(self) -> None:
        """Run without faults until a run exits 0, waiting out a killed run's lock."""
        state = self._settings.state_mode != "off"
        job_file = write_job_file(self._workdir / "job-final.yaml", JobSettings(state=state))
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        code = None
        while code != 0 and time.monotonic() < deadline:
            if code is not None:
                time.sleep(_LOCK_RETRY_SECONDS)
            code = self._final_attempt(job_file)
        self.summary.final_exit_code = code
        self._check_commits()

    def _final_attempt(self, job_file: Path) -> int:
        receiver = self.receivers.new()
        run = self._start_run(job_file, receiver)
        try:
            code = run.finish()
        finally:
            run.close()
            receiver.stop()
        self.summary.final_attempts += 1
        if code not in (0, LOCK_BUSY):
            logger.warning("final run exited %d:\n%s", code, run.stderr_tail())
        return code

    def _verdict(self) -> None:
        summary = self.summary
        delivered = self.receivers.delivered()
        expected = self.ledger.expected
        summary.records_produced = self.ledger.records
        summary.groups_expected = len(expected)
        summary.groups_delivered = len(expected & delivered.keys())
        summary.groups_lost = [list(identity) for identity in sorted(expected - delivered.keys())]
        summary.groups_repeated = sum(1 for n in delivered.values() if n > 1)
        summary.repeat_deliveries = sum(n - 1 for n in delivered.values() if n > 1)
        committed = read_committed(self._kafka.bootstrap, self._topic, self._group)
        ends = self._kafka.end_offsets(self._topic)
        summary.unread_partitions = {p: [committed.get(p), end] for p, end in ends.items()
                                     if committed.get(p) != end}


# --- command line ---------------------------------------------------------------------------


def machine_description() -> dict[str, Any]:
    """Describe the machine the figures were measured on."""
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "kafka": KAFKA_VERSION,
    }


def _cpu_model() -> str:
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


@contextmanager
def own_broker(workdir: Path) -> Iterator[LocalKafka]:
    """Start a broker without TLS whose state lives in `workdir`, and stop it afterwards."""
    kafka = LocalKafka(workdir / "kafka", tls=False)
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


def run_with_own_broker(settings: ChaosSettings, workdir: Path) -> ChaosRun:
    """Run the chaos iterations against a broker of their own; return the finished run."""
    with own_broker(workdir) as kafka:
        topic = f"chaos-{settings.seed}-{int(time.time())}"
        kafka.create_topic(topic, PARTITIONS)
        chaos = ChaosRun(kafka, topic, f"batchalert-{topic}", workdir, settings)
        chaos.run()
        return chaos


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.chaos",
        description="Inject faults into many runs of `batchalert run` and check that every "
                    "alert group is delivered at least once.",
    )
    parser.add_argument("--iterations", type=int, default=100, help="iterations to run")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random choices")
    parser.add_argument("--state", choices=["off", "on", "mixed"], default="off",
                        help="state.enabled in the runs: off, on, or chosen per run")
    parser.add_argument("--faults", default=",".join(ALL_FAULTS),
                        help="comma-separated faults to choose from (default: all)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="start no iteration after this many minutes")
    parser.add_argument("--out", type=Path, help="also write the JSON summary to this file")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (broker data, job files)")
    return parser.parse_args(argv)


def _settings_from(arguments: argparse.Namespace) -> ChaosSettings:
    faults = tuple(f.strip() for f in arguments.faults.split(",") if f.strip())
    unknown = sorted(set(faults) - set(ALL_FAULTS))
    if unknown or not faults:
        raise SystemExit(f"invalid --faults {arguments.faults!r}: unknown {unknown}; choose "
                         f"from {', '.join(ALL_FAULTS)}")
    max_seconds = arguments.max_minutes * 60 if arguments.max_minutes is not None else None
    return ChaosSettings(arguments.iterations, arguments.seed, arguments.state, faults,
                         max_seconds)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chaos iterations and print the JSON summary.

    Return 1 when a group was lost, an offset was committed ahead of delivery, a run hung or
    the last run failed, and 0 otherwise.
    """
    arguments = _parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    logging.getLogger("scripts.fake_receivers").setLevel(logging.WARNING)
    logging.getLogger("scripts.kafka_local").setLevel(logging.WARNING)
    settings = _settings_from(arguments)
    workdir = Path(tempfile.mkdtemp(prefix="batchalert-chaos-"))
    try:
        chaos = run_with_own_broker(settings, workdir)
    finally:
        if not arguments.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    summary = chaos.summary
    command = " ".join(["python -m scripts.chaos", *(argv or sys.argv[1:])])
    text = json.dumps(summary_document(summary, chaos.records, command), indent=2)
    print(text)
    if arguments.out is not None:
        arguments.out.write_text(text + "\n", encoding="utf-8")
    failed = summary.groups_lost or summary.commits_ahead_of_delivery or summary.hangs
    return 1 if failed or summary.final_exit_code != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
