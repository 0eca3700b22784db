"""Returning freed heap memory: found in glibc, called once per parsed chunk."""

from __future__ import annotations

import pytest

import batchalert.pipeline
from batchalert import heap
from batchalert.config import build_job
from batchalert.offline import values_batch
from batchalert.pipeline import ChunkAggregator
from scripts.sample_logs import generate


def test_malloc_trim_found_in_glibc() -> None:
    assert heap._malloc_trim() is not None

    heap.release_free_memory()


@pytest.mark.parametrize("prefilter", [True, False])
def test_called_after_each_parsed_chunk(monkeypatch: pytest.MonkeyPatch,
                                        prefilter: bool) -> None:
    calls: list[int] = []
    monkeypatch.setattr(batchalert.pipeline, "release_free_memory", lambda: calls.append(1))
    job = build_job({"source": {"brokers": ["x:1"], "topic": "t", "group": "g"},
                     "chunk_records": 100}, "t")
    batch = values_batch(list(generate(8_000, seed=13)))
    parsed: list[int] = []
    chunks = ChunkAggregator(job, prefilter, on_parsed=lambda records, _: parsed.append(1))

    for start in range(0, batch.num_rows, 1000):
        chunks.add(batch.slice(start, 1000))
    chunks.finish()
    chunks.close()

    assert len(parsed) >= 2
    assert len(calls) == len(parsed)
