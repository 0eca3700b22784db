"""Workload names derived from the pod names Kubernetes controllers generate."""

from __future__ import annotations

import polars as pl
import pytest

from batchalert.rules.workload import workload_expr


@pytest.mark.parametrize(
    ("pod", "workload"),
    [
        ("wordpress-v1-f54f697c5-hdn2z", "wordpress-v1"),
        ("ingress-nginx-controller-5c8d66c76d-q7wlm", "ingress-nginx-controller"),
        ("web-7d9f8c6b5-x2k4q", "web"),
        ("mysql-0", "mysql"),
        ("kafka-logs-receiver-kafka-12", "kafka-logs-receiver-kafka"),
        ("fluent-bit-x7k2p", "fluent-bit"),
        ("backup-28476480-x7k2p", "backup"),
        ("debug", "debug"),
        ("my-app-front", "my-app-front"),
    ],
)
def test_workload_from_pod(pod: str, workload: str) -> None:
    frame = pl.DataFrame({"pod": [pod]})

    result = frame.select(workload_expr(pl.col("pod")))

    assert result.item() == workload


def test_null_pod_gives_null_workload() -> None:
    frame = pl.DataFrame({"pod": [None]}, schema={"pod": pl.String})

    assert frame.select(workload_expr(pl.col("pod"))).item() is None
