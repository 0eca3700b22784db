"""The prefilter: raw values that cannot match are skipped, never a value that can."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import threading
import time

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import batchalert.pipeline
from batchalert.config import JobConfig, RuleConfig, build_job
from batchalert.kernels import Kernels
from batchalert.offline import values_batch
from batchalert.parse.screen import classify_envelopes, screen_fields, well_formed_envelopes
from batchalert.parse.shapes import RecordShape
from batchalert.pipeline import (
    ChunkAggregator,
    _Gathered,
    parse_chunk,
    prefilter_batch,
    uses_prefilter,
)
from batchalert.rules import RunAggregator
from batchalert.rules.prefilter import (
    candidate_mask,
    rows_to_decode,
    rules_allow_prefilter,
    status_table,
)
from scripts.sample_logs import generate

VALUES = [
    b'{"log":"1.2.3.4 - - [25/Aug/2021:01:54:36 +0000] '
    b'\\"GET /a HTTP/1.1\\" 404 12 \\"-\\" \\"c\\"\\n"}',
    b'{"log":"{\\"status\\":404,\\"uri\\":\\"/x\\"}"}',
    b'{"code":"503","path":"/y"}',
    b'{"log":"1.2.3.4 - - [25/Aug/2021:01:54:36 +0000] '
    b'\\"GET /b HTTP/1.1\\" 200 5000 \\"-\\" \\"c\\"\\n"}',
    b"\xff\xfe not json",
    None,
]


def mask_for(rules: list[RuleConfig], values: list[bytes | None] | None = None) -> list[bool]:
    array = pa.array(VALUES if values is None else values, pa.binary())
    return candidate_mask(array, rules).tolist()


def test_literal_status_selects_values_with_it() -> None:
    assert mask_for([RuleConfig()]) == [True, True, False, False, False, False]


def test_class_range_uses_regex_without_longer_numbers() -> None:
    assert mask_for([RuleConfig(status=["5xx"])]) == [False, False, True, False, False, False]


def test_status_must_be_a_run_of_three_digits() -> None:
    values = [b'{"bytes":1404}', b'{"log":"x 4040 y"}', b'{"log":"t=0.004045"}', b"404",
              b'{"status":404}', b"x404", b"404x", b"[404]", b'\\"404\\"', b"", None]

    assert mask_for([RuleConfig()], values) == [False, False, False, True, True, True, True,
                                                True, True, False, False]


@pytest.mark.parametrize("status", [[404], [404, 503], ["5xx"], ["400-499"]])
@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.binary(max_size=30),
                                 st.text("0123456789 x:\"", max_size=20).map(str.encode)),
                       max_size=30))
def test_agrees_with_a_regex(kernel_backend: Kernels, status: list[int | str],
                             values: list[bytes | None]) -> None:
    rules = [RuleConfig(status=status)]
    codes = "|".join(str(code) for code in np.flatnonzero(status_table(rules)))
    pattern = re.compile(rb"(?<![0-9])(" + codes.encode() + rb")(?![0-9])")

    expected = [value is not None and pattern.search(value) is not None for value in values]

    assert mask_for(rules, values) == expected


def classify(rules: list[RuleConfig], values: list[bytes | None], offset: int = 0
             ) -> tuple[list[bool], list[bool]]:
    fields = screen_fields(RecordShape())
    assert fields is not None
    array = pa.array(values, pa.binary()).slice(offset)
    candidates, passed = classify_envelopes(array, fields, RecordShape().max_value_bytes,
                                            status_table(rules))
    return candidates.tolist(), passed.tolist()


def test_classify_finds_codes_next_to_other_rows() -> None:
    # Rows share one buffer, so the digits of a neighbouring row must not lengthen a run.
    values = [b"12", b"404", b"5", b"404", b"404", b"1404", b"4045", b'{"log":"a 404"}',
              b"7", b'"404', b"404\"", None, b"", b"404"]

    candidates, _ = classify([RuleConfig()], values)

    assert candidates == [False, True, False, True, True, False, False, True, False, True,
                          True, False, False, True]


@pytest.mark.parametrize("status", [[404], [404, 503], ["5xx"], ["400-499"], ["1xx", "5xx"],
                                    [200, 404]])
@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.one_of(
    st.none(), st.binary(max_size=30),
    st.text("0123456789 x:\"", max_size=20).map(str.encode),
    st.builds(lambda line: json.dumps({"log": line}).encode(),
              st.text("0123456789 \"\\\x7f\u00e9x", max_size=40))), max_size=30),
       offset=st.integers(0, 3))
def test_classify_agrees_with_both_tests(kernel_backend: Kernels, status: list[int | str],
                                         values: list[bytes | None], offset: int) -> None:
    rules = [RuleConfig(status=status)]
    fields = screen_fields(RecordShape())
    assert fields is not None
    array = pa.array(values, pa.binary()).slice(min(offset, len(values)))
    expected_candidates = candidate_mask(array, rules)
    expected_passed = well_formed_envelopes(array, fields, RecordShape().max_value_bytes,
                                            skip=expected_candidates)

    candidates, passed = classify(rules, values, min(offset, len(values)))

    assert candidates == expected_candidates.tolist()
    assert passed == expected_passed.tolist()


def test_classify_agrees_across_blocks() -> None:
    # Values are marked in blocks of whole rows, up to 256 KiB. The rows vary in length, so
    # the blocks end at varied byte offsets, and two rows are larger than a block.
    rng = random.Random(7)
    values: list[bytes | None] = []
    for index in range(4000):
        line = "".join(rng.choice(["a", "4", "0", " ", "\\", "\u00e9", "\x7f"])
                       for _ in range(rng.randrange(0, 150)))
        values.append(json.dumps({"log": line, "n": index}).encode())
        if index % 7 == 0:
            values.append(b"404" if index % 2 else b"x" * rng.randrange(0, 9) + b" 404")
    values.insert(1000, json.dumps({"log": "a" * 300_000 + " 404 " + "b" * 5}).encode())
    values.insert(2000, json.dumps({"log": "a" * 300_000}).encode()[:-2] + b"\xff\"}")
    rules = [RuleConfig(status=[404, 500])]
    fields = screen_fields(RecordShape())
    assert fields is not None
    array = pa.array(values, pa.binary())
    expected_candidates = candidate_mask(array, rules)
    # Each value screened in an array of its own is a block of its own.
    alone = [well_formed_envelopes(array.slice(row, 1), fields, 1 << 20)[0]
             for row in range(len(values))]
    expected_passed = np.array(alone) & ~expected_candidates

    candidates, passed = classify_envelopes(array, fields, 1 << 20, status_table(rules))

    assert sum(len(value or b"") for value in values) > 4 * (1 << 18)
    assert candidates.tolist() == expected_candidates.tolist()
    assert passed.tolist() == expected_passed.tolist()
    assert candidates[1000]
    assert not passed[2000]
    assert 0 < passed.sum() < len(values)


def test_classify_finds_codes_at_block_ends() -> None:
    # Every row ends in ` 404"}`, so the last row of each 256 KiB block has its code in the
    # block's last eight bytes, whatever the block's size.
    values: list[bytes | None] = [json.dumps({"log": "a" * (index % 97) + " 404"}).encode()
                                  for index in range(40_000)]

    candidates, passed = classify([RuleConfig()], values)

    assert all(candidates)
    assert not any(passed)


def test_codes_at_every_word_offset() -> None:
    # Digits are masked 64 bytes at a time, so each run is placed at every offset around the
    # end of a word, and rows start at varied offsets.
    values: list[bytes | None] = []
    for before in range(140):
        for run in (b" 404 ", b" 4040 ", b"x404", b" 1404", b"404x"):
            values.append(b"x" * before + run + b"y" * (before % 5))
    rules = [RuleConfig(status=[404])]
    expected = candidate_mask(pa.array(values, pa.binary()), rules).tolist()

    candidates, _ = classify(rules, values)

    assert candidates == expected
    assert 0 < sum(candidates) < len(values)


def test_rules_combine_with_or() -> None:
    rules = [RuleConfig(), RuleConfig(name="b", status=[503])]

    assert mask_for(rules) == [True, True, True, False, False, False]


def test_ratio_rules_need_every_record() -> None:
    assert rules_allow_prefilter([RuleConfig()])
    assert not rules_allow_prefilter([RuleConfig(ratio={"min_ratio": 0.1})])


def test_prefilter_default_and_exceptions() -> None:
    source = {"brokers": ["x:1"], "topic": "t", "group": "g"}

    assert uses_prefilter(build_job({"source": source}, "t"))
    assert not uses_prefilter(build_job({"source": source, "prefilter": False}, "t"))
    ratio = [{"ratio": {"min_ratio": 0.1}}]
    assert not uses_prefilter(build_job({"source": source, "rules": ratio}, "t"))


def test_prefilter_keeps_every_alert() -> None:
    job = build_job({"source": {"brokers": ["x:1"], "topic": "t", "group": "g"},
                     "rules": [{}, {"name": "errors", "status": ["5xx"]}]}, "t")
    batch = values_batch(list(generate(20_000, seed=11)))

    full = RunAggregator(job.rules)
    full.add(parse_chunk(batch, job))
    filtered = RunAggregator(job.rules)
    candidates, suspects = prefilter_batch(batch, job)
    decoded = candidates.num_rows + suspects.num_rows
    filtered.add(parse_chunk(candidates, job), skipped=batch.num_rows - decoded)
    filtered.add(parse_chunk(suspects, job))

    def summary(aggregator: RunAggregator) -> list[tuple[object, ...]]:
        return [(g.rule.name, tuple(g.key.items()), g.count, g.first, g.last, g.samples)
                for g in aggregator.groups()]

    assert summary(filtered) == summary(full)
    assert filtered.counts.records == full.counts.records == 20_000
    assert filtered.counts.skipped == 20_000 - decoded
    assert 0 < candidates.num_rows < 20_000
    assert 0 < suspects.num_rows < candidates.num_rows
    assert filtered.counts.matches_by_rule == full.counts.matches_by_rule
    # Unreadable records are never skipped, so they are all counted, by reason.
    assert filtered.counts.malformed == full.counts.malformed > 0
    assert filtered.counts.malformed_by_reason == full.counts.malformed_by_reason


def test_gathered_batches_join_in_order() -> None:
    batch = values_batch([b'{"log":"a"}', b'{"log":"b"}', b'{"log":"c"}'])
    gathered = _Gathered()

    gathered.add(batch.slice(0, 2), skipped=5)
    gathered.add(batch.slice(2, 0), skipped=1)
    gathered.add(batch.slice(2, 1), skipped=0)
    joined, skipped = gathered.take()

    assert joined.column("value").to_pylist() == [b'{"log":"a"}', b'{"log":"b"}', b'{"log":"c"}']
    assert skipped == 6
    assert gathered.rows == 0
    empty, skipped_again = gathered.take()
    assert empty.num_rows == 0
    assert skipped_again == 0


def test_chunk_aggregator_parses_suspects_apart() -> None:
    job = build_job({"source": {"brokers": ["x:1"], "topic": "t", "group": "g"},
                     "chunk_records": 1000}, "t")
    batch = values_batch(list(generate(20_000, seed=12)))
    chunks: list[pa.RecordBatch] = []
    chunked = ChunkAggregator(job, prefilter=True,
                              on_parsed=lambda records, _parsed: chunks.append(records))

    for start in range(0, batch.num_rows, 2000):
        chunked.add(batch.slice(start, 2000))
    result = chunked.finish()
    full = RunAggregator(job.rules)
    full.add(parse_chunk(batch, job))

    kinds = []
    for chunk in chunks:
        mask = candidate_mask(chunk.column("value"), job.rules)
        if mask.all():
            kinds.append("candidates")
        elif not mask.any():
            kinds.append("suspects")
        else:
            kinds.append("mixed")
        assert chunk.num_rows < job.chunk_records + 2000
    assert "mixed" not in kinds
    assert kinds.count("suspects") == 1
    assert [g.count for g in result.groups()] == [g.count for g in full.groups()]
    assert result.counts.records == full.counts.records
    assert result.counts.malformed_by_reason == full.counts.malformed_by_reason


def test_unscreenable_shape_decodes_everything() -> None:
    values = pa.array(VALUES, pa.binary())
    shape = RecordShape(logtag_fields=("cri.tag",))

    candidates, suspects = rows_to_decode(values, [RuleConfig()], shape)

    assert candidates.tolist() == [True] * len(VALUES)
    assert suspects.tolist() == [False] * len(VALUES)


_NO_PANDAS_SCRIPT = """
import sys

from batchalert.config import build_job
from batchalert.offline import values_batch
from batchalert.pipeline import ChunkAggregator
from scripts.sample_logs import generate

values = list(generate(3_000, seed=5)) + [b"\\xff\\xfe not json", b'{"log": "\\xc3("}']
batch = values_batch(values)
assert "pandas" not in sys.modules, "values_batch imported pandas"
job = build_job({"source": {"brokers": ["x:1"], "topic": "t", "group": "g"}}, "t")
requested = []


class Recorder:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pandas":
            requested.append(name)
        return None


sys.meta_path.insert(0, Recorder())
for prefilter in (True, False):
    chunks = ChunkAggregator(job, prefilter)
    chunks.add(batch)
    counts = chunks.finish().counts
    assert counts.malformed >= 2, counts
print(requested)
"""


def test_parsing_never_imports_pandas() -> None:
    # pyarrow imports pandas for pa.array() of NumPy data and for pa.scalar(): 0.2 s and
    # 40 MB per run. The script builds its batch first, then records every pandas lookup.
    done = subprocess.run([sys.executable, "-c", _NO_PANDAS_SCRIPT], capture_output=True,
                          text=True, timeout=120, check=False)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_last_chunks_parse_together_and_errors_surface(monkeypatch: pytest.MonkeyPatch) -> None:
    job = build_job({"source": {"brokers": ["x:1"], "topic": "t", "group": "g"}}, "t")
    batch = values_batch([VALUES[0], VALUES[3], b"\xff\xfe not json"])
    threads: list[str] = []
    # Both last chunks must be parsing at once to pass the barrier; one after the other,
    # the first waits 10 s and the barrier breaks.
    together = threading.Barrier(2, timeout=10)
    real_parse = batchalert.pipeline.parse_chunk

    def recording_parse(records: pa.RecordBatch, job: JobConfig) -> pl.DataFrame:
        threads.append(threading.current_thread().name)
        together.wait()
        return real_parse(records, job)

    monkeypatch.setattr(batchalert.pipeline, "parse_chunk", recording_parse)
    chunks = ChunkAggregator(job, prefilter=True)
    chunks.add(batch)
    counts = chunks.finish().counts
    chunks.close()

    assert len(set(threads)) == 2
    assert all(name.startswith("batchalert-parse") for name in threads)
    assert (counts.records, counts.access, counts.malformed, counts.skipped) == (3, 1, 1, 1)

    def failing_parse(records: pa.RecordBatch, job: JobConfig) -> pl.DataFrame:
        if records.num_rows == 1:  # the suspects
            raise ValueError("suspects failed")
        return real_parse(records, job)

    monkeypatch.setattr(batchalert.pipeline, "parse_chunk", failing_parse)
    chunks = ChunkAggregator(job, prefilter=True)
    chunks.add(batch)
    with pytest.raises(ValueError, match="suspects failed"):
        chunks.finish()
    chunks.close()


def test_full_chunks_parse_in_bounded_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    job = build_job({"source": {"brokers": ["x:1"], "topic": "t", "group": "g"},
                     "chunk_records": 500}, "t")
    batch = values_batch(list(generate(6_000, seed=21)))
    lock = threading.Lock()
    running = [0]
    peak = [0]
    started: list[str] = []
    real_parse = batchalert.pipeline.parse_chunk

    def counting_parse(records: pa.RecordBatch, job: JobConfig) -> pl.DataFrame:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            started.append(threading.current_thread().name)
        try:
            time.sleep(0.02)  # long enough for the next chunk to fill meanwhile
            return real_parse(records, job)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(batchalert.pipeline, "parse_chunk", counting_parse)
    chunks = ChunkAggregator(job, prefilter=False)
    for start in range(0, batch.num_rows, 500):
        chunks.add(batch.slice(start, 500))
    during_read = peak[0]
    result = chunks.finish()
    chunks.close()
    whole = RunAggregator(job.rules)
    whole.add(real_parse(batch, job))

    assert during_read == batchalert.pipeline.PARSE_THREADS
    assert len(started) == 12
    assert all(name.startswith("batchalert-parse") for name in started)
    assert result.counts == whole.counts
    assert [(g.key, g.count, g.first, g.last, g.samples) for g in result.groups()] == [
        (g.key, g.count, g.first, g.last, g.samples) for g in whole.groups()]


def test_held_chunk_starts_at_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    # While the parse thread is busy, the next full chunk is held without blocking the
    # caller, and finish() starts it at once instead of after the busy chunk.
    job = build_job({"source": {"brokers": ["x:1"], "topic": "t", "group": "g"},
                     "chunk_records": 500}, "t")
    batch = values_batch(list(generate(1_000, seed=23)))
    release = threading.Event()
    lock = threading.Lock()
    started: list[int] = []
    real_parse = batchalert.pipeline.parse_chunk

    def blocking_parse(records: pa.RecordBatch, job: JobConfig) -> pl.DataFrame:
        with lock:
            started.append(records.num_rows)
            first = len(started) == 1
        if first:
            release.wait(10)
        return real_parse(records, job)

    def started_count(expected: int) -> int:
        deadline = time.monotonic() + 10
        while len(started) < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(started)

    monkeypatch.setattr(batchalert.pipeline, "PARSE_THREADS", 1)
    monkeypatch.setattr(batchalert.pipeline, "parse_chunk", blocking_parse)
    chunks = ChunkAggregator(job, prefilter=False)
    chunks.add(batch.slice(0, 500))
    assert started_count(1) == 1
    chunks.add(batch.slice(500, 500))
    time.sleep(0.05)
    held_during_read = len(started)
    finished: list[RunAggregator] = []
    finishing = threading.Thread(target=lambda: finished.append(chunks.finish()))
    finishing.start()
    started_at_finish = started_count(2)
    release.set()
    finishing.join(10)
    chunks.close()
    whole = RunAggregator(job.rules)
    whole.add(real_parse(batch, job))

    assert held_during_read == 1
    assert started_at_finish == 2
    assert finished[0].counts == whole.counts


def test_chunk_failure_leaves_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    job = build_job({"source": {"brokers": ["x:1"], "topic": "t", "group": "g"},
                     "chunk_records": 500}, "t")
    batch = values_batch(list(generate(3_000, seed=22)))
    calls = [0]
    real_parse = batchalert.pipeline.parse_chunk

    def failing_parse(records: pa.RecordBatch, job: JobConfig) -> pl.DataFrame:
        calls[0] += 1
        if calls[0] == 1:
            raise MemoryError("chunk failed")
        return real_parse(records, job)

    monkeypatch.setattr(batchalert.pipeline, "parse_chunk", failing_parse)
    before = {thread.name for thread in threading.enumerate()}
    with pytest.raises(MemoryError, match="chunk failed"):
        batchalert.pipeline.aggregate_batches(
            (batch.slice(start, 500) for start in range(0, batch.num_rows, 500)),
            ChunkAggregator(job, prefilter=False))

    left = {thread.name for thread in threading.enumerate()} - before
    assert not [name for name in left if name.startswith("batchalert-parse")]
