"""Writing the records that could not be read to Parquet, with their raw values.

Each chunk with malformed records gives one file named after its first record's partition and
offset, so running the same range again rewrites the same files instead of adding copies.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import polars as pl
import pyarrow as pa

from batchalert.errors import ConfigError

logger = logging.getLogger(__name__)


def prepare_directory(directory: Path) -> None:
    """Create the dead-letter directory, or explain why it cannot be used."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--dead-letter {directory}: cannot create the directory: "
                          f"{exc.strerror}") from exc
    if not os.access(directory, os.W_OK):
        raise ConfigError(f"--dead-letter {directory}: the directory is not writable")


def write_dead_letters(batch: pa.RecordBatch, parsed: pl.DataFrame, topic: str,
                       directory: Path) -> int:
    """Write the malformed records of one chunk; return how many were written."""
    malformed = parsed["kind"] == "malformed"
    count = int(malformed.sum())
    if count == 0:
        return 0
    records = pl.from_arrow(batch)
    assert isinstance(records, pl.DataFrame)
    frame = records.filter(malformed).select(
        pl.lit(topic).alias("topic"), "partition", "offset", "timestamp",
        parsed.filter(malformed)["reason"].alias("reason"), "key", "value",
    )
    partition, offset = frame.row(0)[1], frame.row(0)[2]
    path = directory / f"{topic}-p{partition}-o{offset}.parquet"
    temporary = path.with_suffix(".parquet.tmp")
    frame.write_parquet(temporary)
    temporary.replace(path)
    logger.info("wrote %d malformed records to %s", count, path)
    return count
