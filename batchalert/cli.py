"""The `batchalert` command line: a thin layer over the pipeline, parser and job model."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

# First of batchalert's imports: it sets allocator defaults that Polars and pyarrow read when
# they load.
from batchalert import __version__, allocators  # noqa: F401
from batchalert.config import JobConfig, load_job, parse_duration
from batchalert.errors import BatchalertError, ConfigError

if TYPE_CHECKING:
    from batchalert.pipeline import RunResult

logger = logging.getLogger("batchalert")

app = typer.Typer(
    name="batchalert",
    help="Grouped HTTP error alerts from container access logs in Kafka, as a batch job.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JobOption = Annotated[
    Path | None,
    typer.Option("--job", "-j", help="Job file (YAML). Without it, options and BATCHALERT_* "
                 "variables describe the job.", envvar="BATCHALERT_JOB"),
]


def _echo_error(error: BatchalertError) -> None:
    """Print each line of the error's message on stderr, prefixed and with secrets masked."""
    from batchalert.logs import redact

    for line in redact(str(error)).splitlines() or [""]:
        typer.echo(f"error: {line}", err=True)


def _fail(error: BatchalertError) -> typer.Exit:
    _echo_error(error)
    return typer.Exit(error.exit_code)


def _load(job: Path | None, overrides: Mapping[str, object]) -> JobConfig:
    loaded = load_job(job, overrides)
    from batchalert.alerts import AlertRenderer

    try:
        AlertRenderer(loaded.language, loaded.templates).check(loaded.rules)
    except ConfigError as error:
        if job is None:
            raise
        raise ConfigError(f"{job}: {error}") from error
    return loaded


@app.command()
def run(
    job: JobOption = None,
    brokers: Annotated[str | None, typer.Option(help="Kafka bootstrap servers, "
                       "HOST:PORT[,HOST:PORT]. Env: BATCHALERT_BROKERS.")] = None,
    topic: Annotated[str | None, typer.Option(help="Topic with the log records. "
                     "Env: BATCHALERT_TOPIC.")] = None,
    group: Annotated[str | None, typer.Option(help="Consumer group whose offsets mark "
                     "progress. Env: BATCHALERT_GROUP.")] = None,
    receiver_url: Annotated[str | None, typer.Option(help="URL of the first receiver (a "
                            "Notification Manager receiver when the job has none). "
                            "Env: BATCHALERT_RECEIVER_URL.")] = None,
    cluster: Annotated[str | None, typer.Option(help="Value of the `cluster` label. "
                       "Env: BATCHALERT_CLUSTER.")] = None,
    since: Annotated[str | None, typer.Option(help="Read from this long ago (90s, 30m, 1h, "
                     "2d) instead of the committed offsets; commits nothing without "
                     "--commit.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the alerts as JSON; post "
                       "and commit nothing.")] = False,
    commit: Annotated[bool, typer.Option("--commit", help="Commit offsets after a --since "
                      "run.")] = False,
    max_records: Annotated[int | None, typer.Option(min=1, help="Stop after this many "
                           "records; commit only what was processed.")] = None,
    max_bytes: Annotated[int | None, typer.Option(min=1, help="Stop after this many bytes "
                         "of record values; commit only what was processed.")] = None,
    dead_letter: Annotated[Path | None, typer.Option(help="Write malformed records (partition, "
                           "offset, reason, raw value) to Parquet files in this "
                           "directory.")] = None,
    pushgateway: Annotated[str | None, typer.Option(help="Push run metrics to this Prometheus "
                           "Pushgateway URL.", envvar="BATCHALERT_PUSHGATEWAY")] = None,
    metrics_file: Annotated[Path | None, typer.Option(help="Write run metrics to this file "
                            "(*.prom) for node-exporter's textfile collector.",
                            envvar="BATCHALERT_METRICS_FILE")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug detail.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log warnings and errors "
                     "only.")] = False,
) -> None:
    """Read the planned offset ranges, alert on matching access lines, then commit."""
    from batchalert.logs import setup_logging

    setup_logging(verbose=verbose, quiet=quiet)
    if commit and dry_run:
        raise typer.BadParameter("--dry-run never commits; drop --commit, or --dry-run to "
                                 "post the alerts and commit", param_hint="--commit")
    if commit and since is None:
        logging.getLogger(__name__).warning(
            "--commit changes nothing without --since: a run from the committed offsets "
            "commits anyway")
    overrides = {"BROKERS": brokers, "TOPIC": topic, "GROUP": group,
                 "RECEIVER_URL": receiver_url, "CLUSTER": cluster}
    settings = _RunSettings(since=since, dry_run=dry_run, commit=commit,
                            max_records=max_records, max_bytes=max_bytes, quiet=quiet,
                            pushgateway=pushgateway, metrics_file=metrics_file,
                            dead_letter=dead_letter)
    _run(job, overrides, settings)


@dataclass(frozen=True)
class _RunSettings:
    since: str | None
    dry_run: bool
    commit: bool
    max_records: int | None
    max_bytes: int | None
    quiet: bool
    pushgateway: str | None
    metrics_file: Path | None
    dead_letter: Path | None


def _run(job: Path | None, overrides: Mapping[str, object], settings: _RunSettings) -> None:
    """Load the job, run it with progress, print the summary and export metrics."""
    from batchalert.source.client import ConsumerStart

    started = time.monotonic()
    loaded: JobConfig | None = None
    result: RunResult | None = None
    failed: BaseException | None = None
    start: ConsumerStart | None = None
    try:
        loaded = _load(job, overrides)
        since_seconds = _since_seconds(settings.since)
        if not loaded.receivers and not settings.dry_run:
            raise ConfigError("no receiver configured; add `receivers` to the job file, pass "
                              "--receiver-url, or use --dry-run")
        # The consumer connects while the modules for reading, parsing and posting load.
        start = ConsumerStart(loaded.source)
        from batchalert.events import log_run_end, log_run_start
        from batchalert.pipeline import RunOptions, run_job
        from batchalert.progress import RunProgress

        options = RunOptions(
            since_seconds=since_seconds, dry_run=settings.dry_run, commit=settings.commit,
            max_records=settings.max_records, max_bytes=settings.max_bytes,
            dead_letter_dir=settings.dead_letter,
        )

        log_run_start(loaded, options)
        with RunProgress(sys.stderr.isatty() and not settings.quiet) as progress:
            result = run_job(loaded, options, on_progress=progress.on_progress,
                             on_plan=progress.on_plan, consumer_start=start)
        log_run_end(result)
    except BatchalertError as error:
        failed = error
        delivery = _failed_delivery(error)
        if delivery is None:
            raise _fail(error) from None
        result = delivery
        log_run_end(delivery)
        _print_summary(_summary_lines(delivery), err=False)
        raise _fail(error) from None
    except Exception as error:
        failed = error
        raise
    finally:
        if start is not None:
            start.abandon()
        _export_metrics(loaded, result, failed, settings, time.monotonic() - started)
    if settings.dry_run:
        from batchalert.summary import alerts_json

        typer.echo(alerts_json(result))
    _print_summary(_summary_lines(result), err=settings.dry_run)


def _summary_lines(result: RunResult) -> list[str]:
    from batchalert.summary import summary_lines

    return summary_lines(result)


def _since_seconds(since: str | None) -> float | None:
    if not since:
        return None
    try:
        return parse_duration(since)
    except ConfigError as error:
        raise ConfigError(f"--since: {error}") from None


def _failed_delivery(error: BatchalertError) -> RunResult | None:
    """Return the run's result when `error` reports receivers that refused it, else None."""
    from batchalert.pipeline import DeliveryFailed

    return error.result if isinstance(error, DeliveryFailed) else None


def _export_metrics(loaded: JobConfig | None, result: object, failed: BaseException | None,
                    settings: _RunSettings, seconds: float) -> None:
    """Export run metrics unless the job never loaded or the run was a dry run."""
    if loaded is None or settings.dry_run:
        return
    if settings.pushgateway is None and settings.metrics_file is None:
        return
    from batchalert.metrics import export_run_metrics

    export_run_metrics(loaded.name, result, failed=failed,  # type: ignore[arg-type]
                       lag=getattr(result, "lag", None), duration_seconds=seconds,
                       gateway_url=settings.pushgateway, textfile=settings.metrics_file,
                       grouping_key={})


def _print_summary(lines: list[str], err: bool) -> None:
    for line in lines:
        typer.echo(line, err=err)


@app.command()
def parse(
    file: Annotated[Path, typer.Argument(help="File of Kafka record values, one per line, "
                                         "bytes as they are; - for standard input.")],
) -> None:
    """Parse record values and print one JSON object per line, for debugging log formats."""
    from batchalert.parse.debug import parse_lines_to_json

    try:
        values = _read_values(file)
    except ConfigError as error:
        raise _fail(error) from None
    for line in parse_lines_to_json(values):
        typer.echo(line)


@app.command()
def validate(
    jobs: Annotated[list[Path], typer.Argument(help="Job files to check.")],
) -> None:
    """Check job files (schema, regular expressions, templates) without touching Kafka."""
    failed = False
    for path in jobs:
        try:
            _load(path, {})
        except BatchalertError as error:
            _echo_error(error)
            failed = True
        else:
            typer.echo(f"{path}: ok")
    if failed:
        raise typer.Exit(ConfigError.exit_code)


@app.command("test")
def test_rules(
    job: Annotated[Path, typer.Argument(help="Job file whose rules to try.")],
    input_file: Annotated[Path, typer.Option("--input", "-i", help="File of Kafka record "
                          "values, one per line, bytes as they are.")],
) -> None:
    """Run a job's rules over a local file and print the alerts it would send, and why."""
    from batchalert.offline import report_lines, run_rules_offline

    try:
        loaded = _load(job, {})
        values = _read_values(input_file)
        report = run_rules_offline(loaded, values)
    except BatchalertError as error:
        raise _fail(error) from None
    for line in report_lines(report):
        typer.echo(line)


def _read_values(path: Path) -> list[bytes]:
    try:
        data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    values = data.split(b"\n")
    if values and values[-1] == b"":
        values.pop()
    return values


cron_app = typer.Typer(help="Kubernetes CronJob manifests for a job.", no_args_is_help=True)
app.add_typer(cron_app, name="cron")


@cron_app.command("render")
def cron_render(
    job: Annotated[Path, typer.Argument(help="Job file to embed in the ConfigMap.")],
    schedule: Annotated[str, typer.Option(help="Cron schedule, for example '*/5 * * * *'.")],
    name: Annotated[str | None, typer.Option(help="Name of the CronJob; default "
                    "batchalert-<job name>.")] = None,
    namespace: Annotated[str, typer.Option(help="Namespace of the manifests.")] = "batchalert",
    image: Annotated[str, typer.Option(help="Container image with batchalert, with its "
                     "registry.")] = f"batchalert:{__version__}",
    active_deadline_seconds: Annotated[int | None, typer.Option(help="Seconds a run may take "
                                       "before Kubernetes stops it; default: the schedule's "
                                       "interval less 60 s.")] = None,
    time_zone: Annotated[str | None, typer.Option(help="Time zone of the schedule, for "
                         "example Asia/Shanghai (Kubernetes 1.27 or later).")] = None,
) -> None:
    """Print a ServiceAccount, ConfigMap and CronJob that run JOB on a schedule."""
    from batchalert.cron import render_manifests

    try:
        text = render_manifests(job, schedule, name=name, namespace=namespace, image=image,
                                time_zone=time_zone,
                                active_deadline_seconds=active_deadline_seconds,
                                validate=lambda path: _load(path, {}))
    except BatchalertError as error:
        raise _fail(error) from None
    typer.echo(text, nl=False)


@app.command()
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to write the "
                      "Parquet files to, partitioned by date=YYYY-MM-DD/namespace=NAME; "
                      "created if missing.")],
    job: JobOption = None,
    brokers: Annotated[str | None, typer.Option(help="Kafka bootstrap servers, "
                       "HOST:PORT[,HOST:PORT]. Env: BATCHALERT_BROKERS.")] = None,
    topic: Annotated[str | None, typer.Option(help="Topic with the log records. "
                     "Env: BATCHALERT_TOPIC.")] = None,
    group: Annotated[str | None, typer.Option(help="Consumer group whose committed offsets "
                     "--from-committed starts at. Env: BATCHALERT_GROUP.")] = None,
    since: Annotated[str | None, typer.Option(help="Export from this long ago (90s, 30m, 1h, "
                     "2d) up to the high watermark.")] = None,
    from_committed: Annotated[bool, typer.Option("--from-committed", help="Export from the "
                              "consumer group's committed offsets up to the high watermark, "
                              "the records the next run would read.")] = False,
    max_records: Annotated[int | None, typer.Option(min=1, help="Stop after this many "
                           "records.")] = None,
    include_raw: Annotated[bool, typer.Option("--include-raw", help="Also write each record "
                           "value as it was in Kafka (binary column `raw`).")] = False,
    line: Annotated[bool, typer.Option("--line/--no-line", help="Write the log line (column "
                    "`line`).")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug detail.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log warnings and errors "
                     "only.")] = False,
) -> None:
    """Write every parsed record of the planned offset ranges to Parquet; commit nothing."""
    from batchalert.export import ExportOptions, export_records, summary_lines
    from batchalert.logs import setup_logging
    from batchalert.progress import RunProgress

    setup_logging(verbose=verbose, quiet=quiet)
    overrides = {"BROKERS": brokers, "TOPIC": topic, "GROUP": group}
    try:
        loaded = _load(job, overrides)
        options = ExportOptions(
            output_dir=output, since_seconds=parse_duration(since) if since else None,
            from_committed=from_committed, max_records=max_records,
            include_raw=include_raw, include_line=line,
        )
        with RunProgress(sys.stderr.isatty() and not quiet) as progress:
            result = export_records(loaded, options, on_progress=progress.on_progress,
                                    on_plan=progress.on_plan)
    except BatchalertError as error:
        raise _fail(error) from None
    _print_summary(summary_lines(result), err=False)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    """Console-script entry point.

    The process ends with os._exit once its output is flushed. Tearing down the modules of
    Polars, pyarrow and kafka-python took about 0.2 s after a run, and by then nothing is left
    to do: the consumer is closed, the offsets committed and the metrics pushed.
    """
    # httpcore imports trio when it is installed, to support trio's event loop. The CLI posts
    # with httpx's blocking client only, and the import took about 45 ms of each run.
    sys.modules.setdefault("trio", None)  # type: ignore[arg-type]
    try:
        app()
    except SystemExit as exc:
        _exit_now(exc.code)


def _exit_now(code: str | int | None) -> NoReturn:
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    main()
