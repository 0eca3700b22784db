"""Rendering alert text from Jinja2 templates in a sandbox.

Log content reaches templates only as values in the context, never as template source, and the
sandbox stops a job's own template from reaching Python internals. Templates are compiled when
the job is loaded, so a broken one fails before any record is read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from batchalert.config import RuleConfig, TemplateConfig
from batchalert.errors import ConfigError
from batchalert.rules.aggregate import AlertGroup

TEMPLATE_NAMES = ("message", "summary", "slack")


def _builtin_source(language: str, name: str) -> str:
    package = resources.files("batchalert") / "templates" / "alerts" / language / f"{name}.j2"
    return package.read_text(encoding="utf-8")


def _status_text(group: AlertGroup) -> str:
    ranges = group.rule.status_ranges
    return ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in ranges)


def template_context(group: AlertGroup) -> dict[str, Any]:
    """Return the values a template may use; all log-derived values are plain strings."""
    key = group.key
    return {
        "rule": group.rule.name,
        "status": _status_text(group),
        "namespace": key.get("namespace", "-"),
        "workload": key.get("workload", "-"),
        "pod": key.get("pod", "-"),
        "container": key.get("container", "-"),
        "method": key.get("method", "-"),
        "path": key.get("path", "-"),
        "key": dict(key),
        "target": _target_text(key),
        "source": _source_text(key),
        "count": group.count,
        "first": _short_time(group.first),
        "last": _short_time(group.last),
        "pods": list(group.pods),
        "samples": list(group.samples),
        "severity": group.severity,
        "requests": group.requests,
        "ratio": group.ratio,
        "folded_groups": group.folded_groups,
        "is_summary": group.is_summary,
    }


def escape_context(context: dict[str, Any], escape: Callable[[str], str]) -> dict[str, Any]:
    """Apply `escape` to every string in a template context, inside lists and dicts too.

    Numbers, booleans and None stay as they are, so templates can still compare and format them.
    """
    return {name: _escape_value(value, escape) for name, value in context.items()}


def _escape_value(value: Any, escape: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, list):
        return [_escape_value(item, escape) for item in value]
    if isinstance(value, dict):
        return {key: _escape_value(item, escape) for key, item in value.items()}
    return value


def _target_text(key: dict[str, str]) -> str | None:
    """Return "GET /path" from the group key, or None when the rule does not group by them."""
    parts = [key[name] for name in ("method", "path") if name in key]
    return " ".join(parts) if parts else None


def _source_text(key: dict[str, str]) -> str:
    """Return the most specific of pod, workload and container that the group key has."""
    for name in ("pod", "workload", "container"):
        if name in key:
            return key[name]
    return "all workloads"


def _short_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


class AlertRenderer:
    """Compiled templates of one job; `message`, `summary` and `slack` render a group."""

    def __init__(self, language: str = "en", overrides: TemplateConfig | None = None) -> None:
        self._env = ImmutableSandboxedEnvironment(
            undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
        )
        self.language = language
        overrides = overrides or TemplateConfig()
        self._templates = {}
        for name in TEMPLATE_NAMES:
            source = getattr(overrides, name) or _builtin_source(language, name)
            origin = f"templates.{name}" if getattr(overrides, name) else f"built-in {name}"
            try:
                self._templates[name] = self._env.from_string(source)
            except TemplateError as exc:
                raise ConfigError(f"{origin} template is invalid: {exc}") from exc

    def _render(self, name: str, group: AlertGroup,
                escape: Callable[[str], str] | None = None) -> str:
        context = template_context(group)
        if escape is not None:
            context = escape_context(context, escape)
        try:
            return self._templates[name].render(context).strip()
        except TemplateError as exc:
            raise ConfigError(f"templates.{name} failed to render: {exc}; use only the "
                              f"documented variables") from exc

    def message(self, group: AlertGroup) -> str:
        return self._render("message", group)

    def summary(self, group: AlertGroup) -> str:
        return self._render("summary", group)

    def slack(self, group: AlertGroup, escape: Callable[[str], str] | None = None) -> str:
        """Render the Slack text; `escape` applies to every value, never to the template's text.

        A Slack sink passes its mrkdwn escape here, so log content cannot add mentions or links
        while a job's own template keeps its formatting.
        """
        return self._render("slack", group, escape)

    def check(self, rules: list[RuleConfig]) -> None:
        """Render every template for a sample group and a summary group of each rule.

        Compiling catches syntax errors only. Rendering also catches unknown variables and
        sandbox violations, so a broken template fails when the job is loaded, before any
        receiver was posted to.
        """
        for rule in rules:
            for group in _sample_groups(rule):
                for name in TEMPLATE_NAMES:
                    self._render(name, group, escape=str)


def _sample_groups(rule: RuleConfig) -> list[AlertGroup]:
    moment = datetime(2021, 8, 25, 1, 54, 37, tzinfo=UTC)
    regular = AlertGroup(
        rule=rule, key={name: f"sample-{name}" for name in rule.group_by}, count=12,
        first=moment, last=moment, pods=("sample-pod",), samples=("sample line",),
        severity=rule.severity, requests=100 if rule.ratio is not None else None,
    )
    summary = AlertGroup(
        rule=rule, key={"namespace": "sample-namespace"}, count=40, first=moment, last=moment,
        pods=("sample-pod",), samples=(), severity=rule.severity, folded_groups=3,
    )
    return [regular, summary]
