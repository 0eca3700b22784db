"""Request targets normalised into the path group key."""

from __future__ import annotations

import polars as pl
import pytest

from batchalert.config import PathNormalization
from batchalert.rules.paths import NO_PATH, normalized_path_expr


def normalize(path: str | None, settings: PathNormalization | None = None) -> str:
    frame = pl.DataFrame({"path": [path]}, schema={"path": pl.String})
    expr = normalized_path_expr(pl.col("path"), settings or PathNormalization())
    return frame.select(expr).item()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/notfound", "/notfound"),
        ("/index.php?x=a b", "/index.php"),
        ("https://shop.example.com/login", "/login"),
        ("https://shop.example.com", "/"),
        ("/orders/12/items/34", "/orders/:id/items/:id"),
        ("/a/1/2/3", "/a/:id/:id/:id"),
        ("/u/550e8400-e29b-41d4-a716-446655440000/x", "/u/:id/x"),
        ("/blob/3db73c6c673c4256ade033a6ce08c2ab", "/blob/:id"),
        ("/v2/api", "/v2/api"),
        ("shop.example.com:443", "shop.example.com:443"),
        ("/page#frag", "/page"),
    ],
)
def test_default_normalisation(path: str, expected: str) -> None:
    assert normalize(path) == expected


def test_missing_target_has_placeholder() -> None:
    assert normalize(None) == NO_PATH


def test_query_kept_when_asked() -> None:
    settings = PathNormalization(drop_query=False, collapse_ids=False)

    assert normalize("/a/1?x=2", settings) == "/a/1?x=2"


def test_user_patterns_apply_after_builtins() -> None:
    settings = PathNormalization(patterns=[(r"^/wp-content/uploads/.*$", "/wp-content/uploads/*")])

    assert normalize("/wp-content/uploads/2021/08/a.png", settings) == "/wp-content/uploads/*"
