"""Smoke test of the benchmark harness: a tiny run produces well-formed JSON and Markdown.

No figure is compared with a target here; the checks are about the shape of the results and
about every contender having read every record.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import pytest

from bench.contenders import CONTENDERS
from bench.profile_batchalert import innermost_project, parse_raw
from bench.report import render_markdown, scaling, write_results
from bench.run import BenchOptions, run_benchmark
from scripts import fake_receivers
from scripts.kafka_local import LocalKafka

RECORDS = 2000
OTHER_SIZE = 1000
PARSE_ONLY_RECORDS = 500
VARIANT = (("chunk_records", 500),)


class BenchFiles(NamedTuple):
    """The written result files of one tiny run, and the receiver setting around it."""

    results: dict[str, Any]
    markdown: str
    nagle_switch_before: bool
    nagle_switch_after: bool


@pytest.fixture(scope="module")
def bench_files(kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> BenchFiles:
    """Run the whole benchmark once, tiny, and return the written JSON and Markdown."""
    handler = fake_receivers._RequestHandler
    before = handler.disable_nagle_algorithm
    out = tmp_path_factory.mktemp("bench-results")
    options = BenchOptions(records=RECORDS, repeat=1, sizes=(OTHER_SIZE,),
                           parse_only_records=PARSE_ONLY_RECORDS, out=out,
                           cache_dir=out / "cache", timeout_s=120.0,
                           variants=(VARIANT,))
    results = run_benchmark(options, "python -m bench.run (smoke test)", broker=kafka)
    json_path, markdown_path = write_results(results, out, "smoke")
    return BenchFiles(json.loads(json_path.read_text()), markdown_path.read_text(), before,
                      handler.disable_nagle_algorithm)


def _samples(results: dict[str, Any], contender: str) -> list[dict[str, Any]]:
    return [s for s in results["samples"] if s["contender"] == contender]


def test_summary_for_every_contender(bench_files: BenchFiles) -> None:
    results = bench_files.results
    measured = {s["contender"] for s in results["summaries"] if s["records"] == RECORDS}

    assert measured == {*CONTENDERS, "batchalert[chunk_records=500]"}
    for summary in results["summaries"]:
        assert summary["runs"] == 1
        assert summary["wall_seconds"] > 0
        assert summary["max_rss_bytes"] > 0


def test_every_run_read_every_record(bench_files: BenchFiles) -> None:
    results = bench_files.results

    for sample in results["samples"]:
        assert sample["usage"]["exit_code"] == 0
        assert sample["records"] in (RECORDS, OTHER_SIZE)
        assert sample["value_bytes"] == results["datasets"][str(sample["records"])]["value_bytes"]


def test_per_message_posts_once_per_match(bench_files: BenchFiles) -> None:
    results = bench_files.results
    (sample,) = _samples(results, "per-message")
    details = sample["details"]

    assert details["matches"] > 0
    assert details["posted"] == details["matches"] - details["unparsed"]
    assert sample["requests"] == details["posted"]


def test_batchalert_posts_grouped_alerts(bench_files: BenchFiles) -> None:
    results = bench_files.results
    samples = [s for s in _samples(results, "batchalert") if s["records"] == RECORDS]
    (sample,) = samples

    assert sample["details"]["alerts"] > 0
    assert sample["details"]["alerts_accepted"] == sample["details"]["alerts"]
    assert 0 < sample["requests"] < sample["details"]["matches"]


def test_variant_runs_with_its_job_keys(bench_files: BenchFiles) -> None:
    results, markdown = bench_files.results, bench_files.markdown
    (sample,) = _samples(results, "batchalert[chunk_records=500]")

    assert sample["records"] == RECORDS
    assert sample["details"]["matches"] > 0
    assert "batchalert run with chunk_records=500" in markdown


def test_readers_post_nothing(bench_files: BenchFiles) -> None:
    results = bench_files.results

    for contender in ("kcat", "plain"):
        (sample,) = _samples(results, contender)
        assert sample["requests"] == 0


def test_scaling_has_each_size(bench_files: BenchFiles) -> None:
    results = bench_files.results
    sizes = [point["records"] for point in results["scaling"]["points"]]

    assert sizes == [OTHER_SIZE, RECORDS]
    assert "seconds_per_million" in results["scaling"]


def test_ratios_and_targets_present(bench_files: BenchFiles) -> None:
    results = bench_files.results
    ratios = results["ratios"]

    assert set(ratios) == {"d/a", "d/b", "c/d", "(c-b)/(d-b)"}
    for name in ("d/a", "d/b", "c/d"):
        assert ratios[name] > 0
    assert len(results["targets"]) == 6
    for row in results["targets"]:
        assert set(row) == {"name", "target", "measured", "met"}
        assert row["met"] in (True, False, None)


def test_environment_recorded(bench_files: BenchFiles) -> None:
    results = bench_files.results

    assert results["machine"]["cores"] >= 1
    assert results["machine"]["memory_bytes"] > 0
    assert results["startup"]["seconds"] > 0
    assert results["startup"]["max_rss_bytes"] > 0
    for name in ("python", "kafka-python", "polars", "pyarrow", "kafka_broker", "kcat"):
        assert results["versions"][name]


def test_parse_only_result(bench_files: BenchFiles) -> None:
    results = bench_files.results
    parse_only = results["parse_only"]

    assert parse_only["records"] == PARSE_ONLY_RECORDS
    assert parse_only["records_per_second"] > 0
    assert parse_only["matches"] > 0
    assert parse_only["full_parse"]["records_per_second"] > 0
    assert parse_only["full_parse"]["matches"] == parse_only["matches"]
    assert parse_only["full_parse"]["groups"] == parse_only["groups"]


def test_markdown_matches_json(bench_files: BenchFiles) -> None:
    results, markdown = bench_files.results, bench_files.markdown

    assert markdown == render_markdown(results)
    for contender in CONTENDERS.values():
        assert f"({contender.letter}) {contender.title}" in markdown
    assert "## Targets" in markdown


def test_receiver_setting_restored(bench_files: BenchFiles) -> None:
    assert bench_files.nagle_switch_after == bench_files.nagle_switch_before


def test_scaling_fit_recovers_line() -> None:
    summaries = [{"contender": "batchalert", "records": n, "wall_seconds": 2.0 + n / 100_000,
                  "max_rss_bytes_highest": 1} for n in (100_000, 1_000_000, 5_000_000)]

    fit = scaling(summaries)

    assert fit["fixed_seconds"] == pytest.approx(2.0)
    assert fit["seconds_per_million"] == pytest.approx(10.0)
    assert fit["max_relative_residual"] == pytest.approx(0.0, abs=1e-9)
    assert fit["marginal_growth"] == pytest.approx(1.0)


def test_profile_parser_keeps_main_thread() -> None:
    raw = (
        "thread (10): MainThread;<module> (batchalert/cli.py:1);"
        "parse_chunk (batchalert/pipeline.py:130);collect (polars/frame.py:5) 7\n"
        "thread (11): Thread-1;run (threading.py:9) 50\n"
        "thread (10);<module> (batchalert/cli.py:1) 3\n"
    )

    stacks = parse_raw(raw)
    counts = innermost_project(stacks)

    assert sum(stack.samples for stack in stacks) == 10
    assert counts["parse_chunk (batchalert/pipeline.py)"] == 7
    assert counts["<module> (batchalert/cli.py)"] == 3
