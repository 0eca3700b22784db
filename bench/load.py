"""Generating the benchmark's Fluent Bit records once, and loading them into a topic with kcat.

The records come from `scripts.sample_logs.generate`, written one value per line to a file under
`bench/.cache`. The file name carries the record count, the seed and a digest of the generator
settings, so a changed setting makes a new file and an unchanged one is reused. JSON encoding
escapes every newline inside a value, so one line is exactly one record value.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import BenchError
from scripts.kafka_local import LocalKafka
from scripts.sample_logs import BROKEN_VALUES, generate

logger = logging.getLogger(__name__)

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
DEFAULT_SEED = 1
PARTITIONS = 10

# Keyword arguments for scripts.sample_logs.generate. Mysql pods (one in five) write only
# non-access lines, so about 76 % of the records are access lines; rate_404 = 0.066 makes about
# 5 % of all records 404 responses and rate_5xx = 0.013 about 1 % 5xx responses. 20 namespaces of 20
# pods, plus the article's WordPress pod, give 401 pods.
GENERATOR_SETTINGS: dict[str, float] = {
    "namespaces": 20,
    "pods_per_namespace": 20,
    "rate_404": 0.066,
    "rate_5xx": 0.013,
    "rate_other": 0.05,
    "rate_broken": 0.001,
}

# The status of an nginx combined line as it appears inside the JSON-encoded value.
_STATUS_IN_VALUE = re.compile(rb'HTTP/[0-9.]+\\" (\d{3}) ')
_BROKEN = frozenset(BROKEN_VALUES)
# Seconds kcat may take to produce one million records (it takes a few here); scaled by size.
_PRODUCE_SECONDS_PER_MILLION = 300.0
# librdkafka producer settings: large batches and a short linger make loading fast, and no
# compression matches Fluent Bit's Kafka output default.
_KCAT_PRODUCER_SETTINGS = {
    "linger.ms": "50",
    "batch.num.messages": "100000",
    "batch.size": str(4 * 1024 * 1024),
    "queue.buffering.max.kbytes": str(512 * 1024),
    "compression.codec": "none",
    "sticky.partitioning.linger.ms": "0",
}


@dataclass(frozen=True)
class Dataset:
    """A generated file of record values, one per line, and what it contains."""

    path: Path
    records: int
    value_bytes: int  # sum of the value lengths, newlines excluded
    seed: int
    settings: dict[str, float]
    statuses: dict[str, int] = field(default_factory=dict)  # access lines by status code
    non_access: int = 0  # valid envelopes whose line is no access line
    broken: int = 0  # values that are no valid Fluent Bit record

    def describe(self) -> dict[str, object]:
        """Return the dataset as JSON-ready values."""
        described = asdict(self)
        described["path"] = str(self.path)
        return described


def settings_digest(settings: dict[str, float]) -> str:
    """Return a short digest of the generator settings for cache file names."""
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def dataset_path(records: int, seed: int, cache_dir: Path = CACHE_DIR) -> Path:
    """Return the cache file for `records` values generated with `seed`."""
    digest = settings_digest(GENERATOR_SETTINGS)
    return cache_dir / f"records-{records}-seed{seed}-{digest}.txt"


def ensure_dataset(records: int, seed: int = DEFAULT_SEED, cache_dir: Path = CACHE_DIR) -> Dataset:
    """Return the cached dataset, generating it first when the cache has no complete copy."""
    if records < 1:
        raise BenchError(f"record count must be at least 1, got {records}")
    path = dataset_path(records, seed, cache_dir)
    meta_path = path.with_suffix(".json")
    if path.is_file() and meta_path.is_file():
        return _read_meta(path, meta_path)

    cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    logger.info("generating %d records into %s", records, path)
    dataset = _write_values(path, records, seed)
    # The metadata is written last, so an interrupted generation is redone on the next run.
    meta_path.write_text(json.dumps(dataset.describe(), indent=2) + "\n")
    logger.info("generated %d records (%.1f MB) in %.1f s", records, dataset.value_bytes / 1e6,
                time.monotonic() - started)
    return dataset


def _read_meta(path: Path, meta_path: Path) -> Dataset:
    meta = json.loads(meta_path.read_text())
    meta["path"] = path
    return Dataset(**meta)


def _write_values(path: Path, records: int, seed: int) -> Dataset:
    statuses: Counter[str] = Counter()
    non_access = broken = value_bytes = 0
    partial = path.with_suffix(".partial")
    values = generate(records, seed=seed, **GENERATOR_SETTINGS)  # type: ignore[arg-type]
    with partial.open("wb", buffering=8 * 1024 * 1024) as out:
        for value in values:
            if b"\n" in value:
                raise BenchError(f"generated value {value[:80]!r} contains a newline; the "
                                 f"one-value-per-line file cannot hold it")
            out.write(value + b"\n")
            value_bytes += len(value)
            found = _STATUS_IN_VALUE.search(value)
            if found is not None:
                statuses[found.group(1).decode()] += 1
            elif value in _BROKEN:
                broken += 1
            else:
                non_access += 1
    partial.replace(path)
    return Dataset(path, records, value_bytes, seed, dict(GENERATOR_SETTINGS),
                   dict(sorted(statuses.items())), non_access, broken)


def read_values(dataset: Dataset, limit: int | None = None) -> list[bytes]:
    """Read the dataset's values back into memory, at most `limit` of them."""
    values: list[bytes] = []
    with dataset.path.open("rb") as handle:
        for line in handle:
            if limit is not None and len(values) >= limit:
                break
            values.append(line[:-1])
    return values


def kcat_path() -> str:
    """Return the kcat executable, raising BenchError when it is not installed."""
    path = shutil.which("kcat")
    if path is None:
        raise BenchError("kcat not found on PATH; install it with `apt-get install kcat`")
    return path


def _kcat_settings(settings: dict[str, str]) -> Iterable[str]:
    for name, value in settings.items():
        yield "-X"
        yield f"{name}={value}"


def load_topic(broker: LocalKafka, topic: str, dataset: Dataset,
               partitions: int = PARTITIONS) -> float:
    """Create `topic` and produce every value of `dataset` into it; return the seconds taken.

    kcat's random partitioner spreads the values over the partitions, as Fluent Bit does for
    records without a key. Raises BenchError when the topic ends up with another record count.
    """
    broker.create_topic(topic, partitions)
    command = [kcat_path(), "-P", "-b", broker.bootstrap, "-t", topic, "-p", "-1",
               *_kcat_settings(_KCAT_PRODUCER_SETTINGS), "-l", str(dataset.path)]
    timeout = 60.0 + _PRODUCE_SECONDS_PER_MILLION * dataset.records / 1e6
    started = time.monotonic()
    _run_kcat(command, timeout, f"producing {dataset.records} records to topic {topic!r}")
    seconds = time.monotonic() - started

    loaded = sum(broker.end_offsets(topic).values())
    if loaded != dataset.records:
        raise BenchError(f"topic {topic!r} contains {loaded} records after loading, expected "
                         f"{dataset.records}; check the broker log {broker.log_path}")
    logger.info("loaded %d records into %s in %.1f s", loaded, topic, seconds)
    return seconds


def _run_kcat(command: list[str], timeout: float, action: str) -> None:
    try:
        result = subprocess.run(command, capture_output=True, timeout=timeout, check=False,
                                env={**os.environ, "KCAT_CONFIG": os.devnull})
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{action} with kcat timed out after {timeout:.0f} s") from exc
    if result.returncode != 0:
        output = result.stderr.decode(errors="replace")[-2000:]
        raise BenchError(f"{action} with kcat failed with exit code {result.returncode}: "
                         f"{output}")
