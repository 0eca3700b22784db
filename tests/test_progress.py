"""Read progress: the rich bar on a terminal, bounded log lines elsewhere."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import pytest
from rich.console import Console

from batchalert.progress import LOG_INTERVAL_SECONDS, RunProgress
from batchalert.source.plan import PartitionRange, ReadPlan


class FakeClock:
    """A monotonic clock that moves only when a test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_plan(first: int, second: int) -> ReadPlan:
    return ReadPlan("logs", "batchalert-test", (
        PartitionRange(0, 100, 100 + first, "committed", 100),
        PartitionRange(1, 0, second, "earliest"),
    ))


def progress_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if vars(r).get("event") == "progress"]


def field(record: logging.LogRecord, name: str) -> object:
    """Return a field passed to the log call through `extra=`."""
    return vars(record)[name]


def terminal() -> tuple[Console, io.StringIO]:
    output = io.StringIO()
    return Console(file=output, force_terminal=True, color_system=None, width=160), output


class TestLoggedProgress:
    def test_lines_bounded_by_interval(self, caplog: pytest.LogCaptureFixture) -> None:
        clock = FakeClock()

        with caplog.at_level(logging.INFO, logger="batchalert.progress"), \
                RunProgress(False, clock=clock) as progress:
            progress.on_plan(make_plan(6000, 4000))
            for _ in range(35):
                clock.advance(1)
                progress.on_progress(100, 5000)

        # One line per full interval of the 35 seconds: at 10, 20 and 30 seconds.
        lines = progress_records(caplog)
        assert len(lines) == int(35 // LOG_INTERVAL_SECONDS)
        assert [field(r, "records_read") for r in lines] == [1000, 2000, 3000]

    def test_line_fields(self, caplog: pytest.LogCaptureFixture) -> None:
        clock = FakeClock()

        with caplog.at_level(logging.INFO, logger="batchalert.progress"), \
                RunProgress(False, clock=clock) as progress:
            progress.on_plan(make_plan(6000, 4000))
            clock.advance(LOG_INTERVAL_SECONDS)
            progress.on_progress(2500, 1_000_000)

        (line,) = progress_records(caplog)
        assert field(line, "records_read") == 2500
        assert field(line, "bytes_read") == 1_000_000
        assert field(line, "planned_offsets") == 10_000
        assert field(line, "records_per_second") == 2500 / LOG_INTERVAL_SECONDS
        assert "2,500 of at most 10,000 records" in line.getMessage()

    def test_no_line_before_interval(self, caplog: pytest.LogCaptureFixture) -> None:
        clock = FakeClock()

        with caplog.at_level(logging.INFO, logger="batchalert.progress"), \
                RunProgress(False, clock=clock) as progress:
            progress.on_plan(make_plan(10, 10))
            for _ in range(9):
                clock.advance(1)
                progress.on_progress(1, 10)

        assert progress_records(caplog) == []
        assert progress.records == 9
        assert progress.nbytes == 90

    def test_disabled_writes_nothing_to_console(self) -> None:
        console, output = terminal()

        with RunProgress(False, console=console, clock=FakeClock()) as progress:
            progress.on_plan(make_plan(10, 10))
            progress.on_progress(5, 50)

        assert output.getvalue() == ""


class TestProgressBar:
    def test_bar_shows_totals(self) -> None:
        console, output = terminal()
        clock = FakeClock()

        with RunProgress(True, console=console, clock=clock) as progress:
            progress.on_plan(make_plan(1200, 800))
            for _ in range(3):
                clock.advance(1)
                progress.on_progress(500, 1_000_000)

        text = output.getvalue()
        assert "reading logs" in text
        assert "1,500 of at most 2,000 records" in text
        assert "3.0 MB" in text
        # rich 15 estimates the rate from the samples after the first: 1000 records in 2 s.
        assert "500 records/s" in text

    def test_bar_logs_no_progress_lines(self, caplog: pytest.LogCaptureFixture) -> None:
        console, _ = terminal()
        clock = FakeClock()

        with caplog.at_level(logging.INFO, logger="batchalert.progress"), \
                RunProgress(True, console=console, clock=clock) as progress:
            progress.on_plan(make_plan(100, 100))
            clock.advance(3 * LOG_INTERVAL_SECONDS)
            progress.on_progress(100, 1000)

        assert progress_records(caplog) == []

    def test_log_lines_printed_above_bar(self, monkeypatch: pytest.MonkeyPatch) -> None:
        stderr = io.StringIO()
        monkeypatch.setattr(sys, "stderr", stderr)
        handler = logging.StreamHandler(stderr)
        root = logging.getLogger()
        root.addHandler(handler)
        console, output = terminal()
        try:
            with RunProgress(True, console=console, clock=FakeClock()):
                logging.getLogger("batchalert.test").warning("partition 3 is slow")
        finally:
            root.removeHandler(handler)

        assert "partition 3 is slow" in output.getvalue()
        assert stderr.getvalue() == ""
        assert handler.stream is stderr


_NO_BAR_SCRIPT = """
import sys

from batchalert.progress import RunProgress
from batchalert.source.plan import PartitionRange, ReadPlan

with RunProgress(False) as progress:
    progress.on_plan(ReadPlan("logs", "g", (PartitionRange(0, 0, 10, "earliest"),)))
    progress.on_progress(10, 1000)
print(sorted(name for name in ("rich.console", "rich.progress") if name in sys.modules))
"""


def test_log_progress_loads_no_bar_modules() -> None:
    # rich's console and progress modules took about 30 ms of each run's start.
    done = subprocess.run([sys.executable, "-c", _NO_BAR_SCRIPT], capture_output=True,
                          text=True, timeout=60, check=False)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
