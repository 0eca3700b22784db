"""Exports to Parquet: layout and options on generated batches, and whole exports from Kafka."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pytest
from kafka import KafkaConsumer, TopicPartition
from typer.testing import CliRunner

from batchalert.config import JobConfig, build_job
from batchalert.errors import ConfigError
from batchalert.export import (
    HIVE_SCHEMA,
    NULL_NAMESPACE,
    OVERLONG_NAMESPACE,
    ExportOptions,
    ExportWriter,
    check_options,
    export_frame,
    export_records,
    iter_exported_files,
    namespace_directory_value,
    summary_lines,
)
from batchalert.pipeline import parse_chunk
from scripts.kafka_local import LocalKafka, OutgoingRecord
from scripts.make_sample_export import SampleRecord, build_sample_export, record_batch, sample_job
from scripts.sample_logs import BROKEN_VALUES, generate

HOUR_MS = 3600 * 1000

# Reasons the parser gives the values of BROKEN_VALUES, in the same order.
BROKEN_REASONS = ["not_json", "invalid_utf8", "not_object", "no_log_line"]


def read_polars(directory: Path) -> pl.DataFrame:
    return pl.scan_parquet(directory, hive_partitioning=True, hive_schema=HIVE_SCHEMA).collect()


def read_duckdb_count(directory: Path) -> int:
    query = f"SELECT count(*) FROM read_parquet('{directory}/**/*.parquet', hive_partitioning=true)"
    rows = duckdb.execute(query).fetchall()
    return int(rows[0][0])


def relative_files(directory: Path) -> list[str]:
    return [str(path.relative_to(directory)) for path in iter_exported_files(directory)]


def partition_directories(directory: Path) -> set[str]:
    return {str(path.parent.relative_to(directory)) for path in iter_exported_files(directory)}


def make_batch(values: list[bytes], partition: int = 0, first_offset: int = 0,
               moment: datetime | None = None) -> Any:
    moment = moment or datetime(2021, 8, 25, 1, 54, 37, tzinfo=UTC)
    return record_batch(partition, first_offset, [SampleRecord(v, moment) for v in values])


def envelope_value(namespace: str | None, line: str = "INFO ready\n") -> bytes:
    kubernetes: dict[str, str] = {"pod_name": "web-6d4cf56db6-x7k2p", "container_name": "web"}
    if namespace is not None:
        kubernetes["namespace_name"] = namespace
    record = {"log": line, "time": "2021-08-25T01:54:37.226757612Z", "kubernetes": kubernetes}
    return json.dumps(record).encode()


def write_export(directory: Path, values: list[bytes], topic: str = "logs",
                 **options: Any) -> list[Path]:
    """Write `values` as partition 0 through ExportWriter, as one export of offsets 0..n."""
    export_options = ExportOptions(output_dir=directory, from_committed=True, **options)
    batch = make_batch(values)
    with ExportWriter(export_options, topic) as writer:
        writer.write(export_frame(batch, parse_chunk(batch, sample_job()), export_options))
        written, _ = writer.publish({0: (0, len(values))})
    return written


class TestOptions:
    def test_since_and_committed_together_rejected(self, tmp_path: Path) -> None:
        options = ExportOptions(output_dir=tmp_path, since_seconds=60, from_committed=True)
        with pytest.raises(ConfigError, match="--since"):
            check_options(options)

    def test_no_start_rejected(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="--from-committed"):
            check_options(ExportOptions(output_dir=tmp_path))

    def test_zero_max_records_rejected(self, tmp_path: Path) -> None:
        options = ExportOptions(output_dir=tmp_path, from_committed=True, max_records=0)
        with pytest.raises(ConfigError, match="--max-records"):
            check_options(options)

    def test_columns_follow_options(self, tmp_path: Path) -> None:
        plain = ExportOptions(output_dir=tmp_path, from_committed=True).columns()
        raw = ExportOptions(output_dir=tmp_path, from_committed=True, include_raw=True,
                            include_line=False).columns()

        assert plain[-1] == "line"
        assert "raw" not in plain
        assert raw[-1] == "raw"
        assert "line" not in raw


class TestNamespaceDirectory:
    @pytest.mark.parametrize(("namespace", "expected"), [
        ("demo-project", "demo-project"),
        ("a/b", "a%2Fb"),
        ("x y=1%", "x%20y%3D1%25"),
        ("..", ".."),
        (None, NULL_NAMESPACE),
        ("", NULL_NAMESPACE),
        ("n" * 64, OVERLONG_NAMESPACE),
    ])
    def test_directory_value(self, namespace: str | None, expected: str) -> None:
        assert namespace_directory_value(namespace) == expected

    def test_odd_namespace_round_trips(self, tmp_path: Path) -> None:
        odd = "odd/name=1% x"
        write_export(tmp_path, [envelope_value(odd), envelope_value("plain")])

        from_polars = set(read_polars(tmp_path)["namespace"])
        from_duckdb = {row[0] for row in duckdb.execute(
            f"SELECT namespace FROM read_parquet('{tmp_path}/**/*.parquet', "
            f"hive_partitioning=true)").fetchall()}
        from_pandas = set(pd.read_parquet(tmp_path, engine="pyarrow")["namespace"].astype(str))

        assert from_polars == {odd, "plain"}
        assert from_duckdb == {odd, "plain"}
        assert from_pandas == {odd, "plain"}

    def test_missing_namespace_in_none_directory(self, tmp_path: Path) -> None:
        write_export(tmp_path, [envelope_value(None), b"not json"])

        assert partition_directories(tmp_path) == {f"date=2021-08-25/namespace={NULL_NAMESPACE}"}
        assert set(read_polars(tmp_path)["namespace"]) == {NULL_NAMESPACE}


class TestWriter:
    def test_file_names_carry_offsets(self, tmp_path: Path) -> None:
        values = [envelope_value("a"), envelope_value("b"), envelope_value("a")]

        write_export(tmp_path, values)

        assert relative_files(tmp_path) == [
            "date=2021-08-25/namespace=a/part-0-0-2.parquet",
            "date=2021-08-25/namespace=b/part-0-1-1.parquet",
        ]

    def test_date_from_access_time_else_record_time(self, tmp_path: Path) -> None:
        access = envelope_value("web", '203.0.113.9 - - [24/Aug/2021:23:59:59 +0000] "GET / '
                                       'HTTP/1.1" 404 12 "-" "curl/7.58.0"\n')
        values = [access, envelope_value("web"), b"\xff broken"]
        kafka_time = datetime(2021, 8, 27, 12, 0, tzinfo=UTC)
        options = ExportOptions(output_dir=tmp_path, from_committed=True)
        batch = make_batch(values, moment=kafka_time)

        frame = export_frame(batch, parse_chunk(batch, sample_job()), options)

        assert [d.isoformat() for d in frame["date"]] == [
            "2021-08-24", "2021-08-25", "2021-08-27"]
        assert frame["time"].null_count() == 2

    def test_other_topic_rejected(self, tmp_path: Path) -> None:
        write_export(tmp_path, [envelope_value("a")], topic="logs")

        with pytest.raises(ConfigError, match="topic 'logs'"):
            write_export(tmp_path, [envelope_value("a")], topic="other-logs")

    def test_other_columns_rejected(self, tmp_path: Path) -> None:
        write_export(tmp_path, [envelope_value("a")])

        with pytest.raises(ConfigError, match="--include-raw"):
            write_export(tmp_path, [envelope_value("a")], include_raw=True)

    def test_failed_export_leaves_directory_unchanged(self, tmp_path: Path) -> None:
        output = tmp_path / "export"
        write_export(output, [envelope_value("a")])
        before = relative_files(output)
        options = ExportOptions(output_dir=output, from_committed=True)
        batch = make_batch([envelope_value("b")] * 3)

        with pytest.raises(RuntimeError), ExportWriter(options, "logs") as writer:
            writer.write(export_frame(batch, parse_chunk(batch, sample_job()), options))
            raise RuntimeError("read failed")

        assert relative_files(output) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]

    def test_straddling_file_kept(self, tmp_path: Path,
                                  caplog: pytest.LogCaptureFixture) -> None:
        write_export(tmp_path, [envelope_value("a")] * 4)
        options = ExportOptions(output_dir=tmp_path, from_committed=True)
        batch = make_batch([envelope_value("a")] * 2, first_offset=2)

        with caplog.at_level(logging.WARNING), ExportWriter(options, "logs") as writer:
            writer.write(export_frame(batch, parse_chunk(batch, sample_job()), options))
            _, removed = writer.publish({0: (2, 4)})

        assert removed == []
        assert "part-0-0-3.parquet" in caplog.text
        assert relative_files(tmp_path) == ["date=2021-08-25/namespace=a/part-0-0-3.parquet",
                                            "date=2021-08-25/namespace=a/part-0-2-3.parquet"]


class TestReexportOffline:
    def test_other_chunks_replace_earlier_files(self, tmp_path: Path) -> None:
        first = build_sample_export(tmp_path, count=600, chunk_records=500)
        first_files = relative_files(tmp_path)

        second = build_sample_export(tmp_path, count=600, chunk_records=70)
        rows = read_polars(tmp_path)

        assert rows.height == first.rows_written == second.rows_written
        assert rows.select("partition", "offset").is_unique().all()
        assert second.files_removed
        assert relative_files(tmp_path) == [str(p.relative_to(tmp_path))
                                            for p in second.files_written]
        assert relative_files(tmp_path) != first_files


# --- whole exports from the local broker --------------------------------------------------------


@dataclass
class LoadedTopic:
    """A topic with old and recent records, and the value at each partition and offset."""

    topic: str
    values: dict[tuple[int, int], bytes]
    old: dict[tuple[int, int], bytes]
    recent_ms: int

    @property
    def recent(self) -> dict[tuple[int, int], bytes]:
        return {key: v for key, v in self.values.items() if key not in self.old}


def produce_round_robin(kafka: LocalKafka, topic: str, values: list[bytes], timestamp_ms: int,
                        partitions: int = 3) -> dict[tuple[int, int], bytes]:
    records = [OutgoingRecord(value, None, index % partitions, timestamp_ms)
               for index, value in enumerate(values)]
    positions = kafka.produce_many(topic, records)
    return {(p.partition, p.offset): value for p, value in zip(positions, values, strict=True)}


@pytest.fixture
def loaded_topic(kafka: LocalKafka, topic_factory: Callable[..., str]) -> LoadedTopic:
    """Produce 90 records three hours old, then 600 recent ones with every broken value."""
    topic = topic_factory(partitions=3)
    now_ms = int(time.time() * 1000)
    old = produce_round_robin(kafka, topic, list(generate(90, seed=3)), now_ms - 3 * HOUR_MS)
    recent_values = list(generate(600, seed=4, rate_broken=0.0)) + BROKEN_VALUES * 3
    recent_ms = now_ms - 10 * 60 * 1000
    recent = produce_round_robin(kafka, topic, recent_values, recent_ms)
    return LoadedTopic(topic, {**old, **recent}, old, recent_ms)


def make_job(kafka: LocalKafka, topic: str, group: str, **extra: Any) -> JobConfig:
    source = {"brokers": [kafka.bootstrap], "topic": topic, "group": group,
              "timeout_seconds": 10, "stall_seconds": 20}
    return build_job({"name": "export-test", "source": source, **extra}, "test")


def committed(kafka: LocalKafka, topic: str, group: str) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in range(3)}
    finally:
        consumer.close()


def positions(frame: pl.DataFrame) -> set[tuple[int, int]]:
    return set(frame.select("partition", "offset").iter_rows())


@pytest.mark.kafka
class TestExportFromKafka:
    def test_since_exports_recent_records(self, kafka: LocalKafka, loaded_topic: LoadedTopic,
                                          group_id: str, tmp_path: Path) -> None:
        job = make_job(kafka, loaded_topic.topic, group_id)

        result = export_records(job, ExportOptions(tmp_path, since_seconds=3600))
        rows = read_polars(tmp_path)

        assert result.records_read == len(loaded_topic.recent)
        assert result.rows_written == result.records_read
        assert rows.height == result.records_read
        assert positions(rows) == set(loaded_topic.recent)
        assert result.exported_ranges == {0: (30, 234), 1: (30, 234), 2: (30, 234)}

    def test_every_reader_counts_all_rows(self, kafka: LocalKafka, loaded_topic: LoadedTopic,
                                          group_id: str, tmp_path: Path) -> None:
        job = make_job(kafka, loaded_topic.topic, group_id, chunk_records=50)

        result = export_records(job, ExportOptions(tmp_path, from_committed=True))

        assert result.records_read == len(loaded_topic.values)
        assert read_polars(tmp_path).height == result.records_read
        assert read_duckdb_count(tmp_path) == result.records_read
        assert len(pd.read_parquet(tmp_path, engine="pyarrow")) == result.records_read

    def test_partition_directories(self, kafka: LocalKafka, loaded_topic: LoadedTopic,
                                   group_id: str, tmp_path: Path) -> None:
        job = make_job(kafka, loaded_topic.topic, group_id)
        namespaces = {json.loads(v)["kubernetes"]["namespace_name"]
                      for v in loaded_topic.recent.values() if v not in BROKEN_VALUES}
        kafka_date = datetime.fromtimestamp(loaded_topic.recent_ms / 1000, UTC).date()

        export_records(job, ExportOptions(tmp_path, since_seconds=3600))

        expected = {f"date=2021-08-25/namespace={n}" for n in namespaces}
        # Broken values have no time of their own, so the Kafka timestamp dates them. One of
        # them has Kubernetes metadata (namespace "shop") but no log line.
        expected |= {f"date={kafka_date}/namespace={n}" for n in (NULL_NAMESPACE, "shop")}
        assert partition_directories(tmp_path) == expected

    def test_nothing_committed(self, kafka: LocalKafka, loaded_topic: LoadedTopic,
                               group_id: str, tmp_path: Path) -> None:
        job = make_job(kafka, loaded_topic.topic, group_id)

        export_records(job, ExportOptions(tmp_path / "since", since_seconds=3600))
        first = export_records(job, ExportOptions(tmp_path / "committed", from_committed=True))
        second = export_records(job, ExportOptions(tmp_path / "committed", from_committed=True))

        assert committed(kafka, loaded_topic.topic, group_id) == {0: None, 1: None, 2: None}
        assert [r.origin for r in second.plan.ranges] == ["earliest"] * 3
        assert second.records_read == first.records_read == len(loaded_topic.values)

    def test_reexport_is_idempotent(self, kafka: LocalKafka, loaded_topic: LoadedTopic,
                                    group_id: str, tmp_path: Path) -> None:
        job = make_job(kafka, loaded_topic.topic, group_id)
        options = ExportOptions(tmp_path, from_committed=True)
        export_records(job, options)
        files = relative_files(tmp_path)
        rows = read_polars(tmp_path).sort("partition", "offset")

        again = export_records(job, options)

        assert relative_files(tmp_path) == files
        assert again.files_removed == []
        assert read_polars(tmp_path).sort("partition", "offset").equals(rows)

    def test_malformed_rows_keep_reason(self, kafka: LocalKafka, loaded_topic: LoadedTopic,
                                        group_id: str, tmp_path: Path) -> None:
        job = make_job(kafka, loaded_topic.topic, group_id)
        expected = {key: BROKEN_REASONS[BROKEN_VALUES.index(value)]
                    for key, value in loaded_topic.recent.items() if value in BROKEN_VALUES}

        export_records(job, ExportOptions(tmp_path, since_seconds=3600))
        malformed = read_polars(tmp_path).filter(pl.col("kind") == "malformed")

        found = {(p, o): reason for p, o, reason in
                 malformed.select("partition", "offset", "reason").iter_rows()}
        assert found == expected
        assert len(expected) == 12

    def test_include_raw_round_trips_bytes(self, kafka: LocalKafka,
                                           loaded_topic: LoadedTopic, group_id: str,
                                           tmp_path: Path) -> None:
        job = make_job(kafka, loaded_topic.topic, group_id)
        options = ExportOptions(tmp_path, from_committed=True, include_raw=True,
                                include_line=False)

        export_records(job, options)
        rows = read_polars(tmp_path)

        raw = {(p, o): value for p, o, value in rows.select("partition", "offset", "raw")
               .iter_rows()}
        assert raw == loaded_topic.values
        assert "line" not in rows.columns

    def test_without_raw_no_raw_column(self, kafka: LocalKafka, loaded_topic: LoadedTopic,
                                       group_id: str, tmp_path: Path) -> None:
        job = make_job(kafka, loaded_topic.topic, group_id)

        export_records(job, ExportOptions(tmp_path, since_seconds=3600))
        columns = read_polars(tmp_path).columns

        assert "raw" not in columns
        assert "line" in columns
        assert {"workload", "date", "namespace", "kafka_timestamp"} <= set(columns)

    def test_max_records_caps_export(self, kafka: LocalKafka, loaded_topic: LoadedTopic,
                                     group_id: str, tmp_path: Path) -> None:
        job = make_job(kafka, loaded_topic.topic, group_id)

        result = export_records(job, ExportOptions(tmp_path, from_committed=True,
                                                   max_records=250))

        assert result.capped
        assert result.records_read == 250
        assert read_polars(tmp_path).height == 250
        assert any("--max-records" in line for line in summary_lines(result))


@pytest.mark.kafka
class TestExportCommand:
    def test_command_writes_export(self, kafka: LocalKafka, loaded_topic: LoadedTopic,
                                   group_id: str, tmp_path: Path) -> None:
        from batchalert.cli import app

        output = tmp_path / "export"
        arguments = ["export", "--brokers", kafka.bootstrap, "--topic", loaded_topic.topic,
                     "--group", group_id, "--since", "1h", "-o", str(output), "--no-line"]

        outcome = CliRunner().invoke(app, arguments)

        assert outcome.exit_code == 0, outcome.output
        assert f"exported {len(loaded_topic.recent):,} records" in outcome.output
        assert read_polars(output).height == len(loaded_topic.recent)
        assert "line" not in read_polars(output).columns

    def test_command_needs_a_start(self, tmp_path: Path) -> None:
        from batchalert.cli import app

        arguments = ["export", "--brokers", "127.0.0.1:9", "--topic", "t", "--group", "g",
                     "-o", str(tmp_path)]

        outcome = CliRunner().invoke(app, arguments)

        assert outcome.exit_code == ConfigError.exit_code
