"""At-least-once delivery when the receiver fails: nothing is committed until it accepts.

Every test checks the same property: after the fault clears and one more run completes, each
alert group produced has been accepted by the receiver at least once, and no committed offset
is ever ahead of what the receiver accepted.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from batchalert.pipeline import DeliveryFailed, RunOptions, run_job
from scripts.chaos import (
    JobSettings,
    ReceiverPool,
    apply_receiver_fault,
    delivered_identities,
    write_job_file,
)
from scripts.fake_receivers import Mode, NotificationManagerServer
from tests.reliability.helpers import Scenario

pytestmark = pytest.mark.kafka

# Faults that fail a run when retries are off (retry_budget_seconds: 0).
FAILING_FAULTS = [
    "connection-refused", "http-500", "http-500-once", "http-400", "http-429",
    "read-timeout", "connection-dropped",
]
NO_RETRIES = JobSettings(state=False, retry_budget_seconds=0.0)


def clear_receiver_fault(receiver: NotificationManagerServer) -> None:
    """Undo apply_receiver_fault without dropping what the receiver recorded."""
    receiver.resume()
    receiver.delay(0)
    receiver.set_mode(Mode.NORMAL)


class TestSingleReceiverFault:
    @pytest.mark.parametrize("fault", FAILING_FAULTS)
    def test_fault_commits_nothing_then_delivers(self, scenario: Scenario,
                                                 nm_server: NotificationManagerServer,
                                                 fault: str) -> None:
        scenario.produce(new_groups=4)
        # Exactly one failure per POST of this run, so the fault is used up when it clears.
        apply_receiver_fault(nm_server, fault, posts=scenario.namespaces())
        job = scenario.job(nm_server.url, NO_RETRIES)

        with pytest.raises(DeliveryFailed) as failure:
            run_job(job, RunOptions())

        assert not failure.value.result.committed
        assert scenario.committed() == scenario.nothing_committed()
        assert scenario.violations(delivered_identities(nm_server.received)) == []

        clear_receiver_fault(nm_server)
        scenario.produce(new_groups=2)
        recovered = run_job(job, RunOptions())

        delivered = delivered_identities(nm_server.received)
        assert recovered.committed
        assert scenario.lost(delivered) == set()
        assert scenario.violations(delivered) == []
        assert scenario.committed() == scenario.end_offsets()

    def test_slow_response_within_timeout_delivers(self, scenario: Scenario,
                                                   nm_server: NotificationManagerServer
                                                   ) -> None:
        scenario.produce(new_groups=4)
        apply_receiver_fault(nm_server, "slow-response")

        result = run_job(scenario.job(nm_server.url, NO_RETRIES), RunOptions())

        delivered = delivered_identities(nm_server.received)
        assert result.committed
        assert scenario.lost(delivered) == set()
        assert scenario.committed() == scenario.end_offsets()

    @pytest.mark.parametrize("status", [500, 429])
    def test_transient_error_retried_within_budget(self, scenario: Scenario,
                                                   nm_server: NotificationManagerServer,
                                                   status: int) -> None:
        scenario.produce(new_groups=4)
        nm_server.fail_next(1, status, retry_after=0)
        settings = JobSettings(state=False, retry_budget_seconds=5.0)

        result = run_job(scenario.job(nm_server.url, settings), RunOptions())

        delivered = delivered_identities(nm_server.received)
        assert [r.status for r in nm_server.rejected] == [status]
        assert result.committed
        assert scenario.lost(delivered) == set()
        assert scenario.committed() == scenario.end_offsets()


    def test_zero_budget_posts_once_on_429(self, scenario: Scenario,
                                           nm_server: NotificationManagerServer) -> None:
        scenario.produce(new_groups=1)
        nm_server.fail_next(1, 429, retry_after=0)

        with pytest.raises(DeliveryFailed):
            run_job(scenario.job(nm_server.url, NO_RETRIES), RunOptions())

        assert len(nm_server.requests) == 1


class TestFaultSequenceCli:
    """Several runs of the real command line with a fault each and new data in between."""

    def run_sequence(self, scenario: Scenario, pool: ReceiverPool, job_file: Path,
                     faults: list[str]) -> None:
        """Run once per fault, checking exit codes and that failed runs commit nothing."""
        for fault in faults:
            scenario.produce(new_groups=2)
            committed_before = scenario.committed()
            receiver = pool.new()
            apply_receiver_fault(receiver, fault)

            code = scenario.run_cli(job_file, receiver.url)

            assert code == (0 if fault == "slow-response" else 4), fault
            if code != 0:
                assert scenario.committed() == committed_before, fault
            assert scenario.violations(pool.delivered()) == [], fault

    def faults_for(self, seed: int) -> list[str]:
        """Three different failing faults with one slow but successful run among them."""
        rng = random.Random(seed)
        faults = rng.sample(FAILING_FAULTS, 3)
        faults.insert(rng.randrange(1, 3), "slow-response")
        return faults

    @pytest.mark.parametrize(("settings", "seed"), [
        (NO_RETRIES, 21),
        (JobSettings(state=True, retry_budget_seconds=0.0), 37),
    ], ids=["state-off", "state-on"])
    def test_fault_sequence_then_clean_run(self, scenario: Scenario,
                                           receiver_pool: ReceiverPool, tmp_path: Path,
                                           settings: JobSettings, seed: int) -> None:
        job_file = write_job_file(tmp_path / "job.yaml", settings)
        self.run_sequence(scenario, receiver_pool, job_file, self.faults_for(seed))
        scenario.produce(new_groups=1)

        code = scenario.run_cli(job_file, receiver_pool.new().url)

        delivered = receiver_pool.delivered()
        assert code == 0
        assert scenario.lost(delivered) == set()
        assert scenario.violations(delivered) == []
        assert scenario.committed() == scenario.end_offsets()

    def test_state_on_suppressed_repeats_still_commit(self, scenario: Scenario,
                                                      receiver_pool: ReceiverPool,
                                                      tmp_path: Path) -> None:
        job_file = write_job_file(tmp_path / "job.yaml",
                                  JobSettings(state=True, retry_budget_seconds=0.0))
        scenario.produce(new_groups=3)
        assert scenario.run_cli(job_file, receiver_pool.new().url) == 0
        delivered_once = receiver_pool.delivered()
        scenario.produce(new_groups=0, repeats=6)
        quiet_receiver = receiver_pool.new()

        code = scenario.run_cli(job_file, quiet_receiver.url)

        # Within `realert` a group already sent is not sent again, and its new records are
        # committed all the same: the group counts as delivered.
        assert code == 0
        assert quiet_receiver.received == []
        assert receiver_pool.delivered() == delivered_once
        assert scenario.violations(delivered_once) == []
        assert scenario.committed() == scenario.end_offsets()
