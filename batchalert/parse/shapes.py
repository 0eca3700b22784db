"""Record shapes: where a log shipper puts the line, the pod and the time in a Kafka record value.

A shape lists dotted field paths (`kubernetes.pod.name`), tried in order, for each part of the
envelope. A job names a preset (`shape: filebeat`) or a preset with overrides
(`shape: {preset: vector, formats: {"^istio-proxy$": envoy}}`). A key that itself contains a dot
cannot be addressed by a path.

Presets:
- `fluent-bit` (default): `log`, `kubernetes.namespace_name`, `pod_name`, `container_name`,
  `@timestamp` or `time`. The Filebeat and Vector paths follow as fallbacks, so a topic fed by
  several shippers still parses.
- `filebeat`: `message`, `kubernetes.namespace`, `kubernetes.pod.name`,
  `kubernetes.container.name`, `@timestamp`.
- `vector`: `message`, `kubernetes.pod_namespace`, `kubernetes.pod_name`,
  `kubernetes.container_name`, `timestamp`.
- `fluentd`: `log`, `kubernetes.namespace_name`, `pod_name`, `container_name`, `@timestamp` or
  `time`.
- `fluent-bit-parsed`: records that a Fluent Bit parser (the `apache` or `nginx` parser of its
  parsers.conf) already split into `code`, `size`, `path`, `method`, `remote`/`host`, `agent`.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PresetName = Literal["fluent-bit", "filebeat", "vector", "fluentd", "fluent-bit-parsed"]

# Access-log formats a container's lines can be parsed as. `auto` tries every format, and `none`
# never reports an access line, for containers known to write no access log.
FormatName = Literal["auto", "combined", "common", "ingress-nginx", "json", "envoy", "none"]

# Columns that a shipper's parser may already have split out of the line.
SplitField = Literal[
    "status", "bytes", "path", "method", "protocol", "request", "client", "user", "vhost",
    "referer", "user_agent", "time", "upstream_status",
]

MAX_VALUE_BYTES = 1024 * 1024  # 1 MiB: an access-log line is rarely over a few KiB

_KUBERNETES_FALLBACKS: dict[str, tuple[str, ...]] = {
    "namespace_fields": (
        "kubernetes.namespace_name", "kubernetes.namespace", "kubernetes.pod_namespace",
    ),
    "pod_fields": ("kubernetes.pod_name", "kubernetes.pod.name"),
    "container_fields": ("kubernetes.container_name", "kubernetes.container.name"),
}

_FLUENT_BIT: dict[str, Any] = {
    "line_fields": ("log", "message"),
    **_KUBERNETES_FALLBACKS,
    "time_fields": ("@timestamp", "time", "timestamp"),
    "logtag_fields": ("logtag", "_p"),
    "stream_field": "stream",
    "docker_split_field": "log",
    "split_fields": {},
}

PRESETS: dict[str, dict[str, Any]] = {
    "fluent-bit": _FLUENT_BIT,
    "filebeat": {
        **_FLUENT_BIT,
        "line_fields": ("message",),
        "namespace_fields": ("kubernetes.namespace",),
        "pod_fields": ("kubernetes.pod.name",),
        "container_fields": ("kubernetes.container.name",),
        "time_fields": ("@timestamp",),
        "logtag_fields": (),
        "docker_split_field": None,
    },
    "vector": {
        **_FLUENT_BIT,
        "line_fields": ("message",),
        "namespace_fields": ("kubernetes.pod_namespace",),
        "pod_fields": ("kubernetes.pod_name",),
        "container_fields": ("kubernetes.container_name",),
        "time_fields": ("timestamp",),
        "logtag_fields": (),
        "docker_split_field": None,
    },
    "fluentd": {
        **_FLUENT_BIT,
        "line_fields": ("log",),
        "namespace_fields": ("kubernetes.namespace_name",),
        "pod_fields": ("kubernetes.pod_name",),
        "container_fields": ("kubernetes.container_name",),
        "time_fields": ("@timestamp", "time"),
    },
    "fluent-bit-parsed": {
        **_FLUENT_BIT,
        "line_fields": ("log",),
        "split_fields": {
            "status": ("code",),
            "bytes": ("size",),
            "path": ("path",),
            "method": ("method",),
            "client": ("remote", "host"),
            "user": ("user",),
            "referer": ("referer",),
            "user_agent": ("agent",),
            "time": ("time",),
        },
    },
}


class RecordShape(BaseModel):
    """Field paths of one shipper's record envelope, and the access-log formats to expect."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: PresetName = "fluent-bit"
    # Fields that may hold the container's line; the first one holding a string is used.
    line_fields: tuple[str, ...] = _FLUENT_BIT["line_fields"]
    namespace_fields: tuple[str, ...] = _FLUENT_BIT["namespace_fields"]
    pod_fields: tuple[str, ...] = _FLUENT_BIT["pod_fields"]
    container_fields: tuple[str, ...] = _FLUENT_BIT["container_fields"]
    # Epoch numbers (seconds, ms, µs or ns, as number or string) or RFC 3339 / ISO 8601 texts.
    time_fields: tuple[str, ...] = _FLUENT_BIT["time_fields"]
    # CRI log tag, "P" on a fragment of a line that the runtime split: Fluent Bit's `cri`
    # parser (parsers.conf) names it `logtag`, its `cri` multiline parser `_p`.
    logtag_fields: tuple[str, ...] = _FLUENT_BIT["logtag_fields"]
    stream_field: str | None = _FLUENT_BIT["stream_field"]
    # Docker's json-file driver splits lines at 16 KiB, and only the last piece ends in "\n".
    # A line from this field without a trailing newline, in a record that has `stream_field`
    # and none of `logtag_fields`, is reported as malformed/partial_line. None turns the rule
    # off, which a pipeline needs if it drops both the CRI log tag and the newline.
    docker_split_field: str | None = _FLUENT_BIT["docker_split_field"]
    # Access-log columns a shipper's parser already split out of the line, with their paths.
    split_fields: dict[SplitField, tuple[str, ...]] = Field(default_factory=dict)
    # Container-name regex -> format; the first matching regex wins, else `default_format`.
    formats: dict[str, FormatName] = Field(default_factory=dict)
    default_format: FormatName = "auto"
    # Larger values, in bytes, are reported as malformed/too_large without being parsed.
    max_value_bytes: int = Field(default=MAX_VALUE_BYTES, ge=64)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"preset": data}
        if not isinstance(data, dict):
            return data
        name = data.get("preset", "fluent-bit")
        if name not in PRESETS:
            choices = ", ".join(get_args(PresetName))
            raise ValueError(f"record shape preset {name!r} is unknown; use one of {choices}")
        return {**PRESETS[name], **data}

    @field_validator("line_fields", "namespace_fields", "pod_fields", "container_fields",
                     "time_fields", "logtag_fields")
    @classmethod
    def _paths(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for path in paths:
            check_path(path)
        return paths

    @field_validator("stream_field", "docker_split_field")
    @classmethod
    def _optional_path(cls, path: str | None) -> str | None:
        if path is not None:
            check_path(path)
        return path

    @field_validator("split_fields")
    @classmethod
    def _split_paths(
        cls, fields: dict[SplitField, tuple[str, ...]]
    ) -> dict[SplitField, tuple[str, ...]]:
        for paths in fields.values():
            for path in paths:
                check_path(path)
        return fields

    @field_validator("formats")
    @classmethod
    def _container_patterns(cls, formats: dict[str, FormatName]) -> dict[str, FormatName]:
        for pattern in formats:
            check_container_pattern(pattern)
        return formats

    @model_validator(mode="after")
    def _consistent_paths(self) -> RecordShape:
        field_tree(self.all_paths())
        return self

    def all_paths(self) -> list[str]:
        """Return every field path the shape reads, each once, in a stable order."""
        paths = [*self.line_fields, *self.namespace_fields, *self.pod_fields,
                 *self.container_fields, *self.time_fields, *self.logtag_fields]
        optional = (self.stream_field, self.docker_split_field)
        paths.extend(path for path in optional if path is not None)
        for split_paths in self.split_fields.values():
            paths.extend(split_paths)
        return list(dict.fromkeys(paths))


def check_path(path: str) -> str:
    """Raise ValueError unless `path` is a dotted field path with no empty key."""
    if not path or any(not key for key in path.split(".")):
        raise ValueError(f"field path {path!r} is invalid; write keys separated by dots, "
                         f"for example kubernetes.pod_name")
    return path


def polars_regex_error(pattern: str) -> str | None:
    """Return why Polars' regex engine rejects `pattern`, with the position, or None.

    Polars uses the Rust `regex` crate: linear-time matching on every record, but no
    look-around and no back-references. The message names these limits only for a pattern
    that uses them.
    """
    try:
        pl.Series("probe", [""], dtype=pl.String).str.contains(pattern)
    except pl.exceptions.PolarsError as exc:
        lines = str(exc).split("This error occurred")[0].strip().splitlines()
        reason = lines[-1].strip().removeprefix("error: ") if lines else str(exc)
        # The engine prints the pattern indented by 4 spaces, then carets under the fault.
        carets = [line for line in lines if line.strip() and set(line.strip()) == {"^"}]
        if carets:
            reason += f" at character {carets[0].index('^') - 3}"
        if "look-around" in reason or "backreferences" in reason:
            reason += ("; Polars' regex engine has no look-around and no back-references, so "
                       "rewrite the pattern, for example as include and exclude lists")
        return reason
    return None


def check_container_pattern(pattern: str) -> str:
    """Raise ValueError unless Polars' regex engine compiles `pattern`."""
    problem = polars_regex_error(pattern)
    if problem is not None:
        raise ValueError(f"container pattern '{pattern}' is not a valid regular expression "
                         f"for Polars: {problem}")
    return pattern


FieldTree = dict[str, "FieldTree | None"]


def field_tree(paths: list[str]) -> FieldTree:
    """Merge dotted paths into a tree whose leaves are None.

    Raises ValueError when one path is a leaf and another goes below it, because a JSON value
    is either a string or an object, not both.
    """
    tree: FieldTree = {}
    for path in paths:
        _insert_path(tree, path)
    return tree


def _insert_path(tree: FieldTree, path: str) -> None:
    keys = path.split(".")
    node = tree
    for depth, key in enumerate(keys):
        is_leaf = depth == len(keys) - 1
        if key not in node:
            node[key] = None if is_leaf else {}
        child = node[key]
        if (child is None) != is_leaf:
            prefix = ".".join(keys[: depth + 1])
            raise ValueError(f"field path {path!r} conflicts with another path: {prefix!r} "
                             f"cannot be both a value and an object")
        if child is not None:
            node = child


def resolve_shape(shape: RecordShape | str | None) -> RecordShape:
    """Return `shape`, the preset it names, or the default `fluent-bit` shape for None."""
    if shape is None:
        return DEFAULT_SHAPE
    if isinstance(shape, str):
        return RecordShape.model_validate(shape)
    return shape


DEFAULT_SHAPE = RecordShape()
