"""A run lock in the state topic, so that two runs of one job and group never overlap.

A run appends a lock record and then reads the partition back. Kafka orders the records of a
partition the same way for every reader, so every contender agrees on the winner: the live lock
with the lowest acquisition offset. A lock is live while its holder renews it. A run killed by
SIGKILL stops renewing, and its lock expires after `lease_seconds`, so the guard never stays
stuck. The holder deletes its lock (a tombstone) when it ends.

NOTE: expiry compares the holder's renewal time with the reader's clock, so clocks that differ
by more than the lease make a killed run's lock expire early or late by that difference.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from batchalert.errors import ConcurrentRunError
from batchalert.state.store import StateRecord, StateTopic

logger = logging.getLogger(__name__)

# A lock not renewed for this long is abandoned, in seconds: long enough to ride out a slow
# broker, short enough that the next scheduled run after a kill is not blocked.
LEASE_SECONDS = 60.0


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


class RunLock:
    """Holds the lock of one job and consumer group for the duration of a run."""

    def __init__(self, state: StateTopic, job_name: str, group: str,
                 lease_seconds: float = LEASE_SECONDS) -> None:
        self._state = state
        self._prefix = f"lock/{job_name}/{group}/"
        self.run_id = uuid.uuid4().hex[:12]
        self._key = self._prefix + self.run_id
        self._lease = lease_seconds
        self.lease_seconds = lease_seconds
        self._acquired_offset: int | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _value(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "renewed_at": time.time(),
                "acquired_offset": self._acquired_offset}

    def acquire(self) -> None:
        """Take the lock or raise ConcurrentRunError naming the run that holds it."""
        (offset,) = self._state.append({self._key: self._value()})
        self._acquired_offset = offset
        holder = self._earliest_live_holder()
        if holder is not None and holder.key != self._key:
            self._state.append({self._key: None})
            value = holder.value or {}
            raise ConcurrentRunError(
                f"another run ({value.get('run_id')}) of this job and consumer group is active, "
                f"last seen {_iso(float(value.get('renewed_at', 0)))}; not starting a second "
                f"one. If that run was killed, its lock expires {self._lease:g}s after its last "
                f"renewal"
            )
        self._state.append({self._key: self._value()})
        self._renewer = threading.Thread(target=self._renew_loop, name="batchalert-lock",
                                         daemon=True)
        self._renewer.start()
        logger.info("run lock %s acquired at offset %d", self.run_id, offset)

    def _earliest_live_holder(self) -> StateRecord | None:
        latest: dict[str, StateRecord] = {}
        for record in self._state.read_all(self._prefix):
            latest[record.key] = record
        now = time.time()
        live = [
            r for r in latest.values()
            if r.value is not None and not r.value.get("corrupt")
            and now - float(r.value.get("renewed_at", 0)) < self._lease
        ]

        def acquisition(record: StateRecord) -> int:
            value = record.value or {}
            acquired = value.get("acquired_offset")
            return int(acquired) if acquired is not None else record.offset

        return min(live, key=acquisition, default=None)

    def _renew_loop(self) -> None:
        interval = self._lease / 4
        while not self._stop.wait(interval):
            try:
                self._state.append({self._key: self._value()})
            except Exception as exc:  # the run goes on; a missed renewal only risks expiry
                logger.warning("renewing run lock %s failed: %s", self.run_id, exc)

    def release(self) -> None:
        """Stop renewing and delete the lock record."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=self._lease)
        if self._acquired_offset is not None:
            self._state.append({self._key: None})
            logger.info("run lock %s released", self.run_id)
