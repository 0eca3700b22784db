"""Grouping matches into alerts across chunks: counts, times, pods, samples, caps, ratios."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from batchalert.config import RuleConfig
from batchalert.rules import RunAggregator
from tests.frames import BASE_TIME, access, frame, malformed, other


def groups_for(rule: RuleConfig, *chunks):  # type: ignore[no-untyped-def]
    aggregator = RunAggregator([rule])
    for chunk in chunks:
        aggregator.add(chunk)
    return aggregator, aggregator.groups()


def test_default_rule_groups_by_workload_method_path() -> None:
    rows = [
        access(pod="wordpress-v1-f54f697c5-hdn2z", second=1),
        access(pod="wordpress-v1-f54f697c5-x2k4q", second=5),
        access(pod="wordpress-v1-f54f697c5-x2k4q", path="/other", second=2),
        access(status=200, second=3),
    ]

    _, groups = groups_for(RuleConfig(), frame(rows))

    assert [g.key["path"] for g in groups] == ["/notfound", "/other"]
    first = groups[0]
    assert first.key == {"namespace": "demo-project", "workload": "wordpress-v1",
                         "method": "GET", "path": "/notfound"}
    assert first.count == 2
    assert first.first == BASE_TIME + timedelta(seconds=1)
    assert first.last == BASE_TIME + timedelta(seconds=5)
    assert first.pods == ("wordpress-v1-f54f697c5-hdn2z", "wordpress-v1-f54f697c5-x2k4q")


def test_counts_merge_across_chunks() -> None:
    chunk_a = frame([access(second=10), access(second=11)], partition=0)
    chunk_b = frame([access(second=1), malformed(), other()], partition=1)

    aggregator, groups = groups_for(RuleConfig(), chunk_a, chunk_b)

    assert len(groups) == 1
    assert groups[0].count == 3
    assert groups[0].first == BASE_TIME + timedelta(seconds=1)
    assert groups[0].last == BASE_TIME + timedelta(seconds=11)
    counts = aggregator.counts
    assert (counts.records, counts.access, counts.other, counts.malformed) == (5, 3, 1, 1)
    assert counts.malformed_by_reason == {"not_json": 1}
    assert counts.matches_by_rule == {"http-404": 3}


def test_many_chunks_equal_one_chunk() -> None:
    # More chunks than partial aggregates wait for a merge, with IDs to collapse, a query to
    # drop, an absolute-form target and requests without a target.
    paths = ["/users/12", "/users/7/", "/a?x=1", "https://host/a", "https://host", None,
             "/b/0123456789abcdef0123"]
    rows = [access(path=paths[i % len(paths)], second=i % 50,
                   pod=f"web-{i % 3}-abc12-xyz{i % 4}", method=None if i % 11 == 0 else "GET")
            for i in range(200)]
    chunks = [frame(rows[start:start + 10], partition=start % 3, first_offset=start)
              for start in range(0, len(rows), 10)]

    _, chunked = groups_for(RuleConfig(), *chunks)
    _, whole = groups_for(RuleConfig(), pl.concat(chunks))

    assert len(chunks) > 8
    assert {g.key["path"] for g in chunked} == {"/users/:id", "/users/:id/", "/a", "/",
                                                "(no request)", "/b/:id"}
    assert [(g.key, g.count, g.first, g.last, g.pods, g.samples) for g in chunked] == [
        (g.key, g.count, g.first, g.last, g.pods, g.samples) for g in whole]


def test_at_most_three_samples_earliest_first() -> None:
    rows = [access(second=s) for s in (9, 3, 7, 1, 5)]

    _, groups = groups_for(RuleConfig(), frame(rows[:2]), frame(rows[2:], partition=1))

    assert len(groups[0].samples) == 3
    assert groups[0].samples == tuple(row["line"] for row in (rows[3], rows[1], rows[4]))


def test_404_outside_status_ignored() -> None:
    rows = [access(status=200, path="/404"), access(status=301, path="/x")]

    aggregator, groups = groups_for(RuleConfig(), frame(rows))

    assert groups == []
    assert aggregator.counts.matches == 0


def test_filters_select_namespace_and_pod() -> None:
    rule = RuleConfig(namespace={"include": ["^demo-project$"]},
                      pod={"include": ["^wordpress-v1-"]}, path={"exclude": ["^/healthz"]})
    rows = [
        access(),
        access(namespace="shop"),
        access(pod="mysql-0"),
        access(path="/healthz"),
    ]

    _, groups = groups_for(rule, frame(rows))

    assert [(g.key["namespace"], g.key["workload"], g.count) for g in groups] == [
        ("demo-project", "wordpress-v1", 1)]


def test_status_classes_and_methods() -> None:
    rule = RuleConfig(name="errors", status=["5xx"], method=["post"], group_by=["namespace"])
    rows = [access(status=500, method="POST"), access(status=503, method="POST"),
            access(status=500, method="GET"), access(status=404, method="POST")]

    _, groups = groups_for(rule, frame(rows))

    assert [(g.key, g.count) for g in groups] == [({"namespace": "demo-project"}, 2)]


def test_min_count_threshold_edge() -> None:
    rule = RuleConfig(min_count=3)

    _, below = groups_for(rule, frame([access(), access()]))
    _, at = groups_for(rule, frame([access(), access(), access()]))

    assert below == []
    assert at[0].count == 3


def test_ratio_needs_minimum_requests() -> None:
    rule = RuleConfig(ratio={"min_ratio": 0.05, "min_requests": 10},
                      group_by=["namespace", "workload"])
    few = [access(), access(status=200)]
    many = [access()] + [access(status=200)] * 9

    _, too_few = groups_for(rule, frame(few))
    _, enough = groups_for(rule, frame(many))

    assert too_few == []
    assert enough[0].requests == 10
    assert enough[0].ratio == pytest.approx(0.1)


def test_ratio_must_exceed_threshold() -> None:
    rule = RuleConfig(ratio={"min_ratio": 0.5, "min_requests": 2}, group_by=["namespace"])

    _, equal = groups_for(rule, frame([access(), access(status=200)]))
    _, above = groups_for(rule, frame([access(), access(), access(status=200)]))

    assert equal == []
    assert above[0].count == 2


def test_severity_levels_pick_highest_holding() -> None:
    rule = RuleConfig(severity="info", severity_levels=[
        {"severity": "warning", "min_count": 2}, {"severity": "critical", "min_count": 4}])

    _, one = groups_for(rule, frame([access()]))
    _, three = groups_for(rule, frame([access()] * 3))
    _, five = groups_for(rule, frame([access()] * 5))

    assert [one[0].severity, three[0].severity, five[0].severity] == [
        "info", "warning", "critical"]


def test_cap_folds_overflow_per_namespace() -> None:
    rule = RuleConfig(max_alerts=2)
    rows = [access(path=f"/p{i}") for i in range(3)] + [access(path="/big")] * 5
    rows += [access(namespace="shop", pod="web-0", path=f"/s{i}") for i in range(2)]

    _, groups = groups_for(rule, frame(rows))

    regular = [g for g in groups if not g.is_summary]
    summaries = [g for g in groups if g.is_summary]
    assert len(regular) == 2
    assert regular[0].key["path"] == "/big"
    assert {g.key["namespace"]: (g.folded_groups, g.count) for g in summaries} == {
        "demo-project": (2, 2), "shop": (2, 2)}


def test_same_input_same_order() -> None:
    rows = [access(path=f"/p{i % 7}", second=i) for i in range(50)]

    _, first = groups_for(RuleConfig(), frame(rows[:25]), frame(rows[25:], partition=1))
    _, second = groups_for(RuleConfig(), frame(rows[25:], partition=1), frame(rows[:25]))

    assert [(g.key, g.count, g.first, g.samples) for g in first] == [
        (g.key, g.count, g.first, g.samples) for g in second]


def test_request_without_target_groups_under_placeholder() -> None:
    _, groups = groups_for(RuleConfig(), frame([access(method=None, path=None)]))

    assert groups[0].key["method"] == "-"
    assert groups[0].key["path"] == "(no request)"
