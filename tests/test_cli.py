"""The command line: exit codes, summaries, dry runs, dead letters, parse, validate, test."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from kafka import KafkaConsumer, TopicPartition
from typer.testing import CliRunner

import batchalert
from batchalert import cli
from batchalert.cli import app
from batchalert.config import build_job
from batchalert.state import StateTopic
from tests.test_pipeline import fluent_bit_value

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "data" / "log_records.jsonl"

runner = CliRunner()


def write_job(tmp_path: Path, bootstrap: str, topic: str, group: str,
              url: str | None = None, **extra: Any) -> Path:
    job: dict[str, Any] = {
        "name": "cli-test",
        "source": {"brokers": [bootstrap], "topic": topic, "group": group,
                   "timeout_seconds": 5, "stall_seconds": 20},
        "receivers": [{"url": url, "timeout": {"connect": 2, "read": 2},
                       "retry_budget_seconds": 0}] if url else [],
        **extra,
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job), encoding="utf-8")
    return path


def committed_offset(bootstrap: str, topic: str, group: str, partition: int = 0) -> int | None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        return consumer.committed(TopicPartition(topic, partition))
    finally:
        consumer.close()


class TestExitCodes:
    def test_success_prints_summary(self, kafka, topic_factory, group_id, nm_server,  # type: ignore[no-untyped-def]
                                    tmp_path) -> None:
        topic = topic_factory(partitions=1)
        kafka.produce(topic, [fluent_bit_value(404)] * 3 + [b"not json"])
        job = write_job(tmp_path, kafka.bootstrap, topic, group_id, nm_server.url)

        result = runner.invoke(app, ["run", "--job", str(job)])

        assert result.exit_code == 0, result.output
        assert "records read: 4" in result.output
        assert "malformed: 1" in result.output
        assert "malformed by reason: not_json: 1" in result.output
        assert "alerts: 1" in result.output
        assert "partition 0: offsets 0..4" in result.output
        assert "commit: offsets committed" in result.output
        assert committed_offset(kafka.bootstrap, topic, group_id) == 4

    def test_invalid_yaml_exits_2(self, tmp_path: Path) -> None:
        path = tmp_path / "job.yaml"
        path.write_text("source: [\n")

        result = runner.invoke(app, ["run", "--job", str(path)])

        assert result.exit_code == 2
        assert "invalid YAML" in result.output

    def test_bad_regex_exits_2_and_explains(self, tmp_path: Path) -> None:
        job = write_job(tmp_path, "127.0.0.1:9", "logs", "g", "http://127.0.0.1:9/x",
                        rules=[{"pod": {"include": ["^(?!wordpress)"]}}])

        result = runner.invoke(app, ["run", "--job", str(job)])

        assert result.exit_code == 2
        assert "rules.0.pod.include" in result.output
        assert "look-around" in result.output

    def test_no_receiver_exits_2(self, tmp_path: Path) -> None:
        job = write_job(tmp_path, "127.0.0.1:9", "logs", "g")

        result = runner.invoke(app, ["run", "--job", str(job)])

        assert result.exit_code == 2
        assert "no receiver configured" in result.output

    def test_unreachable_broker_exits_3_in_bounded_time(self, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                         unused_port: int) -> None:
        job = write_job(tmp_path, f"127.0.0.1:{unused_port}", "logs", "g")
        started = time.monotonic()

        result = runner.invoke(app, ["run", "--job", str(job), "--dry-run"])

        assert result.exit_code == 3
        assert f"127.0.0.1:{unused_port}" in result.output
        assert time.monotonic() - started < 60

    def test_missing_topic_exits_3(self, kafka, group_id, tmp_path) -> None:  # type: ignore[no-untyped-def]
        job = write_job(tmp_path, kafka.bootstrap, "missing-topic-x", group_id)

        result = runner.invoke(app, ["run", "--job", str(job), "--dry-run"])

        assert result.exit_code == 3
        assert "'missing-topic-x' not found" in result.output

    def test_receiver_failure_exits_4_and_commits_nothing(  # type: ignore[no-untyped-def]
            self, kafka, topic_factory, group_id, nm_server, tmp_path) -> None:
        topic = topic_factory(partitions=1)
        kafka.produce(topic, [fluent_bit_value(404)])
        job = write_job(tmp_path, kafka.bootstrap, topic, group_id, nm_server.url)
        nm_server.fail_next(5, 500)

        result = runner.invoke(app, ["run", "--job", str(job)])

        assert result.exit_code == 4
        assert "HTTP 500" in result.output
        assert "1 of 1 alerts not delivered" in result.output
        assert "nothing committed" in result.output
        assert committed_offset(kafka.bootstrap, topic, group_id) is None

    def test_active_run_exits_5(self, kafka, topic_factory, group_id, nm_server,  # type: ignore[no-untyped-def]
                                tmp_path) -> None:
        topic = topic_factory(partitions=1)
        path = write_job(tmp_path, kafka.bootstrap, topic, group_id, nm_server.url)
        state = StateTopic(build_job(yaml.safe_load(path.read_text()), "test"))
        state.ensure_exists()
        state.append({f"lock/cli-test/{group_id}/other-run": {
            "run_id": "other-run", "renewed_at": time.time(), "acquired_offset": None}})
        state.close()

        result = runner.invoke(app, ["run", "--job", str(path)])

        assert result.exit_code == 5
        assert "other-run" in result.output

    def test_shared_group_exits_6(self, kafka, topic_factory, group_id, nm_server,  # type: ignore[no-untyped-def]
                                  tmp_path) -> None:
        topic, other = topic_factory(partitions=1), topic_factory(partitions=1)
        consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=group_id,
                                 enable_auto_commit=False)
        from kafka.structs import OffsetAndMetadata
        consumer.commit({TopicPartition(other, 0): OffsetAndMetadata(0, "", -1)})
        consumer.close()
        job = write_job(tmp_path, kafka.bootstrap, topic, group_id, nm_server.url)

        result = runner.invoke(app, ["run", "--job", str(job)])

        assert result.exit_code == 6
        assert other in result.output
        assert "group of its own" in result.output


class TestRunOutputs:
    def test_dry_run_prints_alert_json(self, kafka, topic_factory, group_id, nm_server,  # type: ignore[no-untyped-def]
                                       tmp_path) -> None:
        topic = topic_factory(partitions=1)
        kafka.produce(topic, [fluent_bit_value(404)] * 2)
        job = write_job(tmp_path, kafka.bootstrap, topic, group_id, nm_server.url)

        result = runner.invoke(app, ["run", "--job", str(job), "--dry-run"])

        assert result.exit_code == 0
        start = result.stdout.index("[")
        alerts = json.loads(result.stdout[start:result.stdout.rindex("]") + 1])
        assert alerts[0]["labels"]["path"] == "/notfound"
        assert alerts[0]["annotations"]["count"] == "2"
        assert nm_server.received == []
        assert committed_offset(kafka.bootstrap, topic, group_id) is None

    def test_max_records_commits_processed_prefix(self, kafka, topic_factory, group_id,  # type: ignore[no-untyped-def]
                                                  nm_server, tmp_path) -> None:
        topic = topic_factory(partitions=1)
        kafka.produce(topic, [fluent_bit_value(404)] * 10)
        job = write_job(tmp_path, kafka.bootstrap, topic, group_id, nm_server.url)

        result = runner.invoke(app, ["run", "--job", str(job), "--max-records", "4"])

        assert result.exit_code == 0, result.output
        assert "capped" in result.output
        assert committed_offset(kafka.bootstrap, topic, group_id) == 4
        assert nm_server.received[0]["alerts"][0]["annotations"]["count"] == "4"

    def test_dead_letter_keeps_raw_values(self, kafka, topic_factory, group_id, nm_server,  # type: ignore[no-untyped-def]
                                          tmp_path) -> None:
        topic = topic_factory(partitions=1)
        broken = [b"\xff\xfe{not json", b"[1,2]", b'{"kubernetes": {"pod_name": "a"}}']
        kafka.produce(topic, [fluent_bit_value(200), *broken])
        job = write_job(tmp_path, kafka.bootstrap, topic, group_id, nm_server.url)
        directory = tmp_path / "dead"

        result = runner.invoke(app, ["run", "--job", str(job), "--dead-letter", str(directory)])

        assert result.exit_code == 0, result.output
        frame = pl.read_parquet(directory)
        assert frame["offset"].to_list() == [1, 2, 3]
        assert frame["value"].to_list() == broken
        assert frame["reason"].null_count() == 0
        assert set(frame["topic"]) == {topic}


class TestOfflineCommands:
    def test_parse_writes_one_object_per_line(self, tmp_path: Path) -> None:
        values = [json.dumps(json.loads(line)["record"]).encode()
                  if isinstance(json.loads(line)["record"], dict)
                  else json.loads(line)["record"].encode()
                  for line in CASES.read_text(encoding="utf-8").splitlines()]
        path = tmp_path / "values.txt"
        path.write_bytes(b"\n".join(values) + b"\n")

        result = runner.invoke(app, ["parse", str(path)])

        assert result.exit_code == 0
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert len(rows) == len(values)
        keys = {"kind", "reason", "namespace", "pod", "container", "client", "method", "path",
                "protocol", "status", "bytes", "time"}
        assert all(set(row) == keys for row in rows)
        assert rows[0]["kind"] == "access"
        assert rows[0]["status"] == 404

    def test_parse_missing_file_exits_2(self, tmp_path: Path) -> None:
        result = runner.invoke(app, ["parse", str(tmp_path / "nope.txt")])

        assert result.exit_code == 2
        assert "cannot read" in result.output

    def test_validate_reports_each_file(self, tmp_path: Path) -> None:
        good = ROOT / "jobs" / "wordpress-404.yaml"
        bad = tmp_path / "bad.yaml"
        bad.write_text("source: {brokers: [x:1], topic: t, group: g}\nrules: [{status: [99]}]\n")

        result = runner.invoke(app, ["validate", str(good), str(bad)])

        assert result.exit_code == 2
        assert f"{good}: ok" in result.output
        assert "rules.0.status" in result.output

    def test_rule_test_explains_thresholds(self, tmp_path: Path) -> None:
        job = tmp_path / "job.yaml"
        job.write_text(yaml.safe_dump({
            "source": {"brokers": ["127.0.0.1:9"], "topic": "t", "group": "g"},
            "rules": [{"name": "ratio", "group_by": ["namespace", "workload"],
                       "ratio": {"min_ratio": 0.2, "min_requests": 4}}],
        }))
        values = tmp_path / "values.txt"
        values.write_bytes(b"\n".join([fluent_bit_value(404)] * 2 + [fluent_bit_value(200)] * 3))

        result = runner.invoke(app, ["test", str(job), "--input", str(values)])

        assert result.exit_code == 0, result.output
        assert "FIRES" in result.output
        assert "ratio 40.00% > min_ratio 20.00%" in result.output
        assert "requests 5 >= min_requests 4" in result.output
        assert "alerts that would be sent: 1" in result.output


@pytest.mark.slow
def test_demo_command_shows_alerts() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "scripts.demo", "--records", "20000"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    output = completed.stdout
    assert "The article's job" in output
    assert "wordpress-v1 GET /notfound" in output
    assert "Notification Manager accepted 0 POST(s)" in output
    # The first payload is printed whole, so it parses as JSON.
    payload = output.split("The first payload Notification Manager received, in full")[1]
    assert json.loads(payload[payload.index("{"):])["alerts"]


@pytest.mark.parametrize(("arguments", "code", "stdout", "stderr"), [
    (["version"], 0, batchalert.__version__, ""),
    (["run", "--job", "/nonexistent/job.yaml"], 2, "", "cannot read job file"),
    (["run", "--no-such-option"], 2, "", "No such option"),
])
def test_process_exit_code_and_flushed_output(arguments: list[str], code: int, stdout: str,
                                              stderr: str) -> None:
    # main() ends the process with os._exit, so the output must be flushed before.
    completed = subprocess.run([sys.executable, "-m", "batchalert.cli", *arguments],
                               capture_output=True, text=True, timeout=60, check=False)

    assert completed.returncode == code
    assert stdout in completed.stdout
    assert stderr in completed.stderr


def test_exit_with_message_code(monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    codes: list[int] = []
    monkeypatch.setattr(cli.os, "_exit", codes.append)

    cli._exit_now("stopped: lock held")
    cli._exit_now(None)

    assert codes == [1, 0]
    assert "stopped: lock held" in capsys.readouterr().err


def test_dry_run_with_commit_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["run", "--dry-run", "--commit", "--brokers", "x:1",
                                      "--topic", "t", "--group", "g"])

    assert result.exit_code == 2
    assert "--dry-run never commits" in result.output


def test_commit_without_since_warns() -> None:
    # The job file does not exist, so the run stops right after the warning.
    result = CliRunner().invoke(app, ["run", "--commit", "--job", "/nonexistent/job.yaml"])

    assert result.exit_code == 2
    assert "--commit changes nothing without --since" in result.output


def test_main_exits_with_app_code(monkeypatch: pytest.MonkeyPatch) -> None:
    codes: list[int] = []
    monkeypatch.setattr(cli.os, "_exit", codes.append)

    def stop_with_code() -> None:
        raise SystemExit(3)

    monkeypatch.setattr(cli, "app", stop_with_code)
    cli.main()

    assert codes == [3]


def test_main_keeps_httpcore_off_trio() -> None:
    # A blocking HTTP client is all the CLI uses, so main() skips httpcore's trio import.
    code = ("import sys, batchalert.cli as cli; "
            "cli.app = lambda: None; cli._exit_now = lambda code: None; cli.main(); "
            "import httpcore; print(sys.modules.get('trio') is None)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               check=True)

    assert completed.stdout.strip() == "True"


def test_invalid_template_fails_before_connecting(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  unused_port: int) -> None:
    from batchalert.source import client

    def no_connection(source: object) -> None:
        raise AssertionError("the run connected to Kafka before checking its templates")

    monkeypatch.setattr(client, "ConsumerStart", no_connection)
    job = write_job(tmp_path, f"127.0.0.1:{unused_port}", "logs", "g",
                    templates={"message": "{{ count "})
    metrics_file = tmp_path / "run.prom"

    result = CliRunner().invoke(app, ["run", "--job", str(job), "--dry-run",
                                      "--metrics-file", str(metrics_file)])

    assert result.exit_code == 2
    assert f"error: {job}: templates.message template is invalid" in result.output
    assert not metrics_file.exists()


def test_invalid_since_names_option() -> None:
    result = CliRunner().invoke(app, ["run", "--since", "1hour", "--dry-run", "--brokers",
                                      "127.0.0.1:9", "--topic", "t", "--group", "g"])

    assert result.exit_code == 2
    assert "--since: duration '1hour' is invalid" in result.output
