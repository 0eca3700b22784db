"""Test doubles shared by the sink tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """A clock whose sleep only advances monotonic and wall time, and records the waits."""

    def __init__(self, start: datetime = NOW) -> None:
        self.start = start
        self.elapsed = 0.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    def monotonic(self) -> float:
        return self.elapsed

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += seconds
