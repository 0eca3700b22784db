"""Why a failed request is not retried: the reason a delivery reports."""

from __future__ import annotations

from batchalert.sinks.retry import MAX_ATTEMPTS, RetryBudget, _retry_obstacle


class _StillClock:
    """A fake clock whose time never moves."""

    def monotonic(self) -> float:
        return 100.0


def test_budget_reason_shows_both_times() -> None:
    budget = RetryBudget(0.96, clock=_StillClock())  # type: ignore[arg-type]

    reason = _retry_obstacle(budget, 1.0, 1)

    assert reason.startswith("gave up after 1 attempt, because waiting 1.00 s more")
    assert "(0.96 s left)" in reason


def test_reason_without_budget_or_attempts() -> None:
    assert _retry_obstacle(RetryBudget(0), 1.0, 1) == (
        "retries are off (retry_budget_seconds: 0)")
    assert _retry_obstacle(RetryBudget(60), 1.0, MAX_ATTEMPTS) == (
        f"gave up after {MAX_ATTEMPTS} attempts")
    assert _retry_obstacle(RetryBudget(60), 1.0, 1) == ""
