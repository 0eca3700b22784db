"""Turning a rule's selection settings into one Polars filter expression."""

from __future__ import annotations

from functools import reduce

import polars as pl

from batchalert.config import PatternFilter, RuleConfig


def _any_of(expressions: list[pl.Expr]) -> pl.Expr:
    return reduce(lambda left, right: left | right, expressions)


def pattern_filter_expr(column: pl.Expr, patterns: PatternFilter) -> pl.Expr:
    """True where `column` matches an include pattern (if any) and no exclude pattern.

    A null value never matches an include pattern and never matches an exclude pattern.
    """
    expr = pl.lit(True)
    if patterns.include:
        expr = expr & _any_of([column.str.contains(p) for p in patterns.include]).fill_null(False)
    if patterns.exclude:
        expr = expr & ~_any_of([column.str.contains(p) for p in patterns.exclude]).fill_null(False)
    return expr


def status_expr(status: pl.Expr, ranges: list[tuple[int, int]]) -> pl.Expr:
    """True where the status falls in one of the inclusive ranges; null status never matches."""
    return _any_of([status.is_between(low, high) for low, high in ranges]).fill_null(False)


def rule_filter_expr(rule: RuleConfig) -> pl.Expr:
    """Select the access lines that `rule` counts, over a frame with a `workload` column."""
    expr = (pl.col("kind") == "access") & status_expr(pl.col("status"), rule.status_ranges)
    if rule.method:
        expr = expr & pl.col("method").is_in(rule.method).fill_null(False)
    for field in ("namespace", "pod", "container", "workload", "path"):
        patterns: PatternFilter = getattr(rule, field)
        if not patterns.is_empty:
            expr = expr & pattern_filter_expr(pl.col(field), patterns)
    return expr
