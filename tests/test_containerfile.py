"""Static checks of the Containerfile and its build context; no container engine runs here.

The Containerfile is parsed into stages of instructions (continuation lines joined, comments
dropped). The checks cover what a build would only reveal later: COPY sources that are
missing or ignored, a root user, an entry point that is not the package's console script,
build tools in the runtime image.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONTAINERFILE = REPO / "Containerfile"
IGNORE_FILE = REPO / ".dockerignore"
PYPROJECT = REPO / "pyproject.toml"
BASE_CRONJOB = REPO / "cron" / "base" / "cronjob.yaml"

# Debian packages and commands that compile code; none belongs in the runtime image.
BUILD_TOOLS = re.compile(
    r"\b(build-essential|gcc|g\+\+|clang|make|cmake|cargo|rustc|[\w.+-]+-dev|git)\b"
)
ROOT_USERS = frozenset({"root", "0"})


@dataclass
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def logical_lines(text: str) -> list[str]:
    """Return the instructions of `text`, with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Containerfile ends with a continuation backslash"
    return lines


def parse_containerfile(text: str) -> list[Stage]:
    """Split `text` into stages, with ARG defaults from before the first FROM substituted."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, arguments = line.partition(" ")
        instruction = Instruction(keyword.upper(), arguments.strip())
        if instruction.keyword == "FROM":
            stages.append(parse_from(instruction.arguments, global_args))
        elif stages:
            stages[-1].instructions.append(instruction)
        elif instruction.keyword == "ARG":
            name, _, default = instruction.arguments.partition("=")
            global_args[name] = default
    return stages


def parse_from(arguments: str, global_args: dict[str, str]) -> Stage:
    words = [word for word in arguments.split() if not word.startswith("--")]
    base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m[1] or m[2]], words[0])
    name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
    return Stage(base=base, name=name)


def exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.arguments)
    assert isinstance(value, list), f"{instruction.keyword} must use the JSON exec form"
    return value


def copy_sources(instruction: Instruction) -> list[str]:
    words = [word for word in shlex.split(instruction.arguments) if not word.startswith("--")]
    return words[:-1]


def ignore_patterns() -> list[str]:
    lines = IGNORE_FILE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Tell whether the build context leaves out `path`, as .dockerignore patterns do."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        clean = pattern.removeprefix("!").strip("/")
        # A pattern that matches a folder also leaves out everything below it.
        parents = [str(parent) for parent in Path(path).parents if str(parent) != "."]
        candidates = [path.strip("/"), *parents]
        if any(fnmatch.fnmatchcase(candidate, clean) for candidate in candidates):
            ignored = not negated
        if clean.startswith("**/") and fnmatch.fnmatchcase(Path(path).name, clean[3:]):
            ignored = not negated
    return ignored


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_containerfile(CONTAINERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def run_commands(stage: Stage) -> str:
    return "\n".join(instruction.arguments for instruction in stage.all("RUN"))


class TestParser:
    def test_joins_continuation_lines(self) -> None:
        text = "FROM a AS b\n# note\nRUN one \\\n    two\nUSER 1\n"

        (stage,) = parse_containerfile(text)

        assert stage.name == "b"
        assert [(i.keyword, i.arguments) for i in stage.instructions] == [
            ("RUN", "one  two"),
            ("USER", "1"),
        ]

    def test_substitutes_global_arg(self) -> None:
        (stage,) = parse_containerfile("ARG IMAGE=python:3.12-slim\nFROM ${IMAGE}\n")

        assert stage.base == "python:3.12-slim"

    def test_ignore_matches_folder_contents(self) -> None:
        patterns = ["tests", "**/__pycache__", "docs/*", "!docs/keep.md"]

        assert is_ignored("tests/test_cron.py", patterns)
        assert is_ignored("batchalert/__pycache__/cron.cpython-311.pyc", patterns)
        assert is_ignored("docs/jobs.md", patterns)
        assert not is_ignored("docs/keep.md", patterns)
        assert not is_ignored("batchalert/cron.py", patterns)


class TestStages:
    def test_multi_stage_build(self, stages: list[Stage]) -> None:
        assert len(stages) >= 2
        assert stages[0].name is not None

    def test_slim_python_base(self, stages: list[Stage]) -> None:
        for stage in stages:
            assert re.fullmatch(r"(docker\.io/library/)?python:3\.1[12]-slim", stage.base)

    def test_copy_sources_exist(self, stages: list[Stage]) -> None:
        for stage in stages:
            for instruction in stage.all("COPY") + stage.all("ADD"):
                if "--from=" in instruction.arguments:
                    continue
                for source in copy_sources(instruction):
                    assert (REPO / source).exists(), f"COPY source {source} is missing"

    def test_copy_sources_not_ignored(self, stages: list[Stage]) -> None:
        patterns = ignore_patterns()
        for stage in stages:
            for instruction in stage.all("COPY"):
                for source in copy_sources(instruction):
                    assert not is_ignored(source, patterns), f"{source} is in .dockerignore"

    def test_readme_copied_for_build(self, stages: list[Stage]) -> None:
        if not PYPROJECT.exists():
            pytest.skip("pyproject.toml is not written yet")
        project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
        readme = project.get("readme")
        copied = {source for i in stages[0].all("COPY") for source in copy_sources(i)}

        assert isinstance(readme, str)
        assert {"pyproject.toml", readme} <= copied

    def test_ignore_leaves_out_repository_noise(self) -> None:
        patterns = ignore_patterns()

        for path in (".git/config", "tests/test_cron.py", "batchalert/__pycache__/x.pyc"):
            assert is_ignored(path, patterns), path


class TestFinalStage:
    def test_user_not_root(self, final: Stage) -> None:
        users = final.all("USER")

        assert users, "the final stage sets no USER, so the image runs as root"
        user, _, group = users[-1].arguments.partition(":")
        assert user not in ROOT_USERS
        assert group not in ROOT_USERS

    def test_user_matches_cronjob(self, final: Stage) -> None:
        cronjob = yaml.safe_load(BASE_CRONJOB.read_text(encoding="utf-8"))
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["securityContext"]

        assert final.all("USER")[-1].arguments == f"{pod['runAsUser']}:{pod['runAsGroup']}"

    def test_entrypoint_is_console_script(self, final: Stage) -> None:
        (entrypoint,) = final.all("ENTRYPOINT")
        if not PYPROJECT.exists():
            pytest.skip("pyproject.toml is not written yet; cannot check [project.scripts]")
        scripts = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["scripts"]

        assert exec_form(entrypoint) == ["batchalert"]
        assert "batchalert" in scripts

    def test_cmd_prints_help(self, final: Stage) -> None:
        (cmd,) = final.all("CMD")

        assert exec_form(cmd) == ["--help"]

    def test_python_environment(self, final: Stage) -> None:
        environment = " ".join(instruction.arguments for instruction in final.all("ENV"))

        assert "PYTHONDONTWRITEBYTECODE=1" in environment.split()
        assert "PYTHONUNBUFFERED=1" in environment.split()

    def test_no_build_tools(self, final: Stage) -> None:
        commands = run_commands(final)

        assert BUILD_TOOLS.search(commands) is None
        assert "apt-get install" not in commands

    def test_installs_only_built_wheels(self, final: Stage, stages: list[Stage]) -> None:
        commands = run_commands(final)

        assert final.all("COPY") == [], "the final stage copies files from the context"
        assert final.all("ADD") == [], "the final stage adds files from the context"
        assert "--no-index" in commands
        assert f"from={stages[0].name}" in commands

    def test_kernels_built_and_checked(self, final: Stage, stages: list[Stage]) -> None:
        environment = " ".join(instruction.arguments for instruction in final.all("ENV"))

        assert "python -m batchalert.kernels.build --out /wheels/kernels" in run_commands(
            stages[0])
        assert "BATCHALERT_KERNELS_DIR=/opt/batchalert/kernels" in environment.split()
        assert "load().ahead_of_time" in run_commands(final)

    def test_build_tools_pattern_matches(self) -> None:
        for command in ("apt-get install -y gcc", "apt-get install libpq-dev", "make all"):
            assert BUILD_TOOLS.search(command), command
        assert BUILD_TOOLS.search("python -m pip install --no-index batchalert") is None
