"""RecordShape presets, overrides and validation, and per-container format choices."""

from __future__ import annotations

import pydantic
import pytest

from batchalert.parse.shapes import DEFAULT_SHAPE, RecordShape, field_tree, resolve_shape
from tests.parse.records import access_line, fluent_bit, parse_many, parse_one

COMBINED_LINE = '203.0.113.5 - - [02/Jan/2024:03:04:05 +0000] "GET /x HTTP/1.1" 404 1 "-" "-"'
ENVOY_LINE = (
    '[2024-01-02T03:04:05.250Z] "GET /x HTTP/1.1" 404 NR 0 0 0 - "-" "curl" "r" "h.example.com" '
    '"-"'
)


class TestPresets:
    def test_default_is_fluent_bit(self) -> None:
        assert RecordShape().preset == "fluent-bit"
        assert RecordShape().line_fields[0] == "log"
        assert resolve_shape(None) == DEFAULT_SHAPE

    def test_preset_by_name(self) -> None:
        shape = RecordShape.model_validate("vector")

        assert shape.line_fields == ("message",)
        assert shape.namespace_fields == ("kubernetes.pod_namespace",)
        assert shape.docker_split_field is None

    def test_override_keeps_other_preset_fields(self) -> None:
        shape = RecordShape.model_validate({"preset": "filebeat", "time_fields": ["ts"]})

        assert shape.time_fields == ("ts",)
        assert shape.pod_fields == ("kubernetes.pod.name",)

    def test_resolve_shape_by_name(self) -> None:
        assert resolve_shape("fluentd").preset == "fluentd"

    def test_unknown_preset(self) -> None:
        with pytest.raises(pydantic.ValidationError, match="preset"):
            RecordShape.model_validate({"preset": "logstash"})

    def test_unknown_key(self) -> None:
        with pytest.raises(pydantic.ValidationError):
            RecordShape.model_validate({"line_field": "log"})


class TestValidation:
    @pytest.mark.parametrize("path", ["", "kubernetes..pod_name", ".log", "log."])
    def test_invalid_path(self, path: str) -> None:
        with pytest.raises(pydantic.ValidationError, match="field path"):
            RecordShape(line_fields=(path,))

    def test_leaf_and_object_conflict(self) -> None:
        with pytest.raises(pydantic.ValidationError, match="conflicts"):
            RecordShape(line_fields=("kubernetes",))

    def test_invalid_container_pattern(self) -> None:
        with pytest.raises(pydantic.ValidationError, match="container pattern"):
            RecordShape(formats={"(?<=a)b": "combined"})

    def test_unknown_format(self) -> None:
        with pytest.raises(pydantic.ValidationError):
            RecordShape.model_validate({"formats": {"^web$": "apache"}})

    def test_value_limit_minimum(self) -> None:
        with pytest.raises(pydantic.ValidationError):
            RecordShape(max_value_bytes=10)

    def test_field_tree_merges_paths(self) -> None:
        tree = field_tree(["kubernetes.pod_name", "kubernetes.pod.name", "log"])

        assert tree == {"kubernetes": {"pod_name": None, "pod": {"name": None}}, "log": None}


class TestFormatChoice:
    def test_none_format_container(self) -> None:
        shape = RecordShape(formats={"^nginx$": "none"})

        row = parse_one(access_line(COMBINED_LINE), shape)

        assert row["kind"] == "other"
        assert row["status"] is None

    def test_envoy_container_rejects_combined_lines(self) -> None:
        shape = RecordShape(formats={"^istio-proxy$": "envoy"})
        values = [fluent_bit(COMBINED_LINE + "\n", container="istio-proxy"),
                  fluent_bit(ENVOY_LINE + "\n", container="istio-proxy"),
                  fluent_bit(COMBINED_LINE + "\n", container="web")]

        frame = parse_many(values, shape)

        assert frame["kind"].to_list() == ["other", "access", "access"]

    def test_first_matching_pattern_wins(self) -> None:
        shape = RecordShape(formats={"^ngi": "none", "nginx": "combined"})

        assert parse_one(access_line(COMBINED_LINE), shape)["kind"] == "other"

    def test_default_format(self) -> None:
        shape = RecordShape(default_format="json")

        assert parse_one(access_line(COMBINED_LINE), shape)["kind"] == "other"

    def test_combined_choice_accepts_ingress_lines(self) -> None:
        line = COMBINED_LINE + " 80 0.001 [svc-80] [] 10.0.0.1:80 1 0.001 404 abc"
        shape = RecordShape(formats={".*": "combined"})

        row = parse_one(access_line(line), shape)

        assert row["format"] == "ingress-nginx"
        assert row["status"] == 404
