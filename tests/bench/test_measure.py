"""What a benchmark child measures and inherits: its own peak memory, not the harness's, and
the allocator setting the harness started with."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import bench.run
from bench.measure import run_measured

MIB = 1024 * 1024
# A child that touches 120 MiB, then keeps it long enough for several samples.
CHILD = ("import time\nblock = bytearray(120 * 1024 * 1024)\n"
         "for i in range(0, len(block), 4096):\n    block[i] = 1\ntime.sleep(0.3)\n")


def test_peak_memory_is_the_childs_own(tmp_path: Path) -> None:
    # Ballast that the spawning process keeps: ru_maxrss would report it for the child too.
    ballast = bytearray(400 * MIB)
    for index in range(0, len(ballast), 4096):
        ballast[index] = 1

    usage = run_measured([sys.executable, "-c", CHILD], timeout_s=60,
                         stdout_path=tmp_path / "out", stderr_path=tmp_path / "err",
                         cwd=tmp_path)

    assert usage.exit_code == 0
    assert usage.max_rss_bytes >= 120 * MIB
    assert usage.max_rss_bytes < 250 * MIB
    assert len(ballast) == 400 * MIB


def test_children_get_starting_allocator_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    # What importing Polars writes into the harness's environment.
    monkeypatch.setenv("_RJEM_MALLOC_CONF", "dirty_decay_ms:500,muzzy_decay_ms:1000")
    monkeypatch.setenv("BATCHALERT_KAFKA_BROKERS", "127.0.0.1:9")

    monkeypatch.setattr(bench.run, "STARTING_JEMALLOC_CONF", None)
    assert "_RJEM_MALLOC_CONF" not in bench.run.child_environment()
    assert "BATCHALERT_KAFKA_BROKERS" not in bench.run.child_environment()

    monkeypatch.setattr(bench.run, "STARTING_JEMALLOC_CONF", "narenas:2")
    assert bench.run.child_environment()["_RJEM_MALLOC_CONF"] == "narenas:2"
