"""The job model: what to read, which rules to apply and where to send the alerts.

A job comes from a YAML file, from environment variables (`BATCHALERT_*`) and from command-line
options, in increasing order of precedence. Validation errors name the file, the field path, the
value and what is allowed. Secrets never appear in the model as values. The model contains the
name of an environment variable or the path of a mounted file, and `resolve_secret` reads it when
a client is built.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from batchalert.errors import ConfigError
from batchalert.logs import register_secret
from batchalert.parse.shapes import RecordShape, polars_regex_error

ENV_PREFIX = "BATCHALERT_"

NOTIFICATION_MANAGER_URL = (
    "http://notification-manager-svc.kubesphere-monitoring-system.svc:19093/api/v2/alerts"
)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_STATUS_RANGE = re.compile(r"^([1-5])xx$|^(\d{3})-(\d{3})$")


class _Model(BaseModel):
    """Base of every job model: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_polars_regex(pattern: str) -> str:
    """Raise ValueError, naming the pattern and the engine's reason, unless Polars compiles it."""
    problem = polars_regex_error(pattern)
    if problem is not None:
        raise ValueError(f"regular expression '{pattern}' is invalid for Polars' regex "
                         f"engine: {problem}")
    return pattern


class PatternFilter(_Model):
    """Include and exclude regular expressions for one field; empty include means everything."""

    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)

    @field_validator("include", "exclude")
    @classmethod
    def _compile(cls, patterns: list[str]) -> list[str]:
        return [check_polars_regex(pattern) for pattern in patterns]

    @property
    def is_empty(self) -> bool:
        return not self.include and not self.exclude


class SecretRef(_Model):
    """A secret read from an environment variable or a mounted file, never written inline."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("set exactly one of `env` (a variable name) or `file` (a path)")
        return self


def resolve_secret(ref: SecretRef | None, what: str, redacted: bool = True
                   ) -> SecretStr | None:
    """Read the secret that `ref` points to; the value stays wrapped in SecretStr.

    With `redacted`, the value is also registered for redaction, so no log line or error
    message shows it. User names pass False: they are not secret, and masking a name such as
    "batchalert" would mask every mention of the program.
    """
    if ref is None:
        return None
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if value is None:
            raise ConfigError(f"{what}: environment variable {ref.env} is not set; set it or "
                              f"mount the secret as a file and use `file:`")
    else:
        assert ref.file is not None
        try:
            value = ref.file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read secret file {ref.file}: "
                              f"{exc.strerror}") from exc
    if redacted:
        register_secret(value)
    return SecretStr(value)


class KafkaSecurity(_Model):
    """Connection security for the brokers: TLS files and SASL credentials."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    check_hostname: bool = True
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    username: SecretRef | None = None
    password: SecretRef | None = None

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaSecurity:
        uses_sasl = self.protocol.startswith("SASL_")
        incomplete = self.sasl_mechanism is None or self.username is None or self.password is None
        if uses_sasl and incomplete:
            raise ValueError(
                f"protocol {self.protocol} needs `sasl_mechanism`, `username` and `password`"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("mutual TLS needs both `cert_file` and `key_file`")
        return self


class SourceConfig(_Model):
    """The Kafka topic to read and the consumer group whose offsets mark progress."""

    brokers: list[str] = Field(min_length=1)
    topic: str = Field(min_length=1)
    group: str = Field(min_length=1)
    security: KafkaSecurity = Field(default_factory=KafkaSecurity)
    client_id: str = "batchalert"
    # Bounds every wait on the brokers; a run against an unreachable cluster fails within it.
    timeout_seconds: float = Field(default=30.0, gt=0)
    # A read that makes no progress for this long fails instead of hanging (broker gone).
    stall_seconds: float = Field(default=60.0, gt=0)
    # `fast` decodes whole record batches with compiled code, several times cheaper than
    # kafka-python's one Python object per record; `kafka-python` uses the plain consumer.
    reader: Literal["fast", "kafka-python"] = "fast"

    @field_validator("brokers")
    @classmethod
    def _host_port(cls, brokers: list[str]) -> list[str]:
        for broker in brokers:
            host, _, port = broker.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"broker {broker!r} must be HOST:PORT, for example kafka:9092")
        return brokers


StatusSpec = int | str


def expand_status(spec: StatusSpec) -> tuple[int, int]:
    """Turn 404, "5xx" or "400-499" into an inclusive (low, high) status range."""
    if isinstance(spec, int):
        if not 100 <= spec <= 599:
            raise ValueError(f"status {spec} is not an HTTP status code (100-599)")
        return spec, spec
    text = spec.strip()
    if text.isdigit():
        return expand_status(int(text))
    match = _STATUS_RANGE.match(text)
    if match is None:
        raise ValueError(f"status {spec!r} must be a code (404), a class (5xx) or a range "
                         f"(400-499)")
    if match.group(1):
        low = int(match.group(1)) * 100
        return low, low + 99
    low, high = int(match.group(2)), int(match.group(3))
    if low > high:
        raise ValueError(f"status range {spec!r} is reversed; write {high}-{low}")
    return low, high


class RatioCondition(_Model):
    """Fire only when matches are a large enough share of the workload's requests."""

    min_ratio: float = Field(gt=0, le=1)
    # Below this many requests of the workload, a ratio means nothing (2 of 4 is not 50 %).
    min_requests: int = Field(default=20, ge=1)


class SeverityLevel(_Model):
    """A severity that applies from a count or ratio upwards."""

    severity: str
    min_count: int = Field(default=1, ge=1)
    min_ratio: float | None = Field(default=None, gt=0, le=1)


GroupKey = Literal["namespace", "workload", "pod", "container", "method", "path", "status"]


class PathNormalization(_Model):
    """Settings that turn request paths into the `path` group key."""

    drop_query: bool = True
    collapse_ids: bool = True
    # (regex, replacement) pairs applied after the built-in steps.
    patterns: list[tuple[str, str]] = Field(default_factory=list)

    @field_validator("patterns")
    @classmethod
    def _compile(cls, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        for pattern, _ in pairs:
            check_polars_regex(pattern)
        return pairs


class RuleConfig(_Model):
    """A rule: the access lines it matches, their grouping into alerts, and when a group fires."""

    name: str = "http-404"
    alertname: str | None = None
    status: list[StatusSpec] = Field(default_factory=lambda: list[StatusSpec]([404]),
                                     min_length=1)
    method: list[str] = Field(default_factory=list)
    namespace: PatternFilter = Field(default_factory=PatternFilter)
    pod: PatternFilter = Field(default_factory=PatternFilter)
    container: PatternFilter = Field(default_factory=PatternFilter)
    workload: PatternFilter = Field(default_factory=PatternFilter)
    path: PatternFilter = Field(default_factory=PatternFilter)
    min_count: int = Field(default=1, ge=1)
    ratio: RatioCondition | None = None
    severity: str = "warning"
    severity_levels: list[SeverityLevel] = Field(default_factory=list)
    group_by: list[GroupKey] = Field(
        default_factory=lambda: list[GroupKey](["namespace", "workload", "method", "path"]),
        min_length=1
    )
    path_normalization: PathNormalization = Field(default_factory=PathNormalization)
    # At most this many alerts per run; the rest fold into one summary alert per namespace.
    max_alerts: int = Field(default=100, ge=1)

    @field_validator("status")
    @classmethod
    def _statuses(cls, specs: list[StatusSpec]) -> list[StatusSpec]:
        for spec in specs:
            expand_status(spec)
        return specs

    @field_validator("method")
    @classmethod
    def _methods(cls, methods: list[str]) -> list[str]:
        return [method.upper() for method in methods]

    @field_validator("name")
    @classmethod
    def _rule_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise ValueError(f"rule name {name!r} may contain letters, digits, '.', '_' and '-'")
        return name

    @property
    def status_ranges(self) -> list[tuple[int, int]]:
        return [expand_status(spec) for spec in self.status]

    @property
    def resolved_alertname(self) -> str:
        if self.alertname:
            return self.alertname
        parts = [part for part in re.split(r"[^A-Za-z0-9]+", self.name) if part]
        return "".join(
            part.upper() if part.lower() == "http" or any(c.isdigit() for c in part)
            else part[:1].upper() + part[1:]
            for part in parts
        )


class TimeoutConfig(_Model):
    """HTTP timeouts in seconds."""

    connect: float = Field(default=5.0, gt=0)
    read: float = Field(default=15.0, gt=0)


class ReceiverAuth(_Model):
    """Bearer-token or basic authentication for a receiver, from the environment or a file."""

    type: Literal["bearer", "basic"]
    token: SecretRef | None = None
    username: SecretRef | None = None
    password: SecretRef | None = None

    @model_validator(mode="after")
    def _complete(self) -> ReceiverAuth:
        if self.type == "bearer" and self.token is None:
            raise ValueError("bearer authentication needs `token`")
        if self.type == "basic" and (self.username is None or self.password is None):
            raise ValueError("basic authentication needs `username` and `password`")
        return self


class ReceiverConfig(_Model):
    """One destination of the alerts."""

    name: str = "notification-manager"
    type: Literal["notification-manager", "alertmanager", "slack", "webhook"] = (
        "notification-manager"
    )
    url: str | None = None
    # Alertmanager replicas are posted to one by one, never through a load balancer.
    urls: list[str] = Field(default_factory=list)
    url_env: str | None = None
    required: bool = True
    timeout: TimeoutConfig = Field(default_factory=TimeoutConfig)
    headers: dict[str, str] = Field(default_factory=dict)
    auth: ReceiverAuth | None = None
    ca_file: Path | None = None
    # Alertmanager only: endsAt of a firing alert is this long after the run that sent it. Make
    # it a few run intervals, so the alert stays active between runs and resolves by itself
    # once runs stop re-sending it.
    alertmanager_ends_after: str = Field(default="15m", pattern=r"^[1-9]\d*[smhd]$")
    # Seconds one run may spend waiting to retry HTTP 429, 5xx and transport errors; 0 disables
    # retries. Each request's own timeout comes on top of this.
    retry_budget_seconds: float = Field(default=60.0, ge=0)
    # Notification Manager only: labels whose values split the alerts into one POST each, as
    # Alertmanager's route `group_by` would. Notification Manager picks tenant receivers by
    # `namespace`, so the default is one notification per namespace.
    group_by: list[str] = Field(default_factory=lambda: ["namespace"], min_length=1)

    @model_validator(mode="after")
    def _has_url(self) -> ReceiverConfig:
        if not (self.url or self.urls or self.url_env):
            raise ValueError(f"receiver {self.name!r} needs `url` (or `urls`, or `url_env` for "
                             f"a secret webhook URL)")
        for url in [self.url, *self.urls]:
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError(f"receiver URL {url!r} must start with http:// or https://")
        return self

    def endpoint_urls(self) -> list[str]:
        """Return every URL to post to, reading `url_env` when it is set."""
        urls = [url for url in [self.url, *self.urls] if url]
        if self.url_env:
            value = os.environ.get(self.url_env)
            if not value:
                raise ConfigError(f"receiver {self.name!r}: environment variable "
                                  f"{self.url_env} is not set; set it to the receiver URL")
            # A URL kept in a secret is a credential (Slack's webhook path is its token).
            register_secret(value)
            register_secret(urlsplit(value).path)
            urls.append(value)
        return urls


class TemplateConfig(_Model):
    """Jinja2 templates for alert text; each replaces the built-in one for the job's language."""

    message: str | None = None
    summary: str | None = None
    slack: str | None = None


class StateConfig(_Model):
    """State settings: the topic of alert state between runs, and repeat and resolve times."""

    # Without state, every run sends every alert, and nothing guards against overlapping runs.
    enabled: bool = True
    # Compacted topic with one partition; default `<source.topic>.batchalert-state`.
    topic: str | None = None
    # An alert already sent within this time is not sent again to people-facing receivers.
    realert: str = "1h"
    # A firing alert with no match for this long is sent as resolved.
    resolve_after: str = "1h"
    # A run lock not renewed for this long belongs to a killed run and no longer blocks, in
    # seconds. The holder renews it every quarter of this.
    lock_lease_seconds: float = Field(default=60.0, ge=5)

    @field_validator("realert", "resolve_after")
    @classmethod
    def _duration(cls, text: str) -> str:
        match = _DURATION.match(text.strip())
        if match is None or int(match.group(1)) == 0:
            raise ValueError(f"duration {text!r} is invalid; write a number and a unit s, m, h "
                             f"or d, for example 90s, 30m, 1h, 2d")
        return text.strip()

    @property
    def realert_seconds(self) -> float:
        return parse_duration(self.realert)

    @property
    def resolve_after_seconds(self) -> float:
        return parse_duration(self.resolve_after)


class JobConfig(_Model):
    """A complete job: source, record shape, rules, receivers and templates."""

    name: str = "batchalert"
    cluster: str = "default"
    language: Literal["en", "zh-CN"] = "en"
    source: SourceConfig
    shape: RecordShape = Field(default_factory=RecordShape)
    rules: list[RuleConfig] = Field(default_factory=lambda: [RuleConfig()], min_length=1)
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    templates: TemplateConfig = Field(default_factory=TemplateConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    # Records per chunk: bounds memory, because each chunk is parsed and aggregated on its own.
    # Parsing takes about 6 times the chunk's bytes for a moment, so 10,000 records of 460
    # bytes add about 28 MB to the peak.
    chunk_records: int = Field(default=20_000, ge=1)
    # Skip decoding the records that contain none of the rules' status codes, once a compiled
    # screen found them well-formed: unreadable records are still decoded and counted. Access
    # and other lines are then counted among the decoded records only. Rules with a ratio need
    # every record and turn it off.
    prefilter: bool = True
    # Processes that read partitions in parallel; 1 reads in the run's own process. Workers are
    # used for plans of 200,000 offsets or more, without --max-records, --max-bytes or
    # --dead-letter.
    workers: int = Field(default=1, ge=1, le=64)

    @field_validator("name")
    @classmethod
    def _job_name(cls, name: str) -> str:
        if not _DNS_LABEL.match(name) or len(name) > 52:
            raise ValueError(f"job name {name!r} must be lower-case letters, digits and '-', "
                             f"at most 52 characters, as Kubernetes names are")
        return name

    @model_validator(mode="after")
    def _unique_names(self) -> JobConfig:
        for kind, names in (("rule", [r.name for r in self.rules]),
                            ("receiver", [r.name for r in self.receivers])):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{kind} names must be unique; repeated: {duplicates}")
        return self


# Environment variables that override the job file, with the field they set.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "BROKERS": ("source", "brokers"),
    "TOPIC": ("source", "topic"),
    "GROUP": ("source", "group"),
    "CLUSTER": ("cluster",),
    "JOB_NAME": ("name",),
    "LANGUAGE": ("language",),
    "RECEIVER_URL": ("receivers", "0", "url"),
}


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node: Any = data
    for key in path[:-1]:
        if key.isdigit():
            index = int(key)
            while len(node) <= index:
                node.append({})
            node = node[index]
        else:
            node = node.setdefault(key, [] if key == "receivers" else {})
    node[path[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set each non-None override (keyed like ENV_OVERRIDES) into the raw job data."""
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "BROKERS" and isinstance(value, str):
            value = [broker.strip() for broker in value.split(",") if broker.strip()]
        _set_path(data, ENV_OVERRIDES[key], value)
    return data


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Collect the BATCHALERT_* variables that override job fields."""
    environ = os.environ if environ is None else environ
    return {key: environ[ENV_PREFIX + key] for key in ENV_OVERRIDES if ENV_PREFIX + key in environ}


def read_job_file(path: Path) -> dict[str, Any]:
    """Read a job file as raw data, with YAML errors reported by file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read job file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a job file must be a YAML mapping, not {type(data).__name__}")
    return data


def _model_at(location: tuple[str | int, ...]) -> type[BaseModel] | None:
    """Return the model class that the field path `location` points into, if any."""
    model: Any = JobConfig
    for part in location:
        if isinstance(part, int) or not (isinstance(model, type) and
                                          issubclass(model, BaseModel)):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _unwrap_model(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap_model(annotation: Any) -> Any:
    """Find a model class inside `list[Model]`, `Model | None` and similar annotations."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _unwrap_model(argument)
        if found is not None:
            return found
    return None


def _unknown_field_message(location: tuple[str | int, ...]) -> str:
    model = _model_at(location[:-1])
    if model is None:
        return "unknown field"
    allowed = sorted(model.model_fields)
    close = difflib.get_close_matches(str(location[-1]), allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown field{hint}; allowed fields: {', '.join(allowed)}"


_SOURCE_OVERRIDES = {"brokers": "BROKERS", "topic": "TOPIC", "group": "GROUP"}


def _error_message(error: Any) -> str:
    location = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        return _unknown_field_message(location)
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing" and location[:1] == ("source",) and len(location) == 2:
        variable = _SOURCE_OVERRIDES.get(str(location[1]))
        if variable is not None:
            message += (f"; set it in the job file, with --{location[1]} or with "
                        f"{ENV_PREFIX}{variable}")
    return message


def format_validation_error(exc: ValidationError, origin: str,
                            sources: Mapping[tuple[str, ...], str] | None = None) -> str:
    """Render pydantic errors as `origin: field.path: message (got value)` lines.

    `sources` names where a field's value came from when not from `origin` (a variable or an
    option, keyed by field path). An error at or under that field names it in place of
    `origin`; an error of an object that contains the field mentions it.
    """
    lines = []
    for error in exc.errors():
        parts = tuple(str(part) for part in error["loc"])
        location = ".".join(parts) or "(top level)"
        value = error.get("input")
        shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
        where, note = origin, ""
        for path, name in (sources or {}).items():
            if parts[:len(path)] == path:
                where = name
            elif path[:len(parts)] == parts:
                note = f"; {'.'.join(path)} came from {name}"
        lines.append(f"{where}: {location}: {_error_message(error)}{shown}{note}")
    return "\n".join(lines)


def build_job(data: dict[str, Any], origin: str,
              sources: Mapping[tuple[str, ...], str] | None = None) -> JobConfig:
    """Validate raw job data, turning pydantic errors into a ConfigError; see
    `format_validation_error` for `sources`."""
    receivers = data.get("receivers")
    if isinstance(receivers, list):
        data["receivers"] = [r for r in receivers if r]
    try:
        return JobConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, origin, sources)) from None


def load_job(
    path: Path | None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> JobConfig:
    """Load a job: the file (if any), then BATCHALERT_* variables, then `overrides`."""
    data = read_job_file(path) if path is not None else {}
    variables = env_overrides(environ)
    apply_overrides(data, variables)
    apply_overrides(data, overrides or {})
    origin = str(path) if path is not None else "job from options and environment"
    if "source" not in data:
        raise ConfigError(f"{origin}: no source given; pass --job FILE or set "
                          f"BATCHALERT_BROKERS, BATCHALERT_TOPIC and BATCHALERT_GROUP")
    # Errors in a value set by a variable or an option name it, not the job file. An option
    # wins over a variable, as in apply_overrides.
    sources = {ENV_OVERRIDES[key]: ENV_PREFIX + key for key in variables}
    sources.update({ENV_OVERRIDES[key]: "--" + key.lower().replace("_", "-")
                    for key, value in (overrides or {}).items() if value is not None})
    return build_job(data, origin, sources)


DurationText = Annotated[str, Field(pattern=r"^\d+[smhd]$")]

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Parse `90s`, `30m`, `1h` or `2d` into seconds."""
    match = _DURATION.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(f"duration {text!r} is invalid; write a positive number and a unit "
                          f"s, m, h or d, for example 90s, 30m, 1h, 2d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
