"""Exporting every parsed record of the planned offset ranges to Parquet, for analysis.

An export plans its ranges as a run does: from `--since`, or from the consumer group's committed
offsets, up to the high watermark. It reads them chunk by chunk and parses and writes each chunk
at once, so memory stays bounded by one chunk. It never commits offsets and takes no run lock.

Layout (hive-style, readable by Polars, DuckDB and pandas with pyarrow):

    DIR/date=2021-08-25/namespace=demo-project/part-0-1200-1399.parquet

- `date` is the UTC date of the event time: the access-line time, else the record time;
- `namespace` is percent-encoded as hive readers expect (`a/b` is written `a%2Fb`). A record
  without a namespace goes to `namespace=__none__`, so readers return the string `__none__`
  for it. Hive's own null marker is not used because pandas cannot read a partition column
  that contains nulls;
- a file contains the rows of one Kafka partition from one chunk, and its name carries that
  partition and the first and last offset in the file. The `date` and `namespace` columns come
  from the directories and are not stored in the files.

Re-exporting the same offsets gives the same rows. Files are staged in a hidden directory beside
DIR and moved into DIR only after the whole read succeeded. Then every earlier file of the same
topic whose offsets lie inside the exported ranges is removed, so a re-export never duplicates
rows, even when the chunks were cut at other offsets than before. A failed export leaves DIR
as it was. One DIR contains one topic, written with one set of column options. An export into
a DIR with another topic or other columns raises ConfigError.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Final, Self
from urllib.parse import quote

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from kafka import KafkaConsumer

from batchalert.config import JobConfig
from batchalert.errors import BatchalertError, ConfigError
from batchalert.pipeline import parse_chunk
from batchalert.rules.aggregate import enrich
from batchalert.source.client import open_consumer
from batchalert.source.plan import PartitionRange, ReadPlan, plan_ranges
from batchalert.source.reader import RangeReader, ReadLimits

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]

# Columns stored in each file, in this order. The options add `line` and `raw`.
BASE_COLUMNS: Final = (
    "partition", "offset", "kafka_timestamp", "kind", "reason", "pod", "container", "workload",
    "time", "record_time", "method", "path", "protocol", "status", "bytes", "client", "referer",
    "user_agent", "format", "vhost", "user", "upstream_status",
)
LINE_COLUMN: Final = "line"
RAW_COLUMN: Final = "raw"

# Columns that readers take from the directory names. Pass this as `hive_schema` to Polars:
# otherwise it infers the types, and a namespace such as `2024` would come back as an integer.
HIVE_SCHEMA: Final[dict[str, pl.DataType]] = {"date": pl.Date(), "namespace": pl.String()}

NULL_NAMESPACE: Final = "__none__"
# Kubernetes namespaces have at most 63 characters. A longer value comes from broken metadata,
# and its encoded form could exceed the 255-byte limit of a file name on common file systems.
OVERLONG_NAMESPACE: Final = "__overlong__"
_MAX_NAMESPACE_CHARS = 63

# Parquet key-value metadata naming the topic the rows came from.
TOPIC_METADATA_KEY: Final = "batchalert.topic"

_PART_FILE = re.compile(r"^part-(\d+)-(\d+)-(\d+)\.parquet$")
_PART_GLOB = "date=*/namespace=*/part-*.parquet"


@dataclass(frozen=True)
class ExportOptions:
    """Options of one export. Exactly one of `since_seconds` and `from_committed` is set."""

    output_dir: Path
    since_seconds: float | None = None
    from_committed: bool = False
    max_records: int | None = None
    include_raw: bool = False
    include_line: bool = True

    def columns(self) -> list[str]:
        """Return the columns each file stores, in order."""
        columns = list(BASE_COLUMNS)
        if self.include_line:
            columns.append(LINE_COLUMN)
        if self.include_raw:
            columns.append(RAW_COLUMN)
        return columns


@dataclass
class ExportResult:
    """Records read and files written by one export."""

    plan: ReadPlan
    output_dir: Path
    records_read: int = 0
    bytes_read: int = 0
    rows_by_kind: Counter[str] = field(default_factory=Counter)
    # Partition -> offsets [start, next) that were read and written.
    exported_ranges: dict[int, tuple[int, int]] = field(default_factory=dict)
    files_written: list[Path] = field(default_factory=list)
    files_removed: list[Path] = field(default_factory=list)
    capped: bool = False
    seconds: float = 0.0

    @property
    def rows_written(self) -> int:
        return sum(self.rows_by_kind.values())


def export_records(
    job: JobConfig,
    options: ExportOptions,
    on_progress: ProgressCallback | None = None,
    on_plan: Callable[[ReadPlan], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> ExportResult:
    """Plan, read and parse the job's offset ranges and write every record to Parquet.

    Raises ConfigError for invalid options or an output directory of another export, and
    SourceError when Kafka cannot be read. Nothing is committed in any case.
    """
    check_options(options)
    started = time.monotonic()
    since_ms = None
    if options.since_seconds is not None:
        since_ms = int((clock() - options.since_seconds) * 1000)
    timeout_ms = int(job.source.timeout_seconds * 1000)

    with ExportWriter(options, job.source.topic) as writer, \
            open_consumer(job.source) as consumer:
        plan = plan_ranges(consumer, job.source.topic, job.source.group, since_ms, timeout_ms)
        if on_plan is not None:
            on_plan(plan)
        result = ExportResult(plan=plan, output_dir=writer.output_dir)
        _read_and_write(consumer, plan, job, options, writer, result, on_progress)
        result.files_written, result.files_removed = writer.publish(result.exported_ranges)
    result.seconds = time.monotonic() - started
    logger.info("exported %d records of topic %s to %d files in %s; nothing committed",
                result.rows_written, plan.topic, len(result.files_written), writer.output_dir)
    return result


def check_options(options: ExportOptions) -> None:
    """Raise ConfigError unless exactly one start is chosen and the limits are positive."""
    if options.from_committed == (options.since_seconds is not None):
        raise ConfigError("choose where the export starts: pass either --since DURATION (for "
                          "example --since 1h) or --from-committed, not both and not neither")
    if options.since_seconds is not None and options.since_seconds <= 0:
        raise ConfigError(f"--since must be a positive duration, got "
                          f"{options.since_seconds:g} seconds")
    if options.max_records is not None and options.max_records < 1:
        raise ConfigError(f"--max-records must be at least 1, got {options.max_records}")


def _read_and_write(
    consumer: KafkaConsumer,
    plan: ReadPlan,
    job: JobConfig,
    options: ExportOptions,
    writer: ExportWriter,
    result: ExportResult,
    on_progress: ProgressCallback | None,
) -> None:
    """Read the ranges one partition after another and write each chunk at once.

    Reading one partition at a time gives chunks of one Kafka partition each, so every chunk
    writes one file per date and namespace instead of one per Kafka partition as well.
    """
    for span in plan.nonempty():
        remaining = _remaining(options.max_records, result.records_read)
        if remaining == 0:
            result.capped = True
            break
        reader = _partition_reader(consumer, plan, span, job, remaining, on_progress)
        for batch in reader.batches():
            frame = export_frame(batch, parse_chunk(batch, job), options)
            writer.write(frame)
            result.rows_by_kind.update(dict(frame.group_by("kind").len().iter_rows()))
        result.exported_ranges[span.partition] = (span.start, reader.next_offsets[span.partition])
        result.records_read += reader.records_read
        result.bytes_read += reader.bytes_read
        if reader.capped:
            result.capped = True
            break


def _remaining(max_records: int | None, records_read: int) -> int | None:
    return None if max_records is None else max(max_records - records_read, 0)


def _partition_reader(
    consumer: KafkaConsumer,
    plan: ReadPlan,
    span: PartitionRange,
    job: JobConfig,
    max_records: int | None,
    on_progress: ProgressCallback | None,
) -> RangeReader:
    limits = ReadLimits(max_records=max_records, chunk_records=job.chunk_records,
                        stall_seconds=job.source.stall_seconds)
    single = ReadPlan(plan.topic, plan.group, (span,), plan.since_ms)
    return RangeReader(consumer, single, limits, on_progress)


def export_frame(batch: pa.RecordBatch, parsed: pl.DataFrame,
                 options: ExportOptions) -> pl.DataFrame:
    """Build the exported rows of one chunk: parsed columns, workload, date and Kafka fields.

    `parsed` is `parse_chunk(batch, job)`, one row per record of `batch` in the same order.
    `time` stays the access-line time (null on other rows), while `date` uses the event time,
    which falls back to the record time. parse_chunk fills a missing record time from the
    Kafka timestamp, so `date` is never null.
    """
    enriched = enrich(parsed)
    frame = parsed.with_columns(
        _series("kafka_timestamp", batch.column("timestamp")),
        enriched["workload"],
        enriched["time"].dt.date().alias("date"),
    )
    if options.include_raw:
        frame = frame.with_columns(_series(RAW_COLUMN, batch.column("value")))
    return frame.select([*options.columns(), "date", "namespace"])


def _series(name: str, column: pa.Array | pa.ChunkedArray) -> pl.Series:
    series = pl.from_arrow(column)
    assert isinstance(series, pl.Series)
    return series.alias(name)


def hive_directory(day: date | None, namespace: str | None) -> str:
    """Return the `date=…/namespace=…` directory of a group of rows, percent-encoded."""
    if day is None:
        # Unreachable through export_frame, whose dates are never null.
        raise BatchalertError("an exported row has no date; its record has no timestamp")
    return f"date={day.isoformat()}/namespace={namespace_directory_value(namespace)}"


def namespace_directory_value(namespace: str | None) -> str:
    """Encode a namespace for a directory name, mapping missing and broken values to markers."""
    if not namespace:
        return NULL_NAMESPACE
    if len(namespace) > _MAX_NAMESPACE_CHARS:
        return OVERLONG_NAMESPACE
    return quote(namespace, safe="")


def part_file_name(partition: int, first_offset: int, last_offset: int) -> str:
    """Name the file of one Kafka partition's rows from `first_offset` to `last_offset`."""
    return f"part-{partition}-{first_offset}-{last_offset}.parquet"


class ExportWriter:
    """Stages Parquet files beside the output directory and moves them in on `publish`.

    Use it as a context manager. Entering checks that the output directory is empty or contains
    an export of the same topic and columns, and leaving removes the staging directory.
    """

    def __init__(self, options: ExportOptions, topic: str) -> None:
        self.output_dir = options.output_dir.resolve()
        self._topic = topic
        self._columns = options.columns()
        staging_name = f".{self.output_dir.name}.staging-{uuid.uuid4().hex[:8]}"
        self._staging = self.output_dir.parent / staging_name
        self._staged: list[Path] = []
        self._overlong_rows = 0

    def __enter__(self) -> Self:
        self._prepare_output()
        self._check_existing_export()
        try:
            self._staging.mkdir()
        except OSError as exc:
            raise ConfigError(f"cannot create the staging directory {self._staging}: "
                              f"{exc.strerror}; make {self.output_dir.parent} writable") from exc
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)

    def _prepare_output(self) -> None:
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise ConfigError(f"output {self.output_dir} exists and is not a directory; pass "
                              f"a directory with -o")
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the output directory {self.output_dir}: "
                              f"{exc.strerror}") from exc

    def _check_existing_export(self) -> None:
        """Raise ConfigError when the directory contains an export of another topic or columns.

        Only the first file found is checked, which is enough for a directory that only
        exports of this module wrote.
        """
        existing = next(iter(self.output_dir.glob(_PART_GLOB)), None)
        if existing is None:
            return
        topic = _file_topic(existing)
        if topic != self._topic:
            raise ConfigError(f"{self.output_dir} contains an export of topic {topic!r} "
                              f"({existing.name}), not of {self._topic!r}; export each topic "
                              f"to its own directory")
        columns = pq.read_schema(existing).names
        if columns != self._columns:
            raise ConfigError(
                f"{self.output_dir} contains an export with the columns {columns}, but these "
                f"options write {self._columns}; use the same --include-raw and --no-line "
                f"options as before, or another directory")

    def write(self, frame: pl.DataFrame) -> None:
        """Stage one file per date, namespace and Kafka partition of `frame`."""
        groups = frame.partition_by(["date", "namespace", "partition"], as_dict=True,
                                    maintain_order=True)
        for (day, namespace, partition), rows in groups.items():
            first, last = rows.select(pl.col("offset").min().alias("first"),
                                      pl.col("offset").max().alias("last")).row(0)
            relative = Path(hive_directory(day, namespace)) / part_file_name(
                int(partition), first, last)
            if namespace and len(namespace) > _MAX_NAMESPACE_CHARS:
                self._overlong_rows += rows.height
            self._write_file(rows.select(self._columns), relative)

    def _write_file(self, rows: pl.DataFrame, relative: Path) -> None:
        target = self._staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        rows.write_parquet(target, metadata={TOPIC_METADATA_KEY: self._topic})
        self._staged.append(relative)

    def publish(self, exported: Mapping[int, tuple[int, int]]) -> tuple[list[Path], list[Path]]:
        """Move the staged files in, then remove earlier files of the exported offsets.

        `exported` maps a partition to the offsets [start, next) this export read. Returns the
        files written and the files removed.
        """
        if self._overlong_rows:
            logger.warning("%d records have a namespace longer than %d characters; they are in "
                           "namespace=%s", self._overlong_rows, _MAX_NAMESPACE_CHARS,
                           OVERLONG_NAMESPACE)
        written = []
        for relative in self._staged:
            target = self.output_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._staging / relative, target)
            written.append(target)
        removed = self._remove_replaced(exported, set(written))
        return sorted(written), sorted(removed)

    def _remove_replaced(self, exported: Mapping[int, tuple[int, int]],
                         written: set[Path]) -> list[Path]:
        removed, straddling = [], []
        for path in sorted(self.output_dir.glob(_PART_GLOB)):
            overlap = _overlap(path, exported)
            if path in written or overlap is None:
                continue
            if overlap == "partial":
                straddling.append(path)
            elif _file_topic(path) == self._topic:
                path.unlink()
                _remove_empty_parents(path, self.output_dir)
                removed.append(path)
        if straddling:
            # Such files also hold offsets outside this export, which removing them would lose.
            logger.warning("%d earlier files overlap the exported offsets only in part and were "
                           "kept, so their rows inside the range are now in %s twice: %s",
                           len(straddling), self.output_dir,
                           ", ".join(str(p.relative_to(self.output_dir)) for p in straddling))
        if removed:
            logger.info("removed %d files of an earlier export of the same offsets", len(removed))
        return removed


def _overlap(path: Path, exported: Mapping[int, tuple[int, int]]) -> str | None:
    """Return "full" or "partial" when the file's offsets overlap an exported range."""
    match = _PART_FILE.match(path.name)
    if match is None:
        return None
    partition, first, last = (int(group) for group in match.groups())
    if partition not in exported:
        return None
    start, end = exported[partition]
    if last < start or first >= end:
        return None
    return "full" if start <= first and last < end else "partial"


def _file_topic(path: Path) -> str | None:
    metadata = pq.read_metadata(path).metadata or {}
    value = metadata.get(TOPIC_METADATA_KEY.encode())
    return value.decode() if value is not None else None


def _remove_empty_parents(path: Path, root: Path) -> None:
    for parent in (path.parent, path.parent.parent):
        if parent == root or any(parent.iterdir()):
            return
        parent.rmdir()


def iter_exported_files(output_dir: Path) -> Iterator[Path]:
    """Yield the export's Parquet files under `output_dir`, sorted by path."""
    yield from sorted(output_dir.glob(_PART_GLOB))


def summary_lines(result: ExportResult) -> list[str]:
    """Describe an export for the terminal."""
    kinds = ", ".join(f"{result.rows_by_kind.get(kind, 0):,} {kind}"
                      for kind in ("access", "other", "malformed"))
    lines = [f"exported {result.rows_written:,} records of topic {result.plan.topic} "
             f"({kinds}) to {len(result.files_written)} files in {result.output_dir}"]
    if result.exported_ranges:
        ranges = ", ".join(f"{p}:{start}-{end}"
                           for p, (start, end) in sorted(result.exported_ranges.items()))
        lines.append(f"offsets per partition [start-end): {ranges}")
    if result.files_removed:
        lines.append(f"replaced {len(result.files_removed)} files of an earlier export of "
                     f"the same offsets")
    if result.capped:
        lines.append("stopped at --max-records: later offsets were not exported")
    lines.append("nothing committed: an export never moves the consumer group's offsets")
    return lines
