"""Aggregating matches chunk by chunk into alert groups, with memory bounded by the groups.

Each chunk of parsed records is reduced to partial aggregates (count, first and last time, pods,
three samples per group) that are merged into the running totals at once. So a run keeps one
chunk of records and one row per group in memory, whatever the backlog.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from batchalert.config import RuleConfig, SeverityLevel
from batchalert.rules.paths import normalized_path_expr
from batchalert.rules.select import rule_filter_expr
from batchalert.rules.workload import workload_expr

# Sample lines longer than this are cut, in characters: alerts carry samples, not payloads.
SAMPLE_MAX_CHARS = 1000
SAMPLES_PER_GROUP = 3
MISSING = "-"

_SCOPE_KEYS = ("namespace", "workload", "pod", "container")
_SAMPLE_ORDER = ["time", "partition", "offset"]


@dataclass(frozen=True)
class AlertGroup:
    """One alert's worth of matches, or a summary of the groups left out by the cap."""

    rule: RuleConfig
    key: dict[str, str]
    count: int
    first: datetime
    last: datetime
    pods: tuple[str, ...]
    samples: tuple[str, ...]
    severity: str
    requests: int | None = None
    folded_groups: int = 0

    @property
    def is_summary(self) -> bool:
        return self.folded_groups > 0

    @property
    def ratio(self) -> float | None:
        return self.count / self.requests if self.requests else None


@dataclass
class RunCounts:
    """Record counts of a run, for the summary and the metrics."""

    records: int = 0
    # Well-formed records the prefilter left undecoded; not counted as access or other.
    skipped: int = 0
    access: int = 0
    other: int = 0
    malformed: int = 0
    malformed_by_reason: Counter[str] = field(default_factory=Counter)
    matches_by_rule: Counter[str] = field(default_factory=Counter)

    @property
    def matches(self) -> int:
        return sum(self.matches_by_rule.values())


def enrich(parsed: pl.DataFrame) -> pl.DataFrame:
    """Add the columns rules work on: the workload and the event time.

    The workload regexes run once per distinct pod, not once per record: a chunk has hundreds
    of pods and hundreds of thousands of records.
    """
    pods = parsed.select(pl.col("pod").unique()).with_columns(
        workload_expr(pl.col("pod")).alias("workload")
    )
    return parsed.join(pods, on="pod", how="left", maintain_order="left").with_columns(
        pl.coalesce("time", "record_time").alias("time"),
    )


def _group_frame(matches: pl.DataFrame, rule: RuleConfig) -> pl.DataFrame:
    """Return the matches with the group keys: the normalised path, the status as text, and
    "-" for a missing key.

    The path expressions run up to nine regular expressions and the rule's own patterns, so
    they run once per distinct path, as `enrich` does for pods: matches often share a path.
    """
    keys = rule.group_by
    paths = matches.select(pl.col("path").unique()).with_columns(
        normalized_path_expr(pl.col("path"), rule.path_normalization).alias("_normalized")
    )
    frame = matches.join(paths, on="path", how="left", nulls_equal=True,
                         maintain_order="left").with_columns(
        pl.col("_normalized").alias("path"),
        pl.col("status").cast(pl.String).alias("status"),
    ).drop("_normalized")
    return frame.with_columns([pl.col(k).fill_null(MISSING) for k in keys])


def _partial(frame: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    sample = pl.struct(
        pl.col("time"), pl.col("partition"), pl.col("offset"),
        pl.col("line").str.slice(0, SAMPLE_MAX_CHARS).alias("line"),
    )
    return frame.group_by(keys).agg(
        pl.len().cast(pl.Int64).alias("count"),
        pl.col("time").min().alias("first"),
        pl.col("time").max().alias("last"),
        pl.col("pod").drop_nulls().unique().alias("pods"),
        sample.sort_by(_SAMPLE_ORDER).head(SAMPLES_PER_GROUP).alias("samples"),
    )


def merge_partials(partials: list[pl.DataFrame], keys: Sequence[str]) -> pl.DataFrame:
    """Merge partial aggregates with the same keys into one row per group."""
    combined = pl.concat(partials, how="vertical")
    totals = combined.group_by(keys).agg(
        pl.col("count").sum(),
        pl.col("first").min(),
        pl.col("last").max(),
        pl.col("pods").explode().drop_nulls().unique().sort(),
    )
    samples = (
        combined.select([*keys, "samples"])
        .explode("samples")
        .drop_nulls("samples")
        .unnest("samples")
        .sort([*keys, *_SAMPLE_ORDER])
        .group_by(keys, maintain_order=True)
        .agg(pl.struct("time", "partition", "offset", "line").head(SAMPLES_PER_GROUP)
             .alias("samples"))
    )
    return _compact(totals.join(samples, on=keys, how="left"))


def _compact(frame: pl.DataFrame) -> pl.DataFrame:
    """Copy the frame's strings out of the buffers they share with the chunk they came from.

    Polars keeps strings as views into the buffers of the column they were taken from, so one
    sample line would keep a whole chunk of records in memory. The running aggregates outlive
    every chunk, and without this copy memory would grow with the backlog.
    """
    copied = pl.from_arrow(frame.to_arrow())
    assert isinstance(copied, pl.DataFrame)
    return copied


class _RuleState:
    def __init__(self, rule: RuleConfig) -> None:
        self.rule = rule
        self.filter = rule_filter_expr(rule)
        self.scope: list[str] = [k for k in rule.group_by if k in _SCOPE_KEYS]
        self.groups: pl.DataFrame | None = None
        self.requests: pl.DataFrame | None = None

    def add(self, enriched: pl.DataFrame) -> int:
        matches = enriched.filter(self.filter)
        if matches.height:
            partial = _partial(_group_frame(matches, self.rule), self.rule.group_by)
            parts = [partial] if self.groups is None else [self.groups, partial]
            # Merged at once: partials left waiting for one merge of several, with their
            # samples, took 15 to 25 MiB more at the peak of a run over 5,000,000 records.
            self.groups = merge_partials(parts, self.rule.group_by)
        if self.rule.ratio is not None:
            self._count_requests(enriched)
        return matches.height

    def _count_requests(self, enriched: pl.DataFrame) -> None:
        access = enriched.filter(pl.col("kind") == "access")
        scope = self.scope or ["__all"]
        access = access.with_columns([pl.col(k).fill_null(MISSING) for k in self.scope],
                                     __all=pl.lit(""))
        partial = access.group_by(scope).agg(pl.len().cast(pl.Int64).alias("requests"))
        self._merge_requests(partial)

    def _merge_requests(self, partial: pl.DataFrame) -> None:
        scope = self.scope or ["__all"]
        if self.requests is not None:
            partial = pl.concat([self.requests, partial]).group_by(scope).agg(
                pl.col("requests").sum())
        self.requests = partial

    def merge(self, groups: pl.DataFrame | None, requests: pl.DataFrame | None) -> None:
        """Fold in the groups and request counts another aggregator collected."""
        if groups is not None:
            parts = [groups] if self.groups is None else [self.groups, groups]
            self.groups = merge_partials(parts, self.rule.group_by)
        if requests is not None:
            self._merge_requests(requests)


class RunAggregator:
    """Collects counts and per-rule alert groups over the chunks of one run."""

    def __init__(self, rules: list[RuleConfig]) -> None:
        self._rules = [_RuleState(rule) for rule in rules]
        self.counts = RunCounts()

    def add(self, parsed: pl.DataFrame, skipped: int = 0) -> None:
        """Count one chunk of parsed records and merge its matches into the groups.

        `skipped` counts the records of the chunk that the prefilter left out.
        """
        self.counts.records += skipped
        self.counts.skipped += skipped
        self._count_kinds(parsed)
        enriched = enrich(parsed)
        for state in self._rules:
            self.counts.matches_by_rule[state.rule.name] += state.add(enriched)

    def _count_kinds(self, parsed: pl.DataFrame) -> None:
        counts = self.counts
        counts.records += parsed.height
        kinds = dict(parsed.group_by("kind").len().iter_rows())
        counts.access += kinds.get("access", 0)
        counts.other += kinds.get("other", 0)
        counts.malformed += kinds.get("malformed", 0)
        reasons = parsed.filter(pl.col("kind") == "malformed").group_by("reason").len()
        for reason, number in reasons.iter_rows():
            counts.malformed_by_reason[reason or "unknown"] += number

    def groups(self) -> list[AlertGroup]:
        """Return the alert groups that fire, rule by rule, in a deterministic order."""
        result: list[AlertGroup] = []
        for state in self._rules:
            result.extend(_firing_groups(state))
        return result

    def partials(self) -> list[tuple[pl.DataFrame | None, pl.DataFrame | None]]:
        """Return each rule's groups and request counts, for merging into another aggregator."""
        return [(state.groups, state.requests) for state in self._rules]

    def merge(self, counts: RunCounts,
              partials: list[tuple[pl.DataFrame | None, pl.DataFrame | None]]) -> None:
        """Fold in what an aggregator of the same rules collected over other records."""
        own = self.counts
        own.records += counts.records
        own.skipped += counts.skipped
        own.access += counts.access
        own.other += counts.other
        own.malformed += counts.malformed
        own.malformed_by_reason.update(counts.malformed_by_reason)
        own.matches_by_rule.update(counts.matches_by_rule)
        for state, (groups, requests) in zip(self._rules, partials, strict=True):
            state.merge(groups, requests)

    def evaluations(self) -> list[GroupEvaluation]:
        """Return every group of every rule with the numbers its condition was checked on."""
        result: list[GroupEvaluation] = []
        for state in self._rules:
            result.extend(_evaluate(state))
        return result


@dataclass(frozen=True)
class GroupEvaluation:
    """Why a group fires or not: its count and ratio against the rule's thresholds."""

    rule: str
    key: dict[str, str]
    count: int
    requests: int | None
    fires: bool
    reason: str


def _evaluate(state: _RuleState) -> list[GroupEvaluation]:
    rule = state.rule
    if state.groups is None:
        return []
    keys = rule.group_by
    frame = _with_requests(state, state.groups).with_columns(
        _condition_expr(rule).alias("fires")
    ).sort(["count", *keys], descending=[True, *([False] * len(keys))])
    return [
        GroupEvaluation(rule.name, {k: str(row[k]) for k in keys}, int(row["count"]),
                        row["requests"], bool(row["fires"]),
                        _reason(rule, int(row["count"]), row["requests"]))
        for row in frame.iter_rows(named=True)
    ]


def _reason(rule: RuleConfig, count: int, requests: int | None) -> str:
    parts = [f"count {count} {'>=' if count >= rule.min_count else '<'} min_count "
             f"{rule.min_count}"]
    if rule.ratio is not None:
        if not requests:
            parts.append("no requests counted for the ratio")
        else:
            ratio = count / requests
            enough = requests >= rule.ratio.min_requests
            parts.append(f"requests {requests} {'>=' if enough else '<'} min_requests "
                         f"{rule.ratio.min_requests}")
            above = ratio > rule.ratio.min_ratio
            parts.append(f"ratio {ratio:.2%} {'>' if above else '<='} min_ratio "
                         f"{rule.ratio.min_ratio:.2%}")
    return ", ".join(parts)


def _with_requests(state: _RuleState, groups: pl.DataFrame) -> pl.DataFrame:
    if state.rule.ratio is None or state.requests is None:
        return groups.with_columns(pl.lit(None, dtype=pl.Int64).alias("requests"))
    if not state.scope:
        total = int(state.requests["requests"].sum())
        return groups.with_columns(pl.lit(total, dtype=pl.Int64).alias("requests"))
    return groups.join(state.requests, on=state.scope, how="left")


def _condition_expr(rule: RuleConfig) -> pl.Expr:
    expr = pl.col("count") >= rule.min_count
    if rule.ratio is not None:
        ratio = pl.col("count") / pl.col("requests")
        enough = pl.col("requests") >= rule.ratio.min_requests
        expr = expr & enough & (ratio > rule.ratio.min_ratio)
    return expr.fill_null(False)


def _severity(rule: RuleConfig, count: int, requests: int | None) -> str:
    chosen = rule.severity
    for level in rule.severity_levels:
        if _level_holds(level, count, requests):
            chosen = level.severity
    return chosen


def _level_holds(level: SeverityLevel, count: int, requests: int | None) -> bool:
    if count < level.min_count:
        return False
    if level.min_ratio is None:
        return True
    return bool(requests) and count / requests > level.min_ratio  # type: ignore[operator]


def _firing_groups(state: _RuleState) -> list[AlertGroup]:
    rule = state.rule
    if state.groups is None:
        return []
    keys = rule.group_by
    firing = (
        _with_requests(state, state.groups)
        .filter(_condition_expr(rule))
        .sort(["count", *keys], descending=[True, *([False] * len(keys))])
    )
    kept, overflow = firing.head(rule.max_alerts), firing.slice(rule.max_alerts)
    groups = [_to_group(rule, row) for row in kept.iter_rows(named=True)]
    return groups + _fold_overflow(rule, overflow)


def _to_group(rule: RuleConfig, row: dict[str, Any]) -> AlertGroup:
    samples = row.get("samples") or []
    return AlertGroup(
        rule=rule,
        key={k: str(row[k]) for k in rule.group_by},
        count=int(row["count"]),
        first=row["first"],
        last=row["last"],
        pods=tuple(row["pods"] or ()),
        samples=tuple(sample["line"] for sample in samples if sample["line"] is not None),
        severity=_severity(rule, int(row["count"]), row.get("requests")),
        requests=row.get("requests"),
    )


def _fold_overflow(rule: RuleConfig, overflow: pl.DataFrame) -> list[AlertGroup]:
    """Fold the groups beyond the cap into one summary group per namespace."""
    if overflow.height == 0:
        return []
    by = "namespace" if "namespace" in rule.group_by else None
    frame = overflow.with_columns(pl.lit("(all)").alias("namespace")) if by is None else overflow
    folded = (
        frame.group_by("namespace")
        .agg(
            pl.len().alias("groups"),
            pl.col("count").sum(),
            pl.col("first").min(),
            pl.col("last").max(),
            pl.col("pods").explode().drop_nulls().unique().sort(),
        )
        .sort("namespace")
    )
    return [
        AlertGroup(
            rule=rule,
            key={"namespace": row["namespace"]},
            count=int(row["count"]),
            first=row["first"],
            last=row["last"],
            pods=tuple(row["pods"] or ()),
            samples=(),
            severity=rule.severity,
            folded_groups=int(row["groups"]),
        )
        for row in folded.iter_rows(named=True)
    ]
