"""Profile one `batchalert run` with py-spy and list where its wall time goes.

    python -m bench.profile_batchalert [--records N] [--rate 200] [--out bench/results]

Sets up the benchmark's topic and receiver like `python -m bench.run` and records the run's main
thread with py-spy. Idle samples are included, so waits on Kafka and on the receiver count as
time. The report `<out>/<UTC time>-profile.md` has three tables: batchalert functions by
inclusive time, the innermost batchalert function of each sample, and the innermost frame of any
module.
Time spent inside Polars, pyarrow or kafka-python shows up under the Python function that called
into them. The raw py-spy output, about 1 MB, is kept in `bench/.cache/profiles/`, which git
ignores.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from batchalert.errors import BatchalertError
from bench import BenchError
from bench.contenders import Target
from bench.job import write_job
from bench.load import CACHE_DIR, DEFAULT_SEED, ensure_dataset, load_topic
from bench.measure import check_exit, run_measured
from bench.run import (
    DEFAULT_OUT,
    REPO_ROOT,
    BenchOptions,
    Session,
    bench_session,
    child_environment,
    stop_on_signals,
    warm_up,
)

logger = logging.getLogger(__name__)

_TOP = 25
# A frame in py-spy's raw output: "function (path/to/file.py:line)".
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")
_THREAD = re.compile(r"^thread \((?P<tid>\d+)\)(?:: (?P<name>.*))?$")


@dataclass(frozen=True)
class Stack:
    """One distinct stack of the main thread, outermost frame first, and its sample count."""

    frames: tuple[str, ...]  # "function (file)", line numbers dropped
    samples: int


def parse_raw(text: str) -> list[Stack]:
    """Return the main thread's stacks from py-spy's raw (collapsed) output with --threads."""
    parsed: list[tuple[str, str | None, tuple[str, ...], int]] = []
    for line in text.splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not stack_text or not count.isdigit():
            continue
        thread, *frames = stack_text.split(";")
        found = _THREAD.match(thread)
        if found is None:
            continue
        names = tuple(_frame_name(frame) for frame in frames)
        parsed.append((found["tid"], found["name"], names, int(count)))
    main = _main_thread(parsed)
    return [Stack(frames, count) for tid, _, frames, count in parsed if tid == main]


def _frame_name(frame: str) -> str:
    found = _FRAME.match(frame)
    if found is None:
        return frame
    return f"{found['function']} ({found['file']})"


def _main_thread(parsed: list[tuple[str, str | None, tuple[str, ...], int]]) -> str | None:
    for tid, name, _, _ in parsed:
        if name == "MainThread":
            return tid
    totals: Counter[str] = Counter()
    for tid, _, _, count in parsed:
        totals[tid] += count
    return totals.most_common(1)[0][0] if totals else None


def _is_project(frame: str) -> bool:
    return "batchalert/" in frame and "site-packages" not in frame


def inclusive_project(stacks: list[Stack]) -> Counter[str]:
    """Count, for each batchalert function, the samples whose stack contains it."""
    counts: Counter[str] = Counter()
    for stack in stacks:
        for frame in set(stack.frames):
            if _is_project(frame):
                counts[frame] += stack.samples
    return counts


def innermost_project(stacks: list[Stack]) -> Counter[str]:
    """Count each sample for the innermost batchalert function of its stack."""
    counts: Counter[str] = Counter()
    for stack in stacks:
        own = [frame for frame in stack.frames if _is_project(frame)]
        counts[own[-1] if own else "(outside batchalert: start-up, imports, exit)"] += \
            stack.samples
    return counts


def innermost(stacks: list[Stack]) -> Counter[str]:
    """Count each sample for the innermost frame of its stack."""
    counts: Counter[str] = Counter()
    for stack in stacks:
        counts[stack.frames[-1] if stack.frames else "(no frame)"] += stack.samples
    return counts


def render_profile(stacks: list[Stack], rate: int, header: list[str]) -> str:
    """Render the three tables as Markdown; seconds are samples divided by the rate."""
    total = sum(stack.samples for stack in stacks)
    lines = [*header, "", f"Main-thread samples: {total:,} at {rate} per second "
             f"({total / rate:,.1f} s).", ""]
    tables = [("batchalert functions, inclusive time", inclusive_project(stacks)),
              ("innermost batchalert function of each sample", innermost_project(stacks)),
              ("innermost frame of each sample, any module", innermost(stacks))]
    for title, counts in tables:
        lines += [f"## {title}", "", "| function (file) | seconds | share |", "|---|---|---|"]
        for frame, samples in counts.most_common(_TOP):
            lines.append(f"| `{frame}` | {samples / rate:,.2f} | {samples / max(total, 1):.1%} |")
        lines.append("")
    return "\n".join(lines)


def profile_run(records: int, rate: int, seed: int, out: Path, native: bool) -> Path:
    """Load `records` records, profile one `batchalert run` over them and write the report."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise BenchError("py-spy not found on PATH; install it with `pip install py-spy`")
    dataset = ensure_dataset(records, seed)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    raw_dir = CACHE_DIR / "profiles"
    raw_dir.mkdir(parents=True, exist_ok=True)
    raw_path = raw_dir / f"{stamp}-profile.txt"
    options = BenchOptions(records=records, seed=seed)

    with tempfile.TemporaryDirectory(prefix="batchalert-profile-") as tmp, \
            bench_session(options, Path(tmp)) as session:
        load_topic(session.broker, session.topic(records), dataset)
        warm_up(session, dataset)
        usage_text = _record(py_spy, session.target(dataset), raw_path, rate, native, session)

    stacks = parse_raw(raw_path.read_text())
    header = [f"# py-spy profile of batchalert run, {stamp}", "",
              f"Command: `python -m bench.profile_batchalert --records {records} --rate {rate}`; "
              f"{usage_text} Raw samples: `{raw_path}`."]
    report_path = out / f"{stamp}-profile.md"
    report_path.write_text(render_profile(stacks, rate, header) + "\n")
    return report_path


def _record(py_spy: str, target: Target, raw_path: Path, rate: int, native: bool,
            session: Session) -> str:
    job = write_job(target.workdir / "job-profile.yaml", target.bootstrap, target.topic,
                    "bench-profile", target.receiver_url)
    command = [py_spy, "record", "--rate", str(rate), "--idle", "--threads", "--format", "raw",
               "--output", str(raw_path), *(["--native"] if native else []), "--",
               sys.executable, "-m", "batchalert.cli", "run", "--job", str(job), "--quiet"]
    out, err = target.workdir / "profile.out", target.workdir / "profile.err"
    logger.info("profiling batchalert run over %d records", target.records)
    usage = run_measured(command, timeout_s=target.timeout_s, stdout_path=out, stderr_path=err,
                         cwd=REPO_ROOT, broker_pid=session.broker.pid, env=child_environment())
    check_exit(usage, "py-spy record", target.timeout_s, err)
    if "commit: offsets committed" not in out.read_text(errors="replace"):
        raise BenchError(f"the profiled batchalert run did not commit; see {out}")
    return (f"{target.records:,} records, {usage.wall_seconds:.1f} s wall under py-spy "
            f"(sampling slows the run a little).")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_batchalert",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000,
                        help="records in the topic (default: %(default)s)")
    parser.add_argument("--rate", type=int, default=200,
                        help="py-spy samples per second (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    parser.add_argument("--native", action="store_true",
                        help="also sample native frames (Polars, pyarrow), if py-spy can")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory for the report (default: bench/results)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    stop_on_signals()
    try:
        report = profile_run(args.records, args.rate, args.seed, args.out, args.native)
    except KeyboardInterrupt:
        logger.error("interrupted; the broker and the receiver were stopped")
        return 130
    except BatchalertError as exc:
        logger.error("%s", exc)
        return exc.exit_code
    logger.info("profile written to %s", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
