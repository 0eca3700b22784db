"""Rules: which access lines match, how matches group into alerts, and when a group fires."""

from batchalert.rules.aggregate import AlertGroup, RunAggregator, RunCounts

__all__ = ["AlertGroup", "RunAggregator", "RunCounts"]
