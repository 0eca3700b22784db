"""Benchmark `batchalert run` against kcat, a plain kafka-python consumer and per-message handling.

    python -m bench.run [--records N] [--repeat 3] [--sizes 100000,5000000] [--out bench/results]

Steps:
1. generate the records once (cached in bench/.cache), start a local Kafka broker and a local
   Notification Manager on 127.0.0.1, and load one topic of 10 partitions per record count;
2. read each topic once with kcat, untimed, so the broker and the page cache are warm;
3. run the contenders and `--variant`s in turn, `--repeat` times, alternating them within each
   repetition;
4. run `batchalert run` at the other `--sizes`, `--repeat` times each;
5. run the in-memory micro-benchmark (`bench.parse_only`);
6. write the medians, ratios and targets to `<out>/<UTC time>.json` and `.md`.

The broker and the receiver are stopped on exit, also after an error or Ctrl-C, and a child
that outlives `--timeout` is killed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from kafka.errors import KafkaError

from batchalert.errors import BatchalertError
from bench import STARTING_JEMALLOC_CONF, BenchError
from bench.contenders import CONTENDERS, BatchalertRun, Contender, Target
from bench.job import JobOverrides, job_document
from bench.load import (
    CACHE_DIR,
    DEFAULT_SEED,
    PARTITIONS,
    Dataset,
    ensure_dataset,
    kcat_path,
    load_topic,
)
from bench.measure import check_exit, run_measured
from bench.report import (
    Sample,
    machine_info,
    scaling,
    source_digest,
    summarize,
    targets,
    versions,
    wall_ratios,
    write_results,
)
from scripts import fake_receivers
from scripts.fake_receivers import NotificationManagerServer
from scripts.kafka_local import LocalKafka

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "bench" / "results"
PACKAGE_DIR = REPO_ROOT / "batchalert"
# Broker heap in MiB: headroom over LocalKafka's 512 for topics of millions of records. Whether
# it changes any figure was not measured.
_BROKER_HEAP_MB = 1024
# Seconds the startup probe (interpreter plus batchalert's imports) may take.
_STARTUP_TIMEOUT_S = 120.0
_STARTUP_PROBE = "import batchalert.cli, batchalert.pipeline"


@dataclass(frozen=True)
class BenchOptions:
    """Settings of one benchmark run; see the command-line help."""

    records: int = 1_000_000
    repeat: int = 3
    sizes: tuple[int, ...] = (100_000,)
    contenders: tuple[str, ...] = tuple(CONTENDERS)
    seed: int = DEFAULT_SEED
    timeout_s: float = 3600.0
    parse_only_records: int | None = None  # None: min(records, 1,000,000); 0: skipped
    out: Path = DEFAULT_OUT
    cache_dir: Path = CACHE_DIR
    job_overrides: JobOverrides = ()  # dotted job-file keys and values for every (d) run
    # Each variant is one more batchalert contender at `records`, with these job-file keys.
    variants: tuple[JobOverrides, ...] = ()


@dataclass
class Session:
    """The broker, receiver and scratch directory shared by the runs of one benchmark."""

    broker: LocalKafka
    receiver: NotificationManagerServer
    workdir: Path
    options: BenchOptions
    # Topic names start with it, so that runs on a shared broker never read each other's data.
    topic_prefix: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")

    def topic(self, records: int) -> str:
        """Return the name of the topic that contains `records` records."""
        return f"{self.topic_prefix}-{records}"

    def target(self, dataset: Dataset) -> Target:
        """Return the topic of `dataset` and the receiver, for a contender."""
        return Target(self.broker.bootstrap, self.topic(dataset.records), dataset.records,
                      self.receiver.url, self.workdir, self.options.timeout_s,
                      self.options.job_overrides)


def child_environment() -> dict[str, str]:
    """Return the environment for children, without BATCHALERT_* overrides of the job, and
    with the allocator setting the harness started with (see bench.STARTING_JEMALLOC_CONF)."""
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("BATCHALERT_") and name != "_RJEM_MALLOC_CONF"}
    if STARTING_JEMALLOC_CONF is not None:
        environment["_RJEM_MALLOC_CONF"] = STARTING_JEMALLOC_CONF
    return environment


@contextmanager
def running_receiver() -> Iterator[NotificationManagerServer]:
    """Run the local Notification Manager with Nagle's algorithm off on its connections."""
    # NOTE: the fake receiver sends the headers and the body of a response in two writes. With
    # Nagle's algorithm on, the body waits for the client's delayed ACK, about 40 ms per request
    # on Linux. The real Notification Manager, a Go server, has no such wait, because Go's net
    # package sets TCP_NODELAY on every TCP connection by default (TCPConn.SetNoDelay). This
    # sets socketserver's switch for TCP_NODELAY until the fake receiver sets it itself, and
    # restores it afterwards for other users of the class in the same process.
    handler = fake_receivers._RequestHandler
    previous = handler.disable_nagle_algorithm
    handler.disable_nagle_algorithm = True
    try:
        with NotificationManagerServer() as receiver:
            yield receiver
    finally:
        handler.disable_nagle_algorithm = previous


@contextmanager
def bench_session(options: BenchOptions, workdir: Path,
                  broker: LocalKafka | None = None) -> Iterator[Session]:
    """Yield a session with a started broker and receiver, and stop what it started.

    Without `broker`, a new broker is started in `workdir` and stopped at the end. A given
    broker is started if needed and left running, but the session's topics are deleted from it.
    """
    own_broker = broker is None
    if broker is None:
        broker = LocalKafka(workdir / "kafka", heap_mb=_BROKER_HEAP_MB)
    try:
        broker.start()
        with running_receiver() as receiver:
            session = Session(broker, receiver, workdir, options)
            try:
                yield session
            finally:
                if not own_broker:
                    _delete_topics(session)
    finally:
        if own_broker:
            broker.stop()


def _delete_topics(session: Session) -> None:
    # A topic left behind only costs disk on a broker that someone else stops, so a failed
    # deletion is logged instead of hiding the benchmark's result or error.
    try:
        with session.broker.admin() as admin:
            names = [name for name in admin.list_topics()
                     if name.startswith(session.topic_prefix)]
            if names:
                admin.delete_topics(names)
    except (KafkaError, BatchalertError) as exc:
        logger.warning("could not delete the benchmark topics %s-*: %s", session.topic_prefix,
                       exc)


def run_benchmark(options: BenchOptions, command: str,
                  broker: LocalKafka | None = None) -> dict[str, Any]:
    """Run every measurement of `options` and return the result document.

    Uses `broker` when given (and leaves it running); otherwise starts and stops its own.
    """
    started = datetime.now(UTC)
    source_at_start = source_digest(PACKAGE_DIR)
    scaled = "batchalert" in options.contenders
    counts = sorted({options.records, *(options.sizes if scaled else ())})
    datasets = {n: ensure_dataset(n, options.seed, options.cache_dir) for n in counts}

    with tempfile.TemporaryDirectory(prefix="batchalert-bench-") as tmp, \
            bench_session(options, Path(tmp), broker) as session:
        measured = _measure(session, datasets)
    measured["parse_only"] = _parse_only(options)
    measured["batchalert_source"] = {"start": source_at_start, "end": source_digest(PACKAGE_DIR)}
    return _results(options, command, started, datasets, measured)


def _measure(session: Session, datasets: dict[int, Dataset]) -> dict[str, Any]:
    options = session.options
    load_seconds = {}
    for records, dataset in datasets.items():
        load_seconds[str(records)] = load_topic(session.broker, session.topic(records), dataset)
        warm_up(session, dataset)

    startup = _startup_cost(session)
    samples = []
    main = session.target(datasets[options.records])
    for attempt in range(options.repeat):
        for contender in main_contenders(options):
            samples.append(run_sample(session, contender, main, datasets[main.records],
                                      attempt))
    for records, dataset in datasets.items():
        if records == options.records:
            continue
        for attempt in range(options.repeat):
            samples.append(run_sample(session, CONTENDERS["batchalert"], session.target(dataset),
                                      dataset, attempt))
    return {"load_seconds": load_seconds, "startup": startup, "samples": samples}


def main_contenders(options: BenchOptions) -> list[Contender]:
    """Return the contenders run at `options.records`, the variants after the named ones."""
    contenders = [CONTENDERS[key] for key in options.contenders]
    return contenders + [BatchalertRun(overrides) for overrides in options.variants]


def warm_up(session: Session, dataset: Dataset) -> None:
    """Read the topic once with kcat, untimed, so every contender finds the same warm caches."""
    target = session.target(dataset)
    command = CONTENDERS["kcat"].command(target, -1)
    try:
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=target.timeout_s, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"warm-up read of topic {target.topic!r} with kcat failed: {exc}") from exc


def _startup_cost(session: Session) -> dict[str, float]:
    """Return the median wall seconds and peak RSS of starting Python and importing batchalert."""
    walls, peaks = [], []
    for attempt in range(max(session.options.repeat, 1)):
        out = session.workdir / f"startup-{attempt}.out"
        err = session.workdir / f"startup-{attempt}.err"
        usage = run_measured([sys.executable, "-c", _STARTUP_PROBE], timeout_s=_STARTUP_TIMEOUT_S,
                             stdout_path=out, stderr_path=err, cwd=REPO_ROOT,
                             env=child_environment())
        check_exit(usage, "the start-up probe", _STARTUP_TIMEOUT_S, err)
        walls.append(usage.wall_seconds)
        peaks.append(usage.max_rss_bytes)
    return {"seconds": statistics.median(walls), "max_rss_bytes": statistics.median(peaks)}


def run_sample(session: Session, contender: Contender, target: Target, dataset: Dataset,
               attempt: int) -> Sample:
    """Run one contender once over `target`, check its result and return the measurement."""
    session.receiver.reset()
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", contender.key)
    stem = f"{slug}-{target.records}-{attempt}-{uuid.uuid4().hex[:6]}"
    out = Path(os.devnull) if contender.discards_output else session.workdir / f"{stem}.out"
    err = session.workdir / f"{stem}.err"
    logger.info("repetition %d: (%s) %s over %d records", attempt + 1, contender.letter,
                contender.title, target.records)

    usage = run_measured(contender.command(target, attempt), timeout_s=target.timeout_s,
                         stdout_path=out, stderr_path=err, cwd=REPO_ROOT,
                         broker_pid=session.broker.pid, env=child_environment())
    check_exit(usage, contender.title, target.timeout_s, err)
    stdout = "" if contender.discards_output else out.read_text(errors="replace")
    outcome = contender.outcome(stdout, err.read_text(errors="replace"))
    if outcome.records != target.records:
        raise BenchError(f"{contender.title} read {outcome.records} records of topic "
                         f"{target.topic!r}, expected {target.records}")
    contender.check_posts(outcome, len(session.receiver.received),
                          len(session.receiver.requests))

    logger.info("  %.2f s wall, %.2f s CPU, %.0f MiB peak RSS", usage.wall_seconds,
                usage.cpu_seconds, usage.max_rss_bytes / 1024 / 1024)
    return Sample(contender.key, target.records, dataset.value_bytes, attempt, usage,
                  len(session.receiver.requests), outcome.details)


def _parse_only(options: BenchOptions) -> dict[str, Any] | None:
    """Run bench.parse_only in a child process and return its result, or None when skipped."""
    records = options.parse_only_records
    if records is None:
        records = min(options.records, 1_000_000)
    if records == 0:
        return None
    command = [sys.executable, "-m", "bench.parse_only", "--records", str(records),
               "--repeat", str(options.repeat), "--seed", str(options.seed),
               "--cache-dir", str(options.cache_dir), "--json"]
    logger.info("parse-only micro-benchmark over %d records", records)
    with tempfile.TemporaryDirectory(prefix="batchalert-bench-parse-") as tmp:
        out, err = Path(tmp) / "parse.out", Path(tmp) / "parse.err"
        usage = run_measured(command, timeout_s=options.timeout_s, stdout_path=out,
                             stderr_path=err, cwd=REPO_ROOT, env=child_environment())
        check_exit(usage, "bench.parse_only", options.timeout_s, err)
        lines = [line for line in out.read_text().splitlines() if line.startswith("{")]
    if not lines:
        raise BenchError("bench.parse_only printed no JSON result")
    result: dict[str, Any] = json.loads(lines[-1])
    result["max_rss_bytes"] = usage.max_rss_bytes
    return result


def _results(options: BenchOptions, command: str, started: datetime,
             datasets: dict[int, Dataset], measured: dict[str, Any]) -> dict[str, Any]:
    samples: list[Sample] = measured["samples"]
    titles = {c.key: (c.letter, c.title)
              for c in (*CONTENDERS.values(), *main_contenders(options))}
    summaries = summarize(samples, titles)
    described = asdict(options)
    described["out"] = str(options.out)
    described["cache_dir"] = str(options.cache_dir)
    results: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "command": command,
        "options": described,
        "machine": machine_info(),
        "versions": versions(kcat_path()),
        "partitions": PARTITIONS,
        "job": job_document("127.0.0.1:PORT", "TOPIC", "GROUP", "RECEIVER_URL",
                            options.job_overrides),
        "dataset": datasets[options.records].describe(),
        "datasets": {str(n): d.describe() for n, d in datasets.items()},
        "load_seconds": measured["load_seconds"],
        "startup": measured["startup"],
        "samples": [s.to_dict() for s in samples],
        "summaries": summaries,
        "ratios": wall_ratios(summaries, options.records),
        "scaling": scaling(summaries),
        "parse_only": measured.get("parse_only"),
        "batchalert_source": measured["batchalert_source"],
    }
    results["targets"] = targets(results)
    return results


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid record counts {text!r}: {exc}") from exc
    if any(n < 1 for n in counts):
        raise argparse.ArgumentTypeError(f"record counts must be at least 1, got {text!r}")
    return counts


def _job_override(text: str) -> tuple[str, Any]:
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise argparse.ArgumentTypeError(f"invalid job option {text!r}; use KEY=VALUE")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"invalid YAML value in job option {text!r}: "
                                         f"{exc}") from exc


def _variant(text: str) -> JobOverrides:
    return tuple(_job_override(part) for part in text.split(",") if part.strip())


def _contender_keys(text: str) -> tuple[str, ...]:
    keys = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [key for key in keys if key not in CONTENDERS]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(f"unknown contenders {unknown}; choose from "
                                         f"{', '.join(CONTENDERS)}")
    return keys


def parse_options(argv: Sequence[str] | None) -> BenchOptions:
    """Parse the command line into BenchOptions."""
    parser = argparse.ArgumentParser(prog="python -m bench.run",
                                     description=__doc__.splitlines()[0])

    parser.add_argument("--records", type=int, default=1_000_000,
                        help="records in the topic all contenders read (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="repetitions of each measurement (default: %(default)s)")
    parser.add_argument("--sizes", type=_counts, default=(100_000,),
                        help="other record counts, comma-separated, at which `batchalert run` "
                             "also runs (default: 100000; add 5000000 for the memory target)")
    parser.add_argument("--contenders", type=_contender_keys, default=tuple(CONTENDERS),
                        help=f"contenders to run, comma-separated (default: "
                             f"{','.join(CONTENDERS)})")

    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds after which one child run is killed (default: %(default)s)")
    parser.add_argument("--parse-only-records", type=int, default=None,
                        help="records for the in-memory micro-benchmark; 0 skips it "
                             "(default: the smaller of --records and 1000000)")

    parser.add_argument("--job-option", type=_job_override, action="append", default=[],
                        metavar="KEY=VALUE",
                        help="set a job-file key for every batchalert run, dotted for nested "
                             "keys, with a YAML value (for example prefilter=true); repeatable")
    parser.add_argument("--variant", type=_variant, action="append", default=[],
                        metavar="KEY=VALUE[,KEY=VALUE]",
                        help="also run batchalert at --records with these job-file keys, as "
                             "one more contender (values must not contain commas); repeatable")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory for the result files (default: bench/results)")

    args = parser.parse_args(argv)
    if args.records < 1 or args.repeat < 1 or args.timeout <= 0:
        parser.error("--records and --repeat must be at least 1 and --timeout positive")
    return BenchOptions(records=args.records, repeat=args.repeat, sizes=args.sizes,
                        contenders=args.contenders, seed=args.seed, timeout_s=args.timeout,
                        parse_only_records=args.parse_only_records, out=args.out,
                        job_overrides=tuple(args.job_option), variants=tuple(args.variant))


def stop_on_signals() -> None:
    """Turn SIGTERM, and SIGINT even where it was ignored, into KeyboardInterrupt.

    The harness then stops its children, receiver and broker on the way out. A shell starts
    background jobs with SIGINT ignored, and Python's default for SIGTERM skips all clean-up.
    """
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = parse_options(arguments)
    stop_on_signals()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # kafka-python logs every connection at INFO, which would bury the benchmark's lines.
    logging.getLogger("kafka").setLevel(logging.WARNING)

    command = shlex.join(["python", "-m", "bench.run", *arguments])
    try:
        results = run_benchmark(options, command)
    except KeyboardInterrupt:
        logger.error("interrupted; the broker and the receiver were stopped")
        return 130
    except BatchalertError as exc:
        logger.error("%s", exc)
        return exc.exit_code
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path, markdown_path = write_results(results, options.out, stamp)
    logger.info("results written to %s and %s", json_path, markdown_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
