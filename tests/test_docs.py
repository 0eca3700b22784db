"""The docs against the code: job fields, example jobs, CLI commands, options and exit codes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pytest
import typer
import yaml
from pydantic import BaseModel

from batchalert import errors
from batchalert.alerts.render import AlertRenderer
from batchalert.cli import app
from batchalert.config import ENV_OVERRIDES, ENV_PREFIX, GroupKey, JobConfig, build_job
from batchalert.parse.shapes import PRESETS, FormatName, SplitField

ROOT = Path(__file__).resolve().parent.parent
JOBS_DOC = ROOT / "docs" / "jobs.md"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
README = ROOT / "README.md"
README_ZH = ROOT / "README.zh-CN.md"

# Models the job file is made of. The walk below must reach every one of them.
EXPECTED_MODELS = {
    "JobConfig", "SourceConfig", "KafkaSecurity", "SecretRef", "RuleConfig", "ReceiverConfig",
    "PatternFilter", "RatioCondition", "SeverityLevel", "PathNormalization", "TimeoutConfig",
    "ReceiverAuth", "TemplateConfig", "StateConfig", "RecordShape",
}
RECEIVER_TYPES = ("notification-manager", "alertmanager", "slack", "webhook")


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    """Return the pydantic models inside an annotation such as `list[RuleConfig] | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for argument in get_args(annotation):
        found.extend(_nested_models(argument))
    return found


def walk_models(root: type[BaseModel]) -> dict[str, list[str]]:
    """Return every model reachable from `root`, by class name, with its field names."""
    fields: dict[str, list[str]] = {}
    pending = [root]
    while pending:
        model = pending.pop()
        if model.__name__ in fields:
            continue
        fields[model.__name__] = list(model.model_fields)
        for info in model.model_fields.values():
            pending.extend(_nested_models(info.annotation))
    return fields


MODEL_FIELDS = walk_models(JobConfig)
FIELD_CASES = sorted({(model, name) for model, names in MODEL_FIELDS.items() for name in names})


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def yaml_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)


def complete_jobs(markdown: str) -> list[dict[str, Any]]:
    """Return the YAML blocks that are whole jobs: mappings with a top-level `source`."""
    jobs = []
    for block in yaml_blocks(markdown):
        data = yaml.safe_load(block)
        if isinstance(data, dict) and "source" in data:
            jobs.append(data)
    return jobs


def mentions(text: str, word: str) -> bool:
    """Return whether `word` occurs in `text` on its own, not inside a longer name."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def cli_command() -> Any:
    """Return the click command of the typer app, duck-typed because typer 0.29 bundles click."""
    command = typer.main.get_command(app)
    assert hasattr(command, "commands"), "the batchalert app is expected to be a command group"
    return command


def command_paths(group: Any, prefix: str = "batchalert") -> list[str]:
    """Return `batchalert run`, `batchalert cron render` and so on, for every leaf command."""
    paths = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        if hasattr(command, "commands"):
            paths.extend(command_paths(command, path))
        else:
            paths.append(path)
    return paths


def run_options() -> list[str]:
    """Return the long option names of `batchalert run`, without `--help`."""
    run = cli_command().commands["run"]
    names: list[str] = []
    for parameter in run.params:
        if parameter.param_type_name == "option":
            names.extend(opt for opt in parameter.opts if opt.startswith("--"))
    return sorted(name for name in names if name != "--help")


def exit_code_rows(markdown: str) -> set[int]:
    """Return the numbers in the first column of table rows such as `| 4 | ... |`."""
    return {int(code) for code in re.findall(r"^\| *(\d) *\|", markdown, flags=re.MULTILINE)}


def defined_exit_codes() -> set[int]:
    """Return 0 and the exit code of every error class in batchalert.errors."""
    codes = {0}
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, errors.BatchalertError):
            codes.add(value.exit_code)
    return codes


def test_model_walk_reaches_every_model() -> None:
    assert set(MODEL_FIELDS) == EXPECTED_MODELS


@pytest.mark.parametrize(("model", "field"), FIELD_CASES,
                         ids=[f"{model}.{field}" for model, field in FIELD_CASES])
def test_jobs_doc_names_field(model: str, field: str) -> None:
    assert f"`{field}`" in read(JOBS_DOC), f"{model}.{field} is not described in docs/jobs.md"


@pytest.mark.parametrize("name", sorted(
    [*PRESETS, *get_args(FormatName), *get_args(SplitField), *get_args(GroupKey),
     *RECEIVER_TYPES]
))
def test_jobs_doc_names_allowed_value(name: str) -> None:
    assert f"`{name}`" in read(JOBS_DOC)


@pytest.mark.parametrize("variable", sorted(ENV_PREFIX + key for key in ENV_OVERRIDES))
def test_jobs_doc_names_env_override(variable: str) -> None:
    assert mentions(read(JOBS_DOC), variable)


def test_jobs_doc_has_example_jobs() -> None:
    jobs = complete_jobs(read(JOBS_DOC))

    assert len(jobs) >= len(RECEIVER_TYPES)


@pytest.mark.parametrize("receiver_type", RECEIVER_TYPES)
def test_jobs_doc_example_per_receiver(receiver_type: str) -> None:
    types_used: set[str] = set()
    for data in complete_jobs(read(JOBS_DOC)):
        job = build_job(data, "docs/jobs.md")
        types_used.update(receiver.type for receiver in job.receivers)

    assert receiver_type in types_used


@pytest.mark.parametrize("index", range(len(complete_jobs(read(JOBS_DOC)))))
def test_jobs_doc_example_validates(index: int) -> None:
    data = complete_jobs(read(JOBS_DOC))[index]

    job = build_job(data, f"docs/jobs.md job example {index}")
    renderer = AlertRenderer(job.language, job.templates)

    assert renderer.language == job.language


@pytest.mark.parametrize("path", command_paths(cli_command()))
def test_readme_names_command(path: str) -> None:
    assert mentions(read(README), path), f"README.md does not mention `{path}`"


@pytest.mark.parametrize("option", run_options())
def test_readme_names_run_option(option: str) -> None:
    assert mentions(read(README), option), f"README.md does not mention `run {option}`"


@pytest.mark.parametrize("option", run_options())
def test_readme_zh_names_run_option(option: str) -> None:
    assert mentions(read(README_ZH), option)


@pytest.mark.parametrize("command", ["./scripts/demo", "./scripts/test"])
def test_readmes_share_script(command: str) -> None:
    assert mentions(read(README), command)
    assert mentions(read(README_ZH), command)


def test_readme_exit_codes_match_errors() -> None:
    assert exit_code_rows(read(README)) == defined_exit_codes()


def test_readme_zh_exit_codes_match() -> None:
    assert exit_code_rows(read(README_ZH)) == exit_code_rows(read(README))


def test_operations_exit_codes_match_errors() -> None:
    assert exit_code_rows(read(OPERATIONS_DOC)) == defined_exit_codes()


def test_readme_zh_links_readme() -> None:
    assert "](README.md)" in read(README_ZH)


def test_nested_models_inside_containers() -> None:
    assert _nested_models(list[JobConfig] | None) == [JobConfig]
    assert _nested_models(dict[str, tuple[JobConfig, ...]]) == [JobConfig]
    assert _nested_models(list[str] | None) == []
