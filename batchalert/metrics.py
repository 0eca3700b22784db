"""Run metrics in the Prometheus format: pushed to a Pushgateway or written for node-exporter.

A run is a short-lived process, so nothing scrapes it. It builds a fresh CollectorRegistry with
the values of this one run (never the process-wide default registry), then pushes it to a
Pushgateway or writes it as a node-exporter textfile. Every metric is a gauge, because each
value describes the last run rather than a total that grows across runs.

Exporting is best-effort: a Pushgateway that is down or a textfile directory that is missing
logs a warning and changes neither the run's exit code nor its committed offsets. When the
alerts are posted and the offsets committed, failing the run over a monitoring side channel
would report an error for work that was done, and a CronJob would retry it for nothing.
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, push_to_gateway, pushadd_to_gateway
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import write_to_textfile
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from batchalert.errors import BatchalertError
from batchalert.events import mask_url

if TYPE_CHECKING:
    from batchalert.pipeline import RunResult
    from batchalert.rules.aggregate import RunCounts
    from batchalert.sinks.base import Delivery

logger = logging.getLogger(__name__)

LAST_SUCCESS = "batchalert_last_success_timestamp_seconds"
LAST_RUN = "batchalert_last_run_timestamp_seconds"
RUN_DURATION = "batchalert_run_duration_seconds"
RUN_SUCCESS = "batchalert_run_success"
EXIT_CODE = "batchalert_exit_code"
READ_RECORDS = "batchalert_read_records"
READ_BYTES = "batchalert_read_bytes"
ACCESS_LINES = "batchalert_access_lines"
OTHER_LINES = "batchalert_other_lines"
MALFORMED_RECORDS = "batchalert_malformed_records"
RULE_MATCHES = "batchalert_rule_matches"
ALERTS_SENT = "batchalert_alerts_sent"
ALERTS_FAILED = "batchalert_alerts_failed"
OFFSETS_COMMITTED = "batchalert_offsets_committed"
REMAINING_LAG = "batchalert_remaining_lag_offsets"
PLANNED_OFFSETS = "batchalert_planned_offsets"

# Characters of a Pushgateway error body quoted in the warning: its reason, not a page.
_ERROR_BODY_CHARS = 300


class _FixedCollector(Collector):
    """Metric families computed once, at the end of a run."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return list(self._families)


def build_registry(
    job_name: str,
    result: RunResult | None,
    *,
    failed: BaseException | None,
    lag: Mapping[int, int] | None,
    job_label: bool = False,
    duration_seconds: float | None = None,
    finished_at: float | None = None,
    kept_success: float | None = None,
) -> CollectorRegistry:
    """Build a new registry with the metrics of one finished run.

    `result` is None when the run failed before it had one (Kafka unreachable, invalid job).
    Then only the run's status is exported. `failed` is the exception that ended the run, or
    None on success. `lag` maps each partition to its high watermark minus the committed
    offset, measured after the commit, or is None when it was not measured.

    `job_label` adds `job="<job_name>"` to every series. Leave it off for a Pushgateway, whose
    grouping key already sets `job`, and turn it on for a textfile, which has no grouping key.
    `duration_seconds` is used when there is no result to take the run's duration from.
    `finished_at` is the run's end in Unix seconds and defaults to now.

    The last-success timestamp is exported when `failed` is None, with the run's end. After a
    failed run it is exported only as `kept_success`, the time of an earlier success that a
    textfile held: a textfile is replaced as a whole. push_metrics relies on its absence to
    keep the previous success time in the Pushgateway after a failed run.
    """
    finished = time.time() if finished_at is None else finished_at
    const = {"job": job_name} if job_label else {}
    if result is not None:
        duration_seconds = result.seconds
    families = _status_families(failed, finished, duration_seconds, result, const)
    if failed is not None and kept_success is not None:
        families.append(_last_success(kept_success, const))
    if result is not None:
        families += _result_families(result, const)
    if lag is not None:
        families.append(_gauge_by(REMAINING_LAG, "Offsets left to read per partition after "
                                  "the run: high watermark minus committed offset.",
                                  "partition", lag, const))

    registry = CollectorRegistry()
    # A family without samples is left out: it carries no value, and a Pushgateway POST
    # ignores it anyway.
    registry.register(_FixedCollector([family for family in families if family.samples]))
    return registry


def exit_code_of(failed: BaseException | None) -> int:
    """Return the process exit code for a run that ended with `failed` (None: success)."""
    if failed is None:
        return 0
    if isinstance(failed, BatchalertError):
        return failed.exit_code
    return 1


def _status_families(
    failed: BaseException | None,
    finished: float,
    duration_seconds: float | None,
    result: RunResult | None,
    const: Mapping[str, str],
) -> list[Metric]:
    families: list[Metric] = [
        _gauge(LAST_RUN, "Unix time at which the last run ended, successful or not.",
               finished, const),
        _gauge(RUN_SUCCESS, "1 if the last run succeeded, 0 if it failed.",
               1 if failed is None else 0, const),
        _gauge(EXIT_CODE, "Process exit code of the last run (0 ok, 2 config, 3 Kafka, "
               "4 receiver, 5 another run active, 6 consumer group shared, 1 other).",
               exit_code_of(failed), const),
        _gauge(OFFSETS_COMMITTED, "1 if the last run committed offsets, 0 if not.",
               1 if result is not None and result.committed else 0, const),
    ]
    if failed is None:
        families.append(_last_success(finished, const))
    if duration_seconds is not None:
        families.append(_gauge(RUN_DURATION, "Duration of the last run in seconds.",
                               duration_seconds, const))
    return families


def _last_success(finished: float, const: Mapping[str, str]) -> Metric:
    return _gauge(LAST_SUCCESS, "Unix time at which the last successful run ended.", finished,
                  const)


def _result_families(result: RunResult, const: Mapping[str, str]) -> list[Metric]:
    planned = {r.partition: r.span for r in result.plan.ranges}
    return [
        _gauge(READ_RECORDS, "Records read from Kafka in the last run.", result.records_read,
               const),
        _gauge(READ_BYTES, "Bytes of record values read from Kafka in the last run.",
               result.bytes_read, const),
        *_count_families(result.counts, const),
        *_delivery_families(result.deliveries, const),
        _gauge_by(PLANNED_OFFSETS, "Offsets in the range planned per partition in the last run, "
                  "an upper bound of its records.", "partition", planned, const),
    ]


def _count_families(counts: RunCounts, const: Mapping[str, str]) -> list[Metric]:
    return [
        _gauge(ACCESS_LINES, "Records parsed as access-log lines in the last run.",
               counts.access, const),
        _gauge(OTHER_LINES, "Records with a log line that is not an access-log line in the "
               "last run.", counts.other, const),
        _gauge_by(MALFORMED_RECORDS, "Records that could not be parsed in the last run, by "
                  "reason.", "reason", counts.malformed_by_reason, const),
        _gauge_by(RULE_MATCHES, "Access-log lines that matched each rule in the last run.",
                  "rule", counts.matches_by_rule, const),
    ]


def _delivery_families(deliveries: list[Delivery], const: Mapping[str, str]) -> list[Metric]:
    # Summed per receiver name, because a repeated label set would make the push invalid.
    sent: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for delivery in deliveries:
        sent[delivery.receiver] += delivery.delivered
        failed[delivery.receiver] += delivery.undelivered
    return [
        _gauge_by(ALERTS_SENT, "Alerts each receiver accepted in the last run.",
                  "receiver", sent, const),
        _gauge_by(ALERTS_FAILED, "Alerts each receiver did not accept in the last run.",
                  "receiver", failed, const),
    ]


def _gauge(name: str, documentation: str, value: float, const: Mapping[str, str]
           ) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(const))
    family.add_metric(list(const.values()), value)
    return family


def _gauge_by(
    name: str,
    documentation: str,
    label: str,
    values: Mapping[str, int] | Mapping[int, int],
    const: Mapping[str, str],
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[*const, label])
    for key, value in sorted(values.items()):
        family.add_metric([*const.values(), str(key)], value)
    return family


def export_run_metrics(
    job_name: str,
    result: RunResult | None,
    *,
    failed: BaseException | None,
    lag: Mapping[int, int] | None = None,
    duration_seconds: float | None = None,
    gateway_url: str | None = None,
    grouping_key: Mapping[str, str] | None = None,
    textfile: Path | None = None,
) -> None:
    """Push the run's metrics to `gateway_url` and write them to `textfile`, where given.

    Both exports describe the same run end. Like push_metrics and write_textfile, this logs
    failures as warnings and does not raise them.
    """
    finished_at = time.time()
    if gateway_url is not None:
        registry = build_registry(job_name, result, failed=failed, lag=lag,
                                  duration_seconds=duration_seconds, finished_at=finished_at)
        push_metrics(registry, gateway_url, job_name, dict(grouping_key or {}))
    if textfile is not None:
        kept_success = (_textfile_success(textfile, job_name) if failed is not None
                        else None)
        registry = build_registry(job_name, result, failed=failed, lag=lag, job_label=True,
                                  duration_seconds=duration_seconds, finished_at=finished_at,
                                  kept_success=kept_success)
        write_textfile(registry, textfile)


def _textfile_success(path: Path, job_name: str) -> float | None:
    """Return the last-success time of `job_name` in the textfile at `path`, or None.

    A failed run writes it again, so that alerts on the age of the last success keep working
    while runs fail.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("cannot read the last success time from %s (%s); the failed run's "
                       "metrics leave it out", path, exc)
        return None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS and sample.labels.get("job") == job_name:
                    return float(sample.value)
    except ValueError as exc:
        logger.warning("cannot parse the metrics in %s (%s); the failed run's metrics leave "
                       "out the last success time", path, exc)
    return None


def push_metrics(
    registry: CollectorRegistry,
    gateway_url: str,
    job_name: str,
    grouping_key: dict[str, str],
    timeout_seconds: float = 10,
) -> None:
    """Push `registry` to the Pushgateway at `gateway_url` as group `job_name` + `grouping_key`.

    A registry with the last-success timestamp (a successful run) is pushed with PUT, which
    replaces the whole group, so series of receivers, rules or partitions that this run did not
    report disappear. A registry without it (a failed run) is pushed with POST, which replaces
    only the metric names it contains, so the group keeps the last-success timestamp of the
    previous successful run, and alerting on its age works.

    Connection, HTTP and URL errors are logged as a warning, not raised: see the module
    docstring.
    """
    gateway_url = _with_scheme(gateway_url)
    masked_url = mask_url(gateway_url)
    if _has_userinfo(gateway_url):
        # urllib would take `user:password@host` for a host name and fail on a DNS lookup.
        logger.warning("Pushgateway URL %s contains user info, which is not sent as "
                       "credentials; remove it from the URL. The metrics of job %s were not "
                       "pushed", masked_url, job_name)
        return

    replace_group = _has_samples(registry, LAST_SUCCESS)
    push = push_to_gateway if replace_group else pushadd_to_gateway
    try:
        push(gateway_url, job=job_name, registry=registry, grouping_key=grouping_key,
             timeout=timeout_seconds)
    except urllib.error.HTTPError as exc:
        body = exc.read()[:_ERROR_BODY_CHARS].decode("utf-8", "replace").strip()
        logger.warning("Pushgateway %s rejected the metrics of job %s with HTTP %d: %s; the "
                       "run's result is not affected", masked_url, job_name, exc.code, body)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # OSError covers refused connections, timeouts and DNS errors (URLError is one).
        # ValueError comes from a malformed gateway URL.
        logger.warning("pushing the metrics of job %s to Pushgateway %s failed: %s; the run's "
                       "result is not affected", job_name, masked_url, exc)
    else:
        logger.info("pushed the metrics of job %s to Pushgateway %s (%s)", job_name, masked_url,
                    "PUT, group replaced" if replace_group else "POST, last success kept")


def write_textfile(registry: CollectorRegistry, path: Path) -> None:
    """Write `registry` to `path` for node-exporter's textfile collector, atomically.

    prometheus_client writes a temporary file in the same directory and renames it over `path`,
    so the collector never reads a half-written file. node-exporter reads only files whose name
    ends in `.prom`. An OSError (missing directory, no permission, full disk) is logged as a
    warning, not raised: see the module docstring.
    """
    if path.suffix != ".prom":
        logger.warning("metrics file %s does not end in .prom, so node-exporter's textfile "
                       "collector will not read it", path)
    try:
        write_to_textfile(str(path), registry)
    except OSError as exc:
        logger.warning("writing metrics to %s failed: %s; check that the directory exists and "
                       "is writable. The run's result is not affected", path, exc)
    else:
        logger.info("wrote metrics to %s", path)


def _with_scheme(url: str) -> str:
    """Prefix `http://` as prometheus_client does when `url` has no http or https scheme."""
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        return url  # the push reports the malformed URL
    return url if scheme in ("http", "https") else f"http://{url}"


def _has_userinfo(url: str) -> bool:
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:
        return False  # the push reports the malformed URL


def _has_samples(registry: CollectorRegistry, name: str) -> bool:
    return any(family.name == name and family.samples for family in registry.collect())
