"""Render the Kubernetes manifests that run one job file as a CronJob.

`render_manifests` returns a YAML stream of a ServiceAccount, a ConfigMap holding the job
file's text unchanged, and a CronJob that mounts it at /etc/batchalert/job.yaml. The CronJob
has the same pod spec, security context and Secrets as the Kustomize base in cron/base.
Values reach the Jinja2 templates only through YAML dumping, never as raw text.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import jinja2
import yaml

from batchalert import __version__
from batchalert.errors import BatchalertError, ConfigError

logger = logging.getLogger(__name__)

DEFAULT_IMAGE = f"batchalert:{__version__}"
DEFAULT_NAMESPACE = "batchalert"
DEFAULT_KAFKA_SECRET = "batchalert-kafka"
DEFAULT_RECEIVER_SECRET = "batchalert-receivers"
# The pod mounts the Kafka Secret here, so every file path in source.security must be in it.
KAFKA_FILES_DIR = "/etc/batchalert/kafka/"
# 240 s plus the pod's 30 s termination grace period ends a stuck run before a 5-minute
# schedule starts the next one.
DEFAULT_ACTIVE_DEADLINE_SECONDS = 240

# The API server rejects a ConfigMap whose data exceeds 1 MiB.
_CONFIGMAP_MAX_BYTES = 1024 * 1024
# The CronJob controller appends 11 characters to the CronJob's name for each Job, and a Job
# name must fit in 63 characters.
_CRONJOB_NAME_MAX = 52
_DNS_LABEL_MAX = 63
_DNS_SUBDOMAIN_MAX = 253
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAME_PREFIX = "batchalert"
_TIME_ZONE = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*")  # IANA names: Asia/Shanghai
# Loose form of an image reference: registry/path:tag or @digest, ASCII without spaces.
_IMAGE_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-/:@]*")

# Schedule descriptors that the Kubernetes CronJob controller accepts in place of five fields.
_SCHEDULE_MACROS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_SCHEDULE_HINT = (
    "Use five fields 'minute hour day-of-month month day-of-week', for example '*/5 * * * *'"
)
_LINE_BREAKS_OUTSIDE_LF = ("\r", "\x85", "\u2028", "\u2029")

# Longer than any job file that fits in a ConfigMap, so PyYAML does not wrap quoted lines.
_DUMP_WIDTH = 2 * _CONFIGMAP_MAX_BYTES


@dataclass(frozen=True)
class _CronField:
    """The name and value range of one field of a five-field cron schedule."""

    label: str
    low: int
    high: int
    # Names stand for consecutive numbers starting at `low` (JAN is 1, SUN is 0).
    names: tuple[str, ...] = ()

    @property
    def allowed(self) -> str:
        numbers = f"{self.low}-{self.high}"
        return f"{numbers} or {self.names[0]}-{self.names[-1]}" if self.names else numbers

    def number(self, text: str) -> int | None:
        """Return the number that `text` stands for, or None if it is no value of this field."""
        if text.upper() in self.names:
            return self.low + self.names.index(text.upper())
        if text.isdigit() and self.low <= int(text) <= self.high:
            return int(text)
        return None


_CRON_FIELDS = (
    _CronField("minute", 0, 59),
    _CronField("hour", 0, 23),
    _CronField("day-of-month", 1, 31),
    _CronField("month", 1, 12, _MONTH_NAMES),
    _CronField("day-of-week", 0, 6, _WEEKDAY_NAMES),
)


class _BlockDumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings as literal blocks where YAML allows it."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PyYAML falls back to a quoted style by itself for text a literal block cannot hold
    # (trailing spaces, tabs). It mishandles NEL and the Unicode line separators, which
    # YAML 1.1 reads as line breaks, in every style but double-quoted, where it escapes them.
    style: str | None = None
    if any(mark in value for mark in _LINE_BREAKS_OUTSIDE_LF):
        style = '"'
    elif "\n" in value:
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def render_manifests(
    job_file: Path,
    schedule: str,
    *,
    name: str | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    image: str = DEFAULT_IMAGE,
    kafka_secret: str = DEFAULT_KAFKA_SECRET,
    receiver_secret: str = DEFAULT_RECEIVER_SECRET,
    time_zone: str | None = None,
    active_deadline_seconds: int | None = None,
    validate: Callable[[Path], object] | None = None,
) -> str:
    """Render a ServiceAccount, a ConfigMap and a CronJob that run `job_file` on `schedule`.

    `validate`, when given, is called with `job_file` first and should raise ConfigError for
    an invalid job. Beyond that only the job's `name` and `source.security` are read: `name`
    gives the default object name `batchalert-<name>`, and Kafka files must lie under
    /etc/batchalert/kafka/. The ConfigMap contains the file's bytes unchanged, also after the
    returned text is parsed as YAML again. `time_zone` sets spec.timeZone, which needs
    Kubernetes 1.27 or later. Without `active_deadline_seconds`, the deadline is the
    schedule's interval less 60 s where the interval can be read off the schedule (`*/N` minutes
    or hours), else 240 s. Raises ConfigError naming the invalid value and how to fix it, also
    for a Kafka password written inline or a deadline that would let runs overlap.
    """
    if validate is not None:
        validate(job_file)
    job_text = _read_job_text(job_file)
    job = _load_job_mapping(job_file, job_text)
    _check_kafka_files(job_file, job.get("source"))

    object_name = name if name is not None else _default_name(job_file, job)
    context = _render_context(
        job_text=job_text,
        schedule=schedule,
        name=object_name,
        namespace=namespace,
        image=image,
        kafka_secret=kafka_secret,
        receiver_secret=receiver_secret,
        time_zone=time_zone,
        active_deadline_seconds=_deadline_for(schedule, active_deadline_seconds),
    )
    stream = _render_stream(context)

    _check_embedded_job(job_file, stream, job_text)
    logger.debug("rendered CronJob %s/%s for job file %s", namespace, object_name, job_file)
    return stream


def validate_schedule(schedule: str) -> None:
    """Raise ConfigError unless `schedule` is a valid five-field schedule or descriptor.

    The five fields are minute, hour, day of month, month and day of week. Each is a
    comma-separated list of `*`, numbers, names (JAN, MON), ranges `a-b` and steps `/n`.
    The two day fields also accept `?`. The descriptors @hourly, @daily, @midnight, @weekly,
    @monthly, @yearly and @annually replace all five. These are the rules of the cron parser
    that the Kubernetes CronJob controller uses (robfig/cron v3), except that it also takes
    `?` in the other fields.
    """
    if schedule in _SCHEDULE_MACROS:
        return
    if schedule.startswith(("TZ=", "CRON_TZ=")):
        raise ConfigError(
            f"invalid schedule {schedule!r}: Kubernetes does not support a time zone inside "
            "the schedule. Remove the prefix and set the time zone option (spec.timeZone)."
        )
    fields = schedule.split()
    if len(fields) != len(_CRON_FIELDS):
        raise ConfigError(
            f"invalid schedule {schedule!r}: it has {len(fields)} fields, not 5. {_SCHEDULE_HINT}."
        )
    for text, field in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.split(","):
            _check_cron_item(schedule, field, item)


def _check_cron_item(schedule: str, field: _CronField, item: str) -> None:
    values, _, step = item.partition("/")
    if "/" in item and not (step.isdigit() and int(step) >= 1):
        _raise_cron_error(schedule, field, item, "the step after '/' must be a number from 1")
    if values == "*" or (values == "?" and field.label.startswith("day")):
        return
    low_text, _, high_text = values.partition("-")
    low = _cron_value(schedule, field, item, low_text)
    high = _cron_value(schedule, field, item, high_text) if "-" in values else low
    if low > high:
        _raise_cron_error(schedule, field, item, "the range starts after it ends")


def _cron_value(schedule: str, field: _CronField, item: str, text: str) -> int:
    number = field.number(text)
    if number is None:
        _raise_cron_error(schedule, field, item, f"{text!r} is not in {field.allowed}")
    return number


def _raise_cron_error(schedule: str, field: _CronField, item: str, reason: str) -> NoReturn:
    raise ConfigError(
        f"invalid schedule {schedule!r}: in the {field.label} field {item!r}, {reason}. "
        f"{_SCHEDULE_HINT}."
    )


def _read_job_text(job_file: Path) -> str:
    # Bytes, not read_text(): universal newlines would turn CRLF into LF, and the ConfigMap
    # must contain the file exactly as written.
    try:
        raw = job_file.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read job file {job_file}: {exc.strerror}. Check the path."
        ) from exc
    if len(raw) > _CONFIGMAP_MAX_BYTES:
        raise ConfigError(
            f"job file {job_file} is too large for a ConfigMap: {len(raw)} bytes, the limit "
            f"is {_CONFIGMAP_MAX_BYTES}. Shorten the job file."
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"job file {job_file} is not valid UTF-8 at byte {exc.start}. Save it as UTF-8."
        ) from exc


def _load_job_mapping(job_file: Path, job_text: str) -> dict[str, Any]:
    try:
        job = yaml.safe_load(job_text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"job file {job_file} is not valid YAML: {exc}") from exc
    if not isinstance(job, dict):
        raise ConfigError(
            f"job file {job_file} must contain a mapping with name, source, rules and "
            f"receivers, not {type(job).__name__}."
        )
    return job


def _check_kafka_files(job_file: Path, source: object) -> None:
    security = source.get("security") if isinstance(source, Mapping) else None
    if not isinstance(security, Mapping):
        return
    for key, value in security.items():
        field = f"source.security.{key}"
        if key in ("username", "password") and isinstance(value, str):
            raise ConfigError(
                f"job file {job_file}: {field} is written inline and would be stored in a "
                f"ConfigMap. Put it in the Secret {DEFAULT_KAFKA_SECRET} and write "
                f"`{key}: {{file: {KAFKA_FILES_DIR}{key}}}` instead."
            )
        if isinstance(value, Mapping) and "file" in value:
            _check_kafka_file_path(job_file, f"{field}.file", value["file"])
        elif str(key).endswith("_file"):
            _check_kafka_file_path(job_file, field, value)


def _check_kafka_file_path(job_file: Path, field: str, value: object) -> None:
    if isinstance(value, str) and posixpath.normpath(value).startswith(KAFKA_FILES_DIR):
        return
    raise ConfigError(
        f"job file {job_file}: {field} is {value!r}, but the CronJob mounts Kafka files "
        f"only under {KAFKA_FILES_DIR}. Use {KAFKA_FILES_DIR}<key in the Secret>."
    )


def _default_name(job_file: Path, job: Mapping[str, Any]) -> str:
    job_name = job.get("name")
    if not isinstance(job_name, str) or not job_name:
        raise ConfigError(
            f"job file {job_file} has no `name`, so the CronJob cannot be named after it. "
            "Add `name:` to the job file or pass a name."
        )
    if job_name == _NAME_PREFIX or job_name.startswith(f"{_NAME_PREFIX}-"):
        return job_name
    name = f"{_NAME_PREFIX}-{job_name}"
    if len(name) > _CRONJOB_NAME_MAX:
        raise ConfigError(
            f"the CronJob name {name!r} made from the job name in {job_file} is longer than "
            f"{_CRONJOB_NAME_MAX} characters. Pass a shorter name."
        )
    return name


def _render_context(
    *,
    job_text: str,
    schedule: str,
    name: str,
    namespace: str,
    image: str,
    kafka_secret: str,
    receiver_secret: str,
    time_zone: str | None,
    active_deadline_seconds: int,
) -> dict[str, Any]:
    validate_schedule(schedule)
    _check_dns_label("name", name, _CRONJOB_NAME_MAX)
    _check_dns_label("namespace", namespace, _DNS_LABEL_MAX)
    _check_dns_subdomain("Kafka Secret name", kafka_secret)
    _check_dns_subdomain("receiver Secret name", receiver_secret)
    _check_image(image)
    _check_time_zone(time_zone)
    _check_deadline(active_deadline_seconds)

    return {
        "job_text": job_text,
        "schedule": schedule,
        "name": name,
        "configmap_name": f"{name}-job",
        "namespace": namespace,
        "image": image,
        "kafka_secret": kafka_secret,
        "receiver_secret": receiver_secret,
        "time_zone": time_zone,
        "active_deadline_seconds": active_deadline_seconds,
        "labels": {"app.kubernetes.io/name": _NAME_PREFIX, "app.kubernetes.io/instance": name},
    }


def _check_dns_label(field: str, value: str, max_length: int) -> None:
    if len(value) > max_length or not _DNS_LABEL.fullmatch(value):
        raise ConfigError(
            f"invalid {field} {value!r}: use at most {max_length} lowercase letters, digits "
            "and '-', starting and ending with a letter or digit (an RFC 1123 DNS label)."
        )


def _check_dns_subdomain(field: str, value: str) -> None:
    if len(value) > _DNS_SUBDOMAIN_MAX or not _DNS_SUBDOMAIN.fullmatch(value):
        raise ConfigError(
            f"invalid {field} {value!r}: use lowercase letters, digits, '-' and '.', starting "
            "and ending with a letter or digit (an RFC 1123 DNS subdomain)."
        )


def _check_image(image: str) -> None:
    if not _IMAGE_REFERENCE.fullmatch(image):
        raise ConfigError(
            f"invalid image {image!r}: give an image reference such as "
            f"registry.example.com/batchalert:{__version__}."
        )


def _check_time_zone(time_zone: str | None) -> None:
    if time_zone is not None and not _TIME_ZONE.fullmatch(time_zone):
        raise ConfigError(
            f"invalid time zone {time_zone!r}: give an IANA time zone name such as "
            "'Etc/UTC' or 'Asia/Shanghai'."
        )


# Seconds Kubernetes waits after SIGTERM before it kills a pod (terminationGracePeriodSeconds).
_GRACE_SECONDS = 30


def schedule_interval_seconds(schedule: str) -> int | None:
    """Return the seconds between runs of a simple schedule, or None when it is irregular.

    Understands `* * * * *`, `*/N * * * *` and `M */N * * *` (and `M * * * *`), the forms a
    batch job on a fixed interval uses.
    """
    fields = schedule.split()
    if len(fields) != 5 or fields[2:] != ["*", "*", "*"]:
        return None
    minute, hour = fields[0], fields[1]
    if hour == "*" and minute == "*":
        return 60
    if hour == "*" and minute.startswith("*/") and minute[2:].isdigit():
        return 60 * int(minute[2:])
    if minute.isdigit() and hour == "*":
        return 3600
    if minute.isdigit() and hour.startswith("*/") and hour[2:].isdigit():
        return 3600 * int(hour[2:])
    return None


def _deadline_for(schedule: str, requested: int | None) -> int:
    """Return the Job's activeDeadlineSeconds, checked against the schedule's interval."""
    validate_schedule(schedule)
    interval = schedule_interval_seconds(schedule)
    if requested is None:
        if interval is None:
            return DEFAULT_ACTIVE_DEADLINE_SECONDS
        return max(_GRACE_SECONDS, interval - 2 * _GRACE_SECONDS)
    if interval is not None and requested + _GRACE_SECONDS >= interval:
        raise ConfigError(
            f"active deadline {requested}s plus the {_GRACE_SECONDS}s grace period is not shorter "
            f"than the schedule's interval of {interval}s ({schedule!r}), so a stuck run could "
            f"overlap the next; give at most {interval - _GRACE_SECONDS - 1}s"
        )
    return requested


def _check_deadline(active_deadline_seconds: int) -> None:
    if isinstance(active_deadline_seconds, bool) or active_deadline_seconds < 1:
        raise ConfigError(
            f"invalid active deadline {active_deadline_seconds!r}: give a whole number of "
            "seconds of at least 1, shorter than the schedule's interval."
        )


def _render_stream(context: Mapping[str, Any]) -> str:
    environment = _template_environment()
    documents = [
        environment.get_template(template).render(context)
        for template in ("serviceaccount.yaml.j2", "configmap.yaml.j2", "cronjob.yaml.j2")
    ]
    return "---\n" + "---\n".join(documents)


def _template_environment() -> jinja2.Environment:
    # No autoescape: the output is YAML, and the filters below do YAML's quoting.
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("batchalert", "templates/cron"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["yaml_scalar"] = _yaml_scalar
    environment.filters["yaml_block"] = _yaml_block
    return environment


def _yaml_scalar(value: str | int | bool) -> str:
    """Return `value` as a YAML flow scalar; JSON's quoted strings are valid YAML."""
    return json.dumps(value)


def _yaml_block(mapping: Mapping[str, Any], indent: int) -> str:
    """Return `mapping` as block YAML, each line indented by `indent` spaces."""
    dumped = yaml.dump(
        dict(mapping),
        Dumper=_BlockDumper,
        allow_unicode=True,
        sort_keys=False,
        width=_DUMP_WIDTH,
    )
    # A kept-newline block (`|+`) at the end makes PyYAML close the document with `...`,
    # which would end the whole manifest early. Every content line is indented, so a
    # column-0 `...` can only be that marker.
    if dumped.endswith("\n...\n"):
        dumped = dumped[: -len("...\n")]
    # Only the last line break goes: the template puts its own after the block, and the
    # empty lines before it may belong to a `|+` block.
    return textwrap.indent(dumped, " " * indent).removesuffix("\n")


def _check_embedded_job(job_file: Path, stream: str, job_text: str) -> None:
    # A guard on the dumping above: the manifest must give back the exact job text.
    documents = list(yaml.safe_load_all(stream))
    embedded = [
        document["data"]["job.yaml"]
        for document in documents
        if document.get("kind") == "ConfigMap"
    ]
    if embedded != [job_text]:
        raise BatchalertError(
            f"the rendered ConfigMap does not reproduce job file {job_file} exactly. "
            "This is a bug in batchalert; please report it with the job file."
        )
