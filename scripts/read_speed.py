"""Measure how fast RangeReader and FastRangeReader read the same topic.

Loads `--records` generated Fluent Bit records (scripts.sample_logs) into a new topic of a local
broker with kcat. Then it reads the whole topic once per reader and prints records/s, MB/s of
record values, CPU seconds and peak RSS. Each reader runs in a process of its own, so peak RSS
and CPU time are its alone. The generated values stay in the temporary directory for the next
run with the same count and seed.

    python -m scripts.read_speed --records 1000000
    python -m scripts.read_speed --records 1000000 --compression zstd --batch-records 50

Without `--state-dir` a broker is started in a temporary directory and stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from batchalert.config import SourceConfig
from batchalert.source.client import consumer_settings
from scripts.kafka_local import LocalKafka
from scripts.sample_logs import generate

logger = logging.getLogger(__name__)

READERS = ("range", "fast")
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
DATA_DIR = Path(tempfile.gettempdir()) / "batchalert-read-speed"
# Seconds one reader may take for a million records before the measurement is abandoned.
_READ_SECONDS_PER_MILLION = 600.0
# Seconds kcat may take to produce a million records, a generous bound.
_LOAD_SECONDS_PER_MILLION = 300.0


def values_file(records: int, seed: int) -> Path:
    """Return a file of `records` generated values, one per line, writing it when missing."""
    path = DATA_DIR / f"values-{records}-seed{seed}.txt"
    if path.is_file():
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    started = time.monotonic()
    with partial.open("wb", buffering=8 * 1024 * 1024) as out:
        for value in generate(records, seed=seed):
            # JSON escapes newlines inside values, so each line is exactly one record value.
            out.write(value.replace(b"\n", b" ") + b"\n")
    partial.replace(path)
    logger.info("generated %d values into %s in %.1f s", records, path, time.monotonic() - started)
    return path


def load_topic(broker: LocalKafka, path: Path, records: int, partitions: int, compression: str,
               batch_records: int) -> str:
    """Create a topic and produce every line of `path` into it with kcat; return its name."""
    topic = f"read-speed-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions)
    kcat = shutil.which("kcat")
    if kcat is None:
        raise SystemExit("kcat not found on PATH; install it with `apt-get install kcat`")
    settings = {"linger.ms": "50", "batch.num.messages": str(batch_records),
                "batch.size": str(4 * 1024 * 1024), "compression.codec": compression,
                "queue.buffering.max.kbytes": str(512 * 1024)}
    command = [kcat, "-P", "-b", broker.bootstrap, "-t", topic, "-p", "-1", "-l", str(path)]
    for name, value in settings.items():
        command += ["-X", f"{name}={value}"]
    started = time.monotonic()
    subprocess.run(command, check=True, timeout=60 + _LOAD_SECONDS_PER_MILLION * records / 1e6,
                   env={**os.environ, "KCAT_CONFIG": os.devnull})
    loaded = sum(broker.end_offsets(topic).values())
    if loaded != records:
        raise SystemExit(f"topic {topic} contains {loaded} records after loading, expected "
                         f"{records}")
    logger.info("loaded %d records into %s in %.1f s", loaded, topic, time.monotonic() - started)
    return topic


def warm_up_decoder() -> float:
    """Compile the decoder (or load it from numba's cache) untimed; return the seconds taken."""
    from batchalert.source.recordbatch import warm_up

    started = time.perf_counter()
    warm_up()
    return time.perf_counter() - started


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(reader_name: str, bootstrap: str, topic: str) -> dict[str, Any]:
    """Read all of `topic` with one reader in this process; return the figures."""
    from kafka import KafkaConsumer

    from batchalert.source.fastread import FastRangeReader
    from batchalert.source.plan import plan_ranges
    from batchalert.source.reader import RangeReader

    warm_up = warm_up_decoder() if reader_name == "fast" else 0.0
    group = f"read-speed-{uuid.uuid4().hex[:8]}"
    consumer = KafkaConsumer(**consumer_settings(SourceConfig(brokers=[bootstrap], topic=topic,
                                                              group=group)))
    try:
        plan = plan_ranges(consumer, topic, group)
        reader_class = FastRangeReader if reader_name == "fast" else RangeReader
        reader = reader_class(consumer, plan)
        rss_before = _rss_mb()
        cpu_started, started = _cpu_seconds(), time.perf_counter()
        rows = sum(batch.num_rows for batch in reader.batches())
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu_started
    finally:
        consumer.close()
    if rows != plan.span:
        raise SystemExit(f"{reader_name} read {rows} records, expected {plan.span}")
    return {"reader": reader_name, "records": rows, "value_bytes": reader.bytes_read,
            "seconds": seconds, "cpu_seconds": cpu, "warm_up_seconds": warm_up,
            "rss_before_mb": rss_before,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure_in_child(reader_name: str, bootstrap: str, topic: str, records: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "scripts.read_speed", "--measure", reader_name,
               "--bootstrap", bootstrap, "--topic", topic]
    timeout = 60 + _READ_SECONDS_PER_MILLION * records / 1e6
    result = subprocess.run(command, check=True, timeout=timeout, capture_output=True, text=True)
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def report(results: list[dict[str, Any]]) -> str:
    header = (f"{'reader':<7}{'records':>10}{'MB':>9}{'seconds':>9}{'records/s':>11}"
              f"{'MB/s':>8}{'CPU s':>8}{'peak RSS MB':>13}{'warm-up s':>11}")
    lines = [header]
    for r in results:
        megabytes = r["value_bytes"] / 1e6
        lines.append(f"{r['reader']:<7}{r['records']:>10}{megabytes:>9.1f}{r['seconds']:>9.2f}"
                     f"{r['records'] / r['seconds']:>11.0f}{megabytes / r['seconds']:>8.1f}"
                     f"{r['cpu_seconds']:>8.2f}{r['peak_rss_mb']:>13.0f}"
                     f"{r['warm_up_seconds']:>11.2f}")
    by_name = {r["reader"]: r for r in results}
    if {"range", "fast"} <= by_name.keys():
        speed_up = by_name["range"]["seconds"] / by_name["fast"]["seconds"]
        cpu_ratio = by_name["range"]["cpu_seconds"] / by_name["fast"]["cpu_seconds"]
        lines.append(f"fast reader: {speed_up:.1f}x the records/s, {cpu_ratio:.1f}x less CPU")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="records to load")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the generator")
    parser.add_argument("--partitions", type=int, default=10, help="partitions of the topic")
    parser.add_argument("--compression", choices=COMPRESSIONS, default="none",
                        help="compression codec kcat produces with")
    parser.add_argument("--batch-records", type=int, default=10_000,
                        help="maximum records per produced batch (librdkafka batch.num.messages)")
    parser.add_argument("--readers", default=",".join(READERS),
                        help="comma-separated readers to measure, in order: range, fast")
    parser.add_argument("--state-dir", type=Path,
                        help="state directory of a local broker to use (started if stopped)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--measure", choices=READERS, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    return parser


def run(args: argparse.Namespace, broker: LocalKafka) -> list[dict[str, Any]]:
    broker.start()  # does nothing while the broker runs
    path = values_file(args.records, args.seed)
    topic = load_topic(broker, path, args.records, args.partitions, args.compression,
                       args.batch_records)
    results = []
    try:
        for name in args.readers.split(","):
            results.append(measure_in_child(name.strip(), broker.bootstrap, topic, args.records))
            logger.info("%s: %s", name, results[-1])
    finally:
        broker.delete_topic(topic)
    return results


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.bootstrap, args.topic)))
        return
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.state_dir is not None:
        results = run(args, LocalKafka(args.state_dir, stop_with_parent=False))
    else:
        with tempfile.TemporaryDirectory() as state_dir, LocalKafka(state_dir) as broker:
            results = run(args, broker)
    print(report(results))
    if args.json is not None:
        settings = {k: v for k, v in vars(args).items() if k not in ("measure", "bootstrap",
                                                                      "topic", "state_dir",
                                                                      "json")}
        args.json.write_text(json.dumps({"settings": settings, "results": results}, indent=2,
                                        default=str) + "\n")


if __name__ == "__main__":
    main()
