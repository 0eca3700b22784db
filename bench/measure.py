"""Running one contender as a child process and measuring its wall time, CPU time and memory.

CPU time comes from `os.wait4`, so it covers exactly the child: user plus system seconds of all
its threads. Peak memory is the child's VmHWM from /proc, sampled while it runs. `ru_maxrss`
would not do, because Linux carries the high-water mark of the process that spawned the child
across `exec`, so every child would report at least this harness's resident set. The broker's
CPU time is read from /proc before and after, and the CPU time of this process (the threads of
the local receiver) from `getrusage`, because both serve the child and belong in its cost. The
machine's busy CPU time from /proc/stat, minus those three, is the CPU time that other
processes took during the run: a measure of how much they disturbed it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench import BenchError

logger = logging.getLogger(__name__)

# Seconds to wait for a killed child to be reaped before giving up on it.
_REAP_TIMEOUT_S = 10.0
# Seconds between two reads of the child's peak memory. VmHWM only grows, so a sample misses
# only a rise in the last interval before the child exits.
_MEMORY_SAMPLE_S = 0.02


@dataclass(frozen=True)
class ChildUsage:
    """Cost of one child process, measured from its start to its exit."""

    exit_code: int
    wall_seconds: float
    user_seconds: float
    system_seconds: float
    max_rss_bytes: int
    broker_cpu_seconds: float
    receiver_cpu_seconds: float
    other_cpu_seconds: float  # CPU time of processes outside the benchmark during the run
    timed_out: bool

    @property
    def cpu_seconds(self) -> float:
        return self.user_seconds + self.system_seconds


def process_cpu_seconds(pid: int | None) -> float:
    """Return the user plus system CPU seconds of a running process, or 0.0 without one."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name may contain spaces, so the fields are counted after its closing ')'.
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime and stime, fields 14 and 15 of stat
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """Return the CPU seconds all CPUs of the machine spent busy since boot, or 0.0."""
    try:
        first_line = Path("/proc/stat").read_text().splitlines()[0]
    except (OSError, IndexError):
        return 0.0
    # Fields of the "cpu" line: user nice system idle iowait irq softirq steal, in clock ticks.
    ticks = [int(value) for value in first_line.split()[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def peak_rss_bytes(pid: int) -> int | None:
    """Return the peak resident set size (VmHWM) of a running process, or None."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # reported in kB
    return None


class PeakMemorySampler:
    """Sampler of a process's VmHWM, read every `interval` seconds in a thread.

    `peak_bytes` is the largest value read, or None before the first read.
    """

    def __init__(self, pid: int, interval: float = _MEMORY_SAMPLE_S) -> None:
        self.pid = pid
        self.peak_bytes: int | None = None
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"peak-rss-{pid}", daemon=True)

    def __enter__(self) -> PeakMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            value = peak_rss_bytes(self.pid)
            if value is not None:
                self.peak_bytes = max(self.peak_bytes or 0, value)
            if self._stop.wait(self._interval):
                return


def _self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _kill_group(pid: int) -> None:
    # The child leads its own session, so its process group id is its pid.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def run_measured(
    command: list[str],
    *,
    timeout_s: float,
    stdout_path: Path,
    stderr_path: Path,
    cwd: Path,
    broker_pid: int | None = None,
    env: dict[str, str] | None = None,
) -> ChildUsage:
    """Run `command` to its end, killing it after `timeout_s` seconds, and measure it.

    Output goes to files, because a pipe that is not read would stall the child. On any
    exception, KeyboardInterrupt included, the child is killed and reaped before re-raising.
    """
    broker_before = process_cpu_seconds(broker_pid)
    self_before = _self_cpu_seconds()
    busy_before = machine_busy_seconds()
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        started = time.monotonic()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stdout,
                                   stderr=stderr, cwd=cwd, env=env, start_new_session=True)
        with PeakMemorySampler(process.pid) as memory:
            status, usage, timed_out = _wait_with_deadline(process, timeout_s)
        wall = time.monotonic() - started

    busy = machine_busy_seconds() - busy_before
    broker = process_cpu_seconds(broker_pid) - broker_before
    receiver = _self_cpu_seconds() - self_before
    exit_code = os.waitstatus_to_exitcode(status)
    process.returncode = exit_code
    child = usage.ru_utime + usage.ru_stime
    return ChildUsage(
        exit_code=exit_code,
        wall_seconds=wall,
        user_seconds=usage.ru_utime,
        system_seconds=usage.ru_stime,
        # Without a sample (a child that exited within the first interval), ru_maxrss in kB.
        max_rss_bytes=memory.peak_bytes or usage.ru_maxrss * 1024,
        broker_cpu_seconds=broker,
        receiver_cpu_seconds=receiver,
        # Clock-tick rounding can make a quiet machine's figure slightly negative.
        other_cpu_seconds=max(0.0, busy - child - broker - receiver),
        timed_out=timed_out,
    )


def _wait_with_deadline(
    process: subprocess.Popen[bytes], timeout_s: float
) -> tuple[int, resource.struct_rusage, bool]:
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        _kill_group(process.pid)

    timer = threading.Timer(timeout_s, expire)
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        _kill_group(process.pid)
        _reap(process)
        raise
    finally:
        timer.cancel()
    return status, usage, expired.is_set()


def _reap(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=_REAP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        logger.error("child pid %d did not exit within %.0f s of SIGKILL", process.pid,
                     _REAP_TIMEOUT_S)


def check_exit(usage: ChildUsage, name: str, timeout_s: float, stderr_path: Path) -> None:
    """Raise BenchError when the child timed out or exited with an error."""
    if usage.timed_out:
        raise BenchError(f"{name} did not finish within {timeout_s:.0f} s and was killed; "
                         f"raise --timeout or lower --records")
    if usage.exit_code != 0:
        tail = stderr_path.read_text(errors="replace")[-3000:]
        raise BenchError(f"{name} exited with code {usage.exit_code}; its standard error "
                         f"ends with:\n{tail}")
