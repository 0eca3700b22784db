"""At-least-once delivery when the Kafka broker goes away during a read.

These tests stop, crash and freeze a broker of their own, so the session's broker and the
tests that use it are not disturbed. LocalKafka sends SIGTERM to a broker when the thread that
started it ends, so the broker is always started from the test's own thread, and in-process
runs go to a worker thread instead.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from batchalert.config import JobConfig
from batchalert.errors import SourceError
from batchalert.pipeline import RunOptions, RunResult, run_job
from scripts.chaos import (
    PARTITIONS,
    JobSettings,
    ReceiverPool,
    TrafficGenerator,
    crash_broker,
    plan_logged,
    write_job_file,
)
from scripts.kafka_local import LocalKafka
from tests.fixtures.kafka import unique_name
from tests.reliability.conftest import seed_for
from tests.reliability.helpers import Scenario

pytestmark = pytest.mark.kafka

# Padded records in one partition: about 18 MB. batchalert fetches at most 8 MiB per partition
# per request, so the read needs three fetches and the broker can go away between them.
BULK_RECORDS = 6_000
# Short timeouts keep the outage tests quick. The restart test's stall outlasts a stop and a
# start of the broker (about 8 s on a 2-core machine).
QUICK_TIMEOUT_SECONDS = 2.0
SHORT_STALL_SECONDS = 3.0
LONG_STALL_SECONDS = 45.0
# Bound for a run that must fail: the stall, the state topic's two writes and close at
# `timeout_seconds` each, and start-up. A run still alive after it counts as a hang.
FAILING_RUN_BOUND_SECONDS = 60.0
_WAIT_SECONDS = 120.0


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker without TLS for this module only, stopped at its end."""
    with LocalKafka(tmp_path_factory.mktemp("reliability-kafka"), tls=False) as broker:
        yield broker


@pytest.fixture
def bulk_scenario(own_kafka: LocalKafka, request: pytest.FixtureRequest) -> Scenario:
    """A topic on the module's broker with known groups and enough data for several fetches."""
    own_kafka.start()  # does nothing while the broker runs
    topic = unique_name("t", request.node.name)
    own_kafka.create_topic(topic, PARTITIONS)
    scenario = Scenario(own_kafka, topic, unique_name("g", request.node.name),
                        TrafficGenerator(random.Random(seed_for(request))))
    scenario.produce(new_groups=6, repeats=10, noise=50, bulk=BULK_RECORDS)
    return scenario


class PausedReader:
    """An on_progress hook that holds the read after its first records until released."""

    def __init__(self) -> None:
        self.reading = threading.Event()
        self.release = threading.Event()

    def __call__(self, records: int, nbytes: int) -> None:
        if not self.reading.is_set():
            self.reading.set()
            self.release.wait(_WAIT_SECONDS)


def start_run(executor: ThreadPoolExecutor, job: JobConfig, paused: PausedReader
              ) -> Future[RunResult]:
    """Start run_job in the executor's thread, holding its read at `paused`."""
    return executor.submit(partial(run_job, job, RunOptions(), on_progress=paused))


def in_process_job(scenario: Scenario, receiver_url: str, stall_seconds: float) -> JobConfig:
    settings = JobSettings(state=False, timeout_seconds=QUICK_TIMEOUT_SECONDS,
                           stall_seconds=stall_seconds)
    return scenario.job(receiver_url, settings)


class TestBrokerDuringRead:
    def test_restart_within_stall_completes(self, bulk_scenario: Scenario,
                                            receiver_pool: ReceiverPool) -> None:
        receiver = receiver_pool.new()
        job = in_process_job(bulk_scenario, receiver.url, LONG_STALL_SECONDS)
        paused = PausedReader()

        with ThreadPoolExecutor(1) as executor:
            future = start_run(executor, job, paused)
            assert paused.reading.wait(_WAIT_SECONDS)
            bulk_scenario.kafka.stop()
            paused.release.set()
            bulk_scenario.kafka.start()
            result = future.result(timeout=_WAIT_SECONDS)

        delivered = receiver_pool.delivered()
        assert result.committed
        assert result.records_read == bulk_scenario.ledger.records
        assert bulk_scenario.lost(delivered) == set()
        assert bulk_scenario.violations(delivered) == []
        assert bulk_scenario.committed() == bulk_scenario.end_offsets()

    def test_frozen_broker_fails_then_next_run_delivers(self, bulk_scenario: Scenario,
                                                        receiver_pool: ReceiverPool) -> None:
        receiver = receiver_pool.new()
        job = in_process_job(bulk_scenario, receiver.url, SHORT_STALL_SECONDS)
        paused = PausedReader()
        pid = bulk_scenario.kafka.pid
        assert pid is not None

        # SIGSTOP keeps connections open but sends no response, like a hung or cut-off node.
        with ThreadPoolExecutor(1) as executor:
            future = start_run(executor, job, paused)
            assert paused.reading.wait(_WAIT_SECONDS)
            os.kill(pid, signal.SIGSTOP)
            try:
                paused.release.set()
                with pytest.raises(SourceError) as failure:
                    future.result(timeout=FAILING_RUN_BOUND_SECONDS)
            finally:
                os.kill(pid, signal.SIGCONT)

        assert failure.value.exit_code == 3
        assert "made no progress" in str(failure.value)
        assert bulk_scenario.committed() == bulk_scenario.nothing_committed()
        assert receiver_pool.delivered() == {}

        result = run_job(job, RunOptions())

        delivered = receiver_pool.delivered()
        assert result.committed
        assert bulk_scenario.lost(delivered) == set()
        assert bulk_scenario.committed() == bulk_scenario.end_offsets()


class TestBrokerOutageCli:
    def crash_during_read(self, scenario: Scenario, job_file: Path, receiver_url: str) -> int:
        """Run `batchalert run`, crash the broker once the read started, return the exit code.

        The broker runs again afterwards; a restart after SIGKILL takes about 15 s, because
        the controller first fences the crashed broker's session.
        """
        run = scenario.start_cli(job_file, receiver_url)
        try:
            assert run.wait_for(plan_logged(PARTITIONS), _WAIT_SECONDS), run.stderr_tail()
            crash_broker(scenario.kafka)
            code = run.finish(FAILING_RUN_BOUND_SECONDS)
            assert not run.hung, run.stderr_tail()
            return code
        finally:
            run.close()
            scenario.kafka.start()

    def freeze_during_read(self, scenario: Scenario, job_file: Path, receiver_url: str) -> int:
        """Run `batchalert run`, freeze the broker (SIGSTOP) once the read started, and return
        the exit code; the broker resumes afterwards."""
        pid = scenario.kafka.pid
        assert pid is not None
        run = scenario.start_cli(job_file, receiver_url)
        try:
            assert run.wait_for(plan_logged(PARTITIONS), _WAIT_SECONDS), run.stderr_tail()
            os.kill(pid, signal.SIGSTOP)
            code = run.finish(FAILING_RUN_BOUND_SECONDS)
            assert not run.hung, run.stderr_tail()
            return code
        finally:
            os.kill(pid, signal.SIGCONT)
            run.close()

    def test_outage_past_stall_exits_3_then_delivers(self, bulk_scenario: Scenario,
                                                     receiver_pool: ReceiverPool,
                                                     tmp_path: Path) -> None:
        settings = JobSettings(state=False, timeout_seconds=QUICK_TIMEOUT_SECONDS,
                               stall_seconds=SHORT_STALL_SECONDS)
        job_file = write_job_file(tmp_path / "job.yaml", settings)

        code = self.crash_during_read(bulk_scenario, job_file, receiver_pool.new().url)

        assert code == 3
        assert bulk_scenario.committed() == bulk_scenario.nothing_committed()

        bulk_scenario.produce(new_groups=2)
        code = bulk_scenario.run_cli(job_file, receiver_pool.new().url)

        delivered = receiver_pool.delivered()
        assert code == 0
        assert bulk_scenario.lost(delivered) == set()
        assert bulk_scenario.violations(delivered) == []
        assert bulk_scenario.committed() == bulk_scenario.end_offsets()

    def test_outage_with_state_exits_3(self, bulk_scenario: Scenario,
                                       receiver_pool: ReceiverPool, tmp_path: Path) -> None:
        settings = JobSettings(state=True, timeout_seconds=QUICK_TIMEOUT_SECONDS,
                               stall_seconds=SHORT_STALL_SECONDS)
        job_file = write_job_file(tmp_path / "job.yaml", settings)

        code = self.freeze_during_read(bulk_scenario, job_file, receiver_pool.new().url)

        assert code == 3
