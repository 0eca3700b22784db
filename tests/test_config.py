"""Job files: validation errors that point at the field, overrides, durations, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchalert.config import (
    SecretRef,
    expand_status,
    load_job,
    parse_duration,
    resolve_secret,
)
from batchalert.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = """
name: demo
source:
  brokers: ["127.0.0.1:9092"]
  topic: logs
  group: g1
receivers:
  - url: http://127.0.0.1:19093/api/v2/alerts
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_job_gets_default_404_rule(tmp_path: Path) -> None:
    job = load_job(write(tmp_path, MINIMAL), environ={})

    assert len(job.rules) == 1
    assert job.rules[0].status_ranges == [(404, 404)]
    assert job.rules[0].group_by == ["namespace", "workload", "method", "path"]
    assert job.rules[0].max_alerts == 100
    assert job.receivers[0].type == "notification-manager"


def test_example_jobs_load() -> None:
    for path in sorted((ROOT / "jobs").glob("*.yaml")):
        job = load_job(path, environ={})
        assert job.rules, path


def test_unknown_field_is_named_with_its_path(tmp_path: Path) -> None:
    text = MINIMAL.replace("  group: g1", "  group: g1\n  gruop: typo")

    with pytest.raises(ConfigError) as caught:
        load_job(write(tmp_path, text), environ={})

    message = str(caught.value)
    assert "job.yaml" in message
    assert "source.gruop" in message


def test_wrong_type_names_value(tmp_path: Path) -> None:
    text = MINIMAL + "rules:\n  - min_count: lots\n"

    with pytest.raises(ConfigError) as caught:
        load_job(write(tmp_path, text), environ={})

    assert "rules.0.min_count" in str(caught.value)
    assert "'lots'" in str(caught.value)


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_job(write(tmp_path, "source: [unclosed\n"), environ={})

    assert "invalid YAML" in str(caught.value)
    assert "line" in str(caught.value)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [("(?=wordpress)", "look-around"), (r"(a)\1", "back-references"), ("[", "unclosed"),
     ("^wordpress-(v1", "unclosed group at character 12")],
)
def test_regex_polars_cannot_run_is_rejected(tmp_path: Path, pattern: str, reason: str) -> None:
    text = MINIMAL + f"rules:\n  - pod:\n      include: ['{pattern}']\n"

    with pytest.raises(ConfigError) as caught:
        load_job(write(tmp_path, text), environ={})

    message = str(caught.value)
    assert "rules.0.pod.include" in message
    assert pattern in message
    assert reason in message
    assert ("look-around" in message) == (reason in {"look-around", "back-references"})


def test_environment_overrides_file(tmp_path: Path) -> None:
    environ = {"BATCHALERT_BROKERS": "127.0.0.1:1, 127.0.0.1:2", "BATCHALERT_TOPIC": "other",
               "BATCHALERT_RECEIVER_URL": "http://127.0.0.1:1/api/v2/alerts"}

    job = load_job(write(tmp_path, MINIMAL), environ=environ)

    assert job.source.brokers == ["127.0.0.1:1", "127.0.0.1:2"]
    assert job.source.topic == "other"
    assert job.receivers[0].url == "http://127.0.0.1:1/api/v2/alerts"


def test_options_override_environment(tmp_path: Path) -> None:
    job = load_job(write(tmp_path, MINIMAL), {"TOPIC": "from-option"},
                   environ={"BATCHALERT_TOPIC": "from-env"})

    assert job.source.topic == "from-option"


def test_override_error_names_its_source(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("topic: logs", "topic: logs\n  timeout_seconds: -1"))

    with pytest.raises(ConfigError) as from_variable:
        load_job(path, environ={"BATCHALERT_BROKERS": "127.0.0.1"})
    with pytest.raises(ConfigError) as from_option:
        load_job(path, {"BROKERS": "127.0.0.1", "RECEIVER_URL": "ftp://127.0.0.1/x"},
                 environ={"BATCHALERT_BROKERS": "127.0.0.1:9092"})

    variable_lines = str(from_variable.value).splitlines()
    assert any(line.startswith("BATCHALERT_BROKERS: source.brokers") for line in variable_lines)
    # The file's own mistake still names the file.
    assert any(line.startswith(f"{path}: source.timeout_seconds") for line in variable_lines)
    option_lines = str(from_option.value).splitlines()
    assert any(line.startswith("--brokers: source.brokers") for line in option_lines)
    # The URL check belongs to the receiver, so the error is the file's and names the option.
    assert any(line.startswith(f"{path}: receivers.0:")
               and line.endswith("receivers.0.url came from --receiver-url")
               for line in option_lines)
    assert not any("BATCHALERT_BROKERS" in line for line in option_lines)


def test_job_from_environment_only() -> None:
    environ = {"BATCHALERT_BROKERS": "127.0.0.1:9092", "BATCHALERT_TOPIC": "logs",
               "BATCHALERT_GROUP": "g", "BATCHALERT_RECEIVER_URL": "http://127.0.0.1:9/x"}

    job = load_job(None, environ=environ)

    assert job.source.group == "g"
    assert job.receivers[0].url == "http://127.0.0.1:9/x"


def test_missing_source_says_what_to_set() -> None:
    with pytest.raises(ConfigError) as caught:
        load_job(None, environ={})

    assert "BATCHALERT_BROKERS" in str(caught.value)


def test_broker_without_port_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_job(write(tmp_path, MINIMAL.replace("127.0.0.1:9092", "kafka")), environ={})

    assert "HOST:PORT" in str(caught.value)


@pytest.mark.parametrize(("spec", "expected"), [
    (404, (404, 404)), ("404", (404, 404)), ("5xx", (500, 599)), ("400-499", (400, 499)),
])
def test_status_specs_expand(spec: int | str, expected: tuple[int, int]) -> None:
    assert expand_status(spec) == expected


@pytest.mark.parametrize("spec", [99, 600, "6xx", "499-400", "four"])
def test_bad_status_specs_raise(spec: int | str) -> None:
    with pytest.raises(ValueError, match="status"):
        expand_status(spec)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("1h", 3600),
                                               ("2d", 172800)])
def test_durations_parse(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "1w", "-1h", "0s", "h"])
def test_bad_durations_raise_with_examples(text: str) -> None:
    with pytest.raises(ConfigError, match="90s, 30m, 1h, 2d"):
        parse_duration(text)


def test_secret_from_env_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_TOKEN", "s3cret-value")

    secret = resolve_secret(SecretRef(env="DEMO_TOKEN"), "token")

    assert secret is not None
    assert secret.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(secret)


def test_missing_secret_env_names_variable() -> None:
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        resolve_secret(SecretRef(env="NOT_SET_ANYWHERE"), "token")


def test_secret_from_file_strips_newline(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_text("hunter2\n")

    secret = resolve_secret(SecretRef(file=path), "password")

    assert secret is not None and secret.get_secret_value() == "hunter2"


def test_unknown_field_suggests_close_name(tmp_path: Path) -> None:
    text = MINIMAL + "rules:\n  - namespce: {include: [x]}\n"

    with pytest.raises(ConfigError) as caught:
        load_job(write(tmp_path, text), environ={})

    message = str(caught.value)
    assert "rules.0.namespce: unknown field" in message
    assert "(did you mean 'namespace'?)" in message
    assert "allowed fields: alertname" in message


def test_missing_broker_names_option_and_variable(tmp_path: Path) -> None:
    text = MINIMAL.replace('  brokers: ["127.0.0.1:9092"]\n', "")

    with pytest.raises(ConfigError) as caught:
        load_job(write(tmp_path, text), environ={})

    assert "--brokers" in str(caught.value)
    assert "BATCHALERT_BROKERS" in str(caught.value)
