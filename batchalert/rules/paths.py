"""Normalising request targets into the `path` group key."""

from __future__ import annotations

import polars as pl

from batchalert.config import PathNormalization

NO_PATH = "(no request)"

_ABSOLUTE_FORM = r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*"
_QUERY = r"[?#].*$"
# Segments that identify one object: numbers, UUIDs and long hexadecimal or base-36 hashes.
_ID_SEGMENTS = (
    r"/\d+(/|$)",
    r"/[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(/|$)",
    r"/[0-9A-Fa-f]{16,}(/|$)",
)


def normalized_path_expr(path: pl.Expr, settings: PathNormalization) -> pl.Expr:
    """Return the group key of each request target.

    An absolute-form target (`https://host/login`) keeps only its path, the query string goes
    when `drop_query` is set, and ID-like segments become `:id` when `collapse_ids` is set.
    A missing target (request `-` or a single token) becomes "(no request)".
    """
    expr = path.str.replace(_ABSOLUTE_FORM, "")
    only_authority = path.str.contains(_ABSOLUTE_FORM) & (expr == "")
    expr = pl.when(only_authority).then(pl.lit("/")).otherwise(expr)
    if settings.drop_query:
        expr = expr.str.replace(_QUERY, "")
    if settings.collapse_ids:
        for pattern in _ID_SEGMENTS:
            # Twice, because adjacent ID segments share the slash the pattern consumes.
            expr = expr.str.replace_all(pattern, "/:id$1").str.replace_all(pattern, "/:id$1")
    for pattern, replacement in settings.patterns:
        expr = expr.str.replace_all(pattern, replacement)
    return pl.when(path.is_null()).then(pl.lit(NO_PATH)).otherwise(expr)
