"""At-least-once delivery when `batchalert run` is killed with SIGKILL.

A short version of scripts/chaos.py: runs of the real command line are killed at random
delays and at chosen points (while reading, when the receiver accepts a POST, after the
first POST, after the commit), with new records between runs. After the kills one run must
complete, and then every alert group produced has reached the receiver at least once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from scripts.chaos import (
    KILL_FAULTS,
    KILLED,
    LOCK_BUSY,
    ChaosRun,
    ChaosSettings,
    JobSettings,
    ReceiverPool,
    lock_acquired,
    write_job_file,
)
from scripts.kafka_local import LocalKafka
from tests.reliability.helpers import Scenario

pytestmark = pytest.mark.kafka

# Each kill point twice, in a fixed order.
KILL_SCHEDULE = KILL_FAULTS * 2
# A killed run's lock expires LEASE_SECONDS after its last renewal. The lock test waits for
# that, plus margin for the runs in between.
# A short lease, so that the killed run's lock expires within the test.
_TEST_LEASE_SECONDS = 8.0
_LOCK_WAIT_SECONDS = _TEST_LEASE_SECONDS + 45.0
_LOCK_RETRY_SECONDS = 2.0


def test_kills_lose_no_alert_group(kafka: LocalKafka, scenario: Scenario,
                                   tmp_path: Path) -> None:
    settings = ChaosSettings(iterations=len(KILL_SCHEDULE), seed=7, state_mode="off",
                             faults=KILL_FAULTS, schedule=KILL_SCHEDULE)
    chaos = ChaosRun(kafka, scenario.topic, scenario.group, tmp_path, settings)

    summary = chaos.run()

    killed = sum(codes.get(KILLED, 0) for codes in summary.exit_codes.values())
    assert summary.iterations == len(KILL_SCHEDULE)
    assert killed >= len(KILL_FAULTS)
    assert summary.unexpected_exits == []
    assert summary.hangs == 0
    assert summary.commits_ahead_of_delivery == 0
    assert summary.final_exit_code == 0
    assert summary.groups_expected > 0
    assert summary.groups_lost == []
    assert summary.unread_partitions == {}


def test_killed_run_lock_expires(scenario: Scenario, receiver_pool: ReceiverPool,
                                 tmp_path: Path) -> None:
    settings = JobSettings(state=True, lock_lease_seconds=_TEST_LEASE_SECONDS)
    job_file = write_job_file(tmp_path / "job.yaml", settings)
    scenario.produce(new_groups=3)
    run = scenario.start_cli(job_file, receiver_pool.new().url)
    try:
        assert run.wait_for(lock_acquired, 60), run.stderr_tail()
        run.kill()
        assert run.finish() == KILLED
    finally:
        run.close()
    scenario.produce(new_groups=2)

    blocked = scenario.run_cli(job_file, receiver_pool.new().url)
    codes = [blocked]
    deadline = time.monotonic() + _LOCK_WAIT_SECONDS
    while codes[-1] == LOCK_BUSY and time.monotonic() < deadline:
        time.sleep(_LOCK_RETRY_SECONDS)
        codes.append(scenario.run_cli(job_file, receiver_pool.new().url))

    delivered = receiver_pool.delivered()
    assert blocked == LOCK_BUSY
    assert codes[-1] == 0, codes
    assert scenario.lost(delivered) == set()
    assert scenario.violations(delivered) == []
    assert scenario.committed() == scenario.end_offsets()
