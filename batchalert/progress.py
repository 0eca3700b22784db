"""Progress of the read: a rich progress bar on a terminal, periodic log lines elsewhere.

The planned offsets of all partitions are the total, and each record read advances the bar by
one. Offsets can have gaps (transaction markers, compaction), so the total is an upper bound of
the records and the bar can stop short of 100 % on a complete read.

Off a terminal (a CronJob's pod, `--quiet` on a terminal) there is no bar. Instead an INFO line
reports the records read at most every LOG_INTERVAL_SECONDS, so the JSON logs of a long read
show that it advances.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Self, TextIO

from rich import filesize

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from batchalert.source.plan import ReadPlan

logger = logging.getLogger(__name__)

# Seconds between two progress lines in the log: a few lines a minute on a long read, none on a
# read that finishes sooner.
LOG_INTERVAL_SECONDS = 10.0


class RunProgress:
    """Shows how far a run's read got; pass `on_plan` and `on_progress` to run_job.

    `enabled` turns the rich bar on. The command line sets it when standard error is a
    terminal and `--quiet` is off; otherwise progress goes to the log. `console` defaults to
    standard error. `clock` returns seconds and is injectable for tests.
    """

    def __init__(
        self,
        enabled: bool,
        *,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
        log_interval_seconds: float = LOG_INTERVAL_SECONDS,
    ) -> None:
        self.enabled = enabled
        self.records = 0
        self.nbytes = 0
        self.planned_offsets: int | None = None
        self._console = console
        self._clock = clock
        self._log_interval = log_interval_seconds
        self._started = clock()
        self._next_log = self._started + log_interval_seconds
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        # Handlers writing to the terminal while the bar is live, with the stream to restore.
        self._redirected: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []

    def __enter__(self) -> Self:
        self._started = self._clock()
        self._next_log = self._started + self._log_interval
        if self.enabled:
            self._start_bar()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._restore_log_handlers()
            self._progress.stop()
            self._progress = None

    def on_plan(self, plan: ReadPlan) -> None:
        """Set the total to the planned offsets of every partition."""
        self.planned_offsets = plan.span
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=plan.span,
                                  description=f"reading {plan.topic}")
        else:
            logger.info("reading at most %d records from topic %s", plan.span, plan.topic,
                        extra={"event": "progress_plan", "planned_offsets": plan.span})

    def on_progress(self, records: int, nbytes: int) -> None:
        """Add `records` read records with `nbytes` bytes of values to the totals."""
        self.records += records
        self.nbytes += nbytes
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=records,
                                  size=filesize.decimal(self.nbytes))
            return
        now = self._clock()
        if now >= self._next_log:
            self._log_line(now)
            self._next_log = now + self._log_interval

    def _start_bar(self) -> None:
        # Imported here: off a terminal, where runs mostly are, the bar's modules stay unloaded.
        from batchalert.progressbar import new_bar

        self._progress = new_bar(self._console, self._clock)
        self._task = self._progress.add_task("planning", total=None, size=filesize.decimal(0))
        stderr_before = sys.stderr
        self._progress.start()
        self._redirect_log_handlers(stderr_before)

    def _redirect_log_handlers(self, stderr_before: TextIO) -> None:
        """Route root-logger lines for standard error through the live bar.

        rich replaces sys.stderr while the bar is live, so text written to it is printed above
        the bar. A StreamHandler keeps the stream it was created with, and its lines would cut
        through the bar, so for the bar's lifetime it writes to rich's replacement instead.
        """
        if sys.stderr is stderr_before:
            return  # rich did not redirect standard error (its console is not a terminal)
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is stderr_before:
                handler.setStream(sys.stderr)
                self._redirected.append((handler, stderr_before))

    def _restore_log_handlers(self) -> None:
        for handler, stream in self._redirected:
            handler.setStream(stream)
        self._redirected.clear()

    def _log_line(self, now: float) -> None:
        elapsed = now - self._started
        rate = self.records / elapsed if elapsed > 0 else 0.0
        bound = "?" if self.planned_offsets is None else f"{self.planned_offsets:,}"
        logger.info(
            "read %s of at most %s records (%s), %.0f records/s", f"{self.records:,}", bound,
            filesize.decimal(self.nbytes), rate,
            extra={"event": "progress", "records_read": self.records,
                   "bytes_read": self.nbytes, "planned_offsets": self.planned_offsets,
                   "records_per_second": round(rate, 1)},
        )
