"""Anchored regular expressions for text access-log lines: Apache/nginx common and combined,
ingress-nginx and Envoy (Istio sidecars).

Every pattern is anchored at both ends and fields are matched in order, so a 404 in a path,
byte count, referer or user agent can never be taken for the status. Quoted fields allow
backslash escapes (Apache writes `\\"` inside a quoted field). The patterns use the Rust regex
syntax of Polars, and ASCII classes such as `[^ ]` and `[0-9]` in place of `\\S` and `\\d`,
whose Unicode tables make capture extraction slower.

The combined and ingress-nginx fields are matched in separate passes over the tail that the
previous pattern left. On 200,000 generated lines (batchalert.parse.benchmark) that took 0.23 s
of CPU, where one pattern with optional groups took 0.41 s.
"""

from __future__ import annotations

import polars as pl

from batchalert.parse.rows import overwrite_rows, replace_on_rows, true_rows
from batchalert.parse.schema import COMBINED, COMMON, ENVOY, INGRESS_NGINX

_TOKEN = r"[^ ]+"
_QUOTED = r'(?:[^"\\]|\\.)*'  # a quoted field's content; (?s) lets "." match a newline
_LIST = r"[^ ,]+(?:(?:, | : )[^ ,]+)*"  # nginx joins upstream values with ", " and " : "

# Fields from the client address to the byte count; the optional tail keeps what follows.
_COMMON_FIELDS = (
    rf"(?P<client>{_TOKEN}) (?P<ident>{_TOKEN}) (?P<user>{_TOKEN}) \[(?P<time>[^\]]+)\] "
    rf'"(?P<request>{_QUOTED})" (?P<status>[0-9]{{3}}|-) (?P<bytes>[0-9]+|-)(?P<tail> .*)?$'
)
COMMON_LINE = "(?s)^" + _COMMON_FIELDS
# Apache's vhost_combined and similar formats put the virtual host (and port) first.
VHOST_LINE = rf"(?s)^(?P<vhost>{_TOKEN}) " + _COMMON_FIELDS

COMBINED_TAIL = (
    rf'(?s)^ "(?P<referer>{_QUOTED})" "(?P<user_agent>{_QUOTED})"(?P<tail> .*)?$'
)

# ingress-nginx's default log-format-upstream after the user agent: $request_length
# $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr
# $upstream_response_length $upstream_response_time $upstream_status $req_id. Controllers
# before 0.25 have no alternative upstream, and old ones no $req_id.
INGRESS_TAIL = (
    r"(?s)^ (?P<request_length>[0-9]+) (?P<request_time>[0-9.]+|-) "
    r"\[(?P<proxy_upstream_name>[^\]]*)\](?: \[(?P<alternative_upstream>[^\]]*)\])? "
    rf"(?P<upstream_addr>{_LIST}) (?P<upstream_length>{_LIST}) (?P<upstream_time>{_LIST}) "
    rf"(?P<upstream_status>{_LIST})(?: (?P<request_id>{_TOKEN}))?(?: .*)?$"
)

# Envoy's default access log format; Istio adds %RESPONSE_CODE_DETAILS%,
# %CONNECTION_TERMINATION_DETAILS% and "%UPSTREAM_TRANSPORT_FAILURE_REASON%" after the flags,
# and upstream and downstream addresses at the end.
ENVOY_LINE = (
    rf'(?s)^\[(?P<time>[^\]]+)\] "(?P<request>{_QUOTED})" (?P<status>[0-9]{{1,3}}|-) '
    r"(?P<response_flags>[^ ]+)"
    rf'(?: (?P<response_code_details>[^ "]+) (?P<termination_details>[^ "]+) '
    rf'"(?P<transport_failure>{_QUOTED})")? '
    r"(?P<bytes_received>[0-9]+|-) (?P<bytes>[0-9]+|-) (?P<duration>[0-9]+|-) "
    rf'(?P<upstream_service_time>[^ ]+) "(?P<forwarded_for>{_QUOTED})" '
    rf'"(?P<user_agent>{_QUOTED})" "(?P<request_id>{_QUOTED})" "(?P<authority>{_QUOTED})" '
    rf'"(?P<upstream_host>{_QUOTED})"(?P<tail> .*)?$'
)
# Istio's tail: upstream cluster, upstream local address, downstream local address,
# downstream remote address (the client, as ip:port).
_ISTIO_CLIENT = r"^ [^ ]+ [^ ]+ [^ ]+ \[?([^ \]]+?)\]?:[0-9]+(?: |$)"

# A line that an old Fluent Bit escaped twice has \" where the quotes were, and no bare quote.
_DOUBLE_ESCAPED = r'(?s)^(?:[^"\\]|\\.)*\\"(?:[^"\\]|\\.)*$'
_ESCAPE = r'\\(["\\])'

# Raw text columns every access-line parser returns, before typing.
RAW_COLUMNS = (
    "format", "vhost", "client", "user", "time", "request", "method", "path", "protocol",
    "status", "bytes", "referer", "user_agent", "upstream_status",
)


def undo_double_escaping(line: pl.Series) -> pl.Series:
    """Replace \\" by " and \\\\ by \\ in lines whose every quote is escaped."""
    double = line.str.contains(_DOUBLE_ESCAPED)
    return replace_on_rows(line, double, lambda part: part.str.replace_all(_ESCAPE, "$1"))


def unescape_quoted(field: pl.Series) -> pl.Series:
    """Remove the backslash Apache puts before " and \\ inside a quoted field."""
    escaped = field.str.contains("\\", literal=True)
    return replace_on_rows(field, escaped, lambda part: part.str.replace_all(_ESCAPE, "$1"))


def parse_text_lines(line: pl.Series) -> pl.DataFrame:
    """Return RAW_COLUMNS for common, combined, ingress-nginx and Envoy lines; null elsewhere."""
    head = _common_fields(line)
    combined = head["tail"].str.extract_groups(COMBINED_TAIL).struct.unnest()
    ingress = combined["tail"].str.extract_groups(INGRESS_TAIL).struct.unnest()
    clf = _clf_columns(head, combined, ingress)
    envoy_rows = true_rows(head["client"].is_null() & line.str.starts_with("["))
    envoy = _envoy_fields(line.gather(envoy_rows))
    return overwrite_rows(clf, envoy_rows, envoy)


def _common_fields(line: pl.Series) -> pl.DataFrame:
    """Match the common-format fields, with a leading virtual host where there is one."""
    head = line.str.extract_groups(COMMON_LINE).struct.unnest().with_columns(
        pl.lit(None, dtype=pl.String).alias("vhost")
    )
    # Only lines that failed the common pattern can have a virtual host first.
    failed = true_rows(head["client"].is_null() & line.is_not_null())
    vhosted = line.gather(failed).str.extract_groups(VHOST_LINE).struct.unnest()
    matched = vhosted["client"].is_not_null()
    return overwrite_rows(head, failed.filter(matched), vhosted.filter(matched))


def _clf_columns(
    head: pl.DataFrame, combined: pl.DataFrame, ingress: pl.DataFrame
) -> pl.DataFrame:
    is_ingress = ingress["request_length"].is_not_null()
    is_combined = combined["referer"].is_not_null()
    fmt = (
        pl.when(pl.lit(is_ingress)).then(pl.lit(INGRESS_NGINX))
        .when(pl.lit(is_combined)).then(pl.lit(COMBINED))
        .when(pl.lit(head["client"]).is_not_null()).then(pl.lit(COMMON))
    )
    common_columns = head.select("vhost", "client", "user", "time", "request", "status", "bytes")
    return common_columns.with_columns(
        fmt.alias("format"),
        pl.lit(None, dtype=pl.String).alias("method"),
        pl.lit(None, dtype=pl.String).alias("path"),
        pl.lit(None, dtype=pl.String).alias("protocol"),
        pl.lit(unescape_quoted(combined["referer"])).alias("referer"),
        pl.lit(unescape_quoted(combined["user_agent"])).alias("user_agent"),
        pl.lit(ingress["upstream_status"]).alias("upstream_status"),
    ).select(RAW_COLUMNS)


def _envoy_fields(line: pl.Series) -> pl.DataFrame:
    envoy = line.str.extract_groups(ENVOY_LINE).struct.unnest()
    forwarded = envoy["forwarded_for"].str.extract(r"^ *([^ ,]+)", 1)
    downstream = envoy["tail"].str.extract(_ISTIO_CLIENT, 1)
    client = pl.when(pl.lit(forwarded) != "-").then(pl.lit(forwarded))
    return envoy.select(
        pl.when(pl.col("status").is_not_null()).then(pl.lit(ENVOY)).alias("format"),
        pl.col("authority").alias("vhost"),
        pl.coalesce(client, pl.lit(downstream)).alias("client"),
        pl.lit(None, dtype=pl.String).alias("user"),
        "time", "request",
        pl.lit(None, dtype=pl.String).alias("method"),
        pl.lit(None, dtype=pl.String).alias("path"),
        pl.lit(None, dtype=pl.String).alias("protocol"),
        "status", "bytes",
        pl.lit(None, dtype=pl.String).alias("referer"),
        "user_agent",
        pl.lit(None, dtype=pl.String).alias("upstream_status"),
    )
